"""Istio version and era from control-plane images, mesh config, outbound policy, host matching."""

from __future__ import annotations

import pytest

from meshdoctor.facts.istio_versions import telemetry_endpoints
from meshdoctor.istio_mesh import (
    ALLOW_ANY,
    ISTIOD,
    MIXER,
    NO_MESH,
    REGISTRY_ONLY,
    UNKNOWN,
    MeshInfo,
    captures_external_egress,
    covering_service_entries,
    era_of,
    host_covers,
    image_name,
    image_version,
    injector_include_outbound_ranges,
    mesh_config,
    mesh_info,
    outbound_traffic_policy,
    service_entry_api_version,
    service_entry_visible,
)
from meshdoctor.rule import Context
from meshdoctor.snapshot import Snapshot


def deployment(
    name: str,
    namespace: str,
    image: str,
    labels: dict | None = None,
    template_labels: dict | None = None,
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "template": {
                "metadata": {"labels": template_labels or {}},
                "spec": {"containers": [{"name": "discovery", "image": image}]},
            }
        },
    }


def config_map(name: str, namespace: str, data: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def snapshot(*objs: dict) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    return snap


@pytest.mark.parametrize(
    "image,name,version",
    [
        ("istio/pilot:1.0.7", "pilot", "1.0.7"),
        ("docker.io/istio/mixer:1.0.7", "mixer", "1.0.7"),
        ("gcr.io/istio-release/pilot:1.1.0", "pilot", "1.1.0"),
        ("docker.io/istio/pilot:1.4.10", "pilot", "1.4.10"),
        ("docker.io/istio/pilot:1.5.0", "pilot", "1.5.0"),
        ("docker.io/istio/proxyv2:1.7.8", "proxyv2", "1.7.8"),
        ("istio/pilot:1.20.3-distroless", "pilot", "1.20.3"),
        ("docker.io/istio/pilot:1.20.3@sha256:" + "a" * 64, "pilot", "1.20.3"),
        ("istio/pilot@sha256:" + "b" * 64, "pilot", None),
        ("registry.local:5000/mirror/istio/pilot:1.30.3", "pilot", "1.30.3"),
        ("registry.local:5000/istio/pilot", "pilot", None),
        ("istio/pilot:latest", "pilot", None),
        ("istio/pilot:1.22", "pilot", "1.22"),
    ],
)
def test_image_name_and_version(image, name, version):
    assert image_name(image) == name
    assert image_version(image) == version


@pytest.mark.parametrize(
    "version,era",
    [
        ("1.0.7", MIXER),
        ("1.1.0", MIXER),
        ("1.4.10", MIXER),
        ("1.5.0", ISTIOD),
        ("1.7.8", ISTIOD),
        ("1.20.3", ISTIOD),
        (None, UNKNOWN),
        ("latest", UNKNOWN),
    ],
)
def test_era_boundaries(version, era):
    assert era_of(version) == era


def test_mesh_info_mixer_era_from_istio_pilot():
    snap = snapshot(
        deployment(
            "istio-pilot",
            "istio-system",
            "docker.io/istio/pilot:1.0.7",
            {"istio": "pilot", "app": "istio-pilot"},
        ),
        deployment(
            "istio-telemetry", "istio-system", "docker.io/istio/mixer:1.0.7", {"istio": "mixer"}
        ),
        deployment("web", "default", "nginx:1.15"),
    )
    assert mesh_info(snap) == MeshInfo("1.0.7", MIXER, "istio-system")


def test_mesh_info_istiod_in_any_namespace_and_pilot_wins_over_other_images():
    snap = snapshot(
        deployment(
            "istiod", "mesh", "gcr.io/istio-release/pilot:1.20.3-distroless", {"app": "istiod"}
        ),
        deployment(
            "istio-ingressgateway", "mesh", "docker.io/istio/proxyv2:1.19.0", {"istio": "pilot"}
        ),
    )
    info = mesh_info(snap)
    assert info == MeshInfo("1.20.3", ISTIOD, "mesh")
    assert info.minor == (1, 20)


def test_mesh_info_picks_the_highest_revision_and_reads_template_labels():
    snap = snapshot(
        deployment(
            "istiod-1-19", "istio-system", "istio/pilot:1.19.5", template_labels={"app": "istiod"}
        ),
        deployment(
            "istiod-1-20", "istio-system", "istio/pilot:1.20.3", template_labels={"app": "istiod"}
        ),
    )
    assert mesh_info(snap).version == "1.20.3"


def test_mesh_info_without_versions_uses_the_shape():
    istiod = snapshot(
        deployment("istiod", "istio-system", "istio/pilot@sha256:" + "c" * 64, {"app": "istiod"})
    )
    assert mesh_info(istiod) == MeshInfo(None, ISTIOD, "istio-system")
    mixer = snapshot(
        deployment("istio-telemetry", "istio-system", "istio/mixer:latest", {"istio": "mixer"})
    )
    assert mesh_info(mixer) == MeshInfo(None, MIXER, "istio-system")
    assert mesh_info(snapshot()) == NO_MESH
    assert mesh_info(snapshot(deployment("pilot-lookalike", "x", "istio/pilot:1.5.0"))) == NO_MESH


def test_mesh_info_records_the_kinds_it_reads():
    ctx = Context(
        snapshot(deployment("istiod", "istio-system", "istio/pilot:1.20.3", {"app": "istiod"}))
    )
    mesh_info(ctx)
    assert ctx.kinds_read == {"Deployment"}


MESH_10 = (
    "disablePolicyChecks: false\n"
    "defaultConfig:\n  discoveryAddress: istio-pilot.istio-system:15007\n"
)


def test_mesh_config_from_istio_or_revisioned_configmap():
    snap = snapshot(config_map("istio", "istio-system", {"mesh": MESH_10}))
    assert (
        mesh_config(snap)["defaultConfig"]["discoveryAddress"] == "istio-pilot.istio-system:15007"
    )
    rev = snapshot(
        config_map(
            "istio-1-20",
            "istio-system",
            {"mesh": "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"},
        )
    )
    assert mesh_config(rev) == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    injector = snapshot(
        config_map("istio-sidecar-injector", "istio-system", {"config": "policy: enabled"})
    )
    assert mesh_config(injector) == {}
    broken = snapshot(config_map("istio", "istio-system", {"mesh": "a: [unclosed"}))
    assert mesh_config(broken) == {}


def test_mesh_config_prefers_the_control_plane_namespace():
    snap = snapshot(
        config_map("istio", "istio-system", {"mesh": "trustDomain: a\n"}),
        config_map("istio", "mesh", {"mesh": "trustDomain: b\n"}),
    )
    assert mesh_config(snap, MeshInfo("1.20.3", ISTIOD, "mesh")) == {"trustDomain": "b"}
    assert mesh_config(snap) == {"trustDomain": "a"}


@pytest.mark.parametrize(
    "version,era,mesh,expected",
    [
        (
            "1.0.7",
            MIXER,
            MESH_10,
            REGISTRY_ONLY,
        ),  # no such key in 1.0: the sidecar drops unknown hosts
        ("1.0.7", MIXER, None, REGISTRY_ONLY),
        ("1.1.0", MIXER, None, ALLOW_ANY),
        ("1.4.10", MIXER, "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n", ALLOW_ANY),
        ("1.4.10", MIXER, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n", REGISTRY_ONLY),
        ("1.20.3", ISTIOD, None, ALLOW_ANY),
        ("1.20.3", ISTIOD, "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n", REGISTRY_ONLY),
        ("1.20.3", ISTIOD, "outboundTrafficPolicy:\n  mode: registry_only\n", REGISTRY_ONLY),
        ("1.20.3", ISTIOD, "outboundTrafficPolicy:\n  mode: BOGUS\n", ALLOW_ANY),
        (None, ISTIOD, None, ALLOW_ANY),
        (None, MIXER, None, REGISTRY_ONLY),
        (None, UNKNOWN, None, ALLOW_ANY),
    ],
)
def test_outbound_traffic_policy_defaults_and_override(version, era, mesh, expected):
    objs = [config_map("istio", "istio-system", {"mesh": mesh})] if mesh is not None else []
    assert (
        outbound_traffic_policy(snapshot(*objs), MeshInfo(version, era, "istio-system")) == expected
    )


INJECTOR_10 = (
    "policy: enabled\ntemplate: |-\n  initContainers:\n  - name: istio-init\n"
    '    args:\n    - "-i"\n'
    '    - "[[ annotation .ObjectMeta `traffic.sidecar.istio.io/includeOutboundIPRanges`'
    '  "{ranges}"  ]]"\n'
)


def test_injector_include_ranges_default():
    assert injector_include_outbound_ranges(snapshot()) == "*"
    star = snapshot(
        config_map(
            "istio-sidecar-injector",
            "istio-system",
            {"config": INJECTOR_10.replace("{ranges}", "*")},
        )
    )
    assert injector_include_outbound_ranges(star) == "*"
    narrow = snapshot(
        config_map(
            "istio-sidecar-injector",
            "istio-system",
            {"config": INJECTOR_10.replace("{ranges}", "10.0.0.0/8")},
        )
    )
    assert injector_include_outbound_ranges(narrow) == "10.0.0.0/8"
    values = snapshot(
        config_map(
            "istio-sidecar-injector",
            "istio-system",
            {"values": '{"global":{"proxy":{"includeIPRanges":"10.4.0.0/14"}}}'},
        )
    )
    assert injector_include_outbound_ranges(values) == "10.4.0.0/14"


def annotated(**annotations: str) -> dict:
    return {"metadata": {"annotations": annotations}, "spec": {}}


def test_sidecar_capture_of_external_egress():
    assert captures_external_egress(annotated()) is True
    assert captures_external_egress(annotated(), "10.0.0.0/8,172.16.0.0/12") is False
    assert (
        captures_external_egress(
            annotated(**{"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8"})
        )
        is False
    )
    assert (
        captures_external_egress(
            annotated(
                **{"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8,0.0.0.0/0"}
            )
        )
        is True
    )
    assert (
        captures_external_egress(
            annotated(**{"traffic.sidecar.istio.io/includeOutboundIPRanges": "*"}), "10.0.0.0/8"
        )
        is True
    )
    assert (
        captures_external_egress(
            annotated(**{"traffic.sidecar.istio.io/excludeOutboundIPRanges": "0.0.0.0/0"})
        )
        is False
    )
    assert (
        captures_external_egress(
            annotated(**{"traffic.sidecar.istio.io/includeOutboundIPRanges": "bogus"})
        )
        is True
    )


@pytest.mark.parametrize(
    "pattern,host,expected",
    [
        ("*.datadoghq.com", "app.datadoghq.com", True),
        ("*.datadoghq.com", "7-49-1-app.agent.datadoghq.com", True),
        ("*.datadoghq.com", "datadoghq.com", False),
        ("*.datadoghq.com", "app.datadoghq.eu", False),
        ("*.datadoghq.com", "evildatadoghq.com", False),
        ("*", "anything.example", True),
        ("app.datadoghq.com", "app.datadoghq.com", True),
        ("APP.datadoghq.com.", "app.datadoghq.com", True),
        ("app.datadoghq.com", "api.datadoghq.com", False),
        ("*.datadoghq.com", "*.agent.datadoghq.com", True),
        ("*.agent.datadoghq.com", "*.agent.datadoghq.com", True),
        ("*.agent.datadoghq.com", "*.datadoghq.com", False),
        ("6-0-0-app.agent.datadoghq.com", "*.agent.datadoghq.com", False),
    ],
)
def test_istio_host_matching(pattern, host, expected):
    assert host_covers(pattern, host) is expected


def service_entry(
    name: str,
    namespace: str,
    hosts: list,
    ports: list,
    export_to: list | None = None,
    api: str = "networking.istio.io/v1beta1",
) -> dict:
    spec: dict = {"hosts": hosts, "ports": ports, "location": "MESH_EXTERNAL"}
    if export_to is not None:
        spec["exportTo"] = export_to
    return {
        "apiVersion": api,
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


HTTPS = [{"number": 443, "name": "https", "protocol": "HTTPS"}]


@pytest.mark.parametrize(
    "export_to,se_namespace,namespace,default,expected",
    [
        (None, "istio-system", "datadog", None, True),
        (["*"], "istio-system", "datadog", None, True),
        (["."], "datadog", "datadog", None, True),
        (["."], "istio-system", "datadog", None, False),
        (["datadog"], "istio-system", "datadog", None, True),
        (["other"], "istio-system", "datadog", None, False),
        (None, "istio-system", "datadog", ["."], False),
        (None, "datadog", "datadog", ["."], True),
    ],
)
def test_service_entry_visibility(export_to, se_namespace, namespace, default, expected):
    se = service_entry("dd", se_namespace, ["*.datadoghq.com"], HTTPS, export_to)
    assert service_entry_visible(se, namespace, default) is expected


def test_covering_service_entries_checks_host_port_protocol_visibility_and_group():
    snap = snapshot(
        service_entry("ok", "datadog", ["*.datadoghq.com"], HTTPS),
        service_entry("wrong-host", "datadog", ["datadoghq.com"], HTTPS),
        service_entry(
            "wrong-port",
            "datadog",
            ["*.datadoghq.com"],
            [{"number": 80, "name": "http", "protocol": "HTTP"}],
        ),
        service_entry(
            "http-on-443",
            "datadog",
            ["*.datadoghq.com"],
            [{"number": 443, "name": "http", "protocol": "HTTP"}],
        ),
        service_entry("hidden", "other", ["*.datadoghq.com"], HTTPS, ["."]),
        service_entry(
            "tls-old",
            "datadog",
            ["app.datadoghq.com"],
            [{"number": 443, "name": "tls", "protocol": "TLS"}],
            api="networking.istio.io/v1alpha3",
        ),
        service_entry("not-istio", "datadog", ["*.datadoghq.com"], HTTPS, api="example.com/v1"),
    )
    found = covering_service_entries(snap, "app.datadoghq.com", 443, "datadog")
    assert [se["metadata"]["name"] for se in found] == ["ok", "tls-old"]
    assert covering_service_entries(snap, "app.datadoghq.com", 443, "elsewhere") != []
    assert [
        se["metadata"]["name"]
        for se in covering_service_entries(snap, "app.datadoghq.eu", 443, "datadog")
    ] == []


def test_service_entry_api_version_per_era():
    assert (
        service_entry_api_version(MeshInfo("1.0.7", MIXER, "istio-system"))
        == "networking.istio.io/v1alpha3"
    )
    assert (
        service_entry_api_version(MeshInfo("1.20.3", ISTIOD, "istio-system"))
        == "networking.istio.io/v1beta1"
    )


def test_telemetry_endpoints_per_version():
    def ports(version, component=None):
        return sorted((e.component, e.port) for e in telemetry_endpoints(version, component))

    assert ports((1, 0), "istio-telemetry") == [
        ("istio-telemetry", 9093),
        ("istio-telemetry", 42422),
    ]
    assert ports((1, 4), "istio-telemetry") == [
        ("istio-telemetry", 15014),
        ("istio-telemetry", 42422),
    ]
    assert ports((1, 5), "istiod") == [("istiod", 15014)]
    assert ports((1, 8), "istio-telemetry") == []
    assert ports((1, 0), "sidecar") == [("sidecar", 15090)]
    assert ports((1, 20), "sidecar") == [("sidecar", 15020), ("sidecar", 15090)]
    assert ports((1, 0), "istiod") == []


# -- MD101 over the mesh model: the decisions the helpers above feed ------------------------------


def md101_cluster(
    template_meta: dict | None = None,
    host_network: bool = False,
    ns_labels: dict | None = None,
    mesh: str | None = None,
    extra: tuple = (),
) -> Snapshot:
    spec: dict = {"containers": [{"name": "agent", "image": "datadog/agent:7.49.1"}]}
    if host_network:
        spec["hostNetwork"] = True
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "datadog-agent", "namespace": "datadog"},
        "spec": {"template": {"metadata": template_meta or {}, "spec": spec}},
    }
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "datadog",
            "labels": ns_labels if ns_labels is not None else {"istio-injection": "enabled"},
        },
    }
    objs = [
        ds,
        namespace,
        deployment(
            "istio-pilot", "istio-system", "docker.io/istio/pilot:1.0.7", {"istio": "pilot"}
        ),
        *extra,
    ]
    if mesh is not None:
        objs.append(config_map("istio", "istio-system", {"mesh": mesh}))
    return snapshot(*objs)


def md101(snap: Snapshot) -> list[str]:
    from meshdoctor_rules.egress import IntakeEgressBlocked

    return [f"{f.objects[0]}" for f in IntakeEgressBlocked().check(Context(snap))]


FOUND = ["DaemonSet datadog/datadog-agent"]


def test_md101_fires_on_the_bare_mixer_era_case():
    assert md101(md101_cluster()) == FOUND


@pytest.mark.parametrize(
    "kwargs",
    [
        {"template_meta": {"annotations": {"sidecar.istio.io/inject": "false"}}},
        {"template_meta": {"labels": {"sidecar.istio.io/inject": "false"}}},
        {
            "template_meta": {
                "annotations": {"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8"}
            }
        },
        {"host_network": True},
        {"ns_labels": {}},
        {"ns_labels": {"istio-injection": "disabled", "istio.io/rev": "canary"}},
        {"mesh": "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n"},
        {"extra": (service_entry("dd", "istio-system", ["*.datadoghq.com"], HTTPS),)},
        {
            "extra": (
                service_entry("dd", "datadog", ["7-49-1-app.agent.datadoghq.com"], HTTPS, ["."]),
            )
        },
    ],
)
def test_md101_stays_quiet_when_the_agent_can_reach_the_intake(kwargs):
    assert md101(md101_cluster(**kwargs)) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ns_labels": {"istio.io/rev": "1-0"}},
        {"extra": (service_entry("dd", "istio-system", ["*.datadoghq.com"], HTTPS, ["."]),)},
        {"extra": (service_entry("dd", "datadog", ["app.datadoghq.com"], HTTPS),)},
        {"extra": (service_entry("dd", "datadog", ["*.datadoghq.eu"], HTTPS),)},
        {
            "extra": (
                service_entry(
                    "dd",
                    "datadog",
                    ["*.datadoghq.com"],
                    [{"number": 443, "name": "http", "protocol": "HTTP"}],
                ),
            )
        },
        {"template_meta": {"annotations": {"sidecar.istio.io/inject": "true"}}},
    ],
)
def test_md101_fires_when_nothing_lets_the_traffic_out(kwargs):
    assert md101(md101_cluster(**kwargs)) == FOUND


def test_md101_remediation_is_a_complete_service_entry_for_the_site_and_products():
    import yaml
    from meshdoctor_rules.egress import IntakeEgressBlocked

    snap = md101_cluster()
    ds = snap.get("DaemonSet", "datadog", "datadog-agent")
    ds["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DD_SITE", "value": "datadoghq.eu"},
        {"name": "DD_LOGS_ENABLED", "value": "true"},
        {"name": "DD_LOGS_CONFIG_USE_TCP", "value": "true"},
    ]
    (finding,) = IntakeEgressBlocked().check(Context(snap))
    assert finding.remediation is not None
    (manifest,) = finding.remediation.manifests
    assert yaml.safe_load(manifest) == {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "ServiceEntry",
        "metadata": {"name": "datadog-intake", "namespace": "datadog"},
        "spec": {
            "hosts": [
                "7-49-1-app.agent.datadoghq.eu",
                "app.datadoghq.eu",
                "agent-http-intake.logs.datadoghq.eu",
                "agent-intake.logs.datadoghq.eu",
            ],
            "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
        },
    }
    assert "kubectl apply -f <file>" in finding.remediation.commands
    assert any(
        'sidecar.istio.io/inject: "false"' in alt for alt in finding.remediation.alternatives
    )
