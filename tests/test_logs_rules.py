"""The logs family MD601-MD605: exact findings on their fixtures, which logs they read, grouping
across pods, one scan per log per run, streaming, and evidence landing on structural findings."""

from __future__ import annotations

import dataclasses
import io
import tracemalloc
from pathlib import Path

import pytest
import yaml
from meshdoctor_rules.logs.log_rule import LogRule, agent_logs, logs_command
from meshdoctor_rules.logs.md601_intake_unreachable import AgentIntakeUnreachable
from meshdoctor_rules.logs.md602_api_key_rejected import ApiKeyRejected
from meshdoctor_rules.logs.md603_istio_check_failing import IstioCheckCannotScrape
from meshdoctor_rules.logs.md604_agent_forbidden import AgentForbidden, can_i, missing_permission
from meshdoctor_rules.logs.md605_sidecar_drops_intake import SidecarDropsIntakeTraffic

from meshdoctor.engine import run
from meshdoctor.logs import scanner as logscan
from meshdoctor.logs import workload_logs
from meshdoctor.model import Category, LogEvidence, ObjectRef, Severity, Status
from meshdoctor.registry import load_rules
from meshdoctor.rule import Context
from meshdoctor.snapshot import LogKey, Snapshot
from meshdoctor.sources import load_offline
from meshdoctor.sources.dump import ContainerSection, LogsTxt
from meshdoctor.sources.logs import MAX_LINE, FileLog, stream_lines

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
AGENT = ObjectRef("DaemonSet", "datadog", "datadog-agent")
POD = ObjectRef("Pod", "datadog", "datadog-agent-x7k2p")


def fixture(rule: str, case: str = "failing") -> Snapshot:
    folder = FIXTURES / "rules" / rule / case
    snapshot, _ = load_offline([str(folder)], str(folder / "logs"))
    return snapshot


def findings(rule: type[LogRule], snapshot: Snapshot):
    return list(rule().check(Context(snapshot)))


def evidence(finding) -> list[tuple[str, int, int, str | None, str | None]]:
    return [(e.container, e.line, e.count, e.first_seen, e.last_seen) for e in finding.evidence]


# -- each rule on its failing fixture -------------------------------------------------------------


def test_md601_one_finding_per_host_with_a_service_entry_for_it():
    (finding,) = findings(AgentIntakeUnreachable, fixture("MD601"))
    assert finding.severity is Severity.ERROR and finding.category is Category.LOGS
    assert finding.supports == "egress"
    assert finding.objects == (AGENT, POD)
    assert finding.message == (
        "DaemonSet datadog/datadog-agent: The agent keeps failing to send to "
        "7-60-1-app.agent.datadoghq.eu and now retries later: its traffic to the Datadog intake "
        "does not get out of the pod (check the ServiceEntry for 7-60-1-app.agent.datadoghq.eu and "
        "the mesh's outbound traffic policy). Seen 2 times in 1 log, 2026-11-20T08:05:32Z to "
        "2026-11-20T08:05:47Z. Also: The connection to the intake was closed before any answer "
        "(EOF) (1 line)."
    )
    assert evidence(finding) == [
        ("agent", 5, 2, "2026-11-20T08:05:32Z", "2026-11-20T08:05:47Z"),
        ("agent", 4, 1, "2026-11-20T08:05:17Z", "2026-11-20T08:05:17Z"),
        ("agent", 6, 2, "2026-11-20T08:05:32Z", "2026-11-20T08:05:47Z"),
    ]
    assert finding.remediation is not None
    (manifest,) = finding.remediation.manifests
    assert yaml.safe_load(manifest) == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": "datadog-7-60-1-app-agent-datadoghq-eu", "namespace": "datadog"},
        "spec": {
            "hosts": ["7-60-1-app.agent.datadoghq.eu"],
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}],
            "resolution": "DNS",
        },
    }
    assert finding.remediation.commands == (
        "kubectl apply --dry-run=server -f <file>",
        "kubectl apply -f <file>",
    )


def test_md601_leaves_out_a_host_that_answered_403():
    assert findings(AgentIntakeUnreachable, fixture("MD601", "answered-403")) == []
    (key,) = findings(ApiKeyRejected, fixture("MD601", "answered-403"))
    assert key.rule == "MD602"


def test_md602_one_api_key_finding_per_workload():
    (finding,) = findings(ApiKeyRejected, fixture("MD602"))
    assert finding.supports == "agent-api-key"
    assert finding.objects == (AGENT, POD)
    assert finding.message == (
        "DaemonSet datadog/datadog-agent (DD_SITE datadoghq.eu): 7-60-1-app.agent.datadoghq.eu "
        "answered 403: the API key is invalid for this Datadog site. The network path works (this "
        "is not an egress problem); fix DD_API_KEY or DD_SITE. Seen 3 times in 1 log, "
        "2026-11-20T08:05:17Z to 2026-11-20T08:05:32Z. Also: The forwarder found no valid API key "
        "and reports itself unhealthy (1 line)."
    )
    assert [(c, line, n) for c, line, n, _, _ in evidence(finding)] == [
        ("agent", 4, 3),
        ("agent", 7, 1),
        ("agent", 5, 3),
    ]
    assert finding.remediation is not None
    assert finding.remediation.manifests == ()
    assert finding.remediation.commands == ("kubectl -n datadog rollout restart daemonset/datadog-agent",)


def test_md603_names_the_service_the_check_cannot_scrape():
    (finding,) = findings(IstioCheckCannotScrape, fixture("MD603"))
    assert finding.supports == "telemetry"
    assert finding.objects == (AGENT, POD, ObjectRef("Service", "istio-system", "istiod"))
    assert finding.message.startswith(
        "DaemonSet datadog/datadog-agent: The istio check cannot connect to "
        "istiod.istio-system:15014 (connection refused)"
    )
    assert [(line, n) for _, line, n, _, _ in evidence(finding)] == [(4, 3), (5, 3)]
    assert finding.remediation is not None
    assert finding.remediation.commands == (
        "kubectl -n istio-system get service istiod -o yaml",
        "kubectl -n istio-system get endpoints istiod -o yaml",
    )


def test_md604_one_finding_per_denied_permission_spelled_out():
    api, kubelet = findings(AgentForbidden, fixture("MD604"))
    user = "system:serviceaccount:datadog:datadog-agent"
    assert api.message == (
        f"DaemonSet datadog/datadog-agent: the API server denies {user} to list pods "
        '(API group "") at the cluster scope: no role bound to it grants that permission. '
        "Seen 2 times in 1 log, 2026-11-20T08:05:04Z to 2026-11-20T08:05:20Z."
    )
    assert kubelet.message == (
        f"DaemonSet datadog/datadog-agent: the kubelet denies {user} to get nodes/proxy: no role "
        "bound to it grants that permission. Seen once in 1 log, at 2026-11-20T08:05:05Z."
    )
    assert api.remediation is not None and kubelet.remediation is not None
    assert api.remediation.commands == (f"kubectl auth can-i list pods --all-namespaces --as={user}",)
    assert kubelet.remediation.commands == (f"kubectl auth can-i get nodes --subresource=proxy --as={user}",)
    assert {api.supports, kubelet.supports} == {"rbac"}


@pytest.mark.parametrize(
    "values, permission, command",
    [
        (
            {
                "user": "u",
                "verb": "get",
                "resource": "configmaps",
                "api_group": "",
                "namespace": "kube-system",
            },
            'get configmaps (API group "") in namespace kube-system',
            "kubectl auth can-i get configmaps -n kube-system --as=u",
        ),
        (
            {
                "user": "u",
                "verb": "list",
                "resource": "nodes",
                "api_group": "metrics.k8s.io",
                "namespace": None,
            },
            'list nodes (API group "metrics.k8s.io") at the cluster scope',
            "kubectl auth can-i list nodes.metrics.k8s.io --all-namespaces --as=u",
        ),
        (
            {"user": "u", "verb": "list", "resource": "pods", "namespace": None},
            "list pods at the cluster scope",
            "kubectl auth can-i list pods --all-namespaces --as=u",
        ),
        (
            {"user": "u", "verb": "get", "resource": "nodes", "subresource": "pods"},
            "get nodes/pods",
            "kubectl auth can-i get nodes --subresource=pods --as=u",
        ),
    ],
)
def test_md604_permission_words_and_can_i(values, permission, command):
    assert missing_permission(values) == permission
    assert can_i(values) == command


def test_md605_sidecar_blackhole_gives_the_service_entry_for_the_sni():
    (finding,) = findings(SidecarDropsIntakeTraffic, fixture("MD605"))
    assert finding.supports == "egress"
    assert evidence(finding) == [
        ("istio-proxy", 2, 3, "2026-11-20T08:05:17.891Z", "2026-11-20T08:05:47.891Z"),
        ("istio-proxy", 3, 3, "2026-11-20T08:05:17.891Z", "2026-11-20T08:05:47.891Z"),
    ]
    assert finding.remediation is not None
    (manifest,) = finding.remediation.manifests
    entry = yaml.safe_load(manifest)
    assert entry["spec"]["hosts"] == ["7-60-1-app.agent.datadoghq.eu"]
    assert entry["spec"]["ports"] == [{"number": 443, "name": "tls-443", "protocol": "TLS"}]


def test_agent_signatures_are_not_read_in_the_sidecar_log_nor_the_reverse(tmp_path):
    snapshot = fixture("MD605")
    line = (
        "2026-11-20 08:05:32 UTC | CORE | WARN | (worker.go:189 in process) | Too many errors for "
        "endpoint 'https://7-60-1-app.agent.datadoghq.eu/api/v2/series': retrying later\n"
    )
    path = tmp_path / "istio-proxy.log"
    path.write_text(line)
    snapshot.add_log(LogKey("datadog", "datadog-agent-x7k2p", "istio-proxy"), FileLog(path))
    assert findings(AgentIntakeUnreachable, snapshot) == []


# -- which logs are read ----------------------------------------------------------------------


AGENT_ONLY = (FIXTURES / "rules" / "MD601" / "failing" / "cluster.yaml").read_text().split("---\n")[0]
TOO_MANY = (
    "2026-11-20 08:05:32 UTC | CORE | WARN | (worker.go:189 in process) | Too many errors for "
    "endpoint 'https://7-60-1-app.agent.datadoghq.eu/api/v2/series': retrying later\n"
)


def test_logs_of_pods_missing_from_the_input_are_read_when_the_controller_names_them(tmp_path):
    """`--logs DIR` next to manifests without pods: pod names the DaemonSet generates count as its
    pods; the others are attributed by folder, each to its own Pod (issue 12: never dropped)."""
    (tmp_path / "agent.yaml").write_text(AGENT_ONLY)
    for pod in ("datadog-agent-b4x9k", "datadog-agent-extra-b4x9k", "other-b4x9k"):
        folder = tmp_path / "logs" / "datadog" / pod
        folder.mkdir(parents=True)
        (folder / "agent.log").write_text(TOO_MANY * 2)
    snapshot, _ = load_offline([str(tmp_path / "agent.yaml")], str(tmp_path / "logs"))
    ctx = Context(snapshot)
    own, extra, other = AgentIntakeUnreachable().check(ctx)
    assert own.objects == (AGENT, ObjectRef("Pod", "datadog", "datadog-agent-b4x9k"))
    assert extra.objects == (ObjectRef("Pod", "datadog", "datadog-agent-extra-b4x9k"),)
    assert other.objects == (ObjectRef("Pod", "datadog", "other-b4x9k"),)
    assert [e.count for e in own.evidence] == [2, 2]
    assert [(e.pod, e.count) for e in other.evidence] == [("other-b4x9k", 2), ("other-b4x9k", 2)]
    assert ctx.logs_read == {
        ("datadog", "datadog-agent-b4x9k", "agent"),
        ("datadog", "datadog-agent-extra-b4x9k", "agent"),
        ("datadog", "other-b4x9k", "agent"),
    }


def test_groups_merge_across_pods_and_previous_instances_are_named(tmp_path):
    (tmp_path / "agent.yaml").write_text(AGENT_ONLY)
    early = TOO_MANY.replace("08:05:32", "08:01:00")
    late = TOO_MANY.replace("08:05:32", "08:09:00")
    files = {
        "datadog-agent-b4x9k/agent.log": TOO_MANY,
        "datadog-agent-b4x9k/agent.previous.log": early * 3,
        "datadog-agent-z7q2m/agent.log": late,
    }
    for name, text in files.items():
        path = tmp_path / "logs" / "datadog" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    snapshot, _ = load_offline([str(tmp_path / "agent.yaml")], str(tmp_path / "logs"))
    (finding,) = findings(AgentIntakeUnreachable, snapshot)
    assert finding.objects == (
        AGENT,
        ObjectRef("Pod", "datadog", "datadog-agent-b4x9k"),
        ObjectRef("Pod", "datadog", "datadog-agent-z7q2m"),
    )
    assert "Seen 5 times in 3 logs, 2026-11-20T08:01:00Z to 2026-11-20T08:09:00Z." in finding.message
    assert [(e.pod, e.container, e.line, e.count) for e in finding.evidence] == [
        ("datadog-agent-b4x9k", "agent", 1, 5),
        ("datadog-agent-b4x9k", "agent (previous)", 1, 5),
    ]
    group = next(g for g in agent_logs(Context(snapshot))[0].groups)
    assert group.pods == (
        ("datadog", "datadog-agent-b4x9k", "agent"),
        ("datadog", "datadog-agent-b4x9k", "agent (previous)"),
        ("datadog", "datadog-agent-z7q2m", "agent"),
    )
    assert logs_command("datadog", group) == "kubectl -n datadog logs datadog-agent-b4x9k -c agent"
    previous = dataclasses.replace(group, samples=group.samples[1:])
    assert logs_command("datadog", previous) == "kubectl -n datadog logs datadog-agent-b4x9k -c agent --previous"


def test_each_log_is_scanned_once_per_run(monkeypatch):
    calls: list[str] = []
    scan = workload_logs._scan

    def counting(scanner, log, namespace, pod, container):
        calls.append(container)
        return scan(scanner, log, namespace, pod, container)

    monkeypatch.setattr(workload_logs, "_scan", counting)
    folder = FIXTURES / "scenarios" / "seed-broken"
    snapshot, source = load_offline([str(folder)], str(folder / "logs"))
    run([r for r in load_rules() if r.category is Category.LOGS], snapshot, source)
    assert calls == ["datadog-agent"]


class LinesOnly:
    """A LogSource with nothing but `lines()` (e.g. a third-party source)."""

    origin = "memory"

    def __init__(self, text: str) -> None:
        self.text = text

    def lines(self):
        yield from self.text.splitlines()


def test_a_source_that_only_has_lines_is_scanned_too():
    snapshot = fixture("MD601", "passing")
    key = LogKey("datadog", "datadog-agent-x7k2p", "agent")
    snapshot.add_log(key, LinesOnly("start\n" + TOO_MANY))
    (finding,) = findings(AgentIntakeUnreachable, snapshot)
    assert [(e.line, e.count) for e in finding.evidence] == [(2, 1)]


# -- streaming ----------------------------------------------------------------------------------


class CountingReader(io.BytesIO):
    """Counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.given = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = super().readline(size)
        self.given += len(line)
        return line


def test_file_logs_are_streamed_line_by_line():
    handle = CountingReader(b"first\n" + b"x" * (4 * MAX_LINE) + b"\n" + b"last\n")
    lines = stream_lines(handle)
    assert next(lines) == "first"
    assert handle.given == len(b"first\n")
    assert next(lines) == "x" * MAX_LINE
    assert handle.given <= len(b"first\n") + 4 * MAX_LINE + 1
    assert list(lines) == ["last"]


def big_logs_txt(path: Path, megabytes: int) -> None:
    filler = (
        "2026-11-20 08:05:01 UTC | CORE | INFO | (pkg/collector/worker/check_logger.go:68 in "
        "CheckFinished) | check:istio | Done running check\n"
    )
    block = filler * 4000
    with path.open("w") as handle:
        handle.write("==== START logs for container agent of pod datadog/datadog-agent-x7k2p ====\n")
        handle.write(TOO_MANY)
        written = 0
        while written < megabytes * 1024 * 1024:
            handle.write(block)
            written += len(block)
        handle.write(TOO_MANY)
        handle.write("==== END logs for container agent of pod datadog/datadog-agent-x7k2p ====\n")


def test_a_large_logs_txt_section_is_scanned_in_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(logscan, "CHUNK_SIZE", 1024 * 1024)
    path = tmp_path / "logs.txt"
    big_logs_txt(path, 24)
    snapshot = fixture("MD601", "passing")
    key = LogKey("datadog", "datadog-agent-x7k2p", "agent")
    snapshot.add_log(key, ContainerSection(LogsTxt(str(path)), "agent"))
    tracemalloc.start()
    try:
        (finding,) = findings(AgentIntakeUnreachable, snapshot)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024, peak  # the file is 24 MiB
    assert [e.count for e in finding.evidence] == [2, 2]
    assert finding.evidence[0].line == 1 and finding.evidence[1].line > 90_000
    assert isinstance(finding.evidence[0], LogEvidence)


def test_a_large_logs_txt_section_streams_its_lines(tmp_path):
    path = tmp_path / "logs.txt"
    big_logs_txt(path, 16)
    section = ContainerSection(LogsTxt(str(path)), "agent")
    tracemalloc.start()
    try:
        count = sum(1 for _ in section.lines())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count > 120_000
    assert peak < 5 * 1024 * 1024, peak  # the file is 16 MiB; indexing reads 1 MiB at a time


# -- evidence on structural findings -------------------------------------------------------------


def test_the_istio_check_lines_land_on_the_telemetry_finding_of_the_service(tmp_path):
    scenario = FIXTURES / "scenarios" / "telemetry-service-port-missing"
    refused = (
        "2026-11-20 08:05:18 UTC | CORE | ERROR | (pkg/collector/worker/check_logger.go:71 in "
        'Error) | check:istio | Error running check: [{"message": "HTTPConnectionPool(host='
        "'istiod.istio-system', port=15014): Max retries exceeded with url: /metrics (Caused by "
        "NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7fa1b2c3d4e0>: Failed "
        "to establish a new connection: [Errno 111] Connection refused'))\"}]\n"
    )
    log = tmp_path / "datadog" / "datadog-agent-7xk2p" / "agent.log"
    log.parent.mkdir(parents=True)
    log.write_text("start\n" + refused * 3)
    snapshot, source = load_offline([str(scenario)], str(tmp_path))
    report = run(load_rules(), snapshot, source)
    assert [(f.rule, f.objects[0]) for f in report.findings] == [
        ("MD301", ObjectRef("Service", "istio-system", "istiod"))
    ]
    lines = [e for e in report.findings[0].evidence if isinstance(e, LogEvidence)]
    assert [(e.pod, e.container, e.line, e.count) for e in lines] == [
        ("datadog-agent-7xk2p", "agent", 2, 3),
        ("datadog-agent-7xk2p", "agent", 3, 3),
    ]
    statuses = {r.rule: r.status for r in report.results}
    assert statuses["MD603"] is Status.PASSED


def test_a_check_load_failure_lands_on_the_check_config_finding(tmp_path):
    """--logs for pods missing from the input (the pod name is one the DaemonSet generates)."""
    fixture_dir = FIXTURES / "rules" / "MD208" / "failing"
    failed = (
        "2026-11-20 08:05:03 UTC | CORE | ERROR | (pkg/collector/scheduler.go:248 in "
        "GetChecksFromConfigs) | Unable to load the check: unable to load any check from config "
        "'istio'\n"
    )
    log = tmp_path / "default" / "datadog-agent-k2p9x" / "datadog-agent.log"
    log.parent.mkdir(parents=True)
    log.write_text("start\n" + failed)
    snapshot, source = load_offline([str(fixture_dir)], str(tmp_path))
    rules = [r for r in load_rules() if r.id in ("MD208", "MD603")]
    report = run(rules, snapshot, source)
    (md208,) = report.findings
    assert md208.rule == "MD208"
    assert [(e.pod, e.container, e.line, e.count) for e in md208.evidence if isinstance(e, LogEvidence)] == [
        ("datadog-agent-k2p9x", "datadog-agent", 2, 1)
    ]
    assert [r.status for r in report.results] == [Status.FAILED, Status.PASSED]


def test_lines_only_in_previous_containers_logs_are_history_not_a_current_fault(tmp_path):
    """Issue 9, point 15: the running container logs no failure; its previous instance did."""
    (tmp_path / "agent.yaml").write_text(AGENT_ONLY)
    files = {
        "datadog-agent-b4x9k/agent.log": "2026-11-20 08:10:00 UTC | CORE | INFO | (run.go:1 in start) | ok\n",
        "datadog-agent-b4x9k/agent.previous.log": TOO_MANY * 3,
    }
    for name, text in files.items():
        path = tmp_path / "logs" / "datadog" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    snapshot, _ = load_offline([str(tmp_path / "agent.yaml")], str(tmp_path / "logs"))
    (finding,) = findings(AgentIntakeUnreachable, snapshot)
    assert finding.severity is Severity.INFO
    assert finding.message.endswith(
        "Only in the previous container's log (`kubectl logs --previous`): a past run's fault; "
        "the running container has not logged it."
    )
    (tmp_path / "logs" / "datadog" / "datadog-agent-b4x9k" / "agent.log").write_text(TOO_MANY)
    snapshot, _ = load_offline([str(tmp_path / "agent.yaml")], str(tmp_path / "logs"))
    (current,) = findings(AgentIntakeUnreachable, snapshot)
    assert current.severity is Severity.ERROR
