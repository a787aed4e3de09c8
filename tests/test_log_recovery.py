"""Retried, then succeeded (issue 9, point 15): intake failures followed by the forwarder's success
line for the same host in the same container's log are recovered; failures after it are not."""

from __future__ import annotations

from meshdoctor.logs.recovery import SUCCESS, recovered, recovery_line
from meshdoctor.logs.scanner import group_matches
from meshdoctor.logs.workload_logs import merge_groups, shared_scanner

HOST = "7-60-1-app.agent.datadoghq.eu"
RESET = (
    "2026-11-20 08:05:17 UTC | CORE | ERROR | (comp/forwarder/defaultforwarder/worker.go:189 in process) | "
    "Error while processing transaction: error while sending transaction, rescheduling it: "
    f'Post "https://{HOST}/api/v2/series": read tcp 10.0.0.1:4321->34.107.236.155:443: read: connection reset by peer'
)
SUCCESS_LINE = (
    "2026-11-20 08:05:34 UTC | CORE | INFO | (comp/forwarder/defaultforwarder/transaction/transaction.go:417 in "
    f'internalProcess) | Successfully posted payload to "https://{HOST}/api/v2/series" (202 Accepted), the agent '
    "will only log transaction success every 500 transactions"
)
OTHER_SUCCESS = SUCCESS_LINE.replace(HOST, "7-60-1-app.agent.datadoghq.com")


def groups_of(*logs: tuple[str, list[str]]):
    scanner = shared_scanner("agent")
    found = []
    for pod, lines in logs:
        found += group_matches(scanner.scan(lines, namespace="datadog", pod=pod, container="agent"))
    return merge_groups(found)


def failure(groups):
    return next(g for g in groups if g.signature.id == "LOG-EGRESS-TX-CONNECTION-RESET")


def test_a_success_after_the_failures_recovers_them():
    groups = groups_of(("a", [RESET, RESET, SUCCESS_LINE]))
    assert {g.signature.id for g in groups} == {"LOG-EGRESS-TX-CONNECTION-RESET", SUCCESS}
    assert failure(groups).last_lines == ((("datadog", "a", "agent"), 2),)
    assert recovered(failure(groups), groups)
    assert recovery_line(failure(groups), groups) == 3


def test_a_failure_after_the_last_success_is_not_recovered():
    groups = groups_of(("a", [RESET, SUCCESS_LINE, RESET]))
    assert not recovered(failure(groups), groups)


def test_no_success_or_another_hosts_success_recovers_nothing():
    assert not recovered(failure(groups_of(("a", [RESET, RESET]))), groups_of(("a", [RESET, RESET])))
    groups = groups_of(("a", [RESET, OTHER_SUCCESS]))
    assert not recovered(failure(groups), groups)


def test_every_log_of_the_failures_must_show_the_success():
    groups = groups_of(("a", [RESET, SUCCESS_LINE]), ("b", [RESET]))
    assert failure(groups).last_lines == ((("datadog", "a", "agent"), 1), (("datadog", "b", "agent"), 1))
    assert not recovered(failure(groups), groups)
    groups = groups_of(("a", [RESET, SUCCESS_LINE]), ("b", [RESET, SUCCESS_LINE]))
    assert recovered(failure(groups), groups)


def test_the_success_line_itself_is_never_a_finding_nor_recovered():
    groups = groups_of(("a", [SUCCESS_LINE]))
    assert [g.signature.supports for g in groups] == ["egress-success"]
    assert not recovered(groups[0], groups)
