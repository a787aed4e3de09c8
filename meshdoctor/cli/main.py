"""The command line: parse → sources → engine → render → exit code.

`main(argv) -> int` never lets a traceback reach the user: bad input, a missing path or a rule
pack that fails to load is one line on stderr and exit code 2.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from meshdoctor import __version__
from meshdoctor.cli.live import LiveFlags, live_options, snapshot
from meshdoctor.errors import UsageError, printable
from meshdoctor.model import Report, Severity

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

OUTPUT_FORMATS = ("text", "json", "yaml", "markdown")
FAIL_ON = ("error", "warning", "info", "never")


def exit_code(report: Report, fail_on: str) -> int:
    """0 when no unsuppressed finding reaches `fail_on`, else 1."""
    if fail_on == "never":
        return EXIT_OK
    worst = report.worst()
    return EXIT_FINDINGS if worst is not None and worst >= Severity(fail_on) else EXIT_OK


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="meshdoctor", message="%(prog)s %(version)s")
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
@live_options
def check(
    from_paths: tuple[str, ...],
    logs_dir: str | None,
    output: str,
    fail_on: str,
    emit_fixes_dir: str | None,
    rule_ids: tuple[str, ...],
    categories: tuple[str, ...],
    skip_ids: tuple[str, ...],
    rule_folders: tuple[str, ...],
    width: int | None,
    live: LiveFlags,
) -> int:
    """Check a cluster (or files describing one) and report what breaks the integration.

    Without --from, the cluster of the current kubeconfig context is read (get and list only).
    """
    from meshdoctor.engine import Selection, run, select_rules
    from meshdoctor.registry import load_rules
    from meshdoctor.renderers import Format, render

    rules = select_rules(load_rules(rule_folders), Selection(rule_ids, categories, skip_ids))
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
    report = run(rules, state, source)
    fmt = Format(output)
    color = fmt is Format.TEXT and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    text = render(report, fmt, width=width or _terminal_width(), color=color)
    written: list[Path] = []
    if emit_fixes_dir:
        from meshdoctor.fixes.emit import emit_fixes
        from meshdoctor.fixes.plan import with_plan

        report = with_plan(report, state)
        written = emit_fixes(report, Path(emit_fixes_dir))  # before printing: a failure stays one line
    click.echo(text, nl=False)
    if emit_fixes_dir:
        from meshdoctor.fixes.emit import plan_text

        click.echo(plan_text(report), err=True, nl=False)
        wrote = f"wrote the fix plan ({len(written)} step file(s), apply.sh, index.md) to {emit_fixes_dir}"
        click.echo(wrote, err=True)
    return exit_code(report, fail_on)


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
    """Run the CLI; return the exit code (0 ok, 1 findings, 2 usage or input error)."""
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
    return int(result) if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
