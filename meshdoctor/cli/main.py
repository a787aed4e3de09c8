"""The command line: parse → sources → engine → render → exit code.

`main(argv) -> int` never lets a traceback reach the user: bad input, a missing path or a rule
pack that fails to load is one line on stderr and exit code 2; a crash of meshdoctor itself is one
line naming the exception and exit code 3 (the traceback with `--debug` or `MESHDOCTOR_DEBUG=1`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from meshdoctor import __version__
from meshdoctor.cli.config import CONFIG_NAME, CheckConfig, discover_config, load_config
from meshdoctor.cli.live import LiveFlags, live_options, snapshot
from meshdoctor.errors import UsageError, printable
from meshdoctor.model import Report, Severity, Status

if TYPE_CHECKING:
    from meshdoctor.suppressions import Suppression

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_NO_DIAGNOSIS = 0, 1, 2, 3

#: The environment variable that, like `--debug`, shows the traceback of a crash.
DEBUG_ENV = "MESHDOCTOR_DEBUG"

OUTPUT_FORMATS = ("text", "json", "yaml", "markdown", "html", "sarif", "junit")
FAIL_ON = ("error", "warning", "info", "never")
COLOR_CHOICES = ("auto", "always", "never")


def exit_code(report: Report, fail_on: str) -> int:
    """The exit code of a check (DESIGN.md "Exit codes"), a pure function of the report.

    3 when the diagnosis could not be made: a rule crashed, or not a single rule could run (every
    result `not_checked`, or no rule selected at all) — whatever `--fail-on` says, never 0 or 1
    then. Otherwise 1 when an unsuppressed finding reaches `fail_on`, else 0.
    """
    statuses = {result.status for result in report.results}
    if Status.ERROR in statuses or statuses <= {Status.NOT_CHECKED}:
        return EXIT_NO_DIAGNOSIS
    if fail_on == "never":
        return EXIT_OK
    worst = report.worst()
    return EXIT_FINDINGS if worst is not None and worst >= Severity(fail_on) else EXIT_OK


def use_color(choice: str, *, is_tty: bool, environ: Mapping[str, str]) -> bool:
    """`--color`: `always` and `never` decide; `auto` colours a terminal unless NO_COLOR is set.

    A flag given on purpose beats the environment (no-color.org: "command-line software ... should
    check for a NO_COLOR environment variable that, when present and not an empty string, prevents
    the addition of ANSI color", user-level configuration such as a flag may override it).
    """
    if choice == "always":
        return True
    if choice == "never":
        return False
    return is_tty and not environ.get("NO_COLOR")


#: Distributions whose versions `--version` prints: the libraries that talk to the cluster and
#: draw the report. importlib.metadata reads them without importing them (start-up stays cheap).
VERSIONED_DISTRIBUTIONS = ("kubernetes", "click", "rich", "PyYAML", "regex", "hyperscan")


def version_text() -> str:
    """The `--version` text: meshdoctor's version, Python's, and the installed client libraries'."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    lines = [
        f"meshdoctor {__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()}, {sys.platform})",
    ]
    for name in VERSIONED_DISTRIBUTIONS:
        try:
            lines.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            lines.append(f"{name} not installed")
    return "\n".join(lines) + "\n"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(version_text(), nl=False)
    ctx.exit(EXIT_OK)


class _DebugFlag:
    """Whether this run shows tracebacks: `--debug` sets it, `main()` reads it after a crash."""

    requested = False


def _request_debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _DebugFlag.requested = True


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show meshdoctor's, Python's and the client libraries' versions, and exit.",
)
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_request_debug,
    help=f"Show the traceback when meshdoctor itself crashes (also {DEBUG_ENV}=1).",
)
def cli() -> None:
    """Diagnose the Datadog <-> Istio integration on Kubernetes.

    Finds why the agent cannot send data or scrape Istio's metrics, with evidence and the
    manifests that fix it.
    """


@cli.command()
@click.option(
    "--from",
    "from_paths",
    multiple=True,
    metavar="PATH",
    help="Read cluster state from files, folders, a `kubectl cluster-info dump` folder, a Datadog Agent "
    "flare (*.zip), a plain agent log (*.log), or - for stdin. Repeatable.",
)
@click.option(
    "--logs",
    "logs_dir",
    metavar="DIR",
    help="Container logs laid out as DIR/<namespace>/<pod>/<container>.log (alone: a logs-only check).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(OUTPUT_FORMATS),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="error",
    show_default=True,
    help="Exit 1 when a finding at or above this severity is found.",
)
@click.option("--brief", is_flag=True, help="Text report: the summary only, without each finding's details.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Text report: also the passed rules, why rules were not checked, all evidence.",
)
@click.option(
    "--suppress",
    "suppress",
    multiple=True,
    metavar="RULE[=NS/NAME]",
    help="Report matching findings as suppressed (globs: 'MD102=default/datadog', 'MD5*'). Repeatable.",
)
@click.option(
    "--baseline", "baseline", metavar="FILE", help="Findings in this baseline file are known: shown, not failing."
)
@click.option(
    "--write-baseline", "write_baseline", metavar="FILE", help="Write this run's findings as a baseline file."
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help=f"Read defaults from FILE (else {CONFIG_NAME} found from the working directory).",
)
@click.option(
    "--emit-fixes",
    "emit_fixes_dir",
    metavar="DIR",
    help="Write the fix plan to DIR: numbered step files, apply.sh, index.md and plan.json.",
)
@click.option("--rule", "rule_ids", multiple=True, metavar="ID", help="Run only this rule. Repeatable.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    metavar="C",
    help="Run only rules of this category (egress, check-config, telemetry, rbac, agent, logs). Repeatable.",
)
@click.option("--skip", "skip_ids", multiple=True, metavar="ID", help="Do not run this rule. Repeatable.")
@click.option(
    "--rules",
    "rule_folders",
    multiple=True,
    metavar="PATH",
    help="Also load rules from the Python modules in this folder. Repeatable.",
)
@click.option("--width", type=int, default=None, help="Text report width (default: the terminal's, or 100).")
@click.option(
    "--color",
    "color_choice",
    type=click.Choice(COLOR_CHOICES),
    default="auto",
    show_default=True,
    help="Colour the text report: auto (on a terminal, unless NO_COLOR is set), always, never.",
)
@live_options
@click.pass_context
def check(
    ctx: click.Context,
    from_paths: tuple[str, ...],
    logs_dir: str | None,
    output: str,
    fail_on: str,
    brief: bool,
    verbose: bool,
    suppress: tuple[str, ...],
    baseline: str | None,
    write_baseline: str | None,
    config_file: str | None,
    emit_fixes_dir: str | None,
    rule_ids: tuple[str, ...],
    categories: tuple[str, ...],
    skip_ids: tuple[str, ...],
    rule_folders: tuple[str, ...],
    width: int | None,
    color_choice: str,
    live: LiveFlags,
) -> int:
    """Check a cluster (or files describing one) and report what breaks the integration.

    Without --from, the cluster of the current kubeconfig context is read (get and list only).
    """
    from meshdoctor.engine import Selection, run, select_rules
    from meshdoctor.registry import load_rules
    from meshdoctor.renderers import Format, render

    settings = check_settings(ctx, config_file)
    output, fail_on, color_choice, brief = settings.output, settings.fail_on, settings.color, settings.brief
    available = load_rules(rule_folders)
    check_config_skip(settings, {rule.id for rule in available})
    rules = select_rules(available, Selection(rule_ids, categories, settings.skip))
    gc.disable()  # loading builds millions of acyclic dicts: the collector would only cost time
    if from_paths or logs_dir:  # --logs alone: logs with no object (every log rule runs)
        live_only = [flag for flag in live.given() if flag != "--namespace"]
        if live_only:
            raise UsageError(f"{', '.join(live_only)}: only for a live cluster, not with --from")
        from meshdoctor.sources import load_offline

        # -n with --from reads the input as a live -n reads a cluster (a filter, same coverage)
        state, source = load_offline(list(from_paths), logs_dir, stdin=sys.stdin, namespace=live.namespace or None)
    else:
        from meshdoctor.cli.live import collect_for_rules

        state, source = collect_for_rules(rules, live)
    gc.freeze()  # the snapshot lives until exit: spare the collector from walking it again
    gc.enable()
    report = triaged(run(rules, state, source), settings)
    fmt = Format(output)
    color = fmt is Format.TEXT and use_color(color_choice, is_tty=sys.stdout.isatty(), environ=os.environ)
    text = render(
        report,
        fmt,
        width=width or _terminal_width(),
        color=color,
        brief=brief,
        verbose=verbose,
        rules=rules,
        fail_on=fail_on,
    )
    written: list[Path] = []
    if emit_fixes_dir:
        from meshdoctor.fixes.emit import emit_fixes
        from meshdoctor.fixes.plan import with_plan

        report = with_plan(report, state)
        written = emit_fixes(report, Path(emit_fixes_dir))  # before printing: a failure stays one line
    if settings.write_baseline is not None:
        from meshdoctor.baseline import write_baseline as write_baseline_file

        entries = write_baseline_file(report.findings, settings.write_baseline)
    click.echo(text, nl=False, color=color)  # click strips ANSI escapes off a pipe unless told
    if emit_fixes_dir:
        from meshdoctor.fixes.emit import plan_text

        click.echo(plan_text(report), err=True, nl=False)
        wrote = f"wrote the fix plan ({len(written)} step file(s), apply.sh, index.md) to {emit_fixes_dir}"
        click.echo(wrote, err=True)
    if settings.write_baseline is not None:
        click.echo(f"wrote a baseline of {entries} finding(s) to {settings.write_baseline}", err=True)
    return exit_code(report, fail_on)


# --- settings: flags, then .meshdoctor.yaml; suppressions and the baseline -----------------------


@dataclass(frozen=True)
class CheckSettings:
    """The check's settings once the command line and the config file are joined."""

    output: str
    fail_on: str
    color: str
    brief: bool
    skip: tuple[str, ...]
    suppress: tuple[Suppression, ...]
    config: CheckConfig
    baseline: Path | None
    write_baseline: Path | None


def check_settings(ctx: click.Context, config_file: str | None) -> CheckSettings:
    """Join the flags with `.meshdoctor.yaml` (or `--config FILE`): a flag given beats the file."""
    from meshdoctor.suppressions import parse_suppression

    params = ctx.params
    path = Path(config_file) if config_file else discover_config(Path.cwd())
    config = load_config(path, outputs=OUTPUT_FORMATS, fail_on=FAIL_ON, colors=COLOR_CHOICES) if path else CheckConfig()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    def pick(name: str, from_config: Any) -> Any:
        return params[name] if given(name) or from_config is None else from_config

    patterns = [parse_suppression(text, config.where("suppress")) for text in config.suppress]
    patterns += [parse_suppression(text) for text in params["suppress"]]
    baseline = Path(params["baseline"]) if params["baseline"] else config.baseline
    return CheckSettings(
        output=pick("output", config.output),
        fail_on=pick("fail_on", config.fail_on),
        color=pick("color_choice", config.color),
        brief=pick("brief", config.brief),
        skip=tuple(dict.fromkeys((*config.skip, *params["skip_ids"]))),
        suppress=tuple(patterns),
        baseline=baseline,
        write_baseline=Path(params["write_baseline"]) if params["write_baseline"] else None,
        config=config,
    )


def check_config_skip(settings: CheckSettings, known: set[str]) -> None:
    """An unknown rule id in the config file's `skip` is an error naming the file and line."""
    for rule_id in settings.config.skip:
        if rule_id.upper() not in known:
            raise UsageError(f"{settings.config.where('skip')}: unknown rule {rule_id!r} (see `meshdoctor rules`)")


def triaged(report: Report, settings: CheckSettings) -> Report:
    """The report with `--suppress` patterns and the `--baseline` applied, and counted again."""
    if not settings.suppress and settings.baseline is None:
        return report
    from meshdoctor.baseline import mark_known, read_baseline
    from meshdoctor.model import summarize
    from meshdoctor.suppressions import apply_suppressions

    findings = apply_suppressions(report.findings, settings.suppress)
    baseline = None
    if settings.baseline is not None:
        baseline = str(settings.baseline)
        findings = mark_known(findings, read_baseline(settings.baseline), baseline)
    return dataclasses.replace(report, findings=findings, summary=summarize(findings), baseline=baseline)


@cli.command("rules")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(("text", "json", "markdown")),
    default="text",
    show_default=True,
    help="Listing format.",
)
@click.option("--rules", "rule_folders", multiple=True, metavar="PATH", help="Also load rules from this folder.")
def list_rules(output: str, rule_folders: tuple[str, ...]) -> int:
    """List every rule with its id, category, severity and title."""
    from meshdoctor.registry import describe_rules
    from meshdoctor.renderers import catalogue

    rules = describe_rules(rule_folders)
    render = {"text": catalogue.rules_text, "json": catalogue.rules_json, "markdown": catalogue.rules_markdown}
    click.echo(render[output](rules), nl=False)
    return EXIT_OK


@cli.command()
@click.argument("rule_id")
@click.option("--rules", "rule_folders", multiple=True, metavar="PATH", help="Also load rules from this folder.")
def explain(rule_id: str, rule_folders: tuple[str, ...]) -> int:
    """Show a rule's documentation: what it checks, why it matters, how to fix."""
    from meshdoctor.registry import describe_rules
    from meshdoctor.renderers import catalogue

    by_id = {rule.id: rule for rule in describe_rules(rule_folders)}
    rule = by_id.get(rule_id.upper())
    if rule is None:
        raise UsageError(f"unknown rule {rule_id!r} (see `meshdoctor rules`)")
    click.echo(catalogue.explain_text(rule, width=min(_terminal_width(), 100)), nl=False)
    return EXIT_OK


cli.add_command(snapshot)


@cli.command("bundle")
@click.option(
    "-o",
    "--output",
    "output_file",
    required=True,
    metavar="FILE.tar.gz",
    help="Bundle to write: the report in every format, the scrubbed snapshot, the fix plan, a manifest.",
)
@click.option("--from", "from_paths", multiple=True, metavar="PATH", help="Read cluster state from files, as check.")
@click.option(
    "--logs", "logs_dir", metavar="DIR", help="Container logs laid out as DIR/<namespace>/<pod>/<container>.log."
)
@click.option("--rule", "rule_ids", multiple=True, metavar="ID", help="Run only this rule. Repeatable.")
@click.option("--category", "categories", multiple=True, metavar="C", help="Run only rules of this category.")
@click.option("--skip", "skip_ids", multiple=True, metavar="ID", help="Do not run this rule. Repeatable.")
@click.option("--rules", "rule_folders", multiple=True, metavar="PATH", help="Also load rules from this folder.")
@live_options
def bundle(
    output_file: str,
    from_paths: tuple[str, ...],
    logs_dir: str | None,
    rule_ids: tuple[str, ...],
    categories: tuple[str, ...],
    skip_ids: tuple[str, ...],
    rule_folders: tuple[str, ...],
    live: LiveFlags,
) -> int:
    """Check as `check` does and write one scrubbed .tar.gz to attach to a ticket.

    `meshdoctor check --from FILE.tar.gz` replays it to the same report.
    """
    from meshdoctor.bundle import write_bundle
    from meshdoctor.engine import Selection, run, select_rules
    from meshdoctor.registry import load_rules

    rules = select_rules(load_rules(rule_folders), Selection(rule_ids, categories, skip_ids))
    if from_paths:
        live_only = [flag for flag in live.given() if flag != "--namespace"]
        if live_only:
            raise UsageError(f"{', '.join(live_only)}: only for a live cluster, not with --from")
        from meshdoctor.sources import load_offline

        state, source = load_offline(list(from_paths), logs_dir, stdin=sys.stdin, namespace=live.namespace or None)
    else:
        if logs_dir:
            raise UsageError("--logs goes with --from; a live check reads the pods' logs itself")
        from meshdoctor.cli.live import collect_for_rules

        state, source = collect_for_rules(rules, live)
    report = run(rules, state, source)
    count = write_bundle(report, state, source, output_file)
    click.echo(f"wrote {output_file} ({count} files)", err=True)
    return EXIT_OK


def _terminal_width() -> int:
    if sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return 100


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 findings, 2 usage or input error, 3 no diagnosis)."""
    _DebugFlag.requested = False
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="meshdoctor", standalone_mode=False)
    except UsageError as exc:
        click.echo(f"meshdoctor: error: {printable(str(exc))}", err=True)
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("meshdoctor: aborted", err=True)
        return EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"meshdoctor: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        click.echo("meshdoctor: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        return _crashed(exc)
    return int(result) if isinstance(result, int) else EXIT_OK


def _crashed(exc: Exception) -> int:
    """Report a crash of meshdoctor itself (not of a rule: the engine isolates those): exit 3."""
    from meshdoctor.secrets_mask import mask_secrets

    if _DebugFlag.requested or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        import traceback

        click.echo(mask_secrets("".join(traceback.format_exception(exc))).rstrip("\n"), err=True)
    first_line = (str(exc).splitlines() or [""])[0]
    detail = f": {mask_secrets(first_line)}" if first_line else ""
    click.echo(
        f"meshdoctor: internal error: {type(exc).__name__}{detail} (a bug: run again with --debug for the traceback)",
        err=True,
    )
    return EXIT_NO_DIAGNOSIS


if __name__ == "__main__":
    sys.exit(main())
