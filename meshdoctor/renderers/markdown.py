"""The report as Markdown (`-o markdown`), to paste into a support ticket or a pull request.

Plain string building: a title, where the data came from, a summary table, one section per
finding with its evidence and fix (manifests in ```yaml fences, commands in ```sh fences), and the
rules that could not run. Text from the cluster (log lines, field values) goes into code spans, so
nothing in it can break the layout.
"""

from __future__ import annotations

import re

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
    assert_never,
    describe_agent,
    describe_findings,
    describe_mesh,
    describe_results,
)

_BACKTICK_RUN = re.compile(r"`+")
_EDGE_UNDERSCORE = re.compile(r"(?<!\w)_|_(?!\w)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1(?!`)")


def render_markdown(report: Report) -> str:
    """Render the whole report as one Markdown document, ending in a newline."""
    lines = ["# meshdoctor report", ""]
    lines += _context(report)
    lines += _summary_table(report, _anchors(report.findings))
    if report.findings:
        lines += ["## Findings", ""]
        for finding in report.findings:
            lines += _finding(finding)
    skipped = [r for r in report.results if r.status in (Status.NOT_CHECKED, Status.ERROR)]
    if skipped:
        lines += ["## Not checked", ""]
        for result in skipped:
            label = "rule error" if result.status is Status.ERROR else "not checked"
            reason = inline(result.reason or "")
            lines.append(f"- **{result.rule}** ({result.category.value}, {label}): {reason}")
        lines.append("")
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


class MarkdownRenderer:
    """`Renderer` for `-o markdown`."""

    def render(self, report: Report) -> str:
        """See `render_markdown`."""
        return render_markdown(report)


# --- escaping -------------------------------------------------------------------------------------


def code_span(text: str) -> str:
    """Quote `text` as an inline code span, whatever backticks it holds (CommonMark's rule)."""
    text = text.replace("\n", " ")
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    if longest or text.startswith(" ") or text.endswith(" "):
        return f"{ticks} {text} {ticks}"
    return f"{ticks}{text}{ticks}"


def fence(body: str, language: str) -> list[str]:
    """Fence a code block so that no run of backticks in `body` can close it early."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [f"{ticks}{language}", *body.rstrip("\n").split("\n"), ticks]


def inline(text: str) -> str:
    """Put a rule's prose on one line, escaped where Markdown would change it.

    `<` would start an HTML tag (`<absent>` would vanish), `*` emphasis (wildcard hosts such as
    `*.datadoghq.com` are everywhere here), `_` at a word's edge too. Backticks are left alone:
    rules write code spans on purpose.
    """
    text = " ".join(text.split("\n"))
    parts = _CODE_SPAN.split(text)
    # split() with two groups yields: prose, ticks, code, prose, ticks, code, ..., prose.
    out = []
    for index in range(0, len(parts), 3):
        out.append(_escape_prose(parts[index]))
        if index + 2 < len(parts):
            out.append(f"{parts[index + 1]}{parts[index + 2]}{parts[index + 1]}")
    return "".join(out)


def _escape_prose(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("<", "\\<").replace("*", "\\*")
    return _EDGE_UNDERSCORE.sub(r"\\_", text)


def table_cell(text: str) -> str:
    """Fit prose for a table cell: one line, `|` escaped."""
    return inline(text).replace("|", "\\|")


# --- sections -------------------------------------------------------------------------------------


def _context(report: Report) -> list[str]:
    source = f"{report.source.kind} {code_span(report.source.target)}"
    lines = [
        f"**Source:** {source} · **Mesh:** {describe_mesh(report)} · "
        f"**Agent:** {describe_agent(report)} · meshdoctor {report.version}",
        "",
    ]
    if report.source.missing:
        lines += ["Inputs that could not be read:", ""]
        lines += [f"- {inline(missing)}" for missing in report.source.missing]
        lines.append("")
    return lines


def _summary_table(report: Report, anchors: dict[int, str]) -> list[str]:
    lines = [f"**{describe_findings(report)}** · {describe_results(report)}", ""]
    if not report.findings:
        return [*lines, "No findings.", ""]
    lines += ["| Severity | Rule | Title | Object |", "| --- | --- | --- | --- |"]
    for index, finding in enumerate(report.findings):
        severity = finding.severity.value
        if finding.suppressed_by is not None:
            severity += " (suppressed)"
        primary = str(finding.objects[0]) if finding.objects else ""
        lines.append(
            f"| {severity} | [{finding.rule}](#{anchors[index]}) | {table_cell(finding.title)} "
            f"| {table_cell(primary)} |"
        )
    return [*lines, ""]


def _anchors(findings: tuple[Finding, ...]) -> dict[int, str]:
    """Compute GitHub's anchor for each finding's heading.

    Lower case, punctuation dropped, spaces to `-`, and `-1`, `-2` appended to repeats.
    """
    seen: dict[str, int] = {}
    anchors = {}
    for index, finding in enumerate(findings):
        slug = re.sub(r"[^\w\- ]", "", _heading(finding).lower()).replace(" ", "-")
        repeat = seen.get(slug, 0)
        seen[slug] = repeat + 1
        anchors[index] = f"{slug}-{repeat}" if repeat else slug
    return anchors


def _heading(finding: Finding) -> str:
    return f"{finding.rule} {finding.title}"


def _finding(finding: Finding) -> list[str]:
    lines = [f"### {inline(_heading(finding))}", ""]
    facts = [f"**{finding.severity.value}**", finding.category.value]
    facts += [code_span(str(ref)) for ref in finding.objects]
    lines += [" · ".join(facts), ""]
    if finding.suppressed_by is not None:
        lines += [
            f"> Suppressed by {code_span(finding.suppressed_by)} (`meshdoctor.io/ignore`).",
            "",
        ]
    lines += [inline(finding.message), ""]
    if finding.evidence:
        lines += ["**Evidence**", ""]
        lines += [f"- {_evidence(item)}" for item in finding.evidence]
        lines.append("")
    if finding.remediation is not None:
        lines += _remediation(finding.remediation)
    return lines


def _evidence(item: Evidence) -> str:
    if isinstance(item, FieldEvidence):
        text = f"{code_span(str(item.object))}: {code_span(item.path)} = {code_span(item.value)}"
        if item.origin is not None:
            text += f" ({code_span(str(item.origin))})"
        return text
    if isinstance(item, LogEvidence):
        where = f"{item.namespace}/{item.pod}[{item.container}]:{item.line}"
        text = f"{code_span(where)} {code_span(item.text)}"
        if item.count > 1:
            text += f" ×{item.count}"
        if item.first_seen or item.last_seen:
            seen = [s for s in (item.first_seen, item.last_seen) if s]
            text += f" ({' … '.join(dict.fromkeys(seen))})"
        return text
    if isinstance(item, ProbeEvidence):
        outcome = "ok" if item.ok else "failed"
        return f"probe {code_span(item.target)}: {outcome} - {inline(item.detail)}"
    assert_never(item)


def _remediation(remediation: Remediation) -> list[str]:
    safety = "safe to apply as is" if remediation.safe else "review before applying"
    lines = [f"**Fix** ({safety}): {inline(remediation.summary)}", ""]
    for manifest in remediation.manifests:
        lines += [*fence(manifest, "yaml"), ""]
    if remediation.commands:
        lines += [*fence("\n".join(remediation.commands), "sh"), ""]
    if remediation.alternatives:
        lines += ["Alternatives:", ""]
        lines += [f"- {inline(alternative)}" for alternative in remediation.alternatives]
        lines.append("")
    if remediation.alternative_manifests:
        lines += ["Instead, apply:", ""]
        for manifest in remediation.alternative_manifests:
            lines += [*fence(manifest, "yaml"), ""]
    return lines
