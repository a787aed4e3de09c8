"""Joining log findings to the structural findings that explain them: which finding gets which
lines, which log finding survives, and what the rules' results then say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from meshdoctor.engine import run
from meshdoctor.logs.join import join_log_evidence, settle_results, with_log_evidence
from meshdoctor.model import (
    Category,
    FieldEvidence,
    Finding,
    LogEvidence,
    ObjectRef,
    RuleResult,
    Severity,
    Status,
)
from meshdoctor.registry import load_rules
from meshdoctor.sources import load_offline

SCENARIOS = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"
AGENT = ObjectRef("DaemonSet", "datadog", "datadog-agent")
OTHER_AGENT = ObjectRef("DaemonSet", "monitoring", "datadog-agent")
POD = ObjectRef("Pod", "datadog", "datadog-agent-x7k2p")
ISTIOD = ObjectRef("Service", "istio-system", "istiod")


def log(line: int, count: int = 1, pod: str = "datadog-agent-x7k2p", container: str = "agent") -> LogEvidence:
    return LogEvidence("datadog", pod, container, line, f"line {line}", count=count)


def structural(rule: str, category: Category, *objects: ObjectRef, evidence=()) -> Finding:
    return Finding(
        rule,
        category,
        Severity.ERROR,
        rule,
        f"{rule} message",
        objects=objects,
        evidence=tuple(evidence),
    )


def logged(rule: str, supports: str, *objects: ObjectRef, evidence=(), severity=Severity.ERROR) -> Finding:
    return Finding(
        rule,
        Category.LOGS,
        severity,
        rule,
        f"{rule} {supports}",
        objects=objects,
        evidence=tuple(evidence),
        supports=supports,
    )


def test_egress_lines_move_to_the_egress_finding_of_the_same_workload():
    md101 = structural("MD101", Category.EGRESS, AGENT, evidence=[FieldEvidence(AGENT, "spec", "x")])
    md601 = logged("MD601", "egress", AGENT, POD, evidence=[log(11, 4), log(12, 4)])
    out = join_log_evidence([md101, md601])
    assert [f.rule for f in out] == ["MD101"]
    assert out[0].evidence == (FieldEvidence(AGENT, "spec", "x"), log(11, 4), log(12, 4))


def test_a_log_finding_on_another_workload_or_category_stays():
    md101 = structural("MD101", Category.EGRESS, AGENT)
    elsewhere = logged("MD601", "egress", OTHER_AGENT, evidence=[log(3)])
    rbac_lines = logged("MD604", "rbac", AGENT, POD, evidence=[log(6)])
    out = join_log_evidence([md101, elsewhere, rbac_lines])
    assert out == [md101, elsewhere, rbac_lines]


def test_api_key_lines_are_never_joined():
    md501 = structural("MD501", Category.AGENT, AGENT)
    md602 = logged("MD602", "agent-api-key", AGENT, POD, evidence=[log(4, 5)])
    md101 = structural("MD101", Category.EGRESS, AGENT)
    assert join_log_evidence([md101, md501, md602]) == [md101, md501, md602]


def test_telemetry_lines_join_the_finding_on_the_service_they_name():
    md301 = structural("MD301", Category.TELEMETRY, ISTIOD, AGENT)
    md603 = logged("MD603", "telemetry", AGENT, POD, ISTIOD, evidence=[log(18, 3)])
    out = join_log_evidence([md301, md603])
    assert [f.rule for f in out] == ["MD301"]
    assert out[0].evidence == (log(18, 3),)


def test_a_check_config_line_is_not_explained_by_a_telemetry_finding():
    md301 = structural("MD301", Category.TELEMETRY, ISTIOD)
    md603 = logged("MD603", "check-config", AGENT, POD, ISTIOD, evidence=[log(18)])
    assert join_log_evidence([md301, md603]) == [md301, md603]


def test_the_explainer_with_the_same_first_object_wins_then_report_order():
    on_service = structural("MD302", Category.TELEMETRY, ISTIOD, AGENT)
    on_agent = structural("MD303", Category.TELEMETRY, AGENT, ISTIOD)
    lines = logged("MD603", "telemetry", AGENT, POD, ISTIOD, evidence=[log(9)])
    out = join_log_evidence([on_service, on_agent, lines])
    assert [(f.rule, f.evidence) for f in out] == [("MD302", ()), ("MD303", (log(9),))]
    md101 = structural("MD101", Category.EGRESS, AGENT)
    md102 = structural("MD102", Category.EGRESS, AGENT)
    out = join_log_evidence([md102, md101, logged("MD601", "egress", AGENT, evidence=[log(2)])])
    assert [(f.rule, f.evidence) for f in out] == [("MD102", ()), ("MD101", (log(2),))]


def test_joined_lines_are_deduplicated_and_capped_at_three():
    own = log(9, 6)
    md101 = structural("MD101", Category.EGRESS, AGENT, evidence=[own])
    eof = logged("MD601", "egress", AGENT, evidence=[log(9, 2), log(10, 2)])
    many = logged("MD601", "egress", AGENT, evidence=[log(11, 4), log(12, 4)])
    blackhole = logged("MD605", "egress", AGENT, evidence=[log(2, 3, container="istio-proxy")])
    out = join_log_evidence([md101, eof, many, blackhole])
    assert [f.rule for f in out] == ["MD101"]
    # first samples first, most repeated groups first; line 9 is already quoted
    assert out[0].evidence == (own, log(11, 4), log(2, 3, container="istio-proxy"))


def test_lines_of_another_pod_with_the_same_number_are_not_duplicates():
    finding = structural("MD401", Category.RBAC, AGENT, evidence=[log(6)])
    joined = with_log_evidence(finding, [logged("MD604", "rbac", AGENT, evidence=[log(6, pod="datadog-agent-m9q4d")])])
    assert joined.evidence == (log(6), log(6, pod="datadog-agent-m9q4d"))


def test_a_finding_that_already_quotes_three_lines_gets_none_but_still_absorbs():
    md101 = structural("MD101", Category.EGRESS, AGENT, evidence=[log(1), log(2), log(3)])
    out = join_log_evidence([md101, logged("MD601", "egress", AGENT, evidence=[log(7)])])
    assert out == [md101]


def test_results_of_rules_whose_findings_were_all_absorbed_read_passed():
    md101 = structural("MD101", Category.EGRESS, AGENT)
    results = [
        RuleResult("MD101", Category.EGRESS, Status.FAILED),
        RuleResult("MD601", Category.LOGS, Status.FAILED),
        RuleResult("MD602", Category.LOGS, Status.FAILED),
        RuleResult("MD603", Category.LOGS, Status.NOT_CHECKED, "why"),
    ]
    findings = join_log_evidence([md101, logged("MD601", "egress", AGENT), logged("MD602", "agent-api-key", AGENT)])
    assert settle_results(results, findings) == [
        RuleResult("MD101", Category.EGRESS, Status.FAILED),
        RuleResult("MD601", Category.LOGS, Status.PASSED),
        RuleResult("MD602", Category.LOGS, Status.FAILED),
        RuleResult("MD603", Category.LOGS, Status.NOT_CHECKED, "why"),
    ]


def test_supports_is_not_part_of_equality_nor_of_the_report():
    from meshdoctor.renderers import finding_to_dict

    finding = logged("MD601", "egress", AGENT)
    assert finding == dataclasses.replace(finding, supports=None)
    assert "supports" not in finding_to_dict(finding)


# -- on the scenarios ---------------------------------------------------------------------------


def report(name: str):
    folder = SCENARIOS / name
    logs = folder / "logs"
    snapshot, source = load_offline([str(folder)], str(logs) if logs.is_dir() else None)
    return run(load_rules(), snapshot, source)


def test_seed_broken_md101_carries_the_too_many_errors_lines_with_counts_and_line_numbers():
    result = report("seed-broken")
    md101 = next(f for f in result.findings if f.rule == "MD101")
    lines = [
        (e.pod, e.container, e.line, e.count, e.first_seen, e.last_seen)
        for e in md101.evidence
        if isinstance(e, LogEvidence)
    ]
    assert lines == [
        # MD101's own quote: the first forwarder error, counted over every forwarder error
        (
            "datadog-agent-4xk2p",
            "datadog-agent",
            9,
            6,
            "2019-02-21 09:14:17 UTC",
            "2019-02-21 09:14:47 UTC",
        ),
        # joined from MD601: `Too many errors for endpoint` (6-10-2-app.agent.datadoghq.com)
        (
            "datadog-agent-4xk2p",
            "datadog-agent",
            11,
            4,
            "2019-02-21T09:14:32Z",
            "2019-02-21T09:14:47Z",
        ),
        (
            "datadog-agent-4xk2p",
            "datadog-agent",
            12,
            4,
            "2019-02-21T09:14:32Z",
            "2019-02-21T09:14:47Z",
        ),
    ]
    assert (
        "Too many errors for endpoint 'https://6-10-2-app.agent.datadoghq.com/api/v1/series?api_key="
        in md101.evidence[-2].text
    )
    # the forbidden line MD401 quotes itself is not repeated
    md401 = next(f for f in result.findings if f.rule == "MD401")
    assert [(e.line, e.count) for e in md401.evidence if isinstance(e, LogEvidence)] == [(6, 1)]
    statuses = {r.rule: r.status for r in result.results}
    assert [statuses[r] for r in ("MD601", "MD602", "MD603", "MD604", "MD605")] == [Status.PASSED] * 5
    assert not [f for f in result.findings if f.category is Category.LOGS]


def test_seed_broken_without_md101_and_md401_shows_the_log_findings():
    folder = SCENARIOS / "seed-broken"
    snapshot, source = load_offline([str(folder)], str(folder / "logs"))
    rules = [r for r in load_rules() if r.id not in ("MD101", "MD401")]
    result = run(rules, snapshot, source)
    logs_only = [(f.rule, f.objects[0], f.supports) for f in result.findings if f.category is Category.LOGS]
    agent = ObjectRef("DaemonSet", "default", "datadog-agent")
    assert logs_only == [("MD601", agent, "egress"), ("MD604", agent, "rbac")]


def test_a_403_log_yields_one_api_key_finding_and_no_egress_finding():
    result = report("logs-api-key-403")
    assert [(f.rule, f.severity, f.objects[0]) for f in result.findings] == [("MD602", Severity.ERROR, AGENT)]
    (finding,) = result.findings
    assert "403" in finding.message and "not an egress problem" in finding.message
    assert [(e.line, e.count) for e in finding.evidence] == [(4, 5), (9, 1), (5, 5)]
    assert not [f for f in result.findings if f.category is Category.EGRESS or f.supports == "egress"]


def test_a_dump_without_service_entries_yields_a_log_only_egress_finding_naming_the_host():
    result = report("logs-only-dump")
    statuses = {r.rule: r for r in result.results}
    assert statuses["MD101"].status is Status.NOT_CHECKED
    assert (
        statuses["MD101"].reason is not None and "ServiceEntry: not in a cluster-info dump" in statuses["MD101"].reason
    )
    (finding,) = result.findings
    assert finding.rule == "MD601"
    assert finding.objects == (
        ObjectRef("DaemonSet", "datadog", "datadog-agent"),
        ObjectRef("Pod", "datadog", "datadog-agent-q4t9z"),
    )
    assert "7-60-1-app.agent.datadoghq.com" in finding.message
    assert "Seen 3 times in 1 log, 2026-11-20T08:05:32Z to 2026-11-20T08:06:02Z." in finding.message
    # line numbers count within the container's section of logs.txt
    assert [(e.container, e.line, e.count) for e in finding.evidence] == [
        ("agent", 4, 3),
        ("agent", 3, 1),
        ("agent", 5, 3),
    ]
    assert finding.remediation is not None
    (manifest,) = finding.remediation.manifests
    assert "kind: ServiceEntry" in manifest and "- 7-60-1-app.agent.datadoghq.com" in manifest
    assert "apiVersion: networking.istio.io/v1beta1" in manifest and "namespace: datadog" in manifest
