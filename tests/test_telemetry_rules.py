"""The telemetry family (MD301-MD304): the scrapes it finds unreachable, the evidence, the fixes.

The per-rule fixture folders and the scenarios are run by test_fixtures.py; this file pins what
those cannot show in one line each: the exact remediation manifests, the evidence, the objects,
the not-checked reasons, and the cases that need a snapshot built in code.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshdoctor_rules.telemetry import RULES
from meshdoctor_rules.telemetry.md301_service_port_missing import ServicePortMissing
from meshdoctor_rules.telemetry.md302_no_ready_endpoints import NoReadyEndpoints
from meshdoctor_rules.telemetry.md303_network_policy_blocks_scrape import NetworkPolicyBlocksScrape
from meshdoctor_rules.telemetry.md304_strict_mtls_blocks_scrape import MtlsBlocksScrape
from meshdoctor_rules.telemetry.md305_mtls_to_plaintext_port import MtlsToPlaintextPort
from meshdoctor_rules.telemetry.scrape_targets import scrape_targets

from meshdoctor.engine import run
from meshdoctor.kube.egress_policy import egress_policy_manifest
from meshdoctor.model import FieldEvidence, Finding, ObjectRef, ProbeEvidence, Status
from meshdoctor.rule import Context, NotChecked
from meshdoctor.snapshot import Snapshot
from meshdoctor.sources import load_offline
from tests.expectations import expected_lines, report_lines

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASES = sorted(p for rule in RULES for p in (FIXTURES / "rules" / rule.id).iterdir() if p.is_dir())
SCENARIOS = sorted(p for p in (FIXTURES / "scenarios").iterdir() if p.is_dir())


def load(folder: Path) -> Snapshot:
    logs = folder / "logs"
    return load_offline([str(folder)], str(logs) if logs.is_dir() else None)[0]


def case(rule: str, name: str) -> Path:
    return FIXTURES / "rules" / rule / name


def findings(rule: type, snap: Snapshot) -> list[Finding]:
    return list(rule().check(Context(snap)))


def only(rule: type, folder: Path) -> Finding:
    found = findings(rule, load(folder))
    assert len(found) == 1
    return found[0]


def manifests(finding: Finding) -> list[dict[str, Any]]:
    assert finding.remediation is not None
    return [yaml.safe_load(m) for m in finding.remediation.manifests]


def objects_of(snap: Snapshot, kind: str) -> list[dict[str, Any]]:
    return [copy.deepcopy(o) for o in snap.objects(kind)]


def rebuilt(
    snap: Snapshot,
    drop: tuple[str, ...] = (),
    add: tuple[dict[str, Any], ...] = (),
    whole_cluster: bool = True,
) -> Snapshot:
    """A copy of a snapshot without some kinds, with some objects added; `whole_cluster` False
    makes only the kinds it holds known (as from a dump)."""
    fresh = Snapshot()
    for kind in snap.kinds():
        if kind in drop:
            continue
        for obj in snap.objects(kind):
            fresh.add(copy.deepcopy(obj))
    for obj in add:
        fresh.add(copy.deepcopy(obj))
    if whole_cluster:
        fresh.mark_all_collected()
    else:
        fresh.mark_collected(fresh.kinds())
    return fresh


# -- every case of every rule, run alone -------------------------------------------------------


@pytest.mark.parametrize("folder", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_case_gives_exactly_its_expected_lines(folder: Path) -> None:
    rule = next(r for r in RULES if r.id == folder.parent.name)
    snap, source = load_offline([str(folder)], None)
    report = run([rule], snap, source)
    assert report_lines(report) == expected_lines(folder)


def test_declared_inputs_equal_the_inputs_read_over_cases_and_scenarios() -> None:
    for rule in RULES:
        read: set[str] = set()
        for folder in [p for p in CASES if p.parent.name == rule.id] + SCENARIOS:
            ctx = Context(load(folder))
            try:
                list(rule().check(ctx))
            except NotChecked:
                pass
            read |= ctx.kinds_read
        assert read == set(rule.inputs.all_kinds()), rule.id


def test_ids_titles_docs_and_order() -> None:
    assert [r.id for r in RULES] == ["MD301", "MD302", "MD303", "MD304", "MD305"]
    for rule in RULES:
        assert rule.category.value == "telemetry"
        assert rule.docs.what and rule.docs.why and rule.docs.fix and rule.docs.references


# -- what is scraped ---------------------------------------------------------------------------


def test_scrape_targets_group_urls_by_service_port_and_skip_what_is_not_a_service() -> None:
    snap = load(case("MD304", "failing"))
    cm = snap.get("ConfigMap", "datadog", "datadog-istio-check")
    assert cm is not None
    cm = copy.deepcopy(cm)
    cm["data"]["conf.yaml"] = (
        "init_config:\n\ninstances:\n"
        "  - istiod_endpoint: http://istiod.istio-system:15014/metrics\n"
        "  - istiod_endpoint: http://istiod.istio-system.svc:15014/metrics\n"
        "  - istio_mesh_endpoint: http://%%host%%:15020/stats/prometheus\n"
        "  - istio_mesh_endpoint: http://10.0.0.1:15090/stats/prometheus\n"
        "  - istiod_endpoint: http://nosuch.istio-system:15014/metrics\n"
    )
    targets = scrape_targets(Context(rebuilt(snap, add=(cm,))))
    assert [(str(t.ref), t.port, len(t.endpoints)) for t in targets] == [("Service istio-system/istiod", 15014, 2)]
    assert targets[0].urls() == (
        "http://istiod.istio-system:15014/metrics, http://istiod.istio-system.svc:15014/metrics"
    )


def test_an_autodiscovery_annotation_is_scraped_by_every_node_agent() -> None:
    snap = load(case("MD303", "failing"))
    cm = copy.deepcopy(snap.get("ConfigMap", "datadog", "datadog-istio-check"))
    assert cm is not None
    cm["data"] = {}
    deployment = copy.deepcopy(snap.get("Deployment", "istio-system", "istiod"))
    assert deployment is not None
    deployment["spec"]["template"]["metadata"]["annotations"] = {
        "ad.datadoghq.com/discovery.check_names": '["istio"]',
        "ad.datadoghq.com/discovery.init_configs": "[{}]",
        "ad.datadoghq.com/discovery.instances": '[{"istiod_endpoint": "http://istiod.istio-system:15014/metrics"}]',
    }
    found = findings(NetworkPolicyBlocksScrape, rebuilt(snap, add=(cm, deployment)))
    assert [f.objects for f in found] == [
        (
            ObjectRef("NetworkPolicy", "istio-system", "istiod-allow-xds"),
            ObjectRef("Service", "istio-system", "istiod"),
            ObjectRef("DaemonSet", "datadog", "datadog-agent"),
        )
    ]
    config = [e for e in found[0].evidence if isinstance(e, FieldEvidence) and e.object.kind == "Deployment"]
    assert [(e.path, e.value) for e in config] == [
        (
            "spec.template.metadata.annotations['ad.datadoghq.com/discovery.instances']",
            "http://istiod.istio-system:15014/metrics",
        )
    ]


# -- MD301 -------------------------------------------------------------------------------------


def test_md301_adds_istiod_monitoring_port_as_upstream_names_it() -> None:
    finding = only(ServicePortMissing, case("MD301", "failing"))
    assert finding.objects == (
        ObjectRef("Service", "istio-system", "istiod"),
        ObjectRef("ConfigMap", "datadog", "datadog-istio-check"),
    )
    assert finding.message == (
        "Service istio-system/istiod has no port 15014 (it has 15010 (grpc-xds)), but the istio "
        "check scrapes http://istiod.istio-system:15014/metrics (`istiod_endpoint` in ConfigMap "
        "datadog/datadog-istio-check): the scrape cannot connect."
    )
    [service] = manifests(finding)
    assert service["spec"]["ports"] == [
        {"name": "grpc-xds", "port": 15010, "protocol": "TCP"},
        {"name": "http-monitoring", "port": 15014, "targetPort": 15014, "protocol": "TCP"},
    ]
    assert service["spec"]["selector"] == {"app": "istiod", "istio": "pilot"}
    assert finding.remediation is not None and finding.remediation.safe is True


def test_md301_mixer_prometheus_port() -> None:
    finding = only(ServicePortMissing, case("MD301", "failing-mixer-prometheus"))
    [service] = manifests(finding)
    assert service["spec"]["ports"][-1] == {
        "name": "prometheus",
        "port": 42422,
        "targetPort": 42422,
        "protocol": "TCP",
    }
    assert "(mesh metrics (Mixer prometheus adapter))" in finding.remediation.summary  # type: ignore[union-attr]


def test_md301_unknown_service_gets_a_reviewed_port_and_names_an_unnamed_one() -> None:
    snap = load(case("MD304", "failing"))
    service = copy.deepcopy(snap.get("Service", "payments", "payments-api"))
    assert service is not None
    service["spec"]["ports"] = [{"port": 8080, "targetPort": "http"}]
    finding = findings(ServicePortMissing, rebuilt(snap, add=(service,)))[0]
    [fixed] = manifests(finding)
    assert fixed["spec"]["ports"] == [
        {"port": 8080, "targetPort": "http", "name": "tcp-8080"},
        {"name": "http-metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
    ]
    assert finding.remediation is not None and finding.remediation.safe is False
    assert "targetPort is the container port of that number the selected pods declare" in (finding.remediation.summary)


def test_md301_leaves_wrong_era_ports_to_check_config() -> None:
    assert findings(ServicePortMissing, load(case("MD301", "passing-wrong-era-port"))) == []


# -- MD302 -------------------------------------------------------------------------------------


def test_md302_endpoints_evidence_and_commands() -> None:
    finding = only(NoReadyEndpoints, case("MD302", "failing"))
    assert finding.message.startswith(
        "Service istio-system/istiod port 15014 has 1 endpoint(s) in its Endpoints, none of them ready;"
    )
    assert [(e.object.kind, e.path, e.value) for e in finding.evidence if isinstance(e, FieldEvidence)] == [
        ("Endpoints", "subsets[0].addresses", "<absent>"),
        ("Endpoints", "subsets[0].notReadyAddresses", "10.244.1.12"),
        ("Pod", "status.conditions[0]", "Ready=False (ContainersNotReady); discovery: not ready"),
        (
            "ConfigMap",
            "data['conf.yaml'].instances[0].istiod_endpoint",
            "http://istiod.istio-system:15014/metrics",
        ),
    ]
    assert finding.remediation is not None
    assert finding.remediation.manifests == ()
    assert finding.remediation.commands == (
        "kubectl -n istio-system get endpointslices -l kubernetes.io/service-name=istiod -o wide",
        "kubectl -n istio-system describe pod istiod-7d4b9c6f5d-x2x7q",
    )


def test_md302_endpointslice_conditions_are_the_evidence() -> None:
    finding = only(NoReadyEndpoints, case("MD302", "failing-endpointslice"))
    slices = [e for e in finding.evidence if isinstance(e, FieldEvidence) and e.object.kind == "EndpointSlice"]
    assert [(e.path, e.value) for e in slices] == [
        ("endpoints[0].conditions", '{"ready":false,"serving":false,"terminating":false}')
    ]


def test_md302_selector_matching_no_pod_gets_the_deployments_selector() -> None:
    finding = only(NoReadyEndpoints, case("MD302", "failing-selector-matches-no-pod"))
    assert finding.message.startswith(
        "the selector of Service istio-system/istiod (app=istiod,istio.io/rev=canary) matches no pod;"
    )
    [service] = manifests(finding)
    assert service["spec"]["selector"] == {"app": "istiod", "istio": "pilot"}
    assert service["spec"]["ports"] == [
        {"name": "grpc-xds", "port": 15010, "protocol": "TCP"},
        {"name": "http-monitoring", "port": 15014, "protocol": "TCP"},
    ]
    assert finding.remediation is not None and finding.remediation.safe is False
    assert "kubectl -n istio-system get pods -l app=istiod,istio.io/rev=canary -o wide" in (
        finding.remediation.commands
    )


def test_md302_without_runtime_objects_is_not_checked() -> None:
    snap = rebuilt(load(case("MD302", "failing")), drop=("Pod", "Endpoints", "EndpointSlice"))
    with pytest.raises(NotChecked) as raised:
        findings(NoReadyEndpoints, snap)
    assert raised.value.reason == (
        "no Endpoints, EndpointSlices or Pods in the input for Service istio-system/istiod: readiness cannot be told"
    )


def test_md302_rollout_command_names_the_deployment_through_its_replicaset() -> None:
    snap = load(FIXTURES / "scenarios" / "telemetry-no-ready-endpoints")
    finding = findings(NoReadyEndpoints, snap)[0]
    assert finding.remediation is not None
    assert "kubectl -n istio-system rollout status deployment/istiod" in finding.remediation.commands


# -- MD303 -------------------------------------------------------------------------------------


def test_md303_ingress_fix_admits_the_agent_template_labels_and_namespace_to_the_port() -> None:
    finding = only(NetworkPolicyBlocksScrape, case("MD303", "failing"))
    assert [m for m in manifests(finding)] == [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-datadog-to-istiod-15014", "namespace": "istio-system"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "istiod", "istio": "pilot"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "datadog"}},
                                "podSelector": {
                                    "matchLabels": {
                                        "app": "datadog-agent",
                                        "app.kubernetes.io/component": "agent",
                                        "app.kubernetes.io/name": "datadog",
                                    }
                                },
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 15014}],
                    }
                ],
            },
        }
    ]
    policy_paths = [
        e.path for e in finding.evidence if isinstance(e, FieldEvidence) and e.object.kind == "NetworkPolicy"
    ]
    assert policy_paths == ["spec.podSelector", "spec.policyTypes", "spec.ingress"]
    assert finding.remediation is not None and finding.remediation.safe is True


def test_md303_the_written_policy_is_enough() -> None:
    finding = only(NetworkPolicyBlocksScrape, case("MD303", "failing"))
    snap = load(case("MD303", "failing"))
    fixed = rebuilt(snap, add=tuple(manifests(finding)))
    assert findings(NetworkPolicyBlocksScrape, fixed) == []


def test_md303_egress_fix_lives_in_the_agent_namespace() -> None:
    finding = only(NetworkPolicyBlocksScrape, case("MD303", "failing-egress"))
    [policy] = manifests(finding)
    assert policy["metadata"] == {"name": "allow-datadog-to-istiod-15014", "namespace": "datadog"}
    assert policy["spec"] == {
        "podSelector": {
            "matchLabels": {
                "app": "datadog-agent",
                "app.kubernetes.io/component": "agent",
                "app.kubernetes.io/name": "datadog",
            }
        },
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                        "podSelector": {"matchLabels": {"app": "istiod", "istio": "pilot"}},
                    }
                ],
                "ports": [{"protocol": "TCP", "port": 15014}],
            }
        ],
    }
    snap = load(case("MD303", "failing-egress"))
    assert findings(NetworkPolicyBlocksScrape, rebuilt(snap, add=(policy,))) == []


def test_egress_policy_manifest_without_labels_selects_everything_in_the_namespace() -> None:
    target = {"metadata": {"namespace": "istio-system", "name": "x"}}
    source = {"metadata": {"namespace": "datadog", "name": "agent"}}
    policy = egress_policy_manifest(target, source, 15014)
    assert policy["spec"]["podSelector"] == {}
    assert policy["spec"]["egress"][0]["to"][0]["podSelector"] == {}
    assert policy["metadata"]["name"] == "allow-agent-to-x-15014"


def test_md303_host_network_agent_needs_review_and_an_ip_block() -> None:
    snap = load(case("MD303", "failing"))
    daemonset = copy.deepcopy(snap.get("DaemonSet", "datadog", "datadog-agent"))
    pod = copy.deepcopy(snap.get("Pod", "datadog", "datadog-agent-7xk2p"))
    assert daemonset is not None and pod is not None
    daemonset["spec"]["template"]["spec"]["hostNetwork"] = True
    pod["spec"]["hostNetwork"] = True
    [finding] = findings(NetworkPolicyBlocksScrape, rebuilt(snap, add=(daemonset, pod)))
    assert finding.remediation is not None
    assert finding.remediation.safe is False
    assert "ipBlock" in finding.remediation.alternatives[0]
    assert "uses the host network" in finding.message


def test_md303_without_network_policies_in_the_input_is_not_checked() -> None:
    snap, source = load_offline([str(case("MD303", "failing"))], None)
    fresh = rebuilt(snap, drop=("NetworkPolicy",), whole_cluster=False)
    fresh.mark_missing("NetworkPolicy", "not in a cluster-info dump")
    report = run([NetworkPolicyBlocksScrape], fresh, source)
    assert [(r.status, r.reason) for r in report.results] == [
        (Status.NOT_CHECKED, "input missing: NetworkPolicy: not in a cluster-info dump")
    ]


# -- MD304 -------------------------------------------------------------------------------------


def test_md304_agent_outside_the_mesh_gets_a_port_level_peer_authentication() -> None:
    finding = only(MtlsBlocksScrape, case("MD304", "failing"))
    assert finding.objects == (
        ObjectRef("PeerAuthentication", "istio-system", "default"),
        ObjectRef("Service", "payments", "payments-api"),
        ObjectRef("DaemonSet", "datadog", "datadog-agent"),
    )
    assert manifests(finding) == [
        {
            "apiVersion": "security.istio.io/v1beta1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "payments-api-9090-permissive", "namespace": "payments"},
            "spec": {
                "selector": {"matchLabels": {"app": "payments-api"}},
                "mtls": {"mode": "UNSET"},
                "portLevelMtls": {9090: {"mode": "PERMISSIVE"}},
            },
        }
    ]
    assert [(e.object.kind, e.path, e.value) for e in finding.evidence if isinstance(e, FieldEvidence)][:3] == [
        ("PeerAuthentication", "spec.mtls", '{"mode":"STRICT"}'),
        ("Pod", "spec.containers[1].name", "istio-proxy"),
        ("Pod", "spec.containers", "no istio-proxy container"),
    ]


def test_md304_written_peer_authentication_is_enough() -> None:
    finding = only(MtlsBlocksScrape, case("MD304", "failing"))
    snap = load(case("MD304", "failing"))
    assert findings(MtlsBlocksScrape, rebuilt(snap, add=tuple(manifests(finding)))) == []


def test_md304_existing_workload_peer_authentication_is_corrected_in_place() -> None:
    finding = only(MtlsBlocksScrape, case("MD304", "failing-port-level"))
    [policy] = manifests(finding)
    assert policy["metadata"] == {"name": "payments-api", "namespace": "payments"}
    assert policy["spec"] == {
        "selector": {"matchLabels": {"app": "payments-api"}},
        "mtls": {"mode": "PERMISSIVE"},
        "portLevelMtls": {9090: {"mode": "PERMISSIVE"}},
    }


def test_md304_agent_in_the_mesh_gets_its_destination_rule_fixed() -> None:
    finding = only(MtlsBlocksScrape, case("MD304", "failing-agent-dr-disable"))
    [rule] = manifests(finding)
    assert rule["metadata"] == {"name": "payments-plaintext", "namespace": "datadog"}
    assert rule["spec"]["trafficPolicy"] == {
        "tls": {"mode": "DISABLE"},
        "portLevelSettings": [{"port": {"number": 9090}, "tls": {"mode": "ISTIO_MUTUAL"}}],
    }
    assert "its sidecar sends DISABLE to payments-api.payments.svc.cluster.local" in finding.message
    assert finding.remediation is not None
    assert finding.remediation.alternatives == (
        "Or leave the agent as it is and let pod port 9090 accept plaintext (PERMISSIVE) on the server side.",
    )
    [alternative] = [yaml.safe_load(m) for m in finding.remediation.alternative_manifests]
    assert alternative["kind"] == "PeerAuthentication"
    assert alternative["spec"]["portLevelMtls"] == {9090: {"mode": "PERMISSIVE"}}
    snap = load(case("MD304", "failing-agent-dr-disable"))
    assert findings(MtlsBlocksScrape, rebuilt(snap, add=(rule,))) == []


def test_md304_mixer_era_writes_an_authentication_policy_for_the_service_port() -> None:
    finding = only(MtlsBlocksScrape, case("MD304", "failing-mixer-era-policy"))
    assert finding.objects[0] == ObjectRef("MeshPolicy", "", "default")
    assert manifests(finding) == [
        {
            "apiVersion": "authentication.istio.io/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": "payments-api-9090-permissive", "namespace": "payments"},
            "spec": {
                "targets": [{"name": "payments-api", "ports": [{"number": 9090}]}],
                "peers": [{"mtls": {"mode": "PERMISSIVE"}}],
            },
        }
    ]


def test_md304_agent_in_the_mesh_without_auto_mtls_sends_plaintext() -> None:
    snap = load(case("MD304", "passing-agent-in-mesh-auto-mtls"))
    mesh = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "enableAutoMtls: false\nrootNamespace: istio-system\n"},
    }
    [finding] = findings(MtlsBlocksScrape, rebuilt(snap, add=(mesh,)))
    [rule] = manifests(finding)
    assert rule["metadata"] == {"name": "payments-api-9090-istio-mutual", "namespace": "datadog"}
    assert rule["spec"] == {
        "host": "payments-api.payments.svc.cluster.local",
        "exportTo": ["."],
        "trafficPolicy": {"portLevelSettings": [{"port": {"number": 9090}, "tls": {"mode": "ISTIO_MUTUAL"}}]},
    }


def test_md304_without_peer_authentications_in_an_istiod_mesh_is_not_checked() -> None:
    snap = load(case("MD304", "failing"))
    fresh = rebuilt(snap, drop=("PeerAuthentication",), whole_cluster=False)
    with pytest.raises(NotChecked) as raised:
        findings(MtlsBlocksScrape, fresh)
    assert raised.value.reason == "input missing: PeerAuthentication: not in the input"


def test_md302_unresolved_named_target_port_gets_the_port_number() -> None:
    finding = only(NoReadyEndpoints, case("MD302", "failing-named-target-port"))
    assert finding.message.startswith(
        "Service istio-system/istiod port 15014 sends to targetPort `http-monitor`, which no "
        "container port of the selected pods is named"
    )
    [service] = manifests(finding)
    assert service["spec"]["ports"][1] == {
        "name": "http-monitoring",
        "port": 15014,
        "protocol": "TCP",
        "targetPort": 15014,
    }
    snap = load(case("MD302", "failing-named-target-port"))
    assert findings(NoReadyEndpoints, rebuilt(snap, add=(service,))) == []


@pytest.mark.parametrize("where", ["istio-init", "annotation"])
def test_md304_agent_sidecar_that_excludes_the_port_scrapes_in_plaintext(where: str) -> None:
    snap = load(case("MD304", "passing-agent-in-mesh-auto-mtls"))
    pod = copy.deepcopy(snap.get("Pod", "datadog", "datadog-agent-7xk2p"))
    assert pod is not None
    if where == "istio-init":
        pod["spec"]["initContainers"][0]["args"] += ["-o", "9090,9091"]
        path = "spec.initContainers[0].args[18]"
    else:
        del pod["spec"]["initContainers"]
        pod["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] = "9090"
        path = "metadata.annotations['traffic.sidecar.istio.io/excludeOutboundPorts']"
    [finding] = findings(MtlsBlocksScrape, rebuilt(snap, add=(pod,)))
    assert (path, "9090") in [(e.path, e.value) for e in finding.evidence if isinstance(e, FieldEvidence)]
    assert [m["kind"] for m in manifests(finding)] == ["PeerAuthentication"]


# -- MD305 -------------------------------------------------------------------------------------


def test_md305_writes_an_exact_host_rule_in_the_agent_namespace() -> None:
    finding = only(MtlsToPlaintextPort, case("MD305", "failing"))
    assert finding.objects == (
        ObjectRef("DestinationRule", "istio-system", "default"),
        ObjectRef("Service", "istio-system", "istiod"),
        ObjectRef("DaemonSet", "datadog", "datadog-agent"),
    )
    assert manifests(finding) == [
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": "istiod-15014-plaintext", "namespace": "datadog"},
            "spec": {
                "host": "istiod.istio-system.svc.cluster.local",
                "exportTo": ["."],
                "trafficPolicy": {"portLevelSettings": [{"port": {"number": 15014}, "tls": {"mode": "DISABLE"}}]},
            },
        }
    ]
    assert [(e.object.kind, e.path, e.value) for e in finding.evidence if isinstance(e, FieldEvidence)][:3] == [
        ("Pod", "spec.containers[1].name", "istio-proxy"),
        ("DestinationRule", "spec.trafficPolicy", '{"tls":{"mode":"ISTIO_MUTUAL"}}'),
        ("Pod", "spec.containers", "no istio-proxy container"),
    ]
    snap = load(case("MD305", "failing"))
    assert findings(MtlsToPlaintextPort, rebuilt(snap, add=tuple(manifests(finding)))) == []


def test_md305_one_finding_per_service_corrects_the_exact_host_rule_for_every_port() -> None:
    finding = only(MtlsToPlaintextPort, case("MD305", "failing-mixer-exact-host"))
    [rule] = manifests(finding)
    assert rule["metadata"] == {"name": "istio-telemetry", "namespace": "istio-system"}
    assert rule["spec"]["trafficPolicy"]["portLevelSettings"] == [
        {"port": {"number": 9093}, "tls": {"mode": "DISABLE"}},
        {"port": {"number": 42422}, "tls": {"mode": "DISABLE"}},
    ]
    assert rule["spec"]["trafficPolicy"]["connectionPool"] == {
        "http": {"http2MaxRequests": 10000, "maxRequestsPerConnection": 10000}
    }
    snap = load(case("MD305", "failing-mixer-exact-host"))
    assert findings(MtlsToPlaintextPort, rebuilt(snap, add=(rule,))) == []


def test_md305_and_md304_never_both_fire_on_one_port() -> None:
    for folder in CASES + SCENARIOS:
        snap, source = load_offline([str(folder)], None)
        report = run([MtlsBlocksScrape, MtlsToPlaintextPort], snap, source)
        pairs = [
            {(f.objects[-2], f.objects[-1]) for f in report.findings if f.rule == rule} for rule in ("MD304", "MD305")
        ]
        assert not pairs[0] & pairs[1], folder


def test_md305_without_destination_rules_in_the_input_is_not_checked() -> None:
    snap = rebuilt(load(case("MD305", "failing")), drop=("DestinationRule",), whole_cluster=False)
    report = run([MtlsToPlaintextPort], snap, load_offline([str(case("MD305", "failing"))], None)[1])
    assert [(r.status, r.reason) for r in report.results] == [
        (Status.NOT_CHECKED, "input missing: DestinationRule: not in the input")
    ]


def test_probe_results_become_evidence() -> None:
    snap = load(case("MD302", "failing"))
    snap.probes["http"] = {
        "http://istiod.istio-system:15014/metrics": {
            "option": "istiod_endpoint",
            "status": 503,
            "latency_ms": 12.5,
            "ok": False,
            "found": [],
            "error": 'HTTP 503: no endpoints available for service "istiod:15014"',
        }
    }
    [finding] = findings(NoReadyEndpoints, snap)
    assert finding.evidence[-1] == ProbeEvidence(
        "http://istiod.istio-system:15014/metrics",
        False,
        'HTTP 503: no endpoints available for service "istiod:15014" (12.5 ms, via the API server\'s service proxy)',
    )
    assert all(rule.inputs.probes for rule in RULES)


def test_md304_corrects_the_workload_peer_authentication_that_would_shadow_a_new_one() -> None:
    snap = load(case("MD304", "failing"))
    older = {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "payments", "namespace": "payments", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"selector": {"matchLabels": {"app": "payments-api"}}},
    }
    [finding] = findings(MtlsBlocksScrape, rebuilt(snap, add=(older,)))
    assert finding.objects[0] == ObjectRef("PeerAuthentication", "istio-system", "default")
    [policy] = manifests(finding)
    assert policy["metadata"] == {"name": "payments", "namespace": "payments"}
    assert policy["spec"] == {
        "selector": {"matchLabels": {"app": "payments-api"}},
        "portLevelMtls": {9090: {"mode": "PERMISSIVE"}},
    }


def test_md304_target_in_the_root_namespace_gets_no_ignored_peer_authentication() -> None:
    snap = load(case("MD304", "failing"))
    moved = []
    for kind in ("Deployment", "Service", "Pod", "Endpoints"):
        obj = copy.deepcopy(
            snap.get(kind, "payments", "payments-api" if kind != "Pod" else "payments-api-5f7d8c9b6-q8r2t")
        )
        assert obj is not None
        obj["metadata"]["namespace"] = "istio-system"
        moved.append(obj)
    moved[3]["subsets"][0]["addresses"][0]["targetRef"]["namespace"] = "istio-system"
    cm = copy.deepcopy(snap.get("ConfigMap", "datadog", "datadog-istio-check"))
    assert cm is not None
    cm["data"]["conf.yaml"] = cm["data"]["conf.yaml"].replace("payments-api.payments", "payments-api.istio-system")
    [finding] = findings(MtlsBlocksScrape, rebuilt(snap, add=(*moved, cm)))
    assert finding.remediation is not None
    assert finding.remediation.manifests == ()
    assert "ignores PeerAuthentications with a selector" in finding.remediation.summary
