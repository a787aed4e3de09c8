from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshdoctor.kube.kinds import KINDS, UnknownKind, kind_info, known, with_type

ROOT = Path(__file__).resolve().parents[1]


def test_table_rows_are_keyed_by_their_kind_and_plurals_are_unique() -> None:
    assert all(info.kind == kind for kind, info in KINDS.items())
    resources = [(info.group, info.plural) for info in KINDS.values()]
    assert len(resources) == len(set(resources))


def test_every_kind_the_brief_lists_is_there() -> None:
    assert set(KINDS) >= {
        "Pod",
        "Service",
        "Endpoints",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Namespace",
        "Node",
        "Event",
        "DaemonSet",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "Job",
        "CronJob",
        "EndpointSlice",
        "NetworkPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "CustomResourceDefinition",
        "ServiceEntry",
        "Sidecar",
        "DestinationRule",
        "VirtualService",
        "Gateway",
        "PeerAuthentication",
        "Policy",
        "MeshPolicy",
        "DatadogAgent",
    }


def test_istio_networking_versions_in_preference_order() -> None:
    for kind in ("ServiceEntry", "Sidecar", "DestinationRule", "VirtualService", "Gateway"):
        assert kind_info(kind).versions == ("v1", "v1beta1", "v1alpha3")
        assert kind_info(kind).custom
    assert kind_info("MeshPolicy").namespaced is False
    assert kind_info("Policy").api_version() == "authentication.istio.io/v1alpha1"


def test_paths() -> None:
    pod = kind_info("Pod")
    assert pod.list_path() == "/api/v1/pods"
    assert pod.list_path(namespace="datadog") == "/api/v1/namespaces/datadog/pods"
    se = kind_info("ServiceEntry")
    assert (
        se.list_path("v1beta1", "istio-system")
        == "/apis/networking.istio.io/v1beta1/namespaces/istio-system/serviceentries"
    )
    node = kind_info("Node")
    assert node.list_path(namespace="ignored-for-cluster-scoped") == "/api/v1/nodes"
    assert kind_info("ClusterRole").resource == "clusterroles.rbac.authorization.k8s.io"
    assert kind_info("CronJob").api_version("v1beta1") == "batch/v1beta1"


def test_unknown_kind() -> None:
    with pytest.raises(UnknownKind, match="unknown kind 'Frob'"):
        kind_info("Frob")
    rows, unknown = known(["Pod", "Frob", "Node", "Pod"])
    assert [r.kind for r in rows] == ["Node", "Pod"]
    assert unknown == ["Frob"]


def test_with_type_sets_kind_and_api_version_first() -> None:
    items = [{"metadata": {"name": "a"}, "spec": {}}, {"apiVersion": "x", "kind": "y", "metadata": {"name": "b"}}]
    typed = with_type(items, "DaemonSet", "apps/v1")
    assert typed == [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a"}, "spec": {}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "b"}},
    ]
    assert list(typed[0]) == ["apiVersion", "kind", "metadata", "spec"]


def test_clusterrole_grants_exactly_the_table() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "meshdoctor-clusterrole.yaml").read_text()))
    role, binding = docs
    assert (role["kind"], binding["kind"], binding["roleRef"]["name"]) == (
        "ClusterRole",
        "ClusterRoleBinding",
        "meshdoctor",
    )
    read: set[tuple[str, str]] = set()
    other: set[tuple[str, str, str]] = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                if rule["verbs"] == ["get", "list"]:
                    read.add((group, resource))
                else:
                    for verb in rule["verbs"]:
                        other.add((group, resource, verb))
        assert "resourceNames" not in rule
    assert read == {(info.group, info.plural) for info in KINDS.values()}
    assert other == {
        ("", "pods/log", "get"),
        ("", "services/proxy", "get"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
