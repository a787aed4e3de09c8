"""The report as one self-contained HTML page (`-o html`), to attach to a ticket or print.

No external asset of any kind (no stylesheet, script, font or image link): the CSS is inline and
there is no JavaScript, so the file opens the same offline, in a mail client's viewer or on paper.
The page has the header of the text report, a summary table (one row per finding, in report
order, linking to its details), one collapsible `<details>` per finding (errors open) with its
evidence, and the fix plan: each finding's remediation — summary, manifests, commands — in the
same order. Print styles show the content of closed `<details>` too (`::details-content`, where the
browser has it) and keep a finding on one page where it fits. Everything from the cluster is escaped (`html.escape`).
"""

from __future__ import annotations

from html import escape

from meshdoctor.model import Evidence, FieldEvidence, Finding, LogEvidence, ProbeEvidence, Remediation, Report, Status
from meshdoctor.renderers import (
    assert_never,
    describe_agent,
    describe_findings,
    describe_mesh,
    describe_results,
    finding_state,
)

_CSS = """
:root { --error: #b3261e; --warning: #8a5a00; --info: #1d4f91; --muted: #5f6368; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 70rem;
       padding: 0 1rem; color: #1f1f1f; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.meta { color: var(--muted); margin: .1rem 0; }
.counts { font-weight: 600; margin: 1rem 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { background: #f4f4f4; }
.sev { font-weight: 700; text-transform: uppercase; font-size: .8rem; white-space: nowrap; }
.sev-error { color: var(--error); } .sev-warning { color: var(--warning); } .sev-info { color: var(--info); }
.state { color: var(--muted); font-size: .85rem; }
details { border: 1px solid #ddd; border-radius: 6px; margin: .6rem 0; padding: .3rem .8rem; }
details[open] { padding-bottom: .8rem; }
summary { cursor: pointer; font-weight: 600; }
code, pre { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
ul.evidence li { margin: .2rem 0; word-break: break-word; }
.quiet { opacity: .7; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  details { break-inside: avoid; border-color: #999; }
  details > summary { list-style: none; }
  details:not([open]) > *:not(summary) { display: block; }
  details::details-content { content-visibility: visible; display: block; }
  a { color: inherit; text-decoration: none; }
  pre { white-space: pre-wrap; }
}
"""


def render_html(report: Report) -> str:
    """Render the report as one HTML document, ending in a newline."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>meshdoctor report · {escape(report.source.target)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        *_header(report),
        *_summary(report),
        *_details(report),
        *_fix_plan(report),
        *_not_checked(report),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


class HtmlRenderer:
    """`Renderer` for `-o html`."""

    def render(self, report: Report) -> str:
        """See `render_html`."""
        return render_html(report)


def _anchor(index: int, finding: Finding) -> str:
    return f"finding-{index + 1}-{finding.rule.lower()}"


def _header(report: Report) -> list[str]:
    lines = [
        "<header>",
        "<h1>meshdoctor report</h1>",
        f'<p class="meta">{escape(report.source.kind)} <code>{escape(report.source.target)}</code> · '
        f"meshdoctor {escape(report.version)}</p>",
        f'<p class="meta">{escape(describe_mesh(report))} · {escape(describe_agent(report))}</p>',
    ]
    for agent in report.cluster.agents:
        version = f"agent {agent.version}" if agent.version else "agent version unknown"
        lines.append(
            f'<p class="meta">agent <code>{escape(str(agent.workload))}</code> · {escape(agent.install)} · '
            f'{escape(version)} <span class="state">({escape(agent.version_from)})</span></p>'
        )
    lines += [f'<p class="meta">missing input: {escape(missing)}</p>' for missing in report.source.missing]
    lines.append("</header>")
    return lines


def _summary(report: Report) -> list[str]:
    lines = [
        '<section id="summary">',
        "<h2>Summary</h2>",
        f'<p class="counts">{escape(describe_findings(report))} · {escape(describe_results(report))}</p>',
    ]
    if not report.findings:
        return [*lines, "<p>No findings.</p>", "</section>"]
    lines += [
        "<table>",
        "<thead><tr><th>Severity</th><th>Rule</th><th>Object</th><th>Title</th></tr></thead>",
        "<tbody>",
    ]
    for index, finding in enumerate(report.findings):
        severity = finding.severity.value
        state = finding_state(finding)
        state_html = f' <span class="state">({escape(state)})</span>' if state else ""
        primary = str(finding.objects[0]) if finding.objects else ""
        lines.append(
            f'<tr class="{"quiet" if state else ""}"><td class="sev sev-{severity}">{severity}{state_html}</td>'
            f'<td><a href="#{_anchor(index, finding)}">{escape(finding.rule)}</a></td>'
            f"<td><code>{escape(primary)}</code></td><td>{escape(finding.title)}</td></tr>"
        )
    return [*lines, "</tbody>", "</table>", "</section>"]


def _details(report: Report) -> list[str]:
    if not report.findings:
        return []
    lines = ['<section id="findings">', "<h2>Findings</h2>"]
    for index, finding in enumerate(report.findings):
        severity = finding.severity.value
        state = finding_state(finding)
        opened = " open" if finding.severity.value == "error" and not state else ""
        state_html = f' <span class="state">({escape(state)})</span>' if state else ""
        lines += [
            f'<details id="{_anchor(index, finding)}"{opened}>',
            f'<summary><span class="sev sev-{severity}">{severity}</span> {escape(finding.rule)} · '
            f"{escape(finding.title)}{state_html}</summary>",
            f"<p>{escape(finding.message)}</p>",
        ]
        if finding.objects:
            objects = ", ".join(f"<code>{escape(str(ref))}</code>" for ref in finding.objects)
            lines.append(f"<p><strong>Objects:</strong> {objects}</p>")
        if finding.evidence:
            lines += ["<p><strong>Evidence</strong></p>", '<ul class="evidence">']
            lines += [f"<li>{_evidence(item)}</li>" for item in finding.evidence]
            lines.append("</ul>")
        if finding.remediation is not None:
            lines.append(
                f"<p><strong>Fix:</strong> {escape(finding.remediation.summary)} "
                f'(<a href="#fix-{index + 1}">in the fix plan</a>)</p>'
            )
        lines.append("</details>")
    return [*lines, "</section>"]


def _evidence(item: Evidence) -> str:
    if isinstance(item, FieldEvidence):
        text = (
            f"<code>{escape(str(item.object))}</code>: <code>{escape(item.path)}</code> = "
            f"<code>{escape(item.value)}</code>"
        )
        if item.origin is not None:
            text += f' <span class="state">({escape(str(item.origin))})</span>'
        return text
    if isinstance(item, LogEvidence):
        where = f"{item.namespace}/{item.pod}[{item.container}]:{item.line}"
        text = f"<code>{escape(where)}</code> <code>{escape(item.text)}</code>"
        if item.count > 1:
            text += f" ×{item.count}"
        seen = [s for s in (item.first_seen, item.last_seen) if s]
        if seen:
            text += f' <span class="state">({escape(" … ".join(dict.fromkeys(seen)))})</span>'
        return text
    if isinstance(item, ProbeEvidence):
        outcome = "ok" if item.ok else "failed"
        return f"probe <code>{escape(item.target)}</code>: {outcome} - {escape(item.detail)}"
    assert_never(item)


def _fix_plan(report: Report) -> list[str]:
    fixes = [(i, f) for i, f in enumerate(report.findings) if f.remediation is not None and not finding_state(f)]
    if not fixes:
        return []
    lines = ['<section id="fix-plan">', "<h2>Fix plan</h2>", "<ol>"]
    for index, finding in fixes:
        assert finding.remediation is not None
        lines.append(
            f'<li id="fix-{index + 1}"><p><strong>{escape(finding.rule)}</strong> '
            f'<a href="#{_anchor(index, finding)}">{escape(finding.title)}</a></p>'
        )
        lines += _remediation(finding.remediation)
        lines.append("</li>")
    return [*lines, "</ol>", "</section>"]


def _remediation(remediation: Remediation) -> list[str]:
    safety = "safe to apply as is" if remediation.safe else "review before applying"
    lines = [f"<p>{escape(remediation.summary)} <em>({safety})</em></p>"]
    for manifest in remediation.manifests:
        lines.append(f"<pre><code>{escape(manifest.rstrip())}</code></pre>")
    if remediation.commands:
        lines.append(f"<pre><code>{escape(chr(10).join(remediation.commands))}</code></pre>")
    if remediation.alternatives:
        lines.append("<p>Alternatives:</p><ul>")
        lines += [f"<li>{escape(alternative)}</li>" for alternative in remediation.alternatives]
        lines.append("</ul>")
    if remediation.alternative_manifests:
        lines.append("<p>Instead, apply:</p>")
        lines += [f"<pre><code>{escape(m.rstrip())}</code></pre>" for m in remediation.alternative_manifests]
    return lines


def _not_checked(report: Report) -> list[str]:
    skipped = [r for r in report.results if r.status in (Status.NOT_CHECKED, Status.ERROR)]
    if not skipped:
        return []
    lines = ['<section id="not-checked">', "<h2>Not checked</h2>", "<ul>"]
    for result in skipped:
        label = "rule error" if result.status is Status.ERROR else "not checked"
        lines.append(
            f"<li><strong>{escape(result.rule)}</strong> ({escape(result.category.value)}, {label}): "
            f"{escape(result.reason or '')}</li>"
        )
    return [*lines, "</ul>", "</section>"]
