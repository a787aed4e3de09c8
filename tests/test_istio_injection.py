"""Sidecar injection decisions, objects written inline from the Istio 1.0.7, 1.4.10, 1.30 charts."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from meshdoctor.istio.injection import (
    InjectorConfig,
    inject_required,
    injection_decision,
    parse_injector_config,
    sidecar_redirects_traffic,
)
from meshdoctor.snapshot import Snapshot

MESH_1_0 = SimpleNamespace(version="1.0.7", era="mixer", namespace="istio-system")
MESH_1_4 = SimpleNamespace(version="1.4.10", era="mixer", namespace="istio-system")
MESH_1_26 = SimpleNamespace(version="1.26.0", era="istiod", namespace="istio-system")
MESH_1_30 = SimpleNamespace(version="1.30.3", era="istiod", namespace="istio-system")


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


# 1.0.7 charts/sidecarInjectorWebhook/templates/mutatingwebhook.yaml, as istio-demo.yaml renders it.
WEBHOOK_1_0 = {
    "apiVersion": "admissionregistration.k8s.io/v1beta1",
    "kind": "MutatingWebhookConfiguration",
    "metadata": {"name": "istio-sidecar-injector", "labels": {"app": "istio-sidecar-injector"}},
    "webhooks": [
        {
            "name": "sidecar-injector.istio.io",
            "clientConfig": {
                "service": {
                    "name": "istio-sidecar-injector",
                    "namespace": "istio-system",
                    "path": "/inject",
                },
                "caBundle": "",
            },
            "rules": [
                {
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                }
            ],
            "failurePolicy": "Fail",
            "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
        }
    ],
}

# The same with sidecarInjectorWebhook.enableNamespacesByDefault: true.
WEBHOOK_1_0_BY_DEFAULT = json.loads(json.dumps(WEBHOOK_1_0))
WEBHOOK_1_0_BY_DEFAULT["webhooks"][0]["namespaceSelector"] = {
    "matchExpressions": [{"key": "istio-injection", "operator": "NotIn", "values": ["disabled"]}]
}


def injector_configmap_1_0(policy: str = "enabled") -> dict[str, Any]:
    """1.0.7 sidecar-injector-configmap.yaml: `policy` and a Go template in a block scalar."""
    config = (
        f"policy: {policy}\n"
        "template: |-\n"
        "  initContainers:\n"
        "  - name: istio-init\n"
        "    args:\n"
        '    - "-i"\n'
        '    - "[[ annotation .ObjectMeta '
        '`traffic.sidecar.istio.io/includeOutboundIPRanges`  "*"  ]]"\n'
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
        "data": {"config": config},
    }


def injector_configmap_1_4(
    policy: str = "enabled",
    never: list[Any] | None = None,
    always: list[Any] | None = None,
    name: str = "istio-sidecar-injector",
) -> dict[str, Any]:
    """1.4.10 sidecar-injector-configmap.yaml: `values` JSON and `config` with the selectors."""
    import yaml

    config = yaml.safe_dump(
        {
            "policy": policy,
            "alwaysInjectSelector": always or [],
            "neverInjectSelector": never or [],
            "template": "containers: []",
        }
    )
    values = {"global": {"proxy": {"autoInject": policy, "includeIPRanges": "*"}}}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "istio-system"},
        "data": {"config": config, "values": json.dumps(values)},
    }


def _hook(prefix: str, ns_sel: dict[str, Any], obj_sel: dict[str, Any], service: str = "istiod") -> dict[str, Any]:
    return {
        "name": f"{prefix}sidecar-injector.istio.io",
        "clientConfig": {
            "service": {
                "name": service,
                "namespace": "istio-system",
                "path": "/inject",
                "port": 443,
            }
        },
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "namespaceSelector": ns_sel,
        "objectSelector": obj_sel,
    }


def _expr(key: str, op: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


def webhook_1_30(revision: str = "") -> dict[str, Any]:
    """1.30 istio-discovery mutatingwebhook.yaml rendered for `revision` ("" = default)."""
    rev = revision or "default"
    service = f"istiod-{revision}" if revision else "istiod"
    not_false = _expr("sidecar.istio.io/inject", "NotIn", "false")
    hooks = [
        _hook(
            "rev.namespace.",
            {
                "matchExpressions": [
                    _expr("istio.io/rev", "In", rev),
                    _expr("istio-injection", "DoesNotExist"),
                ]
            },
            {"matchExpressions": [not_false]},
            service,
        ),
        _hook(
            "rev.object.",
            {
                "matchExpressions": [
                    _expr("istio.io/rev", "DoesNotExist"),
                    _expr("istio-injection", "DoesNotExist"),
                ]
            },
            {"matchExpressions": [not_false, _expr("istio.io/rev", "In", rev)]},
            service,
        ),
    ]
    if not revision:
        hooks += [
            _hook(
                "namespace.",
                {"matchExpressions": [_expr("istio-injection", "In", "enabled")]},
                {"matchExpressions": [not_false]},
            ),
            _hook(
                "object.",
                {
                    "matchExpressions": [
                        _expr("istio-injection", "DoesNotExist"),
                        _expr("istio.io/rev", "DoesNotExist"),
                    ]
                },
                {
                    "matchExpressions": [
                        _expr("sidecar.istio.io/inject", "In", "true"),
                        _expr("istio.io/rev", "DoesNotExist"),
                    ]
                },
            ),
        ]
    name = "istio-sidecar-injector" + (f"-{revision}" if revision else "")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"istio.io/rev": rev, "app": "sidecar-injector"}},
        "webhooks": hooks,
    }


def daemonset(
    ns: str = "datadog",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    host_network: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "agent", "image": "gcr.io/datadoghq/agent:7"}]}
    if host_network:
        spec["hostNetwork"] = True
    meta: dict[str, Any] = {"labels": {"app": "datadog-agent", **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "datadog-agent", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "datadog-agent"}},
            "template": {"metadata": meta, "spec": spec},
        },
    }


def snapshot(*objs: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    return snap


ANNOTATION = "spec.template.metadata.annotations['sidecar.istio.io/inject']"
LABEL = "spec.template.metadata.labels['sidecar.istio.io/inject']"
NS_LABEL = "Namespace/datadog:metadata.labels['istio-injection']"
HOOK_1_0 = "MutatingWebhookConfiguration/istio-sidecar-injector:webhooks[0]"


# -- facts about the pod itself --------------------------------------------------------------------


def test_running_pod_with_istio_proxy_is_injected_whatever_the_webhooks_say() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {
            "name": "agent-x",
            "namespace": "datadog",
            "annotations": {"sidecar.istio.io/status": "{}"},
        },
        "spec": {
            "initContainers": [{"name": "istio-init"}],
            "containers": [{"name": "agent"}, {"name": "istio-proxy"}],
        },
        "status": {"phase": "Running"},
    }
    got = injection_decision(snapshot(namespace("datadog")), pod, MESH_1_0)
    assert got.injected is True
    assert got.reason == "the pod has an istio-proxy container"
    assert got.evidence_paths == ["spec.containers[1]"]


def test_native_sidecar_istio_proxy_in_init_containers_counts() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "agent-x", "namespace": "datadog"},
        "spec": {
            "initContainers": [
                {"name": "istio-validation"},
                {"name": "istio-proxy", "restartPolicy": "Always"},
            ],
            "containers": [{"name": "agent"}],
        },
        "status": {"phase": "Running"},
    }
    got = injection_decision(snapshot(), pod, MESH_1_30)
    assert (got.injected, got.evidence_paths) == (True, ["spec.initContainers[1]"])


def test_mixer_1_0_telemetry_pod_has_a_hand_written_proxy_that_redirects_nothing() -> None:
    # 1.0.7 charts/mixer/templates/deployment.yaml: inject "false" annotation + its own istio-proxy.
    telemetry = {
        "apiVersion": "extensions/v1beta1",
        "kind": "Deployment",
        "metadata": {"name": "istio-telemetry", "namespace": "istio-system"},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {
                        "app": "telemetry",
                        "istio": "mixer",
                        "istio-mixer-type": "telemetry",
                    },
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "mixer",
                            "ports": [{"containerPort": 9093}, {"containerPort": 42422}],
                        },
                        {
                            "name": "istio-proxy",
                            "ports": [{"containerPort": 9091}, {"containerPort": 15004}],
                        },
                    ]
                },
            }
        },
    }
    got = injection_decision(snapshot(WEBHOOK_1_0, injector_configmap_1_0()), telemetry, MESH_1_0)
    assert got.injected is True
    assert "not injected" in got.reason and "not redirected" in got.reason
    assert got.evidence_paths == ["spec.template.spec.containers[1]"]
    assert sidecar_redirects_traffic(telemetry) is False


def test_existing_pod_without_sidecar_is_a_fact_with_the_prediction_in_the_reason() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "agent-x", "namespace": "datadog", "labels": {"app": "a"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "agent"}]},
        "status": {"phase": "Running"},
    }
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, pod, MESH_1_0)
    assert got.injected is False
    assert got.reason.startswith("the running pod has no istio-proxy container; a pod created now would get one")
    assert got.evidence_paths[0] == "spec.containers"


# -- Istio 1.0 -------------------------------------------------------------------------------------


def test_1_0_namespace_label_enabled_injects() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, daemonset(), MESH_1_0)
    assert got.injected is True
    assert got.reason == (
        "webhook sidecar-injector.istio.io (" + HOOK_1_0 + ") is called; the injector's policy is "
        "enabled (ConfigMap/istio-system/istio-sidecar-injector) and the pod does not opt out"
    )
    assert got.evidence_paths == [NS_LABEL, HOOK_1_0]


def test_1_0_unlabelled_namespace_is_not_injected_and_says_which_label_to_add() -> None:
    snap = snapshot(namespace("datadog"), WEBHOOK_1_0, injector_configmap_1_0())
    got = injection_decision(snap, daemonset(), MESH_1_0)
    assert got.injected is False
    assert got.reason == (
        "no injection webhook selects namespace datadog and the pod's labels "
        "(label the namespace istio-injection=enabled)"
    )


def test_1_0_namespace_disabled_is_not_injected() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "disabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, daemonset(), MESH_1_0)
    assert got.injected is False
    assert "(the namespace has istio-injection=disabled)" in got.reason


def test_host_network_is_never_injected() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, daemonset(host_network=True), MESH_1_0)
    assert got.injected is False
    assert got.evidence_paths == ["spec.template.spec.hostNetwork"]


def test_1_0_annotation_false_opts_out_in_an_enabled_namespace() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, daemonset(annotations={"sidecar.istio.io/inject": "false"}), MESH_1_0)
    assert got.injected is False
    assert got.reason.endswith("the pod's sidecar.istio.io/inject annotation ('false') refuses a sidecar")
    assert got.evidence_paths == [NS_LABEL, ANNOTATION, HOOK_1_0]


@pytest.mark.parametrize(("annotation", "expected"), [(None, False), ("true", True), ("yes", True), ("no", False)])
def test_1_0_policy_disabled_injects_only_on_an_explicit_yes(annotation: str | None, expected: bool) -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0("disabled"),
    )
    annotations = {"sidecar.istio.io/inject": annotation} if annotation else None
    assert injection_decision(snap, daemonset(annotations=annotations), MESH_1_0).injected is expected


def test_1_0_kube_system_is_ignored_by_the_injector_even_when_selected() -> None:
    snap = snapshot(
        namespace("kube-system", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, daemonset(ns="kube-system"), MESH_1_0)
    assert got.injected is False
    assert "namespace kube-system is one the injector always skips" in got.reason


def test_1_0_enable_namespaces_by_default_injects_unlabelled_but_not_disabled_namespaces() -> None:
    cm = injector_configmap_1_0()
    assert (
        injection_decision(snapshot(namespace("datadog"), WEBHOOK_1_0_BY_DEFAULT, cm), daemonset(), MESH_1_0).injected
        is True
    )
    disabled = namespace("datadog", **{"istio-injection": "disabled"})
    assert injection_decision(snapshot(disabled, WEBHOOK_1_0_BY_DEFAULT, cm), daemonset(), MESH_1_0).injected is False


def test_1_0_label_form_is_ignored_before_1_12() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        WEBHOOK_1_0,
        injector_configmap_1_0(),
    )
    got = injection_decision(snap, daemonset(labels={"sidecar.istio.io/inject": "false"}), MESH_1_0)
    assert got.injected is True


# -- Istio 1.4 -------------------------------------------------------------------------------------


def test_1_4_never_inject_selector_vetoes_when_the_pod_does_not_say() -> None:
    cm = injector_configmap_1_4(never=[{"matchLabels": {"app": "datadog-agent"}}])
    snap = snapshot(namespace("datadog", **{"istio-injection": "enabled"}), WEBHOOK_1_0, cm)
    got = injection_decision(snap, daemonset(), MESH_1_4)
    assert got.injected is False
    assert "neverInjectSelector (ConfigMap/istio-system/istio-sidecar-injector)" in got.reason
    # An explicit annotation wins over the selector.
    explicit = daemonset(annotations={"sidecar.istio.io/inject": "true"})
    assert injection_decision(snap, explicit, MESH_1_4).injected is True


def test_1_4_always_inject_selector_overrides_policy_disabled() -> None:
    cm = injector_configmap_1_4(
        "disabled",
        always=[{"matchExpressions": [{"key": "app", "operator": "In", "values": ["datadog-agent"]}]}],
    )
    snap = snapshot(namespace("datadog", **{"istio-injection": "enabled"}), WEBHOOK_1_0, cm)
    got = injection_decision(snap, daemonset(), MESH_1_4)
    assert got.injected is True
    assert "alwaysInjectSelector" in got.reason


def test_parse_injector_config_reads_1_0_go_template_and_1_4_selectors() -> None:
    assert parse_injector_config(injector_configmap_1_0("disabled")).policy == "disabled"
    parsed = parse_injector_config(injector_configmap_1_4(never=[{"matchLabels": {"a": "b"}}]))
    assert parsed == InjectorConfig(
        "enabled",
        ({"matchLabels": {"a": "b"}},),
        (),
        "ConfigMap/istio-system/istio-sidecar-injector",
    )


# -- Istio 1.30 ------------------------------------------------------------------------------------


def test_1_30_label_false_in_enabled_namespace_means_no_webhook_is_called() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        webhook_1_30(),
        injector_configmap_1_4(),
    )
    got = injection_decision(snap, daemonset(labels={"sidecar.istio.io/inject": "false"}), MESH_1_30)
    assert got.injected is False
    assert got.reason == (
        "no injection webhook selects namespace datadog and the pod's labels "
        "(the pod has the label sidecar.istio.io/inject=false)"
    )
    assert got.evidence_paths == [NS_LABEL, LABEL]


def test_1_30_pod_label_true_in_unlabelled_namespace_goes_through_the_object_webhook() -> None:
    snap = snapshot(namespace("datadog"), webhook_1_30(), injector_configmap_1_4())
    got = injection_decision(snap, daemonset(labels={"sidecar.istio.io/inject": "true"}), MESH_1_30)
    assert got.injected is True
    assert got.reason.startswith(
        "webhook object.sidecar-injector.istio.io "
        "(MutatingWebhookConfiguration/istio-sidecar-injector:webhooks[3]) is called; "
        "the pod's sidecar.istio.io/inject label ('true') asks for a sidecar"
    )


def test_1_30_label_wins_over_annotation() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio-injection": "enabled"}),
        webhook_1_30(),
        injector_configmap_1_4(),
    )
    workload = daemonset(labels={"sidecar.istio.io/inject": "true"}, annotations={"sidecar.istio.io/inject": "false"})
    assert injection_decision(snap, workload, MESH_1_30).injected is True


def test_1_30_revision_without_its_webhook_is_unknown() -> None:
    snap = snapshot(namespace("datadog", **{"istio.io/rev": "canary"}), webhook_1_30(), injector_configmap_1_4())
    got = injection_decision(snap, daemonset(), MESH_1_30)
    assert got.injected is None
    assert got.reason == ("istio.io/rev=canary asks for a revision whose injection webhook is not in the snapshot")


def test_1_30_revision_with_its_webhook_and_configmap_is_injected() -> None:
    snap = snapshot(
        namespace("datadog", **{"istio.io/rev": "canary"}),
        webhook_1_30(),
        webhook_1_30("canary"),
        injector_configmap_1_4(),
        injector_configmap_1_4("disabled", name="istio-sidecar-injector-canary"),
    )
    got = injection_decision(snap, daemonset(annotations={"sidecar.istio.io/inject": "true"}), MESH_1_30)
    assert got.injected is True
    assert (
        "rev.namespace.sidecar-injector.istio.io "
        "(MutatingWebhookConfiguration/istio-sidecar-injector-canary" in got.reason
    )
    # The canary injector's policy (disabled) applies, not the default revision's.
    assert injection_decision(snap, daemonset(), MESH_1_30).injected is False


def test_1_30_unusual_values_fall_back_to_the_policy_but_1_26_reads_them_as_booleans() -> None:
    config = InjectorConfig(policy="disabled")
    meta = {"annotations": {"sidecar.istio.io/inject": "yes"}}
    assert inject_required("datadog", meta, {}, config, (1, 30)).injected is False
    assert inject_required("datadog", meta, {}, config, (1, 26)).injected is True
    enabled = InjectorConfig()
    off = {"annotations": {"sidecar.istio.io/inject": "off"}}
    assert inject_required("datadog", off, {}, enabled, (1, 30)).injected is True
    assert inject_required("datadog", off, {}, enabled, (1, 26)).injected is False


def test_kube_node_lease_is_ignored_since_1_9_only() -> None:
    meta: dict[str, Any] = {}
    assert inject_required("kube-node-lease", meta, {}, InjectorConfig(), (1, 8)).injected is True
    assert inject_required("kube-node-lease", meta, {}, InjectorConfig(), (1, 9)).injected is False


# -- what is missing -------------------------------------------------------------------------------


def test_no_webhook_and_no_injector_configmap_is_unknown() -> None:
    got = injection_decision(snapshot(namespace("datadog", **{"istio-injection": "enabled"})), daemonset(), MESH_1_0)
    assert got.injected is None
    assert got.reason == (
        "the snapshot has neither an injection MutatingWebhookConfiguration nor an istio-sidecar-injector ConfigMap"
    )


def test_only_the_injector_configmap_assumes_the_chart_default_webhook_of_the_era() -> None:
    snap = snapshot(namespace("datadog", **{"istio-injection": "enabled"}), injector_configmap_1_0())
    got = injection_decision(snap, daemonset(), None)  # era read from the ConfigMap: no `values` key -> 1.0
    assert got.injected is True
    assert got.reason.endswith("(the webhook configuration is not in the snapshot: assumed the 1.0.7 chart default)")
    unlabelled = snapshot(namespace("datadog"), injector_configmap_1_4())
    got = injection_decision(unlabelled, daemonset(labels={"sidecar.istio.io/inject": "true"}), MESH_1_30)
    assert got.injected is True
    assert "assumed the 1.30 chart default" in got.reason


def test_missing_namespace_object_makes_the_namespace_selector_unknowable() -> None:
    got = injection_decision(snapshot(WEBHOOK_1_0, injector_configmap_1_0()), daemonset(), MESH_1_0)
    assert got.injected is None
    assert got.reason == "Namespace datadog is not in the snapshot, so its injection labels are unknown"


def test_webhook_without_its_configmap_assumes_policy_enabled() -> None:
    snap = snapshot(namespace("datadog", **{"istio-injection": "enabled"}), WEBHOOK_1_0)
    got = injection_decision(snap, daemonset(), MESH_1_0)
    assert got.injected is True
    assert got.reason.endswith("(ConfigMap istio-sidecar-injector is not in the snapshot: assumed policy enabled)")


def test_injector_configmap_prefers_the_control_plane_namespace_and_the_revision() -> None:
    from meshdoctor.istio.injection import injector_configmap

    elsewhere = injector_configmap_1_4("disabled")
    elsewhere["metadata"]["namespace"] = "istio-old"
    canary = injector_configmap_1_4(name="istio-sidecar-injector-canary")
    snap = snapshot(elsewhere, injector_configmap_1_4(), canary)
    found = injector_configmap(snap, MESH_1_30)
    assert found is not None and found["metadata"]["namespace"] == "istio-system"
    old = injector_configmap(snap, SimpleNamespace(version="1.4.10", era="mixer", namespace="istio-old"))
    assert old is not None and old["metadata"]["namespace"] == "istio-old"
    assert injector_configmap(snap, MESH_1_30, "canary") is canary
    assert injector_configmap(snapshot(), MESH_1_30) is None


def test_1_30_enable_namespaces_by_default_webhook_uses_the_namespace_name_label() -> None:
    auto = webhook_1_30()
    auto["webhooks"].append(
        _hook(
            "auto.",
            {
                "matchExpressions": [
                    _expr("istio-injection", "DoesNotExist"),
                    _expr("istio.io/rev", "DoesNotExist"),
                    _expr(
                        "kubernetes.io/metadata.name",
                        "NotIn",
                        "kube-system",
                        "kube-public",
                        "kube-node-lease",
                        "local-path-storage",
                    ),
                ]
            },
            {
                "matchExpressions": [
                    _expr("sidecar.istio.io/inject", "DoesNotExist"),
                    _expr("istio.io/rev", "DoesNotExist"),
                ]
            },
        )
    )
    # The API server sets kubernetes.io/metadata.name; a manifest's Namespace may lack it.
    snap = snapshot(namespace("datadog"), namespace("kube-public"), auto, injector_configmap_1_4())
    got = injection_decision(snap, daemonset(), MESH_1_30)
    assert got.injected is True
    assert got.reason.startswith("webhook auto.sidecar-injector.istio.io")
    assert injection_decision(snap, daemonset(ns="kube-public"), MESH_1_30).injected is False


# -- revisions and tags (istio-discovery templates/mutatingwebhook.yaml, revision-tags.yaml) -------


def _rev_webhooks(service: str, value: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "rev.namespace.sidecar-injector.istio.io",
            "clientConfig": {"service": {"name": service, "namespace": "istio-system", "path": "/inject"}},
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "istio.io/rev", "operator": "In", "values": [value]},
                    {"key": "istio-injection", "operator": "DoesNotExist"},
                ]
            },
            "objectSelector": {
                "matchExpressions": [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]
            },
        }
    ]


def _revision_snapshot(ns_labels: dict[str, str]) -> Snapshot:
    snap = Snapshot()
    snap.add(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector", "labels": {"istio.io/rev": "default"}},
            "webhooks": _rev_webhooks("istiod", "default")
            + [
                {
                    "name": "namespace.sidecar-injector.istio.io",
                    "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/inject"}},
                    "namespaceSelector": {
                        "matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]
                    },
                }
            ],
        }
    )
    snap.add(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector-1-22", "labels": {"istio.io/rev": "1-22"}},
            "webhooks": _rev_webhooks("istiod-1-22", "1-22"),
        }
    )
    snap.add(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {
                "name": "istio-revision-tag-prod",
                "labels": {"istio.io/rev": "1-22", "istio.io/tag": "prod"},
            },
            "webhooks": _rev_webhooks("istiod-1-22", "prod"),
        }
    )
    snap.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": ns_labels}})
    return snap


def _deployment_in_apps() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}}},
    }


@pytest.mark.parametrize(
    ("ns_labels", "revision", "tag"),
    [
        ({"istio.io/rev": "1-22"}, "1-22", None),
        ({"istio.io/rev": "prod"}, "1-22", "prod"),
        ({"istio-injection": "enabled"}, "default", None),
        # istio-injection wins: every revision webhook requires `istio-injection DoesNotExist`
        ({"istio-injection": "enabled", "istio.io/rev": "1-22"}, "default", None),
    ],
)
def test_the_injecting_revision_is_the_selected_webhooks(ns_labels: dict, revision: str, tag: str | None) -> None:
    decision = injection_decision(_revision_snapshot(ns_labels), _deployment_in_apps())
    assert decision.injected is True
    assert (decision.revision, decision.tag) == (revision, tag)


def test_an_injected_pod_says_its_revision_in_its_annotations() -> None:
    from meshdoctor.istio.injection import injected_revision

    status = json.dumps({"containers": ["istio-proxy"], "revision": "1-23"})
    pod = {"kind": "Pod", "metadata": {"annotations": {"sidecar.istio.io/status": status}}}
    assert injected_revision(pod) == "1-23"
    pod["metadata"]["annotations"]["istio.io/rev"] = "1-24"
    assert injected_revision(pod) == "1-24"
    assert injected_revision({"kind": "Pod", "metadata": {"labels": {"istio.io/rev": "prod"}}}) is None
