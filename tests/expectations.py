"""Reading `expected.txt` files and turning a report into the same lines (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

from meshdoctor.model import Report, Status


def expected_lines(folder: Path) -> list[str]:
    """The non-comment lines of a fixture's expected.txt."""
    text = (folder / "expected.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def report_lines(report: Report) -> list[str]:
    """A report as expected.txt lines: findings in report order, then rules that did not run."""
    lines = []
    for finding in report.findings:
        word = "suppressed" if finding.suppressed_by else "finding"
        primary = finding.objects[0]
        where = f"{primary.namespace}/{primary.name}" if primary.namespace else primary.name
        lines.append(f"{word} {finding.rule} {finding.severity.value} {primary.kind} {where}")
    for result in report.results:
        if result.status in (Status.NOT_CHECKED, Status.ERROR):
            lines.append(f"{result.status.value} {result.rule}")
    return lines
