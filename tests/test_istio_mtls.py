"""Inbound mTLS mode (v1alpha1 Policy/MeshPolicy, PeerAuthentication), client TLS, capture."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshdoctor.istio.mtls import (
    MtlsMode,
    behind_capturing_sidecar,
    client_tls,
    client_tls_rule,
    effective_mtls,
)
from meshdoctor.snapshot import Snapshot

MESH_1_0 = SimpleNamespace(version="1.0.7", era="mixer", namespace="istio-system")
MESH_1_4 = SimpleNamespace(version="1.4.10", era="mixer", namespace="istio-system")
MESH_1_30 = SimpleNamespace(version="1.30.3", era="istiod", namespace="istio-system")


def snapshot(*objs: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    return snap


# 1.0.7 istio-telemetry: Service (charts/mixer/templates/service.yaml) and pod (deployment.yaml).
TELEMETRY_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "istio-telemetry", "namespace": "istio-system"},
    "spec": {
        "selector": {"istio": "mixer", "istio-mixer-type": "telemetry"},
        "ports": [
            {"name": "grpc-mixer", "port": 9091},
            {"name": "grpc-mixer-mtls", "port": 15004},
            {"name": "http-monitoring", "port": 9093},
            {"name": "prometheus", "port": 42422},
        ],
    },
}
TELEMETRY_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "istio-telemetry-6b5579595f-abcde",
        "namespace": "istio-system",
        "labels": {"app": "telemetry", "istio": "mixer", "istio-mixer-type": "telemetry"},
        "annotations": {"sidecar.istio.io/inject": "false"},
    },
    "spec": {
        "containers": [
            {"name": "mixer", "ports": [{"containerPort": 9093}, {"containerPort": 42422}]},
            {
                "name": "istio-proxy",
                "ports": [
                    {"containerPort": 9091},
                    {"containerPort": 15004},
                    {"containerPort": 15090, "name": "http-envoy-prom"},
                ],
            },
        ]
    },
    "status": {"phase": "Running"},
}

# 1.0.7 charts/security/templates: enable-mesh-mtls.yaml (STRICT) and enable-mesh-permissive.yaml.
MESH_POLICY_STRICT = {
    "apiVersion": "authentication.istio.io/v1alpha1",
    "kind": "MeshPolicy",
    "metadata": {"name": "default"},
    "spec": {"peers": [{"mtls": {}}]},
}
MESH_POLICY_PERMISSIVE = {
    "apiVersion": "authentication.istio.io/v1alpha1",
    "kind": "MeshPolicy",
    "metadata": {"name": "default"},
    "spec": {"peers": [{"mtls": {"mode": "PERMISSIVE"}}]},
}
DR_DEFAULT_1_0 = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "DestinationRule",
    "metadata": {"name": "default", "namespace": "istio-system"},
    "spec": {"host": "*.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
}
DR_API_SERVER_1_0 = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "DestinationRule",
    "metadata": {"name": "api-server", "namespace": "istio-system"},
    "spec": {
        "host": "kubernetes.default.svc.cluster.local",
        "trafficPolicy": {"tls": {"mode": "DISABLE"}},
    },
}


def policy(
    name: str,
    ns: str,
    peers: list[Any],
    targets: list[Any] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"peers": peers}
    if targets is not None:
        spec["targets"] = targets
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "authentication.istio.io/v1alpha1",
        "kind": "Policy",
        "metadata": meta,
        "spec": spec,
    }


def peer_auth(
    name: str,
    ns: str,
    mode: str | None = None,
    selector: dict[str, str] | None = None,
    ports: dict[str, str | None] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if mode is not None:
        spec["mtls"] = {"mode": mode}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if ports is not None:
        spec["portLevelMtls"] = {k: ({"mode": v} if v else {}) for k, v in ports.items()}
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "PeerAuthentication",
        "metadata": meta,
        "spec": spec,
    }


ISTIOD_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "istiod-5d7f8-xyz",
        "namespace": "istio-system",
        "labels": {"app": "istiod"},
    },
    "spec": {"containers": [{"name": "discovery", "ports": [{"containerPort": 15014}]}]},
}
APP_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "labels": {"app": "web"},
        "annotations": {"sidecar.istio.io/status": "{}"},
    },
    "spec": {
        "initContainers": [{"name": "istio-init", "args": ["-p", "15001", "-b", "*", "-d", "15090,15021,15020"]}],
        "containers": [
            {"name": "web", "ports": [{"containerPort": 8080}]},
            {"name": "istio-proxy"},
        ],
    },
    "status": {"phase": "Running"},
}


# -- Istio 1.0 - 1.4: MeshPolicy / Policy ----------------------------------------------------------


def test_1_0_without_any_policy_is_plaintext() -> None:
    got = effective_mtls(snapshot(TELEMETRY_SERVICE), TELEMETRY_POD, 42422, MESH_1_0)
    assert got == MtlsMode(
        "DISABLE",
        "default: no Policy or MeshPolicy applies (Istio < 1.5 then accepts plaintext only)",
    )


@pytest.mark.parametrize(
    ("mesh_policy", "expected"),
    [(MESH_POLICY_STRICT, "STRICT"), (MESH_POLICY_PERMISSIVE, "PERMISSIVE")],
)
def test_1_0_mesh_policy_of_the_security_chart(mesh_policy: dict[str, Any], expected: str) -> None:
    got = effective_mtls(snapshot(TELEMETRY_SERVICE, mesh_policy), TELEMETRY_POD, 42422, MESH_1_0)
    assert got == MtlsMode(expected, "MeshPolicy//default (mesh-wide)")


def test_1_0_mtls_null_peer_is_strict() -> None:
    mesh_policy = {
        "kind": "MeshPolicy",
        "metadata": {"name": "default"},
        "spec": {"peers": [{"mtls": None}]},
    }
    assert effective_mtls(snapshot(mesh_policy), TELEMETRY_POD, 42422, MESH_1_0).mode == "STRICT"


def test_1_0_mesh_policy_not_named_default_is_ignored() -> None:
    other = dict(MESH_POLICY_STRICT, metadata={"name": "strict"})
    assert effective_mtls(snapshot(other), TELEMETRY_POD, 42422, MESH_1_0).mode == "DISABLE"


def test_1_0_namespace_policy_overrides_the_mesh_policy() -> None:
    snap = snapshot(TELEMETRY_SERVICE, MESH_POLICY_STRICT, policy("default", "istio-system", []))
    assert effective_mtls(snap, TELEMETRY_POD, 42422, MESH_1_0) == MtlsMode(
        "DISABLE", "Policy/istio-system/default (namespace-wide)"
    )


def test_1_4_targeted_policy_with_port_beats_one_without_and_the_namespace_policy() -> None:
    snap = snapshot(
        TELEMETRY_SERVICE,
        MESH_POLICY_STRICT,
        policy("default", "istio-system", [{"mtls": {}}]),
        policy("telemetry-all", "istio-system", [{"mtls": {}}], targets=[{"name": "istio-telemetry"}]),
        policy(
            "telemetry-prom",
            "istio-system",
            [],
            targets=[{"name": "istio-telemetry", "ports": [{"number": 42422}]}],
        ),
    )
    assert effective_mtls(snap, TELEMETRY_POD, 42422, MESH_1_4) == MtlsMode(
        "DISABLE", "Policy/istio-system/telemetry-prom (targets istio-telemetry port 42422)"
    )
    assert effective_mtls(snap, TELEMETRY_POD, 9093, MESH_1_4) == MtlsMode(
        "STRICT", "Policy/istio-system/telemetry-all (targets istio-telemetry)"
    )


def test_1_4_target_port_by_name_and_a_target_for_another_service() -> None:
    snap = snapshot(
        TELEMETRY_SERVICE,
        MESH_POLICY_STRICT,
        policy("policy-svc", "istio-system", [], targets=[{"name": "istio-policy"}]),
        policy(
            "by-name",
            "istio-system",
            [{"mtls": {"mode": "PERMISSIVE"}}],
            targets=[
                {
                    "name": "istio-telemetry.istio-system.svc.cluster.local",
                    "ports": [{"name": "prometheus"}],
                }
            ],
        ),
    )
    assert effective_mtls(snap, TELEMETRY_POD, 42422, MESH_1_4).mode == "PERMISSIVE"
    assert effective_mtls(snap, TELEMETRY_POD, 9093, MESH_1_4) == MtlsMode("STRICT", "MeshPolicy//default (mesh-wide)")


# -- Istio >= 1.5: PeerAuthentication --------------------------------------------------------------


def test_istiod_era_default_is_permissive() -> None:
    assert effective_mtls(snapshot(), ISTIOD_POD, 15014, MESH_1_30) == MtlsMode(
        "PERMISSIVE", "default: no PeerAuthentication applies (Istio >= 1.5 accepts both)"
    )


def test_mesh_wide_strict_in_the_root_namespace() -> None:
    snap = snapshot(peer_auth("default", "istio-system", "STRICT"))
    assert effective_mtls(snap, APP_POD, 8080, MESH_1_30) == MtlsMode(
        "STRICT", "PeerAuthentication/istio-system/default (mesh-wide)"
    )


def test_namespace_wide_overrides_mesh_and_unset_inherits() -> None:
    snap = snapshot(peer_auth("default", "istio-system", "STRICT"), peer_auth("default", "shop", "PERMISSIVE"))
    assert effective_mtls(snap, APP_POD, 8080, MESH_1_30).mode == "PERMISSIVE"
    unset = snapshot(peer_auth("default", "istio-system", "STRICT"), peer_auth("default", "shop", "UNSET"))
    assert effective_mtls(unset, APP_POD, 8080, MESH_1_30) == MtlsMode(
        "STRICT", "PeerAuthentication/istio-system/default (mesh-wide)"
    )


def test_workload_selector_and_port_level_mtls() -> None:
    snap = snapshot(
        peer_auth("default", "istio-system", "STRICT"),
        peer_auth("web", "shop", None, selector={"app": "web"}, ports={"15020": "DISABLE", "9090": None}),
    )
    assert effective_mtls(snap, APP_POD, 15020, MESH_1_30) == MtlsMode(
        "DISABLE", "PeerAuthentication/shop/web (portLevelMtls 15020)"
    )
    assert effective_mtls(snap, APP_POD, 8080, MESH_1_30).mode == "STRICT"
    assert effective_mtls(snap, APP_POD, 9090, MESH_1_30) == MtlsMode(
        "STRICT",
        "PeerAuthentication/istio-system/default (mesh-wide); portLevelMtls 9090 is UNSET in "
        "PeerAuthentication/shop/web",
    )


def test_selector_that_does_not_match_and_selector_in_root_namespace_are_ignored() -> None:
    snap = snapshot(
        peer_auth("other", "shop", "DISABLE", selector={"app": "other"}),
        peer_auth("root-selector", "istio-system", "DISABLE", selector={"app": "web"}),
        peer_auth("default", "istio-system", "STRICT"),
    )
    assert effective_mtls(snap, APP_POD, 8080, MESH_1_30).mode == "STRICT"


def test_oldest_namespace_wide_peer_authentication_wins() -> None:
    snap = snapshot(
        peer_auth("b-older", "shop", "DISABLE", created="2023-01-01T00:00:00Z"),
        peer_auth("a-newer", "shop", "STRICT", created="2024-01-01T00:00:00Z"),
    )
    assert effective_mtls(snap, APP_POD, 8080, MESH_1_30).source == "PeerAuthentication/shop/b-older (namespace-wide)"


def test_unknown_era_without_policies_is_unset_and_with_peer_authentication_is_istiod() -> None:
    assert effective_mtls(snapshot(), APP_POD, 8080, None).mode == "UNSET"
    assert effective_mtls(snapshot(peer_auth("default", "shop", "STRICT")), APP_POD, 8080, None).mode == "STRICT"


# -- client side: DestinationRules -----------------------------------------------------------------


TELEMETRY_HOST = "istio-telemetry.istio-system.svc.cluster.local"


def test_1_0_default_destination_rule_star_local_is_istio_mutual() -> None:
    snap = snapshot(DR_DEFAULT_1_0, DR_API_SERVER_1_0)
    assert client_tls(snap, TELEMETRY_HOST, 42422, "datadog", root_namespace="istio-system") == "ISTIO_MUTUAL"
    assert (
        client_tls(
            snap,
            "kubernetes.default.svc.cluster.local",
            443,
            "datadog",
            root_namespace="istio-system",
        )
        == "DISABLE"
    )
    assert client_tls(snap, "app.datadoghq.com", 443, "datadog", root_namespace="istio-system") == "UNSET"


def test_client_namespace_rule_beats_root_and_port_level_settings_win() -> None:
    local = {
        "kind": "DestinationRule",
        "metadata": {"name": "telemetry", "namespace": "datadog"},
        "spec": {
            "host": TELEMETRY_HOST,
            "trafficPolicy": {
                "tls": {"mode": "ISTIO_MUTUAL"},
                "portLevelSettings": [{"port": {"number": 42422}, "tls": {"mode": "DISABLE"}}],
            },
        },
    }
    snap = snapshot(DR_DEFAULT_1_0, local)
    mode, rule = client_tls_rule(snap, TELEMETRY_HOST, 42422, "datadog", root_namespace="istio-system")
    assert (mode, rule["metadata"]["name"] if rule else None) == ("DISABLE", "telemetry")
    assert client_tls(snap, TELEMETRY_HOST, 9093, "datadog", root_namespace="istio-system") == "ISTIO_MUTUAL"


def test_destination_rule_not_exported_to_the_client_is_skipped() -> None:
    private = {
        "kind": "DestinationRule",
        "metadata": {"name": "telemetry", "namespace": "istio-system"},
        "spec": {
            "host": "istio-telemetry",
            "exportTo": ["."],
            "trafficPolicy": {"tls": {"mode": "DISABLE"}},
        },
    }
    snap = snapshot(private, DR_DEFAULT_1_0)
    # The short host resolves in the rule's namespace and is more specific than *.local, but is
    # not exported.
    assert client_tls(snap, TELEMETRY_HOST, 42422, "datadog", root_namespace="istio-system") == "ISTIO_MUTUAL"
    assert client_tls(snap, TELEMETRY_HOST, 42422, "istio-system", root_namespace="istio-system") == "DISABLE"


# -- inbound capture -------------------------------------------------------------------------------


def test_mixer_1_0_telemetry_port_42422_is_not_intercepted() -> None:
    assert behind_capturing_sidecar(snapshot(), TELEMETRY_POD, 42422, MESH_1_0) is False
    assert behind_capturing_sidecar(snapshot(), TELEMETRY_POD, 9093, MESH_1_0) is False


def test_injected_pod_intercepts_app_ports_but_never_the_proxy_ports() -> None:
    assert behind_capturing_sidecar(snapshot(), APP_POD, 8080, MESH_1_30) is True
    for port in (15090, 15020, 15021):
        assert behind_capturing_sidecar(snapshot(), APP_POD, port, MESH_1_30) is False


def test_istio_1_3_and_1_4_capture_envoys_15090_inbound() -> None:
    """1.3/1.4 templates: `-b *`, `-d` the status port only; 1.5 excludes 15090."""
    mesh_1_4 = SimpleNamespace(version="1.4.10", era="mixer", namespace="istio-system")
    no_init = {**APP_POD, "spec": {"containers": APP_POD["spec"]["containers"]}}  # args not known
    assert behind_capturing_sidecar(snapshot(), no_init, 15090, mesh_1_4) is True
    assert behind_capturing_sidecar(snapshot(), no_init, 15020, mesh_1_4) is False
    running_1_4 = {
        **APP_POD,
        "spec": {
            **APP_POD["spec"],
            "initContainers": [{"name": "istio-init", "args": ["-b", "*", "-d", "15020"]}],  # type: ignore[dict-item]
        },
    }
    assert behind_capturing_sidecar(snapshot(), running_1_4, 15090, MESH_1_30) is True
    mesh_1_5 = SimpleNamespace(version="1.5.10", era="istiod", namespace="istio-system")
    assert behind_capturing_sidecar(snapshot(), no_init, 15090, mesh_1_5) is False
    assert behind_capturing_sidecar(snapshot(), APP_POD, 15090, mesh_1_4) is False  # its -d says so


def test_exclude_and_include_inbound_ports() -> None:
    excluded = {
        **APP_POD,
        "spec": {
            **APP_POD["spec"],
            "initContainers": [  # type: ignore[dict-item]
                {"name": "istio-init", "args": ["-b", "*", "-d", "15090,15021,15020,8080"]}
            ],
        },
    }
    assert behind_capturing_sidecar(snapshot(), excluded, 8080, MESH_1_30) is False
    only_9090 = {
        **APP_POD,
        "spec": {
            **APP_POD["spec"],
            "initContainers": [  # type: ignore[dict-item]
                {"name": "istio-init", "args": ["-b", "9090", "-d", ""]}
            ],
        },
    }
    assert behind_capturing_sidecar(snapshot(), only_9090, 8080, MESH_1_30) is False
    assert behind_capturing_sidecar(snapshot(), only_9090, 9090, MESH_1_30) is True


def _workload(annotations: dict[str, str] | None = None, ports: list[int] | None = None) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "web", "ports": [{"containerPort": p} for p in ports or []]}]},
            }
        },
    }


INJECTING = (
    {"kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}},
    {
        "kind": "ConfigMap",
        "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
        "data": {"config": "policy: enabled\n"},
    },
)


def test_predicted_injection_uses_annotations_and_the_1_0_container_port_default() -> None:
    snap = snapshot(*INJECTING)
    # 1.0-1.2: includeInboundPorts defaults to the declared container ports.
    assert behind_capturing_sidecar(snap, _workload(ports=[8080]), 8080, MESH_1_0) is True
    assert behind_capturing_sidecar(snap, _workload(ports=[8080]), 9102, MESH_1_0) is False
    # 1.3+: "*".
    assert behind_capturing_sidecar(snap, _workload(ports=[8080]), 9102, MESH_1_30) is True
    excluded = _workload({"traffic.sidecar.istio.io/excludeInboundPorts": "9102"})
    assert behind_capturing_sidecar(snap, excluded, 9102, MESH_1_30) is False
    not_injected = _workload({"sidecar.istio.io/inject": "false"})
    assert behind_capturing_sidecar(snap, not_injected, 8080, MESH_1_30) is False
    assert behind_capturing_sidecar(snapshot(), _workload(), 8080, MESH_1_30) is None


def test_root_namespace_comes_from_the_mesh_config() -> None:
    mesh_cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "rootNamespace: istio-config\n"},
    }
    snap = snapshot(
        mesh_cm,
        peer_auth("default", "istio-config", "STRICT"),
        peer_auth("default", "istio-system", "DISABLE"),
    )
    got = effective_mtls(snap, APP_POD, 8080, MESH_1_30)
    assert got == MtlsMode("STRICT", "PeerAuthentication/istio-config/default (mesh-wide)")
    # istio-system is then an ordinary namespace: its namespace-wide policy applies to istiod.
    assert (
        effective_mtls(snap, ISTIOD_POD, 15014, MESH_1_30).source
        == "PeerAuthentication/istio-system/default (namespace-wide)"
    )


def test_tls_origination_rule_for_the_intake_is_reported_as_simple() -> None:
    # The 1.0 googleapis pattern applied to the intake: the sidecar would wrap the agent's TLS in
    # TLS again.
    origination = {
        "kind": "DestinationRule",
        "metadata": {"name": "dd", "namespace": "datadog"},
        "spec": {"host": "*.datadoghq.com", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}},
    }
    snap = snapshot(origination, DR_DEFAULT_1_0)
    assert client_tls(snap, "app.datadoghq.com", 443, "datadog", root_namespace="istio-system") == "SIMPLE"
    # From another namespace the rule applies only as the rule of the service's namespace (the
    # SE's).
    assert client_tls(snap, "app.datadoghq.com", 443, "monitoring", root_namespace="istio-system") == "UNSET"
    assert (
        client_tls(
            snap,
            "app.datadoghq.com",
            443,
            "monitoring",
            root_namespace="istio-system",
            service_namespace="datadog",
        )
        == "SIMPLE"
    )
    assert client_tls(snap, "app.datadoghq.eu", 443, "datadog", root_namespace="istio-system") == "UNSET"
