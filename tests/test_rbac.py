from __future__ import annotations

from typing import Any

import pytest

from meshdoctor.datadog import permissions as ap
from meshdoctor.kube.rbac import (
    BindingSubject,
    Decision,
    Grant,
    MissingRole,
    RbacEvaluator,
    Request,
    bindings_for_service_account,
    service_account_user,
)
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import Snapshot

SA_USER, SA_GROUPS = service_account_user("datadog", "agent")
SA = {"kind": "ServiceAccount", "name": "agent", "namespace": "datadog"}


def rule(
    verbs: list[str],
    resources: list[str] | None = None,
    groups: list[str] | None = None,
    names: list[str] | None = None,
    urls: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs}
    if resources is not None:
        out["apiGroups"] = [""] if groups is None else groups
        out["resources"] = resources
    elif groups is not None:
        out["apiGroups"] = groups
    if names is not None:
        out["resourceNames"] = names
    if urls is not None:
        out["nonResourceURLs"] = urls
    return out


def cr(
    name: str,
    *rules: dict[str, Any],
    labels: dict[str, str] | None = None,
    aggregation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
    }
    if labels:
        obj["metadata"]["labels"] = labels
    if aggregation is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": aggregation}
    return obj


def role(ns: str, name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": ns},
        "rules": list(rules),
    }


def crb(name: str, role_name: str, *subjects: dict[str, Any], role_kind: str = "ClusterRole") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def rb(ns: str, name: str, role_kind: str, role_name: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def req(
    verb: str,
    resource: str = "",
    ns: str = "",
    name: str = "",
    group: str = "",
    sub: str = "",
    user: str = SA_USER,
    groups: tuple[str, ...] = SA_GROUPS,
) -> Request:
    return Request(user, groups, verb, group, resource, sub, ns, name)


def url(verb: str, path: str, user: str = SA_USER, groups: tuple[str, ...] = SA_GROUPS) -> Request:
    return Request(user, groups, verb, non_resource_url=path)


def snapshot(*objects: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for obj in objects:
        snap.add(obj)
    return snap


def bound(*rules: dict[str, Any]) -> list[dict[str, Any]]:
    """A ClusterRole with the rules, bound cluster-wide to the agent's service account."""
    return [cr("r", *rules), crb("b", "r", SA)]


AGG = {"rbac.example.com/aggregate-to-agent": "true"}

CASES: list[tuple[str, list[dict[str, Any]], Request, bool]] = [
    # verbs
    ("verb exact", bound(rule(["get"], ["pods"])), req("get", "pods", "default"), True),
    ("verb other", bound(rule(["get"], ["pods"])), req("list", "pods", "default"), False),
    ("verb star", bound(rule(["*"], ["pods"])), req("delete", "pods", "default", "p"), True),
    ("verb case sensitive", bound(rule(["GET"], ["pods"])), req("get", "pods", "default"), False),
    ("no verbs", bound(rule([], ["pods"])), req("get", "pods", "default"), False),
    # api groups
    (
        "core rule, apps request",
        bound(rule(["get"], ["deployments"])),
        req("get", "deployments", "d", group="apps"),
        False,
    ),
    (
        "apps rule",
        bound(rule(["get"], ["deployments"], ["apps"])),
        req("get", "deployments", "d", group="apps"),
        True,
    ),
    (
        "group star",
        bound(rule(["get"], ["leases"], ["*"])),
        req("get", "leases", "d", group="coordination.k8s.io"),
        True,
    ),
    (
        "apps rule, core request",
        bound(rule(["get"], ["pods"], ["apps"])),
        req("get", "pods", "d"),
        False,
    ),
    (
        "no apiGroups",
        bound({"verbs": ["get"], "resources": ["pods"]}),
        req("get", "pods", "d"),
        False,
    ),
    (
        "resource star, wrong group",
        bound(rule(["get"], ["*"])),
        req("get", "deployments", "d", group="apps"),
        False,
    ),
    # resources and subresources
    ("resource star", bound(rule(["get"], ["*"])), req("get", "pods", "d"), True),
    (
        "resource star covers subresource",
        bound(rule(["get"], ["*"])),
        req("get", "nodes", sub="proxy", name="n1"),
        True,
    ),
    (
        "plain resource not subresource",
        bound(rule(["get"], ["nodes"])),
        req("get", "nodes", sub="proxy", name="n1"),
        False,
    ),
    (
        "exact subresource",
        bound(rule(["get"], ["nodes/proxy"])),
        req("get", "nodes", sub="proxy", name="n1"),
        True,
    ),
    (
        "subresource rule not resource",
        bound(rule(["get"], ["nodes/proxy"])),
        req("get", "nodes", name="n1"),
        False,
    ),
    (
        "star-slash subresource",
        bound(rule(["get"], ["*/proxy"])),
        req("get", "nodes", sub="proxy"),
        True,
    ),
    (
        "star-slash other resource",
        bound(rule(["get"], ["*/proxy"])),
        req("get", "services", "d", sub="proxy"),
        True,
    ),
    ("star-slash not plain", bound(rule(["get"], ["*/proxy"])), req("get", "nodes"), False),
    (
        "star-slash other subresource",
        bound(rule(["get"], ["*/status"])),
        req("get", "nodes", sub="proxy"),
        False,
    ),
    (
        "resource-slash-star is literal",
        bound(rule(["get"], ["nodes/*"])),
        req("get", "nodes", sub="proxy"),
        False,
    ),
    ("resource case sensitive", bound(rule(["get"], ["Pods"])), req("get", "pods", "d"), False),
    (
        "kubelet stats",
        bound(rule(["get"], ["nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"])),
        req("get", "nodes", sub="stats", name="n1"),
        True,
    ),
    (
        "kubelet logs not granted",
        bound(rule(["get"], ["nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"])),
        req("get", "nodes", sub="logs", name="n1"),
        False,
    ),
    # resource names
    (
        "name listed",
        bound(rule(["get"], ["configmaps"], names=["datadogtoken"])),
        req("get", "configmaps", "datadog", "datadogtoken"),
        True,
    ),
    (
        "name not listed",
        bound(rule(["get"], ["configmaps"], names=["datadogtoken"])),
        req("get", "configmaps", "datadog", "other"),
        False,
    ),
    (
        "names vs list",
        bound(rule(["list"], ["configmaps"], names=["datadogtoken"])),
        req("list", "configmaps", "datadog"),
        False,
    ),
    (
        "names vs create",
        bound(rule(["create"], ["configmaps"], names=["datadogtoken"])),
        req("create", "configmaps", "datadog"),
        False,
    ),
    (
        "empty names = any",
        bound(rule(["get"], ["configmaps"], names=[])),
        req("get", "configmaps", "d", "x"),
        True,
    ),
    (
        "names and update",
        bound(rule(["get", "update"], ["configmaps"], names=["datadogtoken", "datadog-leader-election"])),
        req("update", "configmaps", "datadog", "datadog-leader-election"),
        True,
    ),
    (
        "names with subresource",
        bound(rule(["get"], ["nodes/proxy"], names=["n1"])),
        req("get", "nodes", name="n2", sub="proxy"),
        False,
    ),
    # non-resource URLs
    ("url exact", bound(rule(["get"], urls=["/version"])), url("get", "/version"), True),
    (
        "url trailing slash differs",
        bound(rule(["get"], urls=["/metrics"])),
        url("get", "/metrics/"),
        False,
    ),
    (
        "url prefix star",
        bound(rule(["get"], urls=["/metrics*"])),
        url("get", "/metrics/slis"),
        True,
    ),
    (
        "url prefix star is a string prefix",
        bound(rule(["get"], urls=["/metrics*"])),
        url("get", "/metricsfoo"),
        True,
    ),
    ("url star", bound(rule(["get"], urls=["*"])), url("get", "/anything/at/all"), True),
    (
        "url slash-star needs the slash",
        bound(rule(["get"], urls=["/logs/*"])),
        url("get", "/logs"),
        False,
    ),
    (
        "url slash-star",
        bound(rule(["get"], urls=["/logs/*"])),
        url("get", "/logs/kube-apiserver.log"),
        True,
    ),
    ("url verb", bound(rule(["get"], urls=["/version"])), url("post", "/version"), False),
    (
        "url via RoleBinding to ClusterRole",
        [cr("r", rule(["get"], urls=["/metrics"])), rb("datadog", "b", "ClusterRole", "r", SA)],
        url("get", "/metrics"),
        False,
    ),
    (
        "resource wildcard is not a url",
        bound(rule(["*"], ["*"], ["*"])),
        url("get", "/metrics"),
        False,
    ),
    (
        "url rule is not a resource",
        bound(rule(["get"], urls=["*"])),
        req("get", "pods", "d"),
        False,
    ),
    (
        "healthz",
        bound(rule(["get"], urls=["/version", "/healthz", "/metrics"])),
        url("get", "/healthz"),
        True,
    ),
    # binding scope
    (
        "RoleBinding to Role, same ns",
        [role("datadog", "r", rule(["get"], ["pods"])), rb("datadog", "b", "Role", "r", SA)],
        req("get", "pods", "datadog"),
        True,
    ),
    (
        "RoleBinding to Role, other ns",
        [role("datadog", "r", rule(["get"], ["pods"])), rb("datadog", "b", "Role", "r", SA)],
        req("get", "pods", "default"),
        False,
    ),
    (
        "RoleBinding to Role, cluster-scoped",
        [role("datadog", "r", rule(["get"], ["nodes"])), rb("datadog", "b", "Role", "r", SA)],
        req("get", "nodes"),
        False,
    ),
    (
        "RoleBinding to ClusterRole, binding ns",
        [cr("r", rule(["get"], ["pods"])), rb("datadog", "b", "ClusterRole", "r", SA)],
        req("get", "pods", "datadog"),
        True,
    ),
    (
        "RoleBinding to ClusterRole, other ns",
        [cr("r", rule(["get"], ["pods"])), rb("datadog", "b", "ClusterRole", "r", SA)],
        req("get", "pods", "default"),
        False,
    ),
    (
        "RoleBinding to ClusterRole, all namespaces",
        [cr("r", rule(["list"], ["pods"])), rb("datadog", "b", "ClusterRole", "r", SA)],
        req("list", "pods"),
        False,
    ),
    (
        "RoleBinding to ClusterRole, cluster-scoped",
        [cr("r", rule(["get"], ["nodes"])), rb("datadog", "b", "ClusterRole", "r", SA)],
        req("get", "nodes", name="n1"),
        False,
    ),
    (
        "ClusterRoleBinding, any ns",
        bound(rule(["get"], ["pods"])),
        req("get", "pods", "kube-system"),
        True,
    ),
    (
        "ClusterRoleBinding, all namespaces",
        bound(rule(["list"], ["pods"])),
        req("list", "pods"),
        True,
    ),
    (
        "ClusterRoleBinding, cluster-scoped",
        bound(rule(["get"], ["nodes"])),
        req("get", "nodes", name="n1"),
        True,
    ),
    (
        "Role of another namespace",
        [role("other", "r", rule(["get"], ["pods"])), rb("datadog", "b", "Role", "r", SA)],
        req("get", "pods", "datadog"),
        False,
    ),
    (
        "ClusterRoleBinding to a Role",
        [role("datadog", "r", rule(["get"], ["pods"])), crb("b", "r", SA, role_kind="Role")],
        req("get", "pods", "datadog"),
        False,
    ),
    ("missing ClusterRole", [crb("b", "absent", SA)], req("get", "pods", "datadog"), False),
    (
        "missing Role",
        [rb("datadog", "b", "Role", "absent", SA)],
        req("get", "pods", "datadog"),
        False,
    ),
    (
        "ClusterRole named like a Role",
        [cr("r", rule(["get"], ["pods"])), rb("datadog", "b", "Role", "r", SA)],
        req("get", "pods", "datadog"),
        False,
    ),
    # subjects
    (
        "SA in another namespace",
        [cr("r", rule(["get"], ["pods"])), crb("b", "r", {**SA, "namespace": "default"})],
        req("get", "pods", "datadog"),
        False,
    ),
    (
        "SA without namespace in ClusterRoleBinding",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "ServiceAccount", "name": "agent"}),
        ],
        req("get", "pods", "datadog"),
        False,
    ),
    (
        "SA without namespace in RoleBinding defaults to it",
        [
            cr("r", rule(["get"], ["pods"])),
            rb("datadog", "b", "ClusterRole", "r", {"kind": "ServiceAccount", "name": "agent"}),
        ],
        req("get", "pods", "datadog"),
        True,
    ),
    (
        "SA without namespace in RoleBinding of another ns",
        [
            cr("r", rule(["get"], ["pods"])),
            rb("default", "b", "ClusterRole", "r", {"kind": "ServiceAccount", "name": "agent"}),
        ],
        req("get", "pods", "default"),
        False,
    ),
    (
        "SA with explicit other ns in RoleBinding",
        [cr("r", rule(["get"], ["pods"])), rb("default", "b", "ClusterRole", "r", SA)],
        req("get", "pods", "default"),
        True,
    ),
    (
        "SA name differs",
        [cr("r", rule(["get"], ["pods"])), crb("b", "r", {**SA, "name": "datadog"})],
        req("get", "pods", "d"),
        False,
    ),
    (
        "User subject",
        [cr("r", rule(["get"], ["pods"])), crb("b", "r", {"kind": "User", "name": "alice"})],
        req("get", "pods", "d", user="alice", groups=()),
        True,
    ),
    (
        "User subject with the SA's user name",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "User", "name": SA_USER, "apiGroup": "rbac.authorization.k8s.io"}),
        ],
        req("get", "pods", "d"),
        True,
    ),
    (
        "User subject is not a group",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "User", "name": "system:authenticated"}),
        ],
        req("get", "pods", "d"),
        False,
    ),
    (
        "Group all service accounts",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "Group", "name": "system:serviceaccounts"}),
        ],
        req("get", "pods", "d"),
        True,
    ),
    (
        "Group service accounts of its ns",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "Group", "name": "system:serviceaccounts:datadog"}),
        ],
        req("get", "pods", "d"),
        True,
    ),
    (
        "Group service accounts of another ns",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "Group", "name": "system:serviceaccounts:default"}),
        ],
        req("get", "pods", "d"),
        False,
    ),
    (
        "Group authenticated",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "Group", "name": "system:authenticated"}),
        ],
        req("get", "pods", "d"),
        True,
    ),
    (
        "Group the user is not in",
        [cr("r", rule(["get"], ["pods"])), crb("b", "r", {"kind": "Group", "name": "ops"})],
        req("get", "pods", "d"),
        False,
    ),
    (
        "unknown subject kind",
        [
            cr("r", rule(["get"], ["pods"])),
            crb("b", "r", {"kind": "Robot", "name": "agent", "namespace": "datadog"}),
        ],
        req("get", "pods", "d"),
        False,
    ),
    (
        "second subject applies",
        [cr("r", rule(["get"], ["pods"])), crb("b", "r", {"kind": "User", "name": "bob"}, SA)],
        req("get", "pods", "d"),
        True,
    ),
    (
        "no subjects",
        [cr("r", rule(["get"], ["pods"])), crb("b", "r")],
        req("get", "pods", "d"),
        False,
    ),
    ("nothing at all", [], req("get", "pods", "d"), False),
    # superuser
    (
        "system:masters resource",
        [],
        req("delete", "nodes", name="n1", user="admin", groups=("system:masters",)),
        True,
    ),
    (
        "system:masters url",
        [],
        url("get", "/anything", user="admin", groups=("system:masters", "system:authenticated")),
        True,
    ),
    (
        "user named system:masters is not the group",
        [],
        req("get", "pods", "d", user="system:masters", groups=()),
        False,
    ),
    # aggregation
    (
        "aggregated rules",
        [
            cr("agg", aggregation=[{"matchLabels": AGG}]),
            cr("part", rule(["get"], ["pods"]), labels=AGG),
            crb("b", "agg", SA),
        ],
        req("get", "pods", "d"),
        True,
    ),
    (
        "aggregation skips unlabelled",
        [
            cr("agg", aggregation=[{"matchLabels": AGG}]),
            cr("part", rule(["get"], ["pods"])),
            crb("b", "agg", SA),
        ],
        req("get", "pods", "d"),
        False,
    ),
    (
        "aggregation replaces own rules",
        [
            cr("agg", rule(["get"], ["secrets"]), aggregation=[{"matchLabels": AGG}]),
            cr("part", rule(["get"], ["pods"]), labels=AGG),
            crb("b", "agg", SA),
        ],
        req("get", "secrets", "d"),
        False,
    ),
    (
        "aggregation matching nothing keeps own rules",
        [
            cr("agg", rule(["get"], ["secrets"]), aggregation=[{"matchLabels": AGG}]),
            crb("b", "agg", SA),
        ],
        req("get", "secrets", "d"),
        True,
    ),
    (
        "aggregation matchExpressions In",
        [
            cr(
                "agg",
                aggregation=[{"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}],
            ),
            cr("part", rule(["get"], ["pods"]), labels={"tier": "b"}),
            crb("b", "agg", SA),
        ],
        req("get", "pods", "d"),
        True,
    ),
    (
        "aggregation matchExpressions NotIn",
        [
            cr(
                "agg",
                aggregation=[
                    {
                        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["b"]}],
                        "matchLabels": AGG,
                    }
                ],
            ),
            cr("part", rule(["get"], ["pods"]), labels={**AGG, "tier": "b"}),
            crb("b", "agg", SA),
        ],
        req("get", "pods", "d"),
        False,
    ),
    (
        "nested aggregation",
        [
            cr("top", aggregation=[{"matchLabels": {"to-top": "true"}}]),
            cr("mid", labels={"to-top": "true"}, aggregation=[{"matchLabels": {"to-mid": "true"}}]),
            cr("leaf", rule(["watch"], ["pods"]), labels={"to-mid": "true"}),
            crb("b", "top", SA),
        ],
        req("watch", "pods", "d"),
        True,
    ),
    (
        "empty selector aggregates all others",
        [cr("agg", aggregation=[{}]), cr("part", rule(["get"], ["pods"])), crb("b", "agg", SA)],
        req("get", "pods", "d"),
        True,
    ),
    # invalid on a real server (at least one selector is required): the semantics for files
    (
        "no selectors keeps own rules",
        [cr("agg", rule(["get"], ["pods"]), aggregation=[]), crb("b", "agg", SA)],
        req("get", "pods", "d"),
        True,
    ),
    (
        "aggregation never includes itself",
        [
            cr("agg", rule(["get"], ["pods"]), labels=AGG, aggregation=[{"matchLabels": AGG}]),
            cr("part", rule(["list"], ["pods"]), labels=AGG),
            crb("b", "agg", SA),
        ],
        req("get", "pods", "d"),
        False,
    ),
    (
        "aggregated role bound by RoleBinding",
        [
            cr("agg", aggregation=[{"matchLabels": AGG}]),
            cr("part", rule(["get"], ["pods"]), labels=AGG),
            rb("datadog", "b", "ClusterRole", "agg", SA),
        ],
        req("get", "pods", "datadog"),
        True,
    ),
    # the official datadog-agent ClusterRole
    # (DataDog/datadog-agent Dockerfiles/manifests/rbac/clusterrole.yaml)
    (
        "agent role: events watch",
        bound(
            rule(
                ["get", "list", "watch"],
                ["services", "events", "endpoints", "pods", "nodes", "componentstatuses"],
            )
        ),
        req("watch", "events"),
        True,
    ),
    (
        "agent role: configmap list",
        bound(rule(["get", "update"], ["configmaps"], names=["datadogtoken", "datadog-leader-election"])),
        req("list", "configmaps", "datadog"),
        False,
    ),
]


def test_case_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 60
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("objects", "request_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rbac_table(objects: list[dict[str, Any]], request_: Request, expected: bool) -> None:
    assert RbacEvaluator(snapshot(*objects)).allows(request_).allowed is expected


def test_service_account_user() -> None:
    assert service_account_user("datadog", "agent") == (
        "system:serviceaccount:datadog:agent",
        ("system:serviceaccounts", "system:serviceaccounts:datadog", "system:authenticated"),
    )


def test_decision_lists_every_grant_cluster_bindings_first() -> None:
    snap = snapshot(
        cr("view", rule(["list"], ["services"]), rule(["get", "list"], ["pods"])),
        cr("all", rule(["*"], ["*"], ["*"])),
        crb("z-binding", "all", {"kind": "Group", "name": "system:serviceaccounts"}),
        crb("a-binding", "view", SA),
        rb("datadog", "local", "ClusterRole", "view", SA),
    )
    decision = RbacEvaluator(snap).allows(req("list", "pods", "datadog"))
    assert decision == Decision(
        True,
        [
            Grant(
                ObjectRef("ClusterRoleBinding", "", "a-binding"),
                ObjectRef("ClusterRole", "", "view"),
                1,
            ),
            Grant(
                ObjectRef("ClusterRoleBinding", "", "z-binding"),
                ObjectRef("ClusterRole", "", "all"),
                0,
            ),
            Grant(
                ObjectRef("RoleBinding", "datadog", "local"),
                ObjectRef("ClusterRole", "", "view"),
                1,
            ),
        ],
        "RBAC: allowed by ClusterRoleBinding a-binding of ClusterRole view rule 1",
    )


def test_denied_decision_reason() -> None:
    decision = RbacEvaluator(snapshot()).allows(req("get", "nodes", name="n1", sub="proxy"))
    assert decision == Decision(
        False,
        [],
        'RBAC: no rule allows user "system:serviceaccount:datadog:agent" to get nodes/proxy "n1" cluster-wide',
    )


def test_superuser_reason() -> None:
    decision = RbacEvaluator(snapshot()).allows(req("get", "pods", "d", user="u", groups=("system:masters",)))
    assert decision == Decision(True, [], "user is in the system:masters group, which may do anything")


def test_aggregated_rules_dedup_in_controller_order() -> None:
    snap = snapshot(
        cr("agg", aggregation=[{"matchLabels": AGG}, {"matchLabels": {"other": "yes"}}]),
        cr("b-part", rule(["get"], ["pods"]), rule(["list"], ["pods"]), labels=AGG),
        cr("a-part", rule(["get"], ["pods"]), labels={**AGG, "other": "yes"}),
        cr("c-part", rule(["watch"], ["pods"]), labels={"other": "yes"}),
    )
    assert RbacEvaluator(snap).cluster_role_rules("agg") == [
        rule(["get"], ["pods"]),
        rule(["list"], ["pods"]),
        rule(["watch"], ["pods"]),
    ]
    assert RbacEvaluator(snap).cluster_role_rules("absent") is None


def test_aggregation_cycle_terminates() -> None:
    snap = snapshot(
        cr(
            "a",
            rule(["get"], ["pods"]),
            labels={"x": "a"},
            aggregation=[{"matchLabels": {"x": "b"}}],
        ),
        cr(
            "b",
            rule(["list"], ["pods"]),
            labels={"x": "b"},
            aggregation=[{"matchLabels": {"x": "a"}}],
        ),
        crb("bind", "a", SA),
    )
    evaluator = RbacEvaluator(snap)
    # a takes b's effective rules, and b (inside the cycle) what a lists.
    assert evaluator.cluster_role_rules("a") == [rule(["get"], ["pods"])]
    assert evaluator.allows(req("get", "pods", "d")).allowed is True
    assert evaluator.allows(req("list", "pods", "d")).allowed is False


def test_missing_roles() -> None:
    snap = snapshot(
        cr("present"),
        crb("ok", "present", SA),
        crb("gone", "absent", SA),
        crb("role-ref", "r", SA, role_kind="Role"),
        role("datadog", "r"),
        rb("datadog", "local-ok", "Role", "r", SA),
        rb("datadog", "local-gone", "Role", "absent", SA),
        rb("default", "wrong-ns", "Role", "r", SA),
    )
    assert RbacEvaluator(snap).missing_roles() == [
        MissingRole(
            ObjectRef("ClusterRoleBinding", "", "gone"),
            ObjectRef("ClusterRole", "", "absent"),
            "not found",
        ),
        MissingRole(
            ObjectRef("ClusterRoleBinding", "", "role-ref"),
            ObjectRef("Role", "", "r"),
            "a ClusterRoleBinding cannot refer to a Role",
        ),
        MissingRole(
            ObjectRef("RoleBinding", "datadog", "local-gone"),
            ObjectRef("Role", "datadog", "absent"),
            "not found",
        ),
        MissingRole(
            ObjectRef("RoleBinding", "default", "wrong-ns"),
            ObjectRef("Role", "default", "r"),
            "not found",
        ),
    ]


def test_explain_missing_replaces_subject() -> None:
    snap = snapshot(*bound(rule(["get", "list", "watch"], ["pods"]), rule(["get"], urls=["/version"])))
    wanted = [
        Request("anyone", (), "list", resource="pods"),
        Request("anyone", (), "get", resource="nodes", name="n1", subresource="proxy"),
        Request("anyone", (), "get", non_resource_url="/version"),
        Request("anyone", (), "get", non_resource_url="/healthz"),
    ]
    missing = RbacEvaluator(snap).explain_missing((SA_USER, SA_GROUPS), wanted)
    assert missing == [
        Request(SA_USER, SA_GROUPS, "get", resource="nodes", name="n1", subresource="proxy"),
        Request(SA_USER, SA_GROUPS, "get", non_resource_url="/healthz"),
    ]
    assert [str(m) for m in missing] == ['get nodes/proxy "n1" cluster-wide', "get /healthz"]
    # Without a subject the requests' own users are used: "anyone" has nothing.
    assert RbacEvaluator(snap).explain_missing(None, wanted) == wanted


def test_request_describe() -> None:
    assert (
        req("update", "configmaps", "datadog", "datadogtoken").describe()
        == 'update configmaps "datadogtoken" in datadog'
    )
    assert (
        req("get", "leases", "datadog", group="coordination.k8s.io").describe()
        == "get leases.coordination.k8s.io in datadog"
    )
    assert Request("u", ["g"], "get", non_resource_url="/metrics").groups == ("g",)


def test_non_resource_request_ignores_namespace() -> None:
    # A non-resource request never has a namespace on the server, so RoleBindings never apply.
    snap = snapshot(cr("r", rule(["get"], urls=["/version"])), rb("datadog", "b", "ClusterRole", "r", SA))
    request = Request(SA_USER, SA_GROUPS, "get", namespace="datadog", non_resource_url="/version")
    assert RbacEvaluator(snap).allows(request).allowed is False


def test_bindings_for_service_account() -> None:
    good = {"kind": "ServiceAccount", "name": "agent", "namespace": "datadog"}
    wrong_ns = {"kind": "ServiceAccount", "name": "agent", "namespace": "default"}
    no_ns = {"kind": "ServiceAccount", "name": "agent"}
    group = {"kind": "Group", "name": "system:serviceaccounts:datadog"}
    snap = snapshot(
        crb("a-good", "r", {"kind": "User", "name": "x"}, good),
        crb("b-wrong", "r", wrong_ns),
        crb("c-no-ns", "r", no_ns),
        crb("d-group", "r", group),
        crb("e-unrelated", "r", {"kind": "ServiceAccount", "name": "other", "namespace": "datadog"}),
        rb("datadog", "local", "Role", "lr", no_ns),
        rb("default", "elsewhere", "Role", "lr", no_ns),
    )
    found = bindings_for_service_account(snap, "datadog", "agent")
    crole = ObjectRef("ClusterRole", "", "r")
    assert found.named == [
        BindingSubject(ObjectRef("ClusterRoleBinding", "", "a-good"), crole, 1, good),
        BindingSubject(
            ObjectRef("RoleBinding", "datadog", "local"),
            ObjectRef("Role", "datadog", "lr"),
            0,
            no_ns,
        ),
    ]
    assert found.other_namespace == [
        BindingSubject(ObjectRef("ClusterRoleBinding", "", "b-wrong"), crole, 0, wrong_ns),
        BindingSubject(ObjectRef("ClusterRoleBinding", "", "c-no-ns"), crole, 0, no_ns),
        BindingSubject(
            ObjectRef("RoleBinding", "default", "elsewhere"),
            ObjectRef("Role", "default", "lr"),
            0,
            no_ns,
        ),
    ]
    assert found.via_groups == [BindingSubject(ObjectRef("ClusterRoleBinding", "", "d-group"), crole, 0, group)]


# -- the agent's permissions (meshdoctor.datadog.permissions) --------------------------------


def official_like_clusterrole() -> dict[str, Any]:
    """The rules of the official datadog-agent ClusterRole, rebuilt by hand (no corpus read)."""
    return cr(
        "datadog-agent",
        rule(
            ["get", "list", "watch"],
            ["services", "events", "endpoints", "pods", "nodes", "componentstatuses"],
        ),
        rule(["get", "list"], ["clusterresourcequotas"], ["quota.openshift.io"]),
        rule(["get", "update"], ["configmaps"], names=["datadogtoken", "datadog-leader-election"]),
        rule(["create"], ["configmaps"]),
        rule(["get"], urls=["/version", "/healthz", "/metrics"]),
        rule(["get"], ["nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"]),
    )


def test_required_features() -> None:
    base = [ap.METADATA, ap.KUBELET, ap.APISERVER_URLS, ap.COMPONENT_STATUSES]
    assert ap.required_features({}) == base
    assert ap.required_features({"DD_COLLECT_KUBERNETES_EVENTS": "yes", "DD_LEADER_ELECTION": "false"}) == base
    assert ap.required_features({"DD_COLLECT_KUBERNETES_EVENTS": "true", "DD_LEADER_ELECTION": "1"}) == [
        ap.METADATA,
        ap.EVENTS,
        ap.LEADER_ELECTION,
        ap.KUBELET,
        ap.APISERVER_URLS,
        ap.COMPONENT_STATUSES,
    ]
    assert ap.required_features({"DD_LEADER_ELECTION": "True", "DD_LEADER_ELECTION_DEFAULT_RESOURCE": "lease"}) == [
        ap.METADATA,
        ap.LEADER_ELECTION_LEASE,
        ap.KUBELET,
        ap.APISERVER_URLS,
        ap.COMPONENT_STATUSES,
    ]
    assert ap.ALTERNATIVES[ap.LEADER_ELECTION] == (ap.LEADER_ELECTION_LEASE,)


def test_every_row_names_its_source_and_feature() -> None:
    assert {p.feature for p in ap.PERMISSIONS} == set(ap.FEATURES)
    sources = (ap.OFFICIAL, ap.HELM_2020, ap.HELM_2026, ap.HELM_FINE_GRAINED, ap.HELM_DCA)
    assert all(p.source in sources for p in ap.PERMISSIONS)
    assert all(bool(p.resources) != bool(p.non_resource_urls) for p in ap.PERMISSIONS)


def test_requests_for_events_uses_configured_names_and_namespace() -> None:
    env = {"DD_CLUSTER_AGENT_TOKEN_NAME": "dd-token", "DD_KUBE_RESOURCES_NAMESPACE": "monitoring"}
    requests = ap.requests_for([ap.EVENTS], "datadog", "agent", env=env)
    assert requests == [
        req("get", "events"),
        req("list", "events"),
        req("watch", "events"),
        req("get", "configmaps", "monitoring", "dd-token"),
        req("update", "configmaps", "monitoring", "dd-token"),
    ]


def test_requests_for_kubelet_and_urls() -> None:
    requests = ap.requests_for([ap.KUBELET, ap.APISERVER_URLS], "datadog", "agent", node_name="node-1")
    assert [r.describe() for r in requests] == [
        'get nodes/metrics "node-1" cluster-wide',
        'get nodes/spec "node-1" cluster-wide',
        'get nodes/proxy "node-1" cluster-wide',
        'get nodes/stats "node-1" cluster-wide',
        "get /version",
        "get /healthz",
        "get /metrics",
    ]
    with pytest.raises(ValueError, match="unknown agent feature"):
        ap.requests_for(["logs"], "datadog", "agent")


def test_official_clusterrole_covers_configmap_features_not_leases() -> None:
    snap = snapshot(official_like_clusterrole(), crb("datadog-agent", "datadog-agent", SA))
    evaluator = RbacEvaluator(snap)
    subject = service_account_user("datadog", "agent")
    left_out = (ap.LEADER_ELECTION_LEASE, ap.KUBELET_FINE_GRAINED, *ap.CLUSTER_AGENT_ONLY)
    everything = [f for f in ap.FEATURES if f not in left_out]
    assert evaluator.explain_missing(subject, ap.requests_for(everything, "datadog", "agent")) == []
    missing = evaluator.explain_missing(subject, ap.requests_for([ap.LEADER_ELECTION_LEASE], "datadog", "agent"))
    assert [m.describe() for m in missing] == [
        'get leases.coordination.k8s.io "datadog-leader-election" in datadog',
        'update leases.coordination.k8s.io "datadog-leader-election" in datadog',
        "create leases.coordination.k8s.io in datadog",
    ]


def test_official_clusterrole_bound_to_the_wrong_namespace_grants_nothing() -> None:
    snap = snapshot(
        official_like_clusterrole(),
        crb("datadog-agent", "datadog-agent", {**SA, "namespace": "default"}),
    )
    requests = ap.requests_for(ap.required_features({}), "datadog", "agent")
    assert RbacEvaluator(snap).explain_missing(None, requests) == requests


def test_chart_2020_without_collect_events_misses_the_token() -> None:
    role_2020 = cr(
        "datadog",
        rule(
            ["get", "list", "watch"],
            ["services", "events", "endpoints", "pods", "nodes", "componentstatuses"],
        ),
        rule(["get"], urls=["/version", "/healthz"]),
        rule(["get"], urls=["/metrics"]),
        rule(["get"], ["nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"]),
        rule(["get"], ["endpoints"]),
    )
    snap = snapshot(role_2020, crb("datadog", "datadog", SA))
    env = {"DD_COLLECT_KUBERNETES_EVENTS": "true"}
    requests = ap.requests_for(ap.required_features(env), "datadog", "agent", env=env)
    assert [m.describe() for m in RbacEvaluator(snap).explain_missing(None, requests)] == [
        'get configmaps "datadogtoken" in datadog',
        'update configmaps "datadogtoken" in datadog',
    ]


def test_clusterrole_manifest_is_exact() -> None:
    assert ap.clusterrole_manifest(
        "dd", [ap.APISERVER_URLS, ap.LEADER_ELECTION], env={"DD_LEADER_LEASE_NAME": "dd-le"}
    ) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "dd"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["dd-le"],
                "verbs": ["get", "update"],
            },
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
            {"nonResourceURLs": ["/version", "/healthz", "/metrics"], "verbs": ["get"]},
        ],
    }


@pytest.mark.parametrize("feature", ap.FEATURES)
def test_clusterrole_manifest_grants_exactly_its_features(feature: str) -> None:
    manifest = ap.clusterrole_manifest("dd", [feature])
    binding = ap.clusterrolebinding_manifest("dd", "dd", "datadog", "agent")
    evaluator = RbacEvaluator(snapshot(manifest, binding))
    subject = service_account_user("datadog", "agent")
    assert evaluator.explain_missing(subject, ap.requests_for([feature], "datadog", "agent", node_name="n")) == []
    # The two ways to the kubelet share nodes/metrics, nodes/spec and nodes/stats.
    kubelet = {ap.KUBELET, ap.KUBELET_FINE_GRAINED}
    others = [f for f in ap.FEATURES if f != feature and not {f, feature} <= kubelet]
    other_requests = ap.requests_for(others, "datadog", "agent", node_name="n")
    granted_elsewhere = [r for r in other_requests if evaluator.allows(r).allowed]
    assert granted_elsewhere == []


def test_kinds_read_are_declared() -> None:
    from meshdoctor.kube.rbac import KINDS
    from meshdoctor.rule import Context

    ctx = Context(snapshot(*bound(rule(["get"], ["pods"]))))
    RbacEvaluator(ctx).allows(req("get", "pods", "d"))
    bindings_for_service_account(ctx, "datadog", "agent")
    assert ctx.kinds_read == set(KINDS)


def test_access_review_asks_the_api_server_the_same_question():
    from meshdoctor.kube.rbac import Request

    resource = Request(
        user="system:serviceaccount:datadog:datadog-agent",
        groups=("system:serviceaccounts",),
        verb="get",
        api_group="",
        resource="nodes",
        subresource="proxy",
        name="node-1",
    )
    assert resource.access_review() == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:datadog:datadog-agent",
            "groups": ["system:serviceaccounts"],
            "resourceAttributes": {
                "verb": "get",
                "group": "",
                "resource": "nodes",
                "subresource": "proxy",
                "namespace": "",
                "name": "node-1",
            },
        },
    }
    url = Request(user="u", verb="get", non_resource_url="/metrics")
    assert url.access_review()["spec"] == {
        "user": "u",
        "groups": [],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }
