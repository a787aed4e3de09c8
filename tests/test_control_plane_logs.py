"""MD601 and MD603 on the control plane's logs: which Deployments make the `telemetry` log group,
which lines each rule takes from them, and the findings of the two fixture cases."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshdoctor_rules.logs.md601_intake_unreachable import AgentIntakeUnreachable
from meshdoctor_rules.logs.md603_istio_check_failing import IstioCheckCannotScrape
from meshdoctor_rules.logs.md604_agent_forbidden import AgentForbidden
from meshdoctor_rules.logs.md605_sidecar_drops_intake import SidecarDropsIntakeTraffic

from meshdoctor.logs.workload_logs import TELEMETRY, shared_scanner, telemetry_workloads
from meshdoctor.model import ObjectRef, Severity
from meshdoctor.rule import Context, NotChecked
from meshdoctor.snapshot import Snapshot
from meshdoctor.sources import load_offline

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rules"


def fixture(rule: str, case: str) -> Snapshot:
    folder = FIXTURES / rule / case
    snapshot, _ = load_offline([str(folder)], str(folder / "logs"))
    return snapshot


def _deployment(name: str, labels: dict[str, str], template_labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "istio-system", "labels": labels},
        "spec": {"template": {"metadata": {"labels": template_labels}, "spec": {"containers": []}}},
    }


def test_telemetry_workloads_are_istio_telemetry_istiod_and_pilot_not_policy() -> None:
    objects = [
        _deployment("istio-telemetry", {"istio": "mixer"}, {"istio-mixer-type": "telemetry"}),
        _deployment("istio-policy", {"istio": "mixer"}, {"istio-mixer-type": "policy"}),
        _deployment("istiod", {}, {"app": "istiod"}),
        _deployment("istio-pilot", {"istio": "pilot"}, {}),
        _deployment("istio-ingressgateway", {"istio": "ingressgateway"}, {}),
    ]
    snapshot = Snapshot()
    for obj in objects:
        snapshot.add(obj)
    ctx = Context(snapshot)
    names = [d["metadata"]["name"] for d in telemetry_workloads(ctx)]
    assert names == ["istio-pilot", "istio-telemetry", "istiod"]  # the snapshot's name order


def test_control_plane_scanner_has_only_istiod_and_mixer_signatures() -> None:
    sources = {s.source for s in shared_scanner(TELEMETRY).signatures}
    assert sources == {"istiod", "mixer"}
    assert {s.source for s in shared_scanner("agent").signatures} == {"agent"}


def test_md603_reports_mixer_prometheus_adapter_on_istio_telemetry() -> None:
    [finding] = list(IstioCheckCannotScrape().check(Context(fixture("MD603", "failing-mixer-log"))))
    assert finding.severity is Severity.ERROR
    assert finding.supports == "telemetry"
    assert finding.objects == (
        ObjectRef("Deployment", "istio-system", "istio-telemetry"),
        ObjectRef("Pod", "istio-system", "istio-telemetry-6f9d8c7b5-k2x4q"),
        ObjectRef("Service", "istio-system", "istio-telemetry"),
    )
    assert finding.message == (
        "Deployment istio-system/istio-telemetry: Mixer could not initialise its prometheus "
        "handler prometheus.handler.istio-system (adapter instantiation error: could not start "
        "prometheus metrics server: listen tcp :42422: bind: address already in use): "
        "istio-telemetry's port 42422 serves none of the istio_* metrics the istio check "
        "collects. Seen 2 times in 1 log, 2020-03-02T10:14:01.123456Z to 2020-03-02T10:14:31.223456Z."
    )
    assert [(e.container, e.line, e.count) for e in finding.evidence] == [("mixer", 2, 2), ("mixer", 4, 2)]
    assert finding.remediation is not None
    assert finding.remediation.commands == (
        "kubectl -n istio-system logs istio-telemetry-6f9d8c7b5-k2x4q -c mixer",
        "kubectl -n istio-system rollout restart deployment/istio-telemetry",
    )


def test_md601_reports_the_rejected_service_entry_on_istiod() -> None:
    [finding] = list(AgentIntakeUnreachable().check(Context(fixture("MD601", "failing-istiod-log"))))
    assert finding.supports == "egress"
    assert finding.objects == (
        ObjectRef("Deployment", "istio-system", "istiod"),
        ObjectRef("Pod", "istio-system", "istiod-7d4c9b8f6-w5n2j"),
    )
    assert finding.message.startswith(
        "Deployment istio-system/istiod: istiod refused a ServiceEntry: host *.datadoghq.com is "
        "not a plain DNS name and resolution is DNS without endpoints."
    )
    assert finding.message.endswith("Seen 2 times in 1 log.")
    assert [(e.container, e.line) for e in finding.evidence] == [("discovery", 3), ("discovery", 6)]
    assert finding.remediation is not None
    assert finding.remediation.manifests == ()
    assert finding.remediation.commands == ("kubectl -n istio-system logs istiod-7d4c9b8f6-w5n2j -c discovery",)


def test_rules_without_control_plane_ignore_its_logs() -> None:
    """MD604 and MD605 read only the agent's pods: the istiod and Mixer lines are not theirs."""
    for case in (("MD603", "failing-mixer-log"), ("MD601", "failing-istiod-log")):
        snapshot = fixture(*case)
        for rule in (AgentForbidden(), SidecarDropsIntakeTraffic()):
            with pytest.raises(NotChecked, match="no agent log lines in the input"):
                list(rule.check(Context(snapshot)))
    assert not AgentForbidden.control_plane
    assert "telemetry" in IstioCheckCannotScrape.inputs.logs
    assert "telemetry" in AgentIntakeUnreachable.inputs.logs
