"""The command-line side of the live source: its flags, and `meshdoctor snapshot -o DIR`.

`cli.py` stays thin: `@live_options` adds the kubectl-style flags to `check` and hands them over as
one `live: LiveFlags` argument; `collect_for_rules(rules, live)` turns the selected rules' declared
inputs into one collection; `snapshot` is a ready click command. Nothing here imports the
Kubernetes client: `meshdoctor.sources.live` is imported only when a cluster is actually used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from meshdoctor.errors import UsageError
from meshdoctor.rule import LOG_GROUPS, Inputs, Rule

if TYPE_CHECKING:
    from meshdoctor.model import SourceInfo
    from meshdoctor.snapshot import Snapshot
    from meshdoctor.sources.live import LiveOptions

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str, flag: str) -> float:
    """Kubectl durations: `30s`, `1m30s`, `2h`, `500ms`, or a bare number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise UsageError(f"{flag}: invalid duration {text!r} (e.g. 30s, 5m, 1h30m)")
    return total


@dataclass(frozen=True)
class LiveFlags:
    """The live-cluster flags as given on the command line."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    request_timeout: str = "30s"
    since: str = "1h"
    probe: bool = False
    quiet: bool = False

    def given(self) -> list[str]:
        """The flags that only make sense against a live cluster and were set."""
        named = [
            ("--kubeconfig", self.kubeconfig),
            ("--context", self.context),
            ("--namespace", self.namespace),
            ("--all-namespaces", self.all_namespaces),
            ("--probe", self.probe),
        ]
        return [flag for flag, value in named if value]

    def options(self) -> LiveOptions:
        """The live source's options; a one-line UsageError for contradictory or malformed flags."""
        from meshdoctor.sources.live import LiveOptions

        if self.namespace and self.all_namespaces:
            raise UsageError("give either -n/--namespace or -A/--all-namespaces, not both")
        timeout = parse_duration(self.request_timeout, "--request-timeout")
        since = parse_duration(self.since, "--since")
        return LiveOptions(
            kubeconfig=self.kubeconfig,
            context=self.context,
            namespace=self.namespace or None,
            request_timeout=timeout if timeout > 0 else 300.0,
            probe=self.probe,
            log_since_seconds=int(since) if since > 0 else None,
        )


_FLAG_NAMES = ("kubeconfig", "context", "namespace", "all_namespaces", "request_timeout", "since", "probe", "quiet")

_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option(
        "--kubeconfig",
        metavar="FILE",
        default=None,
        help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).",
    ),
    click.option("--context", metavar="NAME", default=None, help="Kubeconfig context (default: the current one)."),
    click.option(
        "-n",
        "--namespace",
        metavar="NS",
        default=None,
        help="Read namespaced objects from this namespace only (default: all namespaces).",
    ),
    click.option(
        "-A",
        "--all-namespaces",
        is_flag=True,
        default=False,
        help="Read every namespace (the default; kept for kubectl habits).",
    ),
    click.option(
        "--request-timeout",
        metavar="DURATION",
        default="30s",
        show_default=True,
        help="Timeout of each API request (30s, 1m; 0 for 5m).",
    ),
    click.option(
        "--since",
        metavar="DURATION",
        default="1h",
        show_default=True,
        help="Read pod logs only this far back (0 for the whole log, still capped at 5000 lines / 5 MiB).",
    ),
    click.option(
        "--probe",
        is_flag=True,
        default=False,
        help="Also fetch the istio check's telemetry endpoints through the API server's service proxy.",
    ),
    click.option("-q", "--quiet", is_flag=True, default=False, help="No progress display on stderr."),
)


def live_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the live flags to a click command; the command receives them as `live: LiveFlags`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = LiveFlags(**{name: kwargs.pop(name) for name in _FLAG_NAMES})
        return func(*args, live=flags, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def collect_for_rules(rules: Iterable[type[Rule]], live: LiveFlags) -> tuple[Snapshot, SourceInfo]:
    """Collect, from the cluster the flags name, exactly what these rules declare."""
    from meshdoctor.engine import required_inputs
    from meshdoctor.sources.live import collect_live
    from meshdoctor.sources.progress import make_progress

    options = live.options()
    with make_progress(live.quiet) as progress:
        return collect_live(options, required_inputs(rules), progress)


@click.command("snapshot")
@click.option(
    "-o",
    "--output",
    "output_dir",
    required=True,
    metavar="DIR",
    help="New (or empty) folder to write the cluster state to; `check --from DIR` reads it back.",
)
@click.option(
    "--rules", "rule_folders", multiple=True, metavar="PATH", help="Also collect what the rules in this folder read."
)
@click.option(
    "--all-kinds",
    is_flag=True,
    default=False,
    help="Collect every kind meshdoctor knows, not only those the rules read.",
)
@live_options
def snapshot(output_dir: str, rule_folders: tuple[str, ...], all_kinds: bool, live: LiveFlags) -> int:
    """Capture what every rule reads from the live cluster into a folder (Secrets left out)."""
    from meshdoctor.engine import required_inputs
    from meshdoctor.kube.kinds import KINDS
    from meshdoctor.registry import load_rules
    from meshdoctor.sources.live import collect_live
    from meshdoctor.sources.progress import make_progress
    from meshdoctor.sources.snapshot_writer import write_snapshot

    target = Path(output_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} exists and is not an empty folder: give a new folder to -o")
    inputs = required_inputs(load_rules(rule_folders))
    if all_kinds:
        inputs = Inputs(inputs.kinds, frozenset(set(KINDS) - inputs.kinds), inputs.logs, inputs.probes)
    inputs = Inputs(inputs.kinds, inputs.optional_kinds, inputs.logs | LOG_GROUPS, inputs.probes)
    options = live.options()
    with make_progress(live.quiet) as progress:
        snap, source = collect_live(options, inputs, progress)
    written = write_snapshot(snap, target, source)
    logs = sum(1 for path in written if path.suffix == ".log")
    click.echo(f"wrote {len(written) - logs - 1} kind file(s) and {logs} log(s) to {target}", err=True)
    from meshdoctor.secrets_mask import mask_secrets

    for line in source.missing:
        click.echo(f"not collected: {mask_secrets(line)}", err=True)
    return 0
