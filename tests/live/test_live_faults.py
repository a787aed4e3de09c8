"""`meshdoctor check` through a flaky API server (tests/live/faultproxy.py), one test per fault.

The world is the agent DaemonSet of test_live_permissions (`_agent_world`) in one namespace, read
with `-n NS --request-timeout 2s` through the proxy; the fault-free report through the same proxy is
the reference. The proxy pages ConfigMaps one per page and ClusterRoles 20 per page, so `continue`
tokens are real and a 410 lands in the middle of a real pagination.

A retried read must give exactly the fault-free report and exit code; an exhausted retry budget must
give `not_checked` for exactly the rules that need that kind, with the reason naming the status, and
the same results elsewhere; every run must end within `run_deadline(2s)` (sources/retry.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshdoctor.registry import load_rules
from meshdoctor.sources.retry import MAX_RETRIES, run_deadline
from tests.live.faultproxy import Fault, FaultProxy
from tests.live.test_live_check import live_report
from tests.live.test_live_permissions import _agent_world

pytestmark = pytest.mark.live

TIMEOUT = 2.0
BOUND = run_deadline(TIMEOUT) + 5  # the deadline plus local work (rules, rendering)


@pytest.fixture(scope="module")
def world(live_cluster: Any) -> Iterator[str]:
    ns = f"faults-{uuid.uuid4().hex[:8]}"
    live_cluster.ensure_namespace(ns)
    _agent_world(live_cluster, ns)
    for i in range(2):
        live_cluster.post(
            f"/api/v1/namespaces/{ns}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"extra-{i}"}, "data": {"k": "v"}},
            check=True,
        )
    try:
        yield ns
    finally:
        live_cluster.delete(f"/api/v1/namespaces/{ns}")
        # gone before the next test: a terminating namespace's agent is seen by the next live check
        live_cluster.wait_for(
            lambda: live_cluster.get(f"/api/v1/namespaces/{ns}").status == 404, 120, what=f"namespace {ns} deleted"
        )


@pytest.fixture(scope="module")
def proxy(live_cluster: Any) -> Iterator[FaultProxy]:
    pki = Path(live_cluster.dir) / "pki"
    fp = FaultProxy(
        upstream=live_cluster.server,
        ca_file=live_cluster.ca_file,
        cert_file=pki / "apiserver.crt",
        key_file=pki / "apiserver.key",
        page_limits={r"/configmaps$": 1, r"/clusterroles$": 20},
    )
    try:
        yield fp
    finally:
        fp.close()


@pytest.fixture(scope="module")
def kubeconfig(live_cluster: Any, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = yaml.safe_load(live_cluster.admin_kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = proxy.url
    path = tmp_path_factory.mktemp("faults") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def check(kubeconfig: Path, ns: str) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    code, report = live_report(kubeconfig, "-n", ns, "--request-timeout", f"{TIMEOUT:g}s")
    return code, report, time.monotonic() - start


@pytest.fixture(scope="module")
def reference(proxy: FaultProxy, kubeconfig: Path, world: str) -> tuple[int, dict[str, Any]]:
    proxy.reset()
    code, report, _ = check(kubeconfig, world)
    assert code in (0, 1), report
    assert not any("error:" in line for line in report["source"].get("missing") or []), report["source"]
    pages = [h for h in proxy.hits if h.path.endswith("/configmaps")]
    assert len(pages) >= 4, "ConfigMaps are listed one per page (3 objects, 4 pages)"
    return code, report


def run_with(proxy: FaultProxy, kubeconfig: Path, ns: str, *faults: Fault) -> tuple[int, dict[str, Any], float]:
    proxy.reset(list(faults))
    code, report, elapsed = check(kubeconfig, ns)
    assert elapsed < BOUND, f"the run took {elapsed:.1f}s, more than the stated bound {BOUND:g}s"
    return code, report, elapsed


def _exit_code(report: dict[str, Any]) -> int:
    """The exit code for the default `--fail-on error` (DESIGN.md "Exit codes", cli/main.py `exit_code`).

    3 when a rule crashed or not a single rule could run (every result not_checked: a server too
    slow for every read); else 1 with an error finding neither suppressed nor known; else 0.
    """
    statuses = {r["status"] for r in report["results"]}
    if "error" in statuses or statuses <= {"not_checked"}:
        return 3
    counted = [f for f in report["findings"] if not f["suppressed"] and not f.get("known")]
    return 1 if any(f["severity"] == "error" for f in counted) else 0


def assert_only_kind_unread(
    report: dict[str, Any], reference: dict[str, Any], kind: str, reason: str, code: int
) -> None:
    """`kind` is missing with `reason`; the rules that need it are not_checked; the rest is as fault-free."""
    assert report["source"]["missing"] == [f"{kind}: {reason}", *reference["source"]["missing"]]
    needs = {rule.id for rule in load_rules(()) if kind in rule.inputs.kinds}
    touches = {rule.id for rule in load_rules(()) if kind in rule.inputs.kinds | rule.inputs.optional_kinds}
    touches |= {rule.id for rule in load_rules(()) if rule.inputs.logs} if kind == "Pod" else set()
    before = {r["rule"]: r for r in reference["results"]}
    assert needs, kind
    for result in report["results"]:
        if result["rule"] in needs:
            assert result["status"] == "not_checked", result
            assert reason in (result["reason"] or ""), result
        elif result["rule"] not in touches:
            assert result == before[result["rule"]]
    untouched = [f for f in reference["findings"] if f["rule"] not in touches]
    assert [f for f in report["findings"] if f["rule"] not in touches] == untouched
    assert code == _exit_code(report)


# -- retried reads succeed: the report is the fault-free one ---------------------------------


def test_429_with_retry_after_is_waited_for_and_retried(proxy, kubeconfig, world, reference) -> None:
    pods = rf"^/api/v1/namespaces/{world}/pods$"
    code, report, elapsed = run_with(proxy, kubeconfig, world, Fault(pods, "status", 2, 429, retry_after="1"))
    assert (code, report) == reference
    assert [h.action for h in proxy.hits if h.path.endswith(f"{world}/pods")] == ["status", "status", "forward"]
    assert elapsed >= 2  # the two `Retry-After: 1` waits


def test_503_with_retry_after_is_retried(proxy, kubeconfig, world, reference) -> None:
    daemonsets = rf"^/apis/apps/v1/namespaces/{world}/daemonsets$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(daemonsets, "status", 1, 503, retry_after="0"))
    assert (code, report) == reference
    assert len(proxy.hits_of("status")) == 1


def test_a_reset_connection_is_retried(proxy, kubeconfig, world, reference) -> None:
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(rf"^/api/v1/namespaces/{world}/configmaps$", "reset"))
    assert (code, report) == reference
    assert len(proxy.hits_of("reset")) == 1


def test_a_slow_answer_past_the_request_timeout_is_retried(proxy, kubeconfig, world, reference) -> None:
    slow = Fault(rf"^/api/v1/namespaces/{world}/services$", "slow", delay=TIMEOUT + 1.5)
    code, report, elapsed = run_with(proxy, kubeconfig, world, slow)
    assert (code, report) == reference
    assert elapsed >= TIMEOUT + 1  # one timed-out attempt, one second's wait
    assert [h.action for h in proxy.hits if h.path.endswith(f"{world}/services")] == ["slow", "forward"]


def test_410_expired_mid_pagination_lists_again_from_the_start(proxy, kubeconfig, world, reference) -> None:
    configmaps = rf"^/api/v1/namespaces/{world}/configmaps$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(configmaps, "gone", needs_continue=True))
    assert (code, report) == reference
    pages = [(bool(h.query.get("continue", [""])[0]), h.action) for h in proxy.hits if h.path.endswith("/configmaps")]
    # page 1, page 2 -> 410, then a fresh list: page 1 (no continue token) and the rest
    assert pages[:3] == [(False, "forward"), (True, "gone"), (False, "forward")]
    assert pages[3:] == [(True, "forward")] * (len(pages) - 3) and len(pages) >= 6


# -- exhausted budgets: not_checked for exactly that kind, with the status ---------------------


def test_429_past_the_retry_budget_leaves_the_kind_not_checked(proxy, kubeconfig, world, reference) -> None:
    configmaps = rf"^/api/v1/namespaces/{world}/configmaps$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(configmaps, "status", 99, 429, retry_after="0"))
    reason = f"error: HTTP 429 listing configmaps in namespace {world}: injected 429 (after {MAX_RETRIES + 1} attempts)"
    assert_only_kind_unread(report, reference[1], "ConfigMap", reason, code)
    assert len(proxy.hits_of("status")) == MAX_RETRIES + 1


def test_500_without_retry_after_is_not_retried(proxy, kubeconfig, world, reference) -> None:
    services = rf"^/api/v1/namespaces/{world}/services$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(services, "status", 99, 500))
    reason = f"error: HTTP 500 listing services in namespace {world}: injected 500"
    assert_only_kind_unread(report, reference[1], "Service", reason, code)
    assert len(proxy.hits_of("status")) == 1


def test_resets_past_the_retry_budget_leave_the_kind_not_checked(proxy, kubeconfig, world, reference) -> None:
    services = rf"^/api/v1/namespaces/{world}/services$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(services, "reset", 99))
    reason = f"error: connection reset by peer (after {MAX_RETRIES + 1} attempts) listing services in namespace {world}"
    assert_only_kind_unread(report, reference[1], "Service", reason, code)
    assert len(proxy.hits_of("reset")) == MAX_RETRIES + 1


def test_timeouts_past_the_retry_budget_leave_the_kind_not_checked(proxy, kubeconfig, world, reference) -> None:
    services = rf"^/api/v1/namespaces/{world}/services$"
    code, report, elapsed = run_with(proxy, kubeconfig, world, Fault(services, "slow", 99, delay=TIMEOUT + 1.5))
    reason = (
        f"error: timed out after {TIMEOUT:g}s (after {MAX_RETRIES + 1} attempts) listing services in namespace {world}"
    )
    assert_only_kind_unread(report, reference[1], "Service", reason, code)
    assert len(proxy.hits_of("slow")) == MAX_RETRIES + 1
    assert elapsed >= (MAX_RETRIES + 1) * TIMEOUT + MAX_RETRIES * 1


def test_410_twice_leaves_the_kind_not_checked(proxy, kubeconfig, world, reference) -> None:
    configmaps = rf"^/api/v1/namespaces/{world}/configmaps$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(configmaps, "gone", 2, needs_continue=True))
    assert_only_kind_unread(report, reference[1], "ConfigMap", "the list expired twice while paging (410 Gone)", code)


def test_a_server_too_slow_for_everything_ends_at_the_deadline(proxy, kubeconfig, world, reference) -> None:
    # every list is slower than the timeout: the run stops at run_deadline, the rest is not read
    every_list = Fault(r"^/api/v1/.+|^/apis/[^/]+/[^/]+/.+", "slow", 10_000, delay=TIMEOUT + 0.5)
    code, report, elapsed = run_with(proxy, kubeconfig, world, every_list)
    deadline = run_deadline(TIMEOUT)
    assert deadline - 1 <= elapsed < BOUND
    missing = [line for line in report["source"]["missing"] if line not in reference[1]["source"]["missing"]]
    assert missing and all(line.split(": ", 1)[1].startswith("error: ") for line in missing), missing
    assert any(f"not read within the run's deadline of {deadline:g}s" in line for line in missing), missing
    assert code == _exit_code(report)


# -- what cannot be read at all ----------------------------------------------------------------


def test_an_unreadable_version_is_one_line_and_exit_2(proxy, kubeconfig, world) -> None:
    from tests.test_cli import invoke, one_line_error

    proxy.reset([Fault(r"^/version$", "status", 99, 503, retry_after="0")])
    args = ("check", "--kubeconfig", str(kubeconfig), "-n", world, "-q", "--request-timeout", f"{TIMEOUT:g}s")
    err = one_line_error(*invoke(*args))
    assert err == (
        f"meshdoctor: error: cannot read the version of the cluster at {proxy.url}: "
        f"HTTP 503 injected 503 (after {MAX_RETRIES + 1} attempts)"
    )
    assert len(proxy.hits) == MAX_RETRIES + 1


def test_failed_discovery_leaves_the_grouped_kinds_not_checked(proxy, kubeconfig, world, reference) -> None:
    from meshdoctor.kube.kinds import KINDS

    code, report, _ = run_with(proxy, kubeconfig, world, Fault(r"^/apis$", "status", 99, 500))
    why = "error: API discovery (/apis) failed: HTTP 500 injected 500"
    added = [line for line in report["source"]["missing"] if line not in reference[1]["source"]["missing"]]
    assert added and all(line.endswith(f": {why}") for line in added), added
    assert {line.split(": ", 1)[0] for line in added} <= {k for k, info in KINDS.items() if info.group}
    assert "DaemonSet" in {line.split(": ", 1)[0] for line in added}
    daemonset_rules = {rule.id for rule in load_rules(()) if "DaemonSet" in rule.inputs.kinds}
    for result in report["results"]:
        if result["rule"] in daemonset_rules:
            assert result["status"] == "not_checked" and why in (result["reason"] or ""), result
    assert code == _exit_code(report)


def test_a_busy_log_endpoint_is_retried(proxy, kubeconfig, world, reference) -> None:
    logs = rf"^/api/v1/namespaces/{world}/pods/[^/]+/log$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(logs, "status", 1, 429, retry_after="1"))
    assert (code, report) == reference
    assert len(proxy.hits_of("status")) == 1


def test_logs_past_the_retry_budget_are_named_as_not_read(proxy, kubeconfig, world, reference) -> None:
    logs = rf"^/api/v1/namespaces/{world}/pods/[^/]+/log$"
    code, report, _ = run_with(proxy, kubeconfig, world, Fault(logs, "status", 99, 503, retry_after="0"))
    fetched = len([h for h in proxy.hits if h.path.endswith("/log")]) // (MAX_RETRIES + 1)
    assert fetched >= 1 and len(proxy.hits_of("status")) == fetched * (MAX_RETRIES + 1)
    plural = "s" if fetched > 1 else ""
    why = f"error: HTTP 503 fetching logs: injected 503 (after {MAX_RETRIES + 1} attempts)"
    line = f"pods/log ({fetched} log{plural}): {why}"
    assert report["source"]["missing"] == [line, *reference[1]["source"]["missing"]]
    assert code == _exit_code(report)
