"""The report for a person at a terminal (`-o text`, the default), drawn with rich.

This is the only renderer that imports rich; it does so when it runs, not when it is imported.
Summary first, so that what matters is on the first screen: the header (source, mesh, site, each
agent's install and version), the counts, one line per finding in report order (worst first, the
order of every format: `Finding.sort_key`), the rules that could not run; then, unless `brief`,
the details of each finding (evidence, fix). A long evidence list shows its first and last items
and how many are between (json and markdown have them all; `verbose` shows them all here too).
`verbose` also lists the passed rules and says why each not-checked rule was not checked.
Suppressed and known (baseline) findings stay visible but dimmed and short. Everything is built
from `Text` objects, never from markup strings, so brackets in a log line or a message are printed
as they are.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from meshdoctor.model import (
    Evidence,
    FieldEvidence,
    Finding,
    LogEvidence,
    ProbeEvidence,
    Remediation,
    Report,
    Status,
)
from meshdoctor.renderers import (
    DEFAULT_WIDTH,
    assert_never,
    describe_agent,
    describe_findings,
    describe_mesh,
    describe_results,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.text import Text

#: Colour of each severity (error red, warning yellow, info blue).
SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}

#: Indentation of a finding's body under its header line, and of its evidence items.
_BODY = 4
_ITEM = 6

#: Evidence lists longer than this are summarised (first, `… N more …`, last) unless verbose.
EVIDENCE_SHOWN = 4


def render_text(
    report: Report, *, width: int = DEFAULT_WIDTH, color: bool = False, brief: bool = False, verbose: bool = False
) -> str:
    """Render the report as terminal text; plain (no ANSI escapes) unless `color` is True."""
    from rich.console import Console, Group

    console = Console(
        file=io.StringIO(),
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=False if color else None,
        highlight=False,
        soft_wrap=False,
        markup=False,
        emoji=False,
    )
    console.print(Group(*_report(report, color, brief=brief, verbose=verbose)))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    # rich pads some renderables (Syntax) to the full width; trailing blanks only make diffs noisy.
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[-1]:  # the blank that ends the last finding's details
        lines.pop()
    return "\n".join(lines) + "\n"


class TextRenderer:
    """`Renderer` for `-o text` at a given width, with or without colour."""

    def __init__(
        self, *, width: int = DEFAULT_WIDTH, color: bool = False, brief: bool = False, verbose: bool = False
    ) -> None:
        self.width = width
        self.color = color
        self.brief = brief
        self.verbose = verbose

    def render(self, report: Report) -> str:
        """See `render_text`."""
        return render_text(report, width=self.width, color=self.color, brief=self.brief, verbose=self.verbose)


# --- building blocks ------------------------------------------------------------------------------


def _report(report: Report, color: bool, *, brief: bool, verbose: bool) -> Iterator[RenderableType]:
    from rich.text import Text

    yield from _header(report)
    yield Text("")
    yield _summary_line(report)
    for finding in report.findings:
        yield _finding_line(finding)
    yield from _unchecked(report, verbose)
    if verbose:
        passed = [r.rule for r in report.results if r.status is Status.PASSED]
        if passed:
            yield _indented(Text.assemble(("passed: ", "green"), ", ".join(passed)), 2, hanging=8)
    yield Text("")
    if not report.findings:
        yield Text("No findings.", style="bold green")
        return
    if brief:
        return
    yield Text("details", style="bold underline")
    for finding in report.findings:
        yield from _finding(finding, color, verbose)


def _header(report: Report) -> Iterator[RenderableType]:
    from rich.text import Text

    title = Text.assemble(
        (f"meshdoctor {report.version}", "bold"), " · ", f"{report.source.kind} {report.source.target}"
    )
    yield _indented(title, 0, hanging=2)
    cluster = Text.assemble(("cluster: ", "bold"), describe_mesh(report), " · ", describe_agent(report))
    yield _indented(cluster, 0, hanging=9)
    for agent in report.cluster.agents:
        version = f"agent {agent.version}" if agent.version else "agent version unknown"
        line = Text.assemble(("agent: ", "bold"), str(agent.workload), " · ", agent.install, " · ", version)
        if agent.version_from:
            line.append(f" ({agent.version_from})", style="dim")
        yield _indented(line, 0, hanging=7)
    for missing in report.source.missing:
        yield _indented(Text.assemble(("missing input: ", "yellow"), missing), 2, hanging=15)


def _finding_line(finding: Finding) -> RenderableType:
    """One line, cut to the width: severity, rule, primary object, `[suppressed]`/`[known]`, title."""
    from rich.text import Text

    severity = finding.severity.value
    primary = str(finding.objects[0]) if finding.objects else ""
    more = f" (+{len(finding.objects) - 1})" if len(finding.objects) > 1 else ""
    line = Text.assemble(
        (f"{severity:<7}", SEVERITY_STYLE[severity]),
        " ",
        (finding.rule, "bold"),
        "  ",
        (f"{primary}{more}", "cyan"),
        "  ",
    )
    if finding.silenced:
        line.append("[suppressed] " if finding.suppressed_by is not None else "[known] ")
    line.append(finding.title)
    if finding.silenced:
        line.stylize("dim")
    return _OneLine(line, 2)


def _unchecked(report: Report, verbose: bool) -> Iterator[RenderableType]:
    """The rules that crashed (always with why) and those not checked (why: with verbose)."""
    from rich.text import Text

    crashed = [r for r in report.results if r.status is Status.ERROR]
    skipped = [r for r in report.results if r.status is Status.NOT_CHECKED]
    for result in crashed:
        line = Text.assemble((f"{result.rule:<6}", "bold"), " ", ("rule error ", "red"), " ", result.reason or "")
        yield _indented(line, 2, hanging=19)
    if not skipped:
        return
    reasons = {r.reason for r in skipped}
    if len(skipped) == len(report.results) and len(reasons) == 1:
        # nothing could run, for one reason (an empty input): say it once
        line = Text.assemble(("nothing could be checked: ", "bold yellow"), next(iter(reasons)) or "")
        yield _indented(line, 2, hanging=4)
        return
    if not verbose:
        ids = ", ".join(r.rule for r in skipped)
        line = Text.assemble(("not checked: ", "yellow"), ids, (" (-v says why)", "dim"))
        yield _indented(line, 2, hanging=13)
        return
    for result in skipped:
        line = Text.assemble((f"{result.rule:<6}", "bold"), " ", ("not checked", "yellow"), "  ", result.reason or "")
        yield _indented(line, 2, hanging=20)


def _finding(finding: Finding, color: bool, verbose: bool) -> Iterator[RenderableType]:
    from rich.text import Text

    severity = finding.severity.value
    suppressed = finding.silenced
    header = Text.assemble(
        (f"{severity:<7}", SEVERITY_STYLE[severity]),
        " ",
        (finding.rule, "bold"),
        "  ",
        (finding.title, "bold"),
    )
    if finding.suppressed_by is not None:
        header.append(f"  [suppressed by {finding.suppressed_by}]")
        header.stylize("dim")
    elif finding.known_by is not None:
        header.append(f"  [known: in the baseline {finding.known_by}]")
        header.stylize("dim")
    yield _indented(header, 2, hanging=_BODY)
    body_style = "dim" if suppressed else ""
    yield _indented(Text(finding.message, style=body_style), _BODY)
    if finding.objects:
        objects = ", ".join(str(ref) for ref in finding.objects)
        yield _indented(Text.assemble(("objects: ", "bold"), objects, style=body_style), _BODY, hanging=9)
    if suppressed:
        # Someone decided to live with it: say so, and keep the proof and the fix out of the way.
        yield Text("")
        return
    if finding.evidence:
        shown = finding.evidence
        hidden = 0
        if not verbose and len(shown) > EVIDENCE_SHOWN:
            hidden = len(shown) - 2
            shown = (shown[0], shown[-1])
        yield _indented(
            Text.assemble(("evidence:", "bold"), f" {len(finding.evidence)} items" if hidden else ""), _BODY
        )
        for position, item in enumerate(shown):
            if hidden and position == 1:
                note = f"… {hidden} more (all of them with -v, -o json or -o markdown) …"
                yield _indented(Text(note, style="dim"), _ITEM)
            yield _indented(_evidence(item), _ITEM, hanging=2)
    if finding.remediation is not None:
        yield from _remediation(finding.remediation, color)
    yield Text("")


def _evidence(item: Evidence) -> Text:
    from rich.text import Text

    if isinstance(item, FieldEvidence):
        line = Text.assemble((str(item.object), "cyan"), ": ", (item.path, "bold"), " = ", item.value)
        if item.origin is not None:
            line.append(f" ({item.origin})", style="dim")
        return line
    if isinstance(item, LogEvidence):
        where = f"{item.namespace}/{item.pod}[{item.container}]:{item.line}"
        line = Text.assemble((where, "cyan"), "  ", item.text)
        if item.count > 1:
            line.append(f"  ×{item.count}", style="bold")
        seen = _seen(item)
        if seen:
            line.append(f" ({seen})", style="dim")
        return line
    if isinstance(item, ProbeEvidence):
        outcome = ("ok", "green") if item.ok else ("failed", "red")
        return Text.assemble("probe ", (item.target, "cyan"), ": ", outcome, " - ", item.detail)
    assert_never(item)


def _seen(item: LogEvidence) -> str:
    if item.first_seen and item.last_seen and item.first_seen != item.last_seen:
        return f"{item.first_seen} … {item.last_seen}"
    return item.first_seen or item.last_seen or ""


def _remediation(remediation: Remediation, color: bool) -> Iterator[RenderableType]:
    from rich.text import Text

    if remediation.safe:
        safety = ("safe to apply", "green")
    else:
        safety = ("review before applying", "yellow")
    yield _indented(Text.assemble(("fix: ", "bold"), remediation.summary, " (", safety, ")"), _BODY, hanging=5)
    yield from _manifests(remediation.manifests, color)
    for command in remediation.commands:
        yield _indented(Text.assemble(("$ ", "dim"), (command, "bold")), _ITEM, hanging=2)
    for alternative in remediation.alternatives:
        yield _indented(Text.assemble(("alternative: ", "bold"), alternative), _BODY, hanging=13)
    if remediation.alternative_manifests:
        yield _indented(Text.assemble(("instead, apply:", "bold")), _BODY)
        yield from _manifests(remediation.alternative_manifests, color)


def _manifests(manifests: tuple[str, ...], color: bool) -> Iterator[RenderableType]:
    """Each manifest highlighted, separated by `---` as in a multi-document file."""
    for index, manifest in enumerate(manifests):
        text = manifest.rstrip("\n")
        yield _indented(_manifest(f"---\n{text}" if index else text, color), _ITEM)


def _manifest(manifest: str, color: bool) -> RenderableType:
    """Highlight a manifest as YAML; without colour it is plain text.

    Without colour the highlighting is lost anyway, and it costs more than the rest of the report.
    """
    from rich.syntax import Syntax
    from rich.text import Text

    if not color:
        return Text(manifest)
    return Syntax(manifest, "yaml", theme="ansi_dark", background_color="default", word_wrap=True)


def _summary_line(report: Report) -> Text:
    from rich.text import Text

    worst = report.worst()
    style = SEVERITY_STYLE[worst.value] if worst is not None else "bold green"
    return Text.assemble((describe_findings(report), style), " · ", describe_results(report))


def _indented(renderable: RenderableType, left: int, hanging: int = 0) -> RenderableType:
    """Shift a renderable right; the wrapped lines of a Text go `hanging` columns further."""
    from rich.padding import Padding
    from rich.text import Text

    if hanging and isinstance(renderable, Text):
        return _HangingText(renderable, left, hanging)
    return Padding(renderable, (0, 0, 0, left))


class _OneLine:
    """A Text kept to one line, cut with an ellipsis where it is wider than the screen."""

    def __init__(self, text: Text, left: int) -> None:
        self.text = text
        self.left = left

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        line = self.text.copy()
        line.truncate(max(options.max_width - self.left, 10), overflow="ellipsis")
        yield Segment(" " * self.left)
        yield from line.render(console)
        yield Segment.line()


class _HangingText:
    """A Text whose continuation lines line up under its content, not under its label."""

    def __init__(self, text: Text, left: int, hanging: int) -> None:
        self.text = text
        self.left = left
        self.hanging = hanging

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        first_width = max(options.max_width - self.left, 10)
        lines = list(self.text.wrap(console, first_width))
        rows: list[tuple[int, Text]] = [(self.left, lines[0])] if lines else []
        # What did not fit on the first line is wrapped again, narrower, under the hanging indent.
        rest = _rest_after_first_line(self.text, lines)
        if rest is not None:
            indent = self.left + self.hanging
            rows += [(indent, line) for line in rest.wrap(console, max(options.max_width - indent, 10))]
        for indent, line in rows:
            yield Segment(" " * indent)
            yield from line.render(console)
            yield Segment.line()


def _rest_after_first_line(text: Text, lines: Sequence[Text]) -> Text | None:
    """Cut the first wrapped line of `text` (and the blank it broke on) off; None if none left."""
    if len(lines) < 2:
        return None
    consumed = len(lines[0].plain)
    plain = text.plain
    # Wrapping drops the whitespace (or the newline) it breaks on; skip it here too.
    while consumed < len(plain) and plain[consumed] == " ":
        consumed += 1
    if consumed < len(plain) and plain[consumed] == "\n":
        consumed += 1
    rest = text[consumed:]
    return rest if rest.plain else None
