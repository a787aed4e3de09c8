"""Pod-template walker, owner chains, pods_of, and label-selector semantics."""

from __future__ import annotations

import copy

import pytest

from meshdoctor.kube.labels import map_selector_matches, requirement_matches, selector_matches
from meshdoctor.kube.workloads import (
    WORKLOAD_KINDS,
    containers,
    iter_pod_templates,
    owned_by,
    owner_chain,
    pod_template,
    pods_of,
    template_path,
)
from meshdoctor.snapshot import Snapshot

TEMPLATE = {
    "metadata": {"labels": {"app": "x"}},
    "spec": {
        "initContainers": [{"name": "init"}],
        "containers": [{"name": "main"}, {"name": "side"}],
    },
}


def workload(kind: str, api_version: str, name: str = "w", namespace: str = "ns", **extra) -> dict:
    template = copy.deepcopy(TEMPLATE)
    if kind == "CronJob":
        spec = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        spec = {"template": template}
    spec.update(extra)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def pod(name: str, namespace: str = "ns", labels: dict | None = None, owners: list | None = None) -> dict:
    meta: dict = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c"}]},
    }


def ref(kind: str, name: str, uid: str | None = None, controller: bool = True) -> dict:
    r = {"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": controller}
    if uid:
        r["uid"] = uid
    return r


@pytest.mark.parametrize(
    "kind,api_version,path",
    [
        ("Deployment", "apps/v1", "spec.template"),
        ("Deployment", "extensions/v1beta1", "spec.template"),
        ("Deployment", "apps/v1beta1", "spec.template"),
        ("Deployment", "apps/v1beta2", "spec.template"),
        ("DaemonSet", "extensions/v1beta1", "spec.template"),
        ("DaemonSet", "apps/v1beta2", "spec.template"),
        ("DaemonSet", "apps/v1", "spec.template"),
        ("StatefulSet", "apps/v1beta1", "spec.template"),
        ("StatefulSet", "apps/v1", "spec.template"),
        ("ReplicaSet", "extensions/v1beta1", "spec.template"),
        ("ReplicaSet", "apps/v1", "spec.template"),
        ("ReplicationController", "v1", "spec.template"),
        ("Job", "batch/v1", "spec.template"),
        ("CronJob", "batch/v1beta1", "spec.jobTemplate.spec.template"),
        ("CronJob", "batch/v2alpha1", "spec.jobTemplate.spec.template"),
        ("CronJob", "batch/v1", "spec.jobTemplate.spec.template"),
    ],
)
def test_pod_template_of_every_kind_and_old_api_version(kind, api_version, path):
    obj = workload(kind, api_version)
    template = pod_template(obj)
    assert template == TEMPLATE
    assert template_path(obj) == path
    node = obj
    for key in path.split("."):
        node = node[key]
    assert template is node  # the object's own dict, so a copy of the object can be edited in place


def test_pod_is_its_own_template():
    p = pod("p")
    assert pod_template(p) is p
    assert template_path(p) == ""


def test_no_template():
    assert pod_template({"kind": "Service", "spec": {}}) is None
    assert pod_template({"kind": "Deployment", "spec": {}}) is None
    assert pod_template({"kind": "CronJob", "spec": {"jobTemplate": {}}}) is None
    assert template_path({"kind": "ConfigMap"}) == ""


def test_workload_kinds():
    assert WORKLOAD_KINDS == (
        "Pod",
        "Deployment",
        "DaemonSet",
        "StatefulSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
        "CronJob",
    )


def test_containers_init_first_and_without_init():
    assert [c["name"] for c in containers(TEMPLATE)] == ["init", "main", "side"]
    assert [c["name"] for c in containers(TEMPLATE, include_init=False)] == ["main", "side"]
    assert containers(None) == []
    assert containers({"spec": {}}) == []


def test_iter_pod_templates_walks_kinds_in_order_and_reads_only_those():
    from meshdoctor.rule import Context

    snap = Snapshot()
    snap.add(workload("DaemonSet", "extensions/v1beta1", name="b"))
    snap.add(workload("DaemonSet", "apps/v1", name="a"))
    snap.add(workload("CronJob", "batch/v1beta1", name="c"))
    snap.add(pod("p"))
    snap.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ns"}})
    found = [(o["kind"], o["metadata"]["name"]) for o, _ in iter_pod_templates(snap)]
    assert found == [("Pod", "p"), ("DaemonSet", "a"), ("DaemonSet", "b"), ("CronJob", "c")]
    ctx = Context(snap)
    assert [o["metadata"]["name"] for o, _ in iter_pod_templates(ctx, kinds=("DaemonSet",))] == [
        "a",
        "b",
    ]
    assert ctx.kinds_read == {"DaemonSet"}


def chain_snapshot(uids: bool) -> Snapshot:
    snap = Snapshot()
    deploy = workload("Deployment", "apps/v1", name="web")
    rs = workload("ReplicaSet", "apps/v1", name="web-5d8f")
    rs["metadata"]["ownerReferences"] = [ref("Deployment", "web", "u-deploy" if uids else None)]
    if uids:
        deploy["metadata"]["uid"] = "u-deploy"
        rs["metadata"]["uid"] = "u-rs"
    snap.add(deploy)
    snap.add(rs)
    snap.add(pod("web-5d8f-abcde", owners=[ref("ReplicaSet", "web-5d8f", "u-rs" if uids else None)]))
    ds = workload("DaemonSet", "apps/v1", name="agent")
    snap.add(ds)
    snap.add(pod("agent-x1", owners=[ref("DaemonSet", "agent")]))
    cron = workload("CronJob", "batch/v1beta1", name="nightly")
    snap.add(cron)
    job = workload("Job", "batch/v1", name="nightly-1550000000")
    job["metadata"]["ownerReferences"] = [ref("CronJob", "nightly")]
    snap.add(job)
    snap.add(pod("nightly-1550000000-q2w3e", owners=[ref("Job", "nightly-1550000000")]))
    return snap


@pytest.mark.parametrize("uids", [False, True])
def test_owner_chains(uids):
    snap = chain_snapshot(uids)
    chain = owner_chain(snap, snap.get("Pod", "ns", "web-5d8f-abcde"))
    assert [(o["kind"], o["metadata"]["name"]) for o in chain] == [
        ("ReplicaSet", "web-5d8f"),
        ("Deployment", "web"),
    ]
    chain = owner_chain(snap, snap.get("Pod", "ns", "agent-x1"))
    assert [(o["kind"], o["metadata"]["name"]) for o in chain] == [("DaemonSet", "agent")]
    chain = owner_chain(snap, snap.get("Job", "ns", "nightly-1550000000"))
    assert [(o["kind"], o["metadata"]["name"]) for o in chain] == [("CronJob", "nightly")]
    chain = owner_chain(snap, snap.get("Pod", "ns", "nightly-1550000000-q2w3e"))
    assert [o["kind"] for o in chain] == ["Job", "CronJob"]


def test_owner_chain_stops_at_uid_mismatch_missing_owner_and_other_namespace():
    snap = chain_snapshot(uids=True)
    stale = pod("web-5d8f-zzzzz", owners=[ref("ReplicaSet", "web-5d8f", "u-old")])
    assert owner_chain(snap, stale) == []
    orphan = pod("gone-1", owners=[ref("ReplicaSet", "gone")])
    assert owner_chain(snap, orphan) == []
    elsewhere = pod("agent-x9", namespace="other", owners=[ref("DaemonSet", "agent")])
    assert owner_chain(snap, elsewhere) == []
    assert owner_chain(snap, pod("bare")) == []


def test_owner_chain_prefers_the_controller_reference_and_survives_cycles():
    snap = Snapshot()
    a = workload("ReplicaSet", "apps/v1", name="a")
    b = workload("ReplicaSet", "apps/v1", name="b")
    a["metadata"]["ownerReferences"] = [ref("ReplicaSet", "b")]
    b["metadata"]["ownerReferences"] = [ref("ReplicaSet", "a")]
    snap.add(a)
    snap.add(b)
    ds = workload("DaemonSet", "apps/v1", name="ds")
    snap.add(ds)
    p = pod("p", owners=[ref("ReplicaSet", "a", controller=False), ref("DaemonSet", "ds")])
    assert [o["metadata"]["name"] for o in owner_chain(snap, p)] == ["ds"]
    assert [o["metadata"]["name"] for o in owner_chain(snap, a)] == ["b"]


def names(objs):
    return [o["metadata"]["name"] for o in objs]


def test_pods_of_through_owner_references():
    snap = chain_snapshot(uids=True)
    assert names(pods_of(snap, snap.get("Deployment", "ns", "web"))) == ["web-5d8f-abcde"]
    assert names(pods_of(snap, snap.get("ReplicaSet", "ns", "web-5d8f"))) == ["web-5d8f-abcde"]
    assert names(pods_of(snap, snap.get("DaemonSet", "ns", "agent"))) == ["agent-x1"]
    assert names(pods_of(snap, snap.get("CronJob", "ns", "nightly"))) == ["nightly-1550000000-q2w3e"]
    p = snap.get("Pod", "ns", "agent-x1")
    assert pods_of(snap, p) == [p]
    assert pods_of(snap, {"kind": "Service", "metadata": {"name": "s", "namespace": "ns"}}) == []


def test_pods_of_deployment_whose_replicaset_is_not_in_the_snapshot():
    snap = Snapshot()
    snap.add(workload("Deployment", "apps/v1", name="web"))
    snap.add(
        pod(
            "web-7c9d-aaaaa",
            labels={"app": "x", "pod-template-hash": "7c9d"},
            owners=[ref("ReplicaSet", "web-7c9d")],
        )
    )
    snap.add(
        pod(
            "web2-7c9d-bbbbb",
            labels={"app": "x", "pod-template-hash": "7c9d"},
            owners=[ref("ReplicaSet", "web2-7c9d")],
        )
    )
    assert names(pods_of(snap, snap.get("Deployment", "ns", "web"))) == ["web-7c9d-aaaaa"]


def test_pods_of_falls_back_to_the_selector_for_pods_without_owners():
    snap = Snapshot()
    ds = workload("DaemonSet", "apps/v1", name="agent", selector={"matchLabels": {"app": "x"}})
    snap.add(ds)
    snap.add(pod("bare-1", labels={"app": "x"}))
    snap.add(pod("bare-2", labels={"app": "y"}))
    snap.add(pod("bare-3", namespace="other", labels={"app": "x"}))
    snap.add(pod("owned-by-other", labels={"app": "x"}, owners=[ref("DaemonSet", "someone-else")]))
    assert names(pods_of(snap, ds)) == ["bare-1"]


def test_pods_of_defaults_a_missing_selector_to_the_template_labels():
    snap = Snapshot()
    ds = workload("DaemonSet", "extensions/v1beta1", name="agent")  # no spec.selector
    rc = workload("ReplicationController", "v1", name="rc", selector={"app": "x"})
    snap.add(ds)
    snap.add(rc)
    snap.add(pod("bare-1", labels={"app": "x", "extra": "1"}))
    snap.add(pod("bare-2", labels={"app": "z"}))
    assert names(pods_of(snap, ds)) == ["bare-1"]
    assert names(pods_of(snap, rc)) == ["bare-1"]


def test_owned_by_requires_same_namespace_and_matching_uid():
    owner = {"kind": "DaemonSet", "metadata": {"name": "a", "namespace": "ns", "uid": "1"}}
    assert owned_by(pod("p", owners=[ref("DaemonSet", "a", "1")]), owner)
    assert owned_by(pod("p", owners=[ref("DaemonSet", "a")]), owner)
    assert not owned_by(pod("p", owners=[ref("DaemonSet", "a", "2")]), owner)
    assert not owned_by(pod("p", namespace="x", owners=[ref("DaemonSet", "a")]), owner)
    assert not owned_by(pod("p", owners=[ref("Deployment", "a")]), owner)


# -- label selectors ---------------------------------------------------------------------------


LABELS = {"app": "agent", "tier": "node"}


@pytest.mark.parametrize(
    "selector,expected",
    [
        (None, False),
        ({}, True),
        ({"matchLabels": {}}, True),
        ({"matchLabels": {"app": "agent"}}, True),
        ({"matchLabels": {"app": "agent", "tier": "node"}}, True),
        ({"matchLabels": {"app": "other"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["agent", "x"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["agent"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}, False),
        # matchLabels AND matchExpressions
        (
            {
                "matchLabels": {"app": "agent"},
                "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
            },
            False,
        ),
        (
            {
                "matchLabels": {"app": "agent"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["node"]}],
            },
            True,
        ),
    ],
)
def test_selector_semantics(selector, expected):
    assert selector_matches(selector, LABELS) is expected


def test_selectors_on_objects_without_labels():
    assert selector_matches({}, None) is True
    assert selector_matches({"matchLabels": {"a": "b"}}, None) is False
    assert requirement_matches({"key": "a", "operator": "DoesNotExist"}, {}) is True


def test_map_selector():
    assert map_selector_matches({"app": "agent"}, LABELS) is True
    assert map_selector_matches({"app": "x"}, LABELS) is False
    assert map_selector_matches({}, LABELS) is False
    assert map_selector_matches(None, LABELS) is False
