"""Log lines from before a fix: once the cluster shows the cause gone, old lines are advice, not a loss.

After the plan's ServiceEntry is applied, the agent's running pod keeps its old forwarder errors
in its log (and a `--since 1h` check reads them); after an RBAC fix, its old `forbidden` lines.
A re-check must not call that data being lost: MD601/MD605 lines older than the ServiceEntry that
now covers their host, and MD604 denials of what the RBAC read now allows, are info. Lines after
the fix, or a fix that does not cover them, keep their severity.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from meshdoctor.engine import run
from meshdoctor.fixes.plan import with_plan
from meshdoctor.registry import load_rules
from meshdoctor.sources import load_offline

ROOT = Path(__file__).resolve().parent.parent
RULES = load_rules(())


def report_after_plan(scenario: str, created: str | None):
    """The scenario's report once every object of its plan is in the input (created at `created`)."""
    state, source = load_offline([str(ROOT / "fixtures" / "scenarios" / scenario)], None, stdin=sys.stdin)
    plan = with_plan(run(RULES, state, source), state).plan
    for step in plan.steps:
        if step.name.endswith(".yaml"):
            for doc in yaml.safe_load_all(step.content):
                if isinstance(doc, dict):
                    if created:
                        doc.setdefault("metadata", {})["creationTimestamp"] = created
                    state.add(doc)
    return run(RULES, state, source)


def by_rule(report, rule):
    return [f for f in report.findings if f.rule == rule]


def test_intake_failures_older_than_the_service_entry_that_covers_them_are_info():
    report = report_after_plan("egress-no-serviceentry-istiod", "2030-01-01T00:00:00Z")
    assert by_rule(report, "MD101") == []
    [finding] = by_rule(report, "MD601")
    assert finding.severity.value == "info"
    assert "ServiceEntry datadog/datadog-intake covers that host now and was created at 2030-01-01T00:00:00Z" in (
        finding.message
    )
    assert finding.remediation is None


def test_intake_failures_after_the_service_entry_was_made_stay_errors():
    report = report_after_plan("egress-no-serviceentry-istiod", "2000-01-01T00:00:00Z")
    [finding] = by_rule(report, "MD601")
    assert finding.severity.value == "error"


def test_a_service_entry_without_a_creation_time_decides_nothing():
    report = report_after_plan("egress-no-serviceentry-istiod", None)
    [finding] = by_rule(report, "MD601")
    assert finding.severity.value == "error"


def test_denials_of_what_the_rbac_now_allows_are_info():
    report = report_after_plan("rbac-binding-wrong-namespace", None)
    assert [f.rule for f in report.findings if f.severity.value == "error"] == []
    denials = by_rule(report, "MD604")
    assert denials and all(f.severity.value == "info" for f in denials)
    assert all("the lines predate an RBAC change" in f.message for f in denials)


def test_denials_the_rbac_still_refuses_keep_their_finding():
    state, source = load_offline(
        [str(ROOT / "fixtures" / "scenarios" / "rbac-binding-wrong-namespace")], None, stdin=sys.stdin
    )
    report = run(RULES, state, source)
    errors = [f for f in report.findings if f.severity.value == "error"]
    assert errors and not any("predate an RBAC change" in f.message for f in report.findings)
