"""MD101 and MD102: decisions over the egress model, exact messages, exact remediation objects."""

from __future__ import annotations

import pytest
import yaml
from meshdoctor_rules.egress.md101_intake_blocked import IntakeEgressBlocked
from meshdoctor_rules.egress.md102_service_entry_near_miss import (
    MISSING_HOST,
    NOT_EXPORTED,
    SIDECAR_HIDDEN,
    WRONG_PORT,
    WRONG_PROTOCOL,
    WRONG_SITE,
    IntakeServiceEntryNearMiss,
    near_miss_kind,
)

from meshdoctor.model import Severity
from meshdoctor.rule import Context
from meshdoctor.snapshot import Snapshot

# -- a small cluster ------------------------------------------------------------------------------

INJECTOR_10 = (
    "policy: enabled\n"
    "template: |-\n"
    "  initContainers:\n"
    "  - name: istio-init\n"
    "    args:\n"
    '    - "-i"\n'
    '    - "[[ annotation .ObjectMeta '
    '`traffic.sidecar.istio.io/includeOutboundIPRanges`  "*"  ]]"\n'
)


def config_map(name: str, namespace: str, data: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def control_plane(version: str, mesh: str | None = None) -> list[dict]:
    istiod = not version.startswith("1.0")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "istiod" if istiod else "istio-pilot",
            "namespace": "istio-system",
            "labels": {"istio": "pilot"},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"istio": "pilot"}},
                "spec": {"containers": [{"name": "discovery", "image": f"docker.io/istio/pilot:{version}"}]},
            }
        },
    }
    injector = (
        {"config": "policy: enabled\n", "values": '{"global":{"proxy":{"includeIPRanges":"*"}}}'}
        if istiod
        else {"config": INJECTOR_10}
    )
    objs = [deployment, config_map("istio-sidecar-injector", "istio-system", injector)]
    if mesh is not None:
        objs.append(config_map("istio", "istio-system", {"mesh": mesh}))
    return objs


REGISTRY_ONLY = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"


def agent(
    env: list | None = None,
    image: str = "datadog/agent:7.49.1",
    template_meta: dict | None = None,
    host_network: bool = False,
) -> dict:
    spec: dict = {"containers": [{"name": "agent", "image": image, "env": env or []}]}
    if host_network:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "datadog-agent",
            "namespace": "datadog",
            "uid": "u-1",
            "resourceVersion": "7",
        },
        "spec": {
            "selector": {"matchLabels": {"app": "dd"}},
            "template": {"metadata": template_meta or {"labels": {"app": "dd"}}, "spec": spec},
        },
        "status": {"numberReady": 2},
    }


def namespace(labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "datadog",
            "labels": {"istio-injection": "enabled"} if labels is None else labels,
        },
    }


def service_entry(
    hosts: list,
    ports: list | None = None,
    ns: str = "datadog",
    export_to: list | None = None,
    name: str = "dd",
    api: str = "networking.istio.io/v1beta1",
) -> dict:
    spec: dict = {
        "hosts": hosts,
        "location": "MESH_EXTERNAL",
        "ports": ports or [{"number": 443, "name": "https", "protocol": "HTTPS"}],
        "resolution": "NONE",
    }
    if export_to is not None:
        spec["exportTo"] = export_to
    return {
        "apiVersion": api,
        "kind": "ServiceEntry",
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": "3",
            "labels": {"team": "obs"},
        },
        "spec": spec,
    }


def sidecar(spec: dict, ns: str = "datadog") -> dict:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": ns},
        "spec": spec,
    }


def snapshot(*objs: dict) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    return snap


def cluster(
    *extra: dict,
    version: str = "1.0.7",
    mesh: str | None = None,
    ds: dict | None = None,
    ns_labels: dict | None = None,
) -> Snapshot:
    return snapshot(*control_plane(version, mesh), namespace(ns_labels), ds or agent(), *extra)


def md101(snap: Snapshot) -> list:
    return list(IntakeEgressBlocked().check(Context(snap)))


def md102(snap: Snapshot) -> list:
    return list(IntakeServiceEntryNearMiss().check(Context(snap)))


def objects(findings: list) -> list[list[str]]:
    return [[str(o) for o in f.objects] for f in findings]


DS = [["DaemonSet datadog/datadog-agent"]]
HTTP_443 = [{"number": 443, "name": "http", "protocol": "HTTP"}]

# -- MD101 ----------------------------------------------------------------------------------------


def test_md101_fires_on_the_bare_mixer_era_case_and_lists_every_blocked_endpoint():
    (finding,) = md101(cluster())
    assert objects([finding]) == DS
    assert finding.message.endswith(
        "no ServiceEntry covers 5 of the 5 intake endpoints it needs for datadoghq.com: "
        "metrics 7-49-1-app.agent.datadoghq.com:443, api-key-validation api.datadoghq.com:443, "
        "traces trace.agent.datadoghq.com:443, "
        "instrumentation-telemetry instrumentation-telemetry-intake.datadoghq.com:443, "
        "remote-config config.datadoghq.com:443."
    )
    assert "Istio 1.0.7 has no ALLOW_ANY" in finding.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ds": agent(template_meta={"annotations": {"sidecar.istio.io/inject": "false"}})},
        {
            "ds": agent(
                template_meta={"annotations": {"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8"}}
            )
        },
        {
            "ds": agent(template_meta={"annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "443"}}),
            "version": "1.20.3",
            "mesh": REGISTRY_ONLY,
        },
        {"ds": agent(host_network=True)},
        {"ns_labels": {}},
        {"ns_labels": {"istio-injection": "disabled"}},
        # 1.0's only webhook selects istio-injection=enabled namespaces: the annotation does nothing
        {
            "ds": agent(template_meta={"annotations": {"sidecar.istio.io/inject": "true"}}),
            "ns_labels": {},
        },
        {"version": "1.20.3"},  # ALLOW_ANY by default since 1.1
        {"version": "1.20.3", "mesh": "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"},
        {"extra": (service_entry(["*.datadoghq.com"], ns="istio-system"),)},
        {"extra": (service_entry(["*.agent.datadoghq.com", "app.datadoghq.com", "config.datadoghq.com"]),)},
        {
            "version": "1.20.3",
            "mesh": REGISTRY_ONLY,
            "extra": (service_entry(["*"], ns="istio-system"),),
        },
        # a near miss is MD102's, not MD101's
        {"extra": (service_entry(["*.datadoghq.eu"]),)},
    ],
)
def test_md101_stays_quiet(kwargs):
    extra = kwargs.pop("extra", ())
    assert md101(cluster(*extra, **kwargs)) == []


def test_md101_excluded_ports_do_nothing_before_istio_1_2_and_the_fix_does_not_offer_them():
    """No 1.0/1.1 injection template passes istio-init `-o` (it came with 1.2.0)."""
    excluded = agent(template_meta={"annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "443"}})
    (finding,) = md101(cluster(ds=excluded))
    assert finding.severity is Severity.ERROR
    assert not any("excludeOutboundPorts" in a for a in finding.remediation.alternatives)
    (later,) = md101(cluster(version="1.20.3", mesh=REGISTRY_ONLY))
    assert any("excludeOutboundPorts" in a for a in later.remediation.alternatives)


def test_a_blocked_api_key_check_alone_is_advice_and_the_tcp_fallback_is_not_needed():
    """The tutorial's final state: `*.agent.<site>` and the HTTPS logs intake are open.

    The API key is checked at api.<site>, whose failure the agent treats as a valid key; a
    6.19+/7.19+ agent sends logs over HTTPS and needs TCP 10516 only when HTTPS fails.
    """
    logs = agent(env=[{"name": "DD_LOGS_ENABLED", "value": "true"}, {"name": "DD_APM_ENABLED", "value": "false"}])
    hosts = ["*.agent.datadoghq.com", "agent-http-intake.logs.datadoghq.com", "config.datadoghq.com"]
    snap = cluster(service_entry(hosts), ds=logs)
    assert md101(snap) == []
    (finding,) = md102(snap)
    assert finding.severity is Severity.INFO
    assert finding.message.endswith(
        "does not cover api-key-validation api.datadoghq.com:443 (nothing is lost: the agent carries on without them)."
    )


def test_https_logs_blocked_with_the_tcp_fallback_open_is_a_warning():
    logs = agent(env=[{"name": "DD_LOGS_ENABLED", "value": "true"}, {"name": "DD_APM_ENABLED", "value": "false"}])
    hosts = ["*.agent.datadoghq.com", "api.datadoghq.com", "config.datadoghq.com", "agent-intake.logs.datadoghq.com"]
    ports = [
        {"number": 443, "name": "tls", "protocol": "TLS"},
        {"number": 10516, "name": "tls-logs", "protocol": "TLS"},
    ]
    (finding,) = md102(cluster(service_entry(hosts, ports), ds=logs))
    assert finding.severity is Severity.WARNING
    assert finding.message.endswith(
        "does not cover logs agent-http-intake.logs.datadoghq.com:443; the agent falls back to "
        "agent-intake.logs.datadoghq.com:10516, which is open (no data is lost: a feature degrades, "
        "or the agent uses an open fallback)."
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": "1.20.3", "mesh": REGISTRY_ONLY},
        {
            "version": "1.20.3",
            "extra": (sidecar({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),),
        },
        {
            "version": "1.20.3",
            "extra": (sidecar({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}, ns="istio-system"),),
        },
        # istiod's object webhook injects a pod labelled inject=true in an unlabelled namespace
        {
            "version": "1.20.3",
            "mesh": REGISTRY_ONLY,
            "ns_labels": {},
            "ds": agent(template_meta={"labels": {"sidecar.istio.io/inject": "true"}}),
        },
        {"extra": (service_entry(["api.example.com"]),)},
    ],
)
def test_md101_fires_when_nothing_lets_the_traffic_out(kwargs):
    extra = kwargs.pop("extra", ())
    assert objects(md101(cluster(*extra, **kwargs))) == DS


def test_md101_sidecar_policy_is_named_in_the_message_and_evidence():
    snap = cluster(sidecar({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}), version="1.20.3")
    (finding,) = md101(snap)
    assert "Sidecar datadog/default sets outboundTrafficPolicy REGISTRY_ONLY" in finding.message
    assert [(str(e.object), e.path, e.value) for e in finding.evidence if e.path.startswith("spec.outbound")] == [
        ("Sidecar datadog/default", "spec.outboundTrafficPolicy.mode", "REGISTRY_ONLY")
    ]


def test_md101_remediation_mixer_era_service_entry_and_annotated_daemonset():
    env = [
        {"name": "DD_SITE", "value": "datadoghq.eu"},
        {"name": "DD_LOGS_ENABLED", "value": "true"},
        {"name": "DD_APM_ENABLED", "value": "false"},
    ]
    (finding,) = md101(cluster(ds=agent(env, image="datadog/agent:6.9.0")))
    remediation = finding.remediation
    assert remediation is not None and remediation.safe is False
    (service_entry_yaml,), (daemonset_yaml,) = remediation.manifests, remediation.alternative_manifests
    assert yaml.safe_load(service_entry_yaml) == {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "ServiceEntry",
        "metadata": {"name": "datadog-intake", "namespace": "datadog"},
        "spec": {
            "hosts": ["*.agent.datadoghq.eu", "app.datadoghq.eu", "agent-intake.logs.datadoghq.eu"],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 443, "name": "https-443", "protocol": "HTTPS"}],
            "resolution": "NONE",
        },
    }
    daemonset = yaml.safe_load(daemonset_yaml)
    assert daemonset["spec"]["template"]["metadata"] == {
        "labels": {"app": "dd"},
        "annotations": {"sidecar.istio.io/inject": "false"},
    }
    assert "status" not in daemonset and "uid" not in daemonset["metadata"]
    assert daemonset["spec"]["template"]["spec"] == agent(env, image="datadog/agent:6.9.0")["spec"]["template"]["spec"]
    assert remediation.commands == (
        "kubectl apply --dry-run=server -f <file>",
        "kubectl apply -f <file>",
    )


def test_md101_remediation_istiod_era_exports_to_own_namespace_and_sets_the_label_too():
    env = [
        {"name": "DD_SITE", "value": "us3.datadoghq.com"},
        {"name": "DD_LOGS_ENABLED", "value": "true"},
        {"name": "DD_LOGS_CONFIG_USE_TCP", "value": "true"},
        {"name": "DD_PROCESS_AGENT_ENABLED", "value": "true"},
    ]
    (finding,) = md101(cluster(ds=agent(env), version="1.20.3", mesh=REGISTRY_ONLY))
    (service_entry_yaml,), (daemonset_yaml,) = finding.remediation.manifests, finding.remediation.alternative_manifests
    assert yaml.safe_load(service_entry_yaml) == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": "datadog-intake", "namespace": "datadog"},
        "spec": {
            # US3 has no TCP logs intake: DD_LOGS_CONFIG_USE_TCP leaves no logs endpoint to open
            "hosts": [
                "*.agent.us3.datadoghq.com",
                "api.us3.datadoghq.com",
                "instrumentation-telemetry-intake.us3.datadoghq.com",
                "process.us3.datadoghq.com",
                "config.us3.datadoghq.com",
            ],
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 443, "name": "https-443", "protocol": "HTTPS"}],
            "resolution": "NONE",
        },
    }
    meta = yaml.safe_load(daemonset_yaml)["spec"]["template"]["metadata"]
    assert meta == {
        "labels": {"app": "dd", "sidecar.istio.io/inject": "false"},
        "annotations": {"sidecar.istio.io/inject": "false"},
    }


def test_md101_tcp_logs_port_for_an_old_agent_on_us1():
    env = [
        {"name": "DD_LOGS_ENABLED", "value": "true"},
        {"name": "DD_APM_ENABLED", "value": "false"},
    ]
    (finding,) = md101(cluster(ds=agent(env, image="datadog/agent:6.10.2")))
    assert "logs-tcp agent-intake.logs.datadoghq.com:10516" in finding.message
    spec = yaml.safe_load(finding.remediation.manifests[0])["spec"]
    assert spec["ports"] == [
        {"number": 443, "name": "https-443", "protocol": "HTTPS"},
        {"number": 10516, "name": "tls-10516", "protocol": "TLS"},
    ]


# -- MD102 ----------------------------------------------------------------------------------------


def registry_only(*extra: dict, ds: dict | None = None) -> Snapshot:
    return cluster(*extra, version="1.20.3", mesh=REGISTRY_ONLY, ds=ds)


EU = [{"name": "DD_SITE", "value": "datadoghq.eu"}]


def test_md102_wrong_site_message_and_corrected_entry_keeps_every_other_field():
    (finding,) = md102(registry_only(service_entry(["*.datadoghq.com"], export_to=["."]), ds=agent(EU)))
    assert objects([finding]) == [["ServiceEntry datadog/dd", "DaemonSet datadog/datadog-agent"]]
    assert finding.message == (
        "Lists hosts of another Datadog site: ServiceEntry datadog/dd lists hosts of datadoghq.com "
        "(*.datadoghq.com) but DaemonSet datadog/datadog-agent sends to datadoghq.eu: metrics "
        "7-49-1-app.agent.datadoghq.eu:443, api-key-validation api.datadoghq.eu:443, traces "
        "trace.agent.datadoghq.eu:443, instrumentation-telemetry "
        "instrumentation-telemetry-intake.datadoghq.eu:443, remote-config config.datadoghq.eu:443 not covered."
    )
    assert yaml.safe_load(finding.remediation.manifests[0]) == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": "dd", "namespace": "datadog", "labels": {"team": "obs"}},
        "spec": {
            "hosts": ["*.datadoghq.eu"],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
            "resolution": "NONE",
            "exportTo": ["."],
        },
    }
    assert finding.remediation.safe is True


def test_md102_missing_host_adds_the_hosts():
    se = service_entry(["*.agent.datadoghq.eu", "app.datadoghq.eu"])
    (finding,) = md102(registry_only(se, ds=agent(EU)))
    assert finding.message.startswith("Does not list the host: ServiceEntry datadog/dd lists")
    assert "remote-config config.datadoghq.eu:443" in finding.message
    assert yaml.safe_load(finding.remediation.manifests[0])["spec"]["hosts"] == [
        "*.agent.datadoghq.eu",
        "app.datadoghq.eu",
        "api.datadoghq.eu",
        "instrumentation-telemetry-intake.datadoghq.eu",
        "config.datadoghq.eu",
    ]


def test_md102_wrong_port_adds_the_tcp_logs_port():
    env = [
        {"name": "DD_LOGS_ENABLED", "value": "true"},
        {"name": "DD_APM_ENABLED", "value": "false"},
    ]
    se = service_entry(["*.datadoghq.com"], api="networking.istio.io/v1alpha3")
    (finding,) = md102(cluster(se, ds=agent(env, image="datadog/agent:6.10.2")))
    assert finding.message == (
        "Does not declare the port: ServiceEntry datadog/dd covers the hosts but declares "
        "ports 443, "
        "not 10516: logs-tcp agent-intake.logs.datadoghq.com:10516 not covered."
    )
    assert yaml.safe_load(finding.remediation.manifests[0])["spec"]["ports"] == [
        {"number": 443, "name": "https", "protocol": "HTTPS"},
        {"number": 10516, "name": "tls-10516", "protocol": "TLS"},
    ]


@pytest.mark.parametrize("mesh", [REGISTRY_ONLY, None])
def test_md102_http_on_443_breaks_tls_under_either_policy(mesh):
    snap = cluster(service_entry(["*.datadoghq.eu"], HTTP_443), version="1.20.3", mesh=mesh, ds=agent(EU))
    (finding,) = md102(snap)
    assert finding.message.startswith(
        "Declares the port with a protocol that breaks the agent's TLS: "
        "ServiceEntry datadog/dd declares "
        "443/HTTP but the agent speaks TLS there"
    )
    assert [(e.path, e.value) for e in finding.evidence] == [("spec.ports[0].protocol", "HTTP")]
    assert yaml.safe_load(finding.remediation.manifests[0])["spec"]["ports"] == [
        {"number": 443, "name": "https-443", "protocol": "HTTPS"}
    ]


def test_md102_under_allow_any_ignores_everything_but_a_visible_wrong_protocol():
    allow_any = {"version": "1.20.3", "ds": agent(EU)}
    assert md102(cluster(service_entry(["*.datadoghq.com"]), **allow_any)) == []
    hidden = service_entry(["*.datadoghq.eu"], HTTP_443, ns="istio-system", export_to=["."])
    assert md102(cluster(hidden, **allow_any)) == []


def test_md102_not_exported_adds_the_namespace():
    se = service_entry(["*.datadoghq.eu"], ns="istio-system", export_to=["."])
    (finding,) = md102(registry_only(se, ds=agent(EU)))
    assert objects([finding]) == [["ServiceEntry istio-system/dd", "DaemonSet datadog/datadog-agent"]]
    assert "is exported to ., not to namespace datadog" in finding.message
    assert yaml.safe_load(finding.remediation.manifests[0])["spec"]["exportTo"] == [".", "datadog"]


def test_md102_sidecar_hidden_corrects_the_sidecar():
    se = service_entry(["*.datadoghq.eu"], ns="istio-system", export_to=["*"])
    scope = sidecar({"egress": [{"hosts": ["./*", "istio-system/istiod.istio-system.svc.cluster.local"]}]})
    (finding,) = md102(registry_only(se, scope, ds=agent(EU)))
    assert objects([finding]) == [
        [
            "Sidecar datadog/default",
            "ServiceEntry istio-system/dd",
            "DaemonSet datadog/datadog-agent",
        ]
    ]
    assert finding.remediation.safe is False
    assert yaml.safe_load(finding.remediation.manifests[0]) == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "Sidecar",
        "metadata": {"name": "default", "namespace": "datadog"},
        "spec": {
            "egress": [
                {
                    "hosts": [
                        "./*",
                        "istio-system/istiod.istio-system.svc.cluster.local",
                        "istio-system/*.datadoghq.eu",
                    ]
                }
            ]
        },
    }


def test_md102_a_sidecar_without_egress_imports_everything():
    se = service_entry(["*.datadoghq.eu"], ns="istio-system", export_to=["*"])
    scope = sidecar({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})
    snap = cluster(se, scope, version="1.20.3", ds=agent(EU))
    assert md102(snap) == [] and md101(snap) == []


def test_md102_one_finding_per_object_and_kind():
    wrong_site = service_entry(["*.datadoghq.com"], name="us1")
    wrong_port = service_entry(["*.datadoghq.eu"], [{"number": 8443, "name": "https", "protocol": "HTTPS"}], name="eu")
    findings = md102(registry_only(wrong_site, wrong_port, ds=agent(EU)))
    assert [(f.message.split(":")[0], str(f.objects[0])) for f in findings] == [
        ("Lists hosts of another Datadog site", "ServiceEntry datadog/us1"),
        ("Does not declare the port", "ServiceEntry datadog/eu"),
    ]


@pytest.mark.parametrize(
    "hosts,ports,export,expected",
    [
        (["*.datadoghq.com"], None, None, WRONG_SITE),
        (["app.us3.datadoghq.com"], None, None, WRONG_SITE),
        (["*.agent.datadoghq.eu"], None, None, MISSING_HOST),
        (["*.datadoghq.eu"], [{"number": 10516, "protocol": "TCP"}], None, WRONG_PORT),
        (["*.datadoghq.eu"], HTTP_443, None, WRONG_PROTOCOL),
        (["*.datadoghq.eu"], [{"number": 443, "name": "grpc", "protocol": "GRPC"}], None, WRONG_PROTOCOL),
        # a port's name never sets a ServiceEntry port's protocol: unset is sniffed, which carries TLS
        (["*.datadoghq.eu"], [{"number": 443, "name": "grpc"}], None, SIDECAR_HIDDEN),
        (["*.datadoghq.eu"], None, ["other"], NOT_EXPORTED),
        (["*.datadoghq.eu"], None, ["*"], SIDECAR_HIDDEN),
    ],
)
def test_near_miss_kinds(hosts, ports, export, expected):
    from meshdoctor.datadog.agent import RequiredEndpoint

    endpoint = RequiredEndpoint("metrics", "app.datadoghq.eu", 443, "HTTPS", "test")
    entry = service_entry(hosts, ports, export_to=export)
    assert near_miss_kind(entry, endpoint, "datadog", ["*"]) == expected


def test_rule_docs_and_inputs():
    for rule in (IntakeEgressBlocked, IntakeServiceEntryNearMiss):
        assert rule.docs.what and rule.docs.why and rule.docs.fix and rule.docs.references
        assert {"DaemonSet", "Deployment", "ServiceEntry", "ConfigMap"} == set(rule.inputs.kinds)
        assert "Sidecar" in rule.inputs.optional_kinds


def test_an_agent_behind_an_in_cluster_proxy_needs_no_service_entry_for_the_intake():
    proxied = agent(env=[{"name": "DD_PROXY_HTTPS", "value": "http://squid.proxy:3128"}])
    proxy_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "squid", "namespace": "proxy"},
        "spec": {"ports": [{"port": 3128}]},
    }
    assert md101(cluster(proxy_service, ds=proxied)) == []
    (finding,) = md101(cluster(ds=proxied))  # the proxy Service is not in the input: it needs an entry
    assert "metrics squid.proxy:3128" in finding.message
