"""`-n NS` reads one namespace: what lives elsewhere is `not_checked` (naming the namespace not
read), never a false error or "Istio not found" (issue 9, point 16). Offline `--from ... -n NS` is
the same filter a live `-n NS` applies, so the semantics are tested here on the scenarios; a dump
covers exactly the namespace folders it holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from meshdoctor.engine import run
from meshdoctor.registry import load_rules
from meshdoctor.snapshot import EVERY_NAMESPACE, Snapshot
from meshdoctor.sources import load_offline
from tests.expectations import report_lines
from tests.test_cli import invoke

SCENARIOS = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"
RULES = load_rules()


def results(out: str) -> dict[str, tuple[str, str | None]]:
    return {r["rule"]: (r["status"], r["reason"]) for r in json.loads(out)["results"]}


# -- the snapshot's record ------------------------------------------------------------------------


def test_a_snapshot_without_limits_has_read_every_namespace():
    snapshot = Snapshot()
    assert snapshot.not_read("Service", "istio-system") is None
    assert snapshot.not_read("Service", EVERY_NAMESPACE) is None
    assert snapshot.scope_lines() == []


def test_a_limit_names_the_namespace_not_read_and_leaves_cluster_scoped_lookups_alone():
    snapshot = Snapshot()
    snapshot.limit_namespaces(["datadog"], "-n datadog")
    assert snapshot.not_read("Service", "datadog") is None
    assert snapshot.not_read("Service", "istio-system") == "namespace istio-system was not read (-n datadog)"
    assert snapshot.not_read("Service", EVERY_NAMESPACE) == "only namespace datadog read (-n datadog)"
    assert snapshot.not_read("ClusterRole", "") is None
    assert snapshot.scope_lines() == ["namespaced objects: only namespace datadog read (-n datadog)"]


def test_limits_per_kind_and_for_every_kind_narrow_each_other():
    snapshot = Snapshot()
    snapshot.limit_namespaces(["datadog"], "-n datadog")
    snapshot.limit_namespaces(["datadog", "kube-system"], "the cluster-info dump holds datadog, kube-system", ["Pod"])
    scope = snapshot.namespace_scope("Pod")
    assert scope is not None and scope.namespaces == frozenset({"datadog"})
    assert snapshot.not_read("Pod", "kube-system") == (
        "namespace kube-system was not read (-n datadog; the cluster-info dump holds datadog, kube-system)"
    )
    assert snapshot.not_read("ConfigMap", "kube-system") == "namespace kube-system was not read (-n datadog)"


# -- offline -n: a filter with the live source's coverage ----------------------------------------


def test_from_with_n_keeps_only_that_namespace_and_its_logs():
    snapshot, source = load_offline([str(SCENARIOS / "seed-broken")], namespace="default")
    assert {obj["metadata"].get("namespace") for obj in snapshot.objects("Deployment")} <= {"default"}
    assert snapshot.objects("ClusterRole")  # cluster-scoped kinds are read whatever -n says
    assert all(key.namespace == "default" for key in snapshot.logs)
    assert source.target.endswith("seed-broken namespace default")
    assert source.missing == ("namespaced objects: only namespace default read (-n default)",)


def test_istio_not_found_becomes_not_known_naming_the_namespace():
    code, out, _ = invoke("check", "--from", str(SCENARIOS / "istiod-clean"), "-n", "datadog", "-o", "json")
    cluster = json.loads(out)["cluster"]
    assert cluster["istio_era"] == "unknown"
    assert cluster["istio_not_read"] == "namespace istio-system was not read (-n datadog)"
    code, out, _ = invoke("check", "--from", str(SCENARIOS / "istiod-clean"), "-n", "datadog", "--width", "200")
    assert "Istio not known (namespace istio-system was not read (-n datadog))" in out
    assert "Istio not found" not in out


def test_an_endpoint_naming_a_service_in_a_namespace_not_read_is_not_checked_not_an_error():
    # Without -n the check's Service exists; with -n datadog it was not read: MD209 must not say
    # "does not exist" (that was a false error on every istiod-era scenario).
    code, out, err = invoke("check", "--from", str(SCENARIOS / "istiod-clean"), "-o", "json")
    assert code == 0, err
    assert results(out)["MD209"] == ("passed", None)
    code, out, err = invoke("check", "--from", str(SCENARIOS / "istiod-clean"), "-n", "datadog", "-o", "json")
    assert code == 0, err
    assert results(out)["MD209"] == (
        "not_checked",
        "istiod_endpoint http://istiod.istio-system:15014/metrics: Service istio-system/istiod: "
        "namespace istio-system was not read (-n datadog)",
    )
    assert json.loads(out)["findings"] == []


def test_a_real_missing_service_in_a_namespace_read_is_still_an_error():
    code, out, _ = invoke("check", "--from", str(SCENARIOS / "check-config-endpoint-no-service"), "-o", "json")
    assert code == 1
    assert results(out)["MD209"][0] == "failed"


def test_telemetry_rules_on_services_not_read_are_not_checked_not_passed():
    scenario = str(SCENARIOS / "telemetry-service-port-missing")
    code, out, _ = invoke("check", "--from", scenario, "--rule", "MD301", "-o", "json")
    assert code == 1 and results(out)["MD301"][0] == "failed"
    code, out, _ = invoke("check", "--from", scenario, "--rule", "MD301", "-n", "datadog", "-o", "json")
    assert code == 3  # the only rule selected could not run: no diagnosis (DESIGN.md exit codes)
    assert results(out)["MD301"] == (
        "not_checked",
        "the scraped Services are not known: Service istio-system/istiod: namespace istio-system was not read "
        "(-n datadog)",
    )


def test_egress_rules_without_the_control_plane_are_not_checked_not_passed():
    code, out, _ = invoke("check", "--from", str(SCENARIOS / "seed-broken"), "--category", "egress", "-o", "json")
    assert code == 1 and results(out)["MD101"][0] == "failed"
    code, out, _ = invoke(
        "check", "--from", str(SCENARIOS / "seed-broken"), "--category", "egress", "-n", "default", "-o", "json"
    )
    assert code == 3  # no egress rule could run: no diagnosis (DESIGN.md exit codes)
    reason = "the Istio control plane is not known: namespace istio-system was not read (-n default)"
    assert results(out) == {rule: ("not_checked", reason) for rule in ("MD101", "MD102", "MD103")}


def test_no_scenario_gains_a_finding_with_n_its_agent_namespace():
    """Over every scenario: reading only the agent's namespace may lose findings (not_checked) but
    never adds one, except log findings no structural rule can explain any more and MD201 where
    MD207 (the ConfigMap in another namespace) cannot be told."""
    from meshdoctor.datadog.agent import agent_workloads

    for scenario in sorted(p for p in SCENARIOS.iterdir() if p.is_dir()):
        logs = scenario / "logs"
        logs_dir = str(logs) if logs.is_dir() else None
        snapshot, source = load_offline([str(scenario)], logs_dir)
        whole = {line for line in report_lines(run(RULES, snapshot, source)) if not line.startswith("not_checked")}
        for namespace in sorted({agent["metadata"]["namespace"] for agent in agent_workloads(snapshot)}):
            part, part_source = load_offline([str(scenario)], logs_dir, namespace=namespace)
            report = run(RULES, part, part_source)
            gained = {line for line in report_lines(report) if not line.startswith("not_checked")} - whole
            allowed = {line for line in gained if line.split()[1] in ("MD601", "MD201")}
            assert gained == allowed, f"{scenario.name} -n {namespace}: {sorted(gained)}"
            assert report.cluster.istio_version is not None or report.cluster.istio_not_read is not None


# -- a dump covers the namespace folders it holds -------------------------------------------------


def test_a_dump_without_the_control_planes_namespace_says_so(tmp_path: Path):
    dump = tmp_path / "dump"
    shutil.copytree(SCENARIOS / "logs-only-dump", dump)
    shutil.rmtree(dump / "istio-system")
    (dump / "expected.txt").unlink()
    code, out, _ = invoke("check", "--from", str(dump), "-o", "json")
    report = json.loads(out)
    assert report["cluster"]["istio_not_read"] == (
        "namespace istio-system was not read (the cluster-info dump holds datadog)"
    )
    assert (
        "DaemonSet, Deployment, Event, Pod, ReplicaSet, ReplicationController, Service: only namespace datadog read "
        "(the cluster-info dump holds datadog)"
    ) in report["source"]["missing"]
    assert [f["rule"] for f in report["findings"]] == ["MD601"]
    assert code == 1
