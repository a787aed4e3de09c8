"""The report as JUnit XML (`-o junit`), for CI systems that show test results.

One `testsuite` per category (in the fixed category order), one `testcase` per selected rule:
passed rules pass; a rule with a finding at or above `--fail-on` has a `failure` (type = its worst
severity, the findings as one line each in the body); a rule that crashed has an `error`; a rule
that was not checked is `skipped` with the reason. Findings below the threshold, suppressed or
known from the baseline are listed in the testcase's `system-out`, so the red of the JUnit view is
the red of the exit code. The element and attribute set is the one Jenkins' JUnit schema reads
(jenkinsci/xunit-plugin, `src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd`):
`testsuites` > `testsuite` (`name`, `tests`, `failures`, `errors`, `skipped`) > `testcase`
(`name`, `classname`) > `failure` | `error` | `skipped` (`type`, `message`), `system-out`.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from meshdoctor.model import Category, Finding, Report, RuleResult, Severity, Status
from meshdoctor.rule import Rule

#: What `--fail-on never` means here: no finding fails a testcase.
_NEVER = "never"


def render_junit(report: Report, rules: Sequence[type[Rule]] = (), fail_on: str = "error") -> str:
    """Render the report as one JUnit XML document (UTF-8, ending in a newline)."""
    titles = {rule.id: rule.title for rule in rules} | {f.rule: f.title for f in report.findings}
    threshold = None if fail_on == _NEVER else Severity(fail_on)
    suites = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for category in Category:
        results = [r for r in report.results if r.category is category]
        if not results:
            continue
        cases, counts = [], {"tests": len(results), "failures": 0, "errors": 0, "skipped": 0}
        for result in results:
            findings = [f for f in report.findings if f.rule == result.rule]
            case, outcome = _testcase(result, titles.get(result.rule, ""), findings, threshold)
            cases.append(case)
            if outcome:
                counts[outcome] += 1
        for key in totals:
            totals[key] += counts[key]
        attributes = " ".join(f'{key}="{value}"' for key, value in counts.items())
        source = quoteattr(_xml_text(f"{report.source.kind} {report.source.target}"))
        properties = (
            "    <properties>\n"
            f'      <property name="meshdoctor" value={quoteattr(report.version)}/>\n'
            f'      <property name="source" value={source}/>\n'
            "    </properties>\n"
        )
        suites.append(
            f"  <testsuite name={quoteattr(f'meshdoctor.{category.value}')} {attributes}>\n"
            + properties
            + "".join(cases)
            + "  </testsuite>\n"
        )
    head = (
        f'<testsuites name="meshdoctor" tests="{totals["tests"]}" failures="{totals["failures"]}" '
        f'errors="{totals["errors"]}">\n'
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + "".join(suites) + "</testsuites>\n"


class JunitRenderer:
    """`Renderer` for `-o junit`; a rule fails at the `--fail-on` threshold, as the exit code does."""

    def __init__(self, rules: Sequence[type[Rule]] = (), fail_on: str = "error") -> None:
        self.rules = tuple(rules)
        self.fail_on = fail_on

    def render(self, report: Report) -> str:
        """See `render_junit`."""
        return render_junit(report, self.rules, self.fail_on)


def _testcase(
    result: RuleResult, title: str, findings: list[Finding], threshold: Severity | None
) -> tuple[str, str | None]:
    """One testcase element and which counter it adds to (failures, errors, skipped or none)."""
    name = f"{result.rule} {title}".strip()
    open_tag = f"    <testcase name={quoteattr(name)} classname={quoteattr(f'meshdoctor.{result.category.value}')}"
    failing = [f for f in findings if _fails(f, threshold)]
    quiet = [f for f in findings if not _fails(f, threshold)]
    body: list[str] = []
    outcome: str | None = None
    if result.status is Status.ERROR:
        body.append(f'      <error type="rule-error" message={quoteattr(_xml_text(result.reason or ""))}/>\n')
        outcome = "errors"
    elif result.status is Status.NOT_CHECKED:
        body.append(f"      <skipped message={quoteattr(_xml_text(result.reason or ''))}/>\n")
        outcome = "skipped"
    elif failing:
        worst = max(f.severity for f in failing)
        message = f"{len(failing)} finding{'s' if len(failing) > 1 else ''}: {failing[0].message}"
        lines = "\n".join(_one_line(f) for f in failing)
        body.append(
            f"      <failure type={quoteattr(worst.value)} message={quoteattr(_xml_text(message))}>"
            f"{escape(_xml_text(lines))}</failure>\n"
        )
        outcome = "failures"
    if quiet:
        lines = "\n".join(_one_line(f) for f in quiet)
        body.append(f"      <system-out>{escape(_xml_text(lines))}</system-out>\n")
    if not body:
        return f"{open_tag}/>\n", outcome
    return f"{open_tag}>\n" + "".join(body) + "    </testcase>\n", outcome


def _fails(finding: Finding, threshold: Severity | None) -> bool:
    if finding.suppressed_by is not None or finding.known_by is not None or threshold is None:
        return False
    return finding.severity >= threshold


def _one_line(finding: Finding) -> str:
    where = ", ".join(str(ref) for ref in finding.objects)
    state = " (suppressed)" if finding.suppressed_by else " (known, in the baseline)" if finding.known_by else ""
    return f"{finding.severity.value} {finding.rule} {where}{state}: {finding.message}"


def _xml_text(text: str) -> str:
    """Drop the characters XML 1.0 cannot carry at all (control characters but tab and newlines)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)
