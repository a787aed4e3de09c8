"""Join findings made of log lines to the structural findings that explain them.

The `logs` rules (MD6xx) report what the agent and its sidecar logged. When a structural rule
found the cause of those lines on the same objects (MD101 says no ServiceEntry covers the intake,
and the agent logs `Too many errors for endpoint`), one finding is enough: the structural one,
with the log lines as its evidence. A log finding that nothing structural explains stays, as the
only sign of the fault (a dump without ServiceEntries, a cause meshdoctor cannot see).

The engine runs `join_log_evidence` once, after every rule ran and before sorting, then
`settle_results`: a logs rule whose every finding was absorbed reads `passed` (its lines are
shown on the structural finding; reporting the rule as failed would count one fault twice).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

from meshdoctor.model import Finding, LogEvidence, RuleResult, Status

#: Signature family (`Finding.supports`) -> category of the structural findings that explain it.
#: Families not listed (`agent-api-key`, `agent-payload`, `logs-transport`...) are always reported
#: on their own: no structural rule can see an invalid key or a rate limit.
JOINED_FAMILIES: dict[str, str] = {
    "egress": "egress",
    "check-config": "check-config",
    "telemetry": "telemetry",
    "rbac": "rbac",
}

#: Log lines a structural finding carries at most (its own and joined ones); each is a group
#: with its count, so three lines stand for any number of repetitions.
MAX_LOG_EVIDENCE = 3


def join_log_evidence(
    findings: Sequence[Finding],
    supports: Mapping[str, str] = JOINED_FAMILIES,
    explainers: Collection[str] | None = None,
) -> list[Finding]:
    """The findings with each explained log finding dropped and its lines moved to its explainer.

    A log finding (one with `supports` set, mapped by `supports` to a category) is explained by a
    structural finding (no `supports`) of that category that names one of its objects: the agent
    workload (its first object), or the object its lines point at (e.g. the Service the istio
    check fails to scrape). Among several, the one whose first object is the same wins, then the
    first in report order. Log evidence is added up to `MAX_LOG_EVIDENCE` items per finding, one
    sample of each joined group before the second sample of any, skipping lines (namespace, pod,
    container, line number) the finding already quotes. Order of the findings is kept. With
    `explainers`, only findings of those rule ids explain log findings.
    """
    structural = [
        i for i, f in enumerate(findings) if f.supports is None and (explainers is None or f.rule in explainers)
    ]
    joined: dict[int, list[Finding]] = {}
    dropped: set[int] = set()
    for index, finding in enumerate(findings):
        if finding.supports is None or finding.supports not in supports:
            continue
        target = _explainer(finding, findings, structural, supports[finding.supports])
        if target is None:
            continue
        joined.setdefault(target, []).append(finding)
        dropped.add(index)
    out: list[Finding] = []
    for index, finding in enumerate(findings):
        if index in dropped:
            continue
        if index in joined:
            finding = with_log_evidence(finding, joined[index])
        out.append(finding)
    return out


def _explainer(log_finding: Finding, findings: Sequence[Finding], structural: list[int], category: str) -> int | None:
    anchors = set(log_finding.objects)
    candidates = [
        i for i in structural if findings[i].category.value == category and anchors.intersection(findings[i].objects)
    ]
    if not candidates:
        return None
    first = log_finding.objects[:1]
    return min(
        candidates,
        key=lambda i: (findings[i].objects[:1] != first, findings[i].sort_key(), i),
    )


def _line_key(item: LogEvidence) -> tuple[str, str, str, int]:
    return (item.namespace, item.pod, item.container, item.line)


def with_log_evidence(finding: Finding, log_findings: Sequence[Finding]) -> Finding:
    """`finding` with the log lines of `log_findings` appended (deduplicated, at most 3 in all).

    The most repeated groups come first; within a log finding its samples keep their order.
    """
    present = [e for e in finding.evidence if isinstance(e, LogEvidence)]
    seen = {_line_key(e) for e in present}
    room = MAX_LOG_EVIDENCE - len(present)
    if room <= 0:
        return finding
    ordered = sorted(
        log_findings,
        key=lambda f: (-max((e.count for e in _logs(f)), default=0), f.sort_key()),
    )
    samples = [_logs(f) for f in ordered]
    added: list[LogEvidence] = []
    depth = max((len(s) for s in samples), default=0)
    for rank in range(depth):
        for group in samples:
            if rank >= len(group) or len(added) >= room:
                continue
            item = group[rank]
            if _line_key(item) in seen:
                continue
            seen.add(_line_key(item))
            added.append(item)
    if not added:
        return finding
    return dataclasses.replace(finding, evidence=(*finding.evidence, *added))


def _logs(finding: Finding) -> list[LogEvidence]:
    return [e for e in finding.evidence if isinstance(e, LogEvidence)]


def settle_results(results: Sequence[RuleResult], findings: Sequence[Finding]) -> list[RuleResult]:
    """Results after the join: a `failed` rule left without findings (all absorbed) is `passed`."""
    remaining = {f.rule for f in findings}
    return [
        dataclasses.replace(r, status=Status.PASSED, reason=None)
        if r.status is Status.FAILED and r.rule not in remaining
        else r
        for r in results
    ]
