"""The offline RBAC evaluator against the API server's own SubjectAccessReview.

A set of roles and bindings covering wildcards, subresources, resourceNames, nonResourceURLs,
aggregation, RoleBinding -> ClusterRole scoping, group and service-account subjects (with and
without namespace), a subject naming another namespace's service account, and a dangling
roleRef is created on the live cluster; the snapshot the
evaluator reads is collected from the same cluster by the live source (so the built-in roles and
bindings, e.g. `system:discovery` for `system:authenticated`, are in it too); then every
(subject, request) pair of the matrix is asked of both. Zero disagreements.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from meshdoctor.kube.rbac import RbacEvaluator, Request, service_account_user
from meshdoctor.rule import inputs
from meshdoctor.sources.live import LiveOptions, collect_live

pytestmark = pytest.mark.live

RBAC = "rbac.authorization.k8s.io/v1"


def _cluster_role(
    name: str,
    rules: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    aggregate: dict[str, str] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name}}
    if labels:
        obj["metadata"]["labels"] = labels
    if aggregate is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": aggregate}]}
    else:
        obj["rules"] = rules or []
    return obj


def _binding(
    kind: str, name: str, role_kind: str, role: str, subjects: list[dict[str, Any]], namespace: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": RBAC,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def _user(name: str) -> dict[str, Any]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


def _group(name: str) -> dict[str, Any]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def _sa(name: str, namespace: str | None) -> dict[str, Any]:
    subject = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        subject["namespace"] = namespace
    return subject


def world(tag: str, ns_a: str, ns_b: str) -> list[dict[str, Any]]:
    """Roles and bindings of the matrix; every name carries `tag`."""
    t = tag
    agg_label = {f"matrix.meshdoctor.io/{t}": "true"}
    return [
        _cluster_role(f"{t}-pods-all-verbs", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]),
        _cluster_role(f"{t}-get-everything", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}]),
        _cluster_role(
            f"{t}-subresources", [{"apiGroups": [""], "resources": ["pods/log", "nodes/proxy"], "verbs": ["get"]}]
        ),
        _cluster_role(
            f"{t}-any-scale", [{"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update", "get"]}]
        ),
        _cluster_role(
            f"{t}-named-configmap",
            [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["datadogtoken"],
                    "verbs": ["get", "update"],
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            ],
        ),
        _cluster_role(f"{t}-nonresource", [{"nonResourceURLs": ["/metrics", "/healthz/*", "/logs"], "verbs": ["get"]}]),
        _cluster_role(
            f"{t}-apps-read",
            [
                {
                    "apiGroups": ["apps", "extensions"],
                    "resources": ["daemonsets", "deployments"],
                    "verbs": ["list", "watch"],
                }
            ],
        ),
        _cluster_role(f"{t}-aggregated", aggregate=agg_label),
        _cluster_role(
            f"{t}-agg-part-1",
            [{"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["list"]}],
            labels=agg_label,
        ),
        _cluster_role(
            f"{t}-agg-part-2",
            [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": ["datadog-leader-election"],
                    "verbs": ["get", "update"],
                }
            ],
            labels=agg_label,
        ),
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {"name": f"{t}-secrets", "namespace": ns_a},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["*"], "verbs": ["delete"], "resourceNames": ["victim"]},
            ],
        },
        _binding("ClusterRoleBinding", f"{t}-u1-pods", "ClusterRole", f"{t}-pods-all-verbs", [_user(f"{t}-user-1")]),
        _binding("ClusterRoleBinding", f"{t}-ops", "ClusterRole", f"{t}-nonresource", [_group(f"{t}-ops")]),
        _binding("ClusterRoleBinding", f"{t}-ops-sub", "ClusterRole", f"{t}-subresources", [_group(f"{t}-ops")]),
        _binding("RoleBinding", f"{t}-u2-cm", "ClusterRole", f"{t}-named-configmap", [_user(f"{t}-user-2")], ns_a),
        _binding("RoleBinding", f"{t}-agent-secrets", "Role", f"{t}-secrets", [_sa("agent", None)], ns_a),
        _binding(
            "RoleBinding",
            f"{t}-ns-a-sas-apps",
            "ClusterRole",
            f"{t}-apps-read",
            [_group(f"system:serviceaccounts:{ns_a}")],
            ns_b,
        ),
        _binding("ClusterRoleBinding", f"{t}-other-agg", "ClusterRole", f"{t}-aggregated", [_sa("other", ns_b)]),
        _binding("ClusterRoleBinding", f"{t}-u3", "ClusterRole", f"{t}-any-scale", [_user(f"{t}-user-3")]),
        _binding("ClusterRoleBinding", f"{t}-u3-get", "ClusterRole", f"{t}-get-everything", [_user(f"{t}-user-3")]),
        _binding("RoleBinding", f"{t}-dangling", "Role", f"{t}-does-not-exist", [_user(f"{t}-user-4")], ns_b),
        # (a ServiceAccount subject without namespace is refused in a ClusterRoleBinding by validation)
        _binding("RoleBinding", f"{t}-sa-other-ns", "ClusterRole", f"{t}-pods-all-verbs", [_sa("nobody", ns_b)], ns_a),
        _binding("RoleBinding", f"{t}-u4-in-b", "ClusterRole", f"{t}-get-everything", [_user(f"{t}-user-4")], ns_b),
    ]


def subjects(tag: str, ns_a: str, ns_b: str) -> list[tuple[str, tuple[str, ...]]]:
    auth = ("system:authenticated",)
    return [
        (f"{tag}-user-1", auth),
        (f"{tag}-user-2", auth),
        (f"{tag}-user-3", auth),
        (f"{tag}-user-4", auth),
        (f"{tag}-user-5", (f"{tag}-ops", "system:authenticated")),
        service_account_user(ns_a, "agent"),
        service_account_user(ns_b, "other"),
        service_account_user(ns_a, "nobody"),
        service_account_user(ns_b, "agent"),
    ]


def requests(ns_a: str, ns_b: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    resources = [
        ("", "pods", "", ""),
        ("", "pods", "log", ""),
        ("", "nodes", "proxy", "node-1"),
        ("", "configmaps", "", "datadogtoken"),
        ("", "configmaps", "", "other"),
        ("", "configmaps", "", ""),
        ("", "secrets", "", ""),
        ("", "secrets", "", "victim"),
        ("apps", "deployments", "scale", "web"),
        ("apps", "daemonsets", "", ""),
        ("coordination.k8s.io", "leases", "", "datadog-leader-election"),
        ("", "services", "", ""),
    ]
    for (group, resource, sub, name), verb, ns in itertools.product(
        resources, ("get", "list", "update", "delete", "create"), (ns_a, ns_b, "")
    ):
        if resource == "nodes" and ns:
            continue
        out.append(
            {"api_group": group, "resource": resource, "subresource": sub, "name": name, "verb": verb, "namespace": ns}
        )
    for url, verb in itertools.product(
        ("/metrics", "/healthz", "/healthz/ready", "/version", "/logs/x", "/api"), ("get", "post")
    ):
        out.append({"non_resource_url": url, "verb": verb})
    return out


def _sar(live_cluster: Any, request: Request) -> bool:
    r = live_cluster.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", request.access_review(), check=True)
    return bool(r.body["status"].get("allowed"))


@pytest.fixture
def rbac_world(live_cluster: Any) -> Any:
    tag = f"m{uuid.uuid4().hex[:6]}"
    ns_a, ns_b = f"{tag}-a", f"{tag}-b"
    for ns in (ns_a, ns_b):
        live_cluster.post(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, check=True
        )
    objects = world(tag, ns_a, ns_b)
    plural = {
        "ClusterRole": "clusterroles",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "ClusterRoleBinding": "clusterrolebindings",
    }
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        base = "/apis/rbac.authorization.k8s.io/v1" + (f"/namespaces/{ns}" if ns else "")
        live_cluster.post(f"{base}/{plural[obj['kind']]}", obj, check=True)

    def aggregated() -> bool:
        r = live_cluster.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{tag}-aggregated")
        return r.ok and len(r.body.get("rules") or []) == 2

    live_cluster.wait_for(aggregated, 60, what="the aggregation controller to fill the aggregated ClusterRole")
    try:
        yield tag, ns_a, ns_b
    finally:
        for obj in objects:
            if obj["kind"].startswith("Cluster"):
                live_cluster.delete(
                    f"/apis/rbac.authorization.k8s.io/v1/{plural[obj['kind']]}/{obj['metadata']['name']}"
                )
        for ns in (ns_a, ns_b):
            live_cluster.delete(f"/api/v1/namespaces/{ns}")


def test_evaluator_agrees_with_subject_access_review(live_cluster: Any, rbac_world: Any) -> None:
    tag, ns_a, ns_b = rbac_world
    snapshot, source = collect_live(
        LiveOptions(kubeconfig=str(live_cluster.admin_kubeconfig), environ={}),
        inputs("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
    )
    assert source.missing == ()
    evaluator = RbacEvaluator(snapshot)
    pairs = [
        Request(user, groups, **attrs)
        for (user, groups), attrs in itertools.product(subjects(tag, ns_a, ns_b), requests(ns_a, ns_b))
    ]
    assert len(pairs) >= 200
    disagreements = []
    allowed = 0
    for request in pairs:
        server = _sar(live_cluster, request)
        ours = evaluator.allows(request).allowed
        allowed += server
        if server != ours:
            disagreements.append(
                f"{request.user} {list(request.groups)} {request.describe()}: server={server} ours={ours}"
            )
    print(f"\n{len(pairs)} pairs, {allowed} allowed by the server, {len(disagreements)} disagreements")
    # the matrix must exercise both answers substantially
    assert 50 <= allowed <= len(pairs) - 50
    assert disagreements == []
