"""Istio version and era from control-plane images, mesh config, outbound policy, apiVersions.

Host matching, ServiceEntry coverage and capture: tests/test_istio_egress.py."""

from __future__ import annotations

import pytest

from meshdoctor.istio.mesh import (
    ALLOW_ANY,
    ISTIOD,
    MIXER,
    NO_MESH,
    REGISTRY_ONLY,
    UNKNOWN,
    MeshInfo,
    era_of,
    image_version,
    mesh_config,
    mesh_info,
    outbound_traffic_policy,
    service_entry_api_version,
    service_entry_has_export_to,
)
from meshdoctor.istio.versions import telemetry_endpoints
from meshdoctor.kube.images import image_name
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
        deployment("istio-telemetry", "istio-system", "docker.io/istio/mixer:1.0.7", {"istio": "mixer"}),
        deployment("web", "default", "nginx:1.15"),
    )
    assert mesh_info(snap) == MeshInfo("1.0.7", MIXER, "istio-system")


def test_mesh_info_istiod_in_any_namespace_and_pilot_wins_over_other_images():
    snap = snapshot(
        deployment("istiod", "mesh", "gcr.io/istio-release/pilot:1.20.3-distroless", {"app": "istiod"}),
        deployment("istio-ingressgateway", "mesh", "docker.io/istio/proxyv2:1.19.0", {"istio": "pilot"}),
    )
    info = mesh_info(snap)
    assert info == MeshInfo("1.20.3", ISTIOD, "mesh")
    assert info.minor == (1, 20)


def test_mesh_info_picks_the_highest_revision_and_reads_template_labels():
    snap = snapshot(
        deployment("istiod-1-19", "istio-system", "istio/pilot:1.19.5", template_labels={"app": "istiod"}),
        deployment("istiod-1-20", "istio-system", "istio/pilot:1.20.3", template_labels={"app": "istiod"}),
    )
    assert mesh_info(snap).version == "1.20.3"


def test_mesh_info_without_versions_uses_the_shape():
    istiod = snapshot(deployment("istiod", "istio-system", "istio/pilot@sha256:" + "c" * 64, {"app": "istiod"}))
    assert mesh_info(istiod) == MeshInfo(None, ISTIOD, "istio-system")
    mixer = snapshot(deployment("istio-telemetry", "istio-system", "istio/mixer:latest", {"istio": "mixer"}))
    assert mesh_info(mixer) == MeshInfo(None, MIXER, "istio-system")
    assert mesh_info(snapshot()) == NO_MESH
    assert mesh_info(snapshot(deployment("pilot-lookalike", "x", "istio/pilot:1.5.0"))) == NO_MESH


def test_mesh_info_records_the_kinds_it_reads():
    ctx = Context(snapshot(deployment("istiod", "istio-system", "istio/pilot:1.20.3", {"app": "istiod"})))
    mesh_info(ctx)
    assert ctx.kinds_read == {"Deployment"}


MESH_10 = "disablePolicyChecks: false\ndefaultConfig:\n  discoveryAddress: istio-pilot.istio-system:15007\n"


def test_mesh_config_from_istio_or_revisioned_configmap():
    snap = snapshot(config_map("istio", "istio-system", {"mesh": MESH_10}))
    assert mesh_config(snap)["defaultConfig"]["discoveryAddress"] == "istio-pilot.istio-system:15007"
    rev = snapshot(
        config_map(
            "istio-1-20",
            "istio-system",
            {"mesh": "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"},
        )
    )
    assert mesh_config(rev) == {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}
    injector = snapshot(config_map("istio-sidecar-injector", "istio-system", {"config": "policy: enabled"}))
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
    assert outbound_traffic_policy(snapshot(*objs), MeshInfo(version, era, "istio-system")) == expected


def test_service_entry_api_version_per_era():
    assert service_entry_api_version(MeshInfo("1.0.7", MIXER, "istio-system")) == "networking.istio.io/v1alpha3"
    assert service_entry_api_version(MeshInfo("1.20.3", ISTIOD, "istio-system")) == "networking.istio.io/v1beta1"
    assert service_entry_api_version(NO_MESH) == "networking.istio.io/v1alpha3"


def test_service_entry_export_to_exists_from_1_1():
    assert service_entry_has_export_to(MeshInfo("1.0.7", MIXER, "istio-system")) is False
    assert service_entry_has_export_to(MeshInfo("1.1.0", MIXER, "istio-system")) is True
    assert service_entry_has_export_to(MeshInfo("1.30.3", ISTIOD, "istio-system")) is True
    assert service_entry_has_export_to(MeshInfo(None, MIXER, "istio-system")) is False
    assert service_entry_has_export_to(MeshInfo(None, ISTIOD, "istio-system")) is True


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
    # 1.5: the istiod Service has no 15014; istio-pilot (selecting the istiod pods) has it
    assert ports((1, 5), "istiod") == []
    assert ports((1, 5), "istio-pilot") == [("istio-pilot", 15014)]
    assert ports((1, 6), "istiod") == [("istiod", 15014)]
    assert ports((1, 6), "istio-pilot") == []
    assert ports((1, 8), "istio-telemetry") == []
    assert ports((1, 0), "sidecar") == [("sidecar", 15090)]
    assert ports((1, 20), "sidecar") == [("sidecar", 15020), ("sidecar", 15090)]
    assert ports((1, 0), "istiod") == []


# -- revisions -------------------------------------------------------------------------------------


def _mesh_cm(name: str, mode: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "istio-system"},
        "data": {"mesh": f"outboundTrafficPolicy:\n  mode: {mode}\n"},
    }


@pytest.mark.parametrize(
    ("revision", "name"),
    [(None, "istio"), ("", "istio"), ("default", "istio"), ("1-22", "istio-1-22"), ("canary", "istio-canary")],
)
def test_mesh_configmap_name_follows_pilot_bootstrap(revision: str | None, name: str) -> None:
    from meshdoctor.istio.mesh import mesh_configmap_name

    assert mesh_configmap_name(revision) == name


def test_outbound_policy_reads_the_revisions_own_mesh_config() -> None:
    snap = Snapshot()
    snap.add(_mesh_cm("istio", "ALLOW_ANY"))
    snap.add(_mesh_cm("istio-1-22", "REGISTRY_ONLY"))
    ctx = Context(snap)
    info = MeshInfo("1.22.8", ISTIOD, "istio-system")
    assert outbound_traffic_policy(ctx, info) == ALLOW_ANY
    assert outbound_traffic_policy(ctx, info, "default") == ALLOW_ANY
    assert outbound_traffic_policy(ctx, info, "1-22") == REGISTRY_ONLY


def test_a_revision_without_its_configmap_gets_the_version_default_not_another_revisions() -> None:
    snap = Snapshot()
    snap.add(_mesh_cm("istio", "REGISTRY_ONLY"))
    ctx = Context(snap)
    info = MeshInfo("1.24.2", ISTIOD, "istio-system")
    assert outbound_traffic_policy(ctx, info, "1-24") == ALLOW_ANY
    assert mesh_config(ctx, info, "1-24") == {}
