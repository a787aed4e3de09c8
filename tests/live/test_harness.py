"""Proves the live harness (scripts/live-cluster.sh + tests/live/conftest.py) works end to end."""

from __future__ import annotations

import time
import uuid

import pytest

from .conftest import LiveCluster

pytestmark = pytest.mark.live

LABELS = {"app": "harness-agent"}


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _create_namespace(cluster: LiveCluster, name: str) -> None:
    r = cluster.post(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert r.status == 201, r.body
    cluster.ensure_namespace(name)  # waits for the default ServiceAccount


def _pod(name: str, node: str | None, containers: list[str]) -> dict:
    spec: dict = {"containers": [{"name": c, "image": f"example.invalid/{c}:1.0"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_versions_and_nodes(live_cluster: LiveCluster) -> None:
    version = live_cluster.get("/version", check=True).body
    assert version["gitVersion"] == live_cluster.versions["K8S_VERSION"]
    nodes = live_cluster.get("/api/v1/nodes", check=True).body["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == live_cluster.node_names
    for node in nodes:
        conds = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conds["Ready"] == "True"
        assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]


def test_namespace_daemonset_and_pod_running(live_cluster: LiveCluster) -> None:
    ns = f"harness-{_uid()}"
    _create_namespace(live_cluster, ns)
    try:
        ds = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "labels": LABELS},
            "spec": {
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {"containers": [{"name": "agent", "image": "example.invalid/a:1"}]},
                },
            },
        }
        live_cluster.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", ds, check=True)

        node = live_cluster.node_names[0]
        live_cluster.post(f"/api/v1/namespaces/{ns}/pods", _pod("bound", node, ["app"]), check=True)
        pod = live_cluster.wait_pod_ready(ns, "bound", timeout=60)
        assert pod["spec"]["nodeName"] == node
        assert pod["status"]["containerStatuses"][0]["ready"] is True
        assert pod["status"]["podIP"]

        ds_got = live_cluster.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent", check=True)
        assert ds_got.body["spec"]["selector"] == {"matchLabels": LABELS}
        controllers = live_cluster.env.get("KCM_CONTROLLERS", "")
        if "*" not in controllers.split(",") and "daemonset-controller" not in controllers:
            return  # workload controllers are off by default (LIVE_KCM_CONTROLLERS='*' enables)

        # controller-manager + scheduler + kwok: the DaemonSet gets one Ready pod per node
        def ds_ready() -> dict | None:
            body = live_cluster.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent").body
            st = body.get("status") or {}
            want = len(live_cluster.node_names)
            ok = st.get("desiredNumberScheduled") == want and st.get("numberReady") == want
            return body if ok else None

        live_cluster.wait_for(ds_ready, timeout=90, what="DaemonSet agent ready")
        pods = live_cluster.get(f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": "app=harness-agent"}).body[
            "items"
        ]
        assert len(pods) == len(live_cluster.node_names)
        assert all(p["status"]["phase"] == "Running" for p in pods)
    finally:
        live_cluster.delete(f"/api/v1/namespaces/{ns}")


def test_pod_logs_current_and_previous(live_cluster: LiveCluster, live_namespace: str) -> None:
    ns = live_namespace
    # a log set before the pod exists is served once it runs
    live_cluster.set_pod_log(ns, "web", "istio-proxy", "proxy line 1\nproxy line 2")
    live_cluster.post(f"/api/v1/namespaces/{ns}/pods", _pod("web", None, ["app", "istio-proxy"]), check=True)
    live_cluster.wait_pod_ready(ns, "web")
    path = f"/api/v1/namespaces/{ns}/pods/web/log"

    r = live_cluster.get(path, query={"container": "istio-proxy"})
    assert r.status == 200, r.body
    assert r.body == "proxy line 1\nproxy line 2\n"

    # a container without a configured log gets an empty log, like a silent container
    r = live_cluster.get(path, query={"container": "app"})
    assert (r.status, r.body) == (200, "")

    # no previous container yet -> 400, as on a real kubelet
    r = live_cluster.get(path, query={"container": "app", "previous": "true"})
    assert r.status == 400

    # set logs while the pod runs (set_pod_log waits until they are served)
    live_cluster.set_pod_log(ns, "web", "app", "started\nlistening on :8080")
    live_cluster.set_pod_log(ns, "web", "app", "crashed: boom", previous=True)
    assert live_cluster.get(path, query={"container": "app"}).body == ("started\nlistening on :8080\n")
    r = live_cluster.get(path, query={"container": "app", "previous": "true"})
    assert (r.status, r.body) == (200, "crashed: boom\n")
    # other containers are untouched; kubelet options like tailLines work
    r = live_cluster.get(path, query={"container": "istio-proxy", "tailLines": "1"})
    assert r.body == "proxy line 2\n"


def test_restricted_user_is_forbidden(live_cluster: LiveCluster) -> None:
    path = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    r = live_cluster.get(path, token=live_cluster.restricted_token)
    assert r.status == 403, r.body
    assert r.body["reason"] == "Forbidden"
    assert "meshdoctor-restricted" in r.body["message"]
    assert live_cluster.get(path).status == 200


SERVICEENTRY_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "serviceentries.networking.istio.io"},
    "spec": {
        "group": "networking.istio.io",
        "names": {
            "kind": "ServiceEntry",
            "listKind": "ServiceEntryList",
            "plural": "serviceentries",
            "singular": "serviceentry",
            "shortNames": ["se"],
            "categories": ["istio-io", "networking-istio-io"],
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_crd_and_custom_resource(live_cluster: LiveCluster, live_namespace: str) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    r = live_cluster.post(crds, SERVICEENTRY_CRD)
    assert r.status in (201, 409), r.body  # 409: another live test installed it already

    def established() -> bool:
        crd = live_cluster.get(f"{crds}/serviceentries.networking.istio.io").body
        conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        return conds.get("Established") == "True"

    live_cluster.wait_for(established, timeout=30, what="ServiceEntry CRD established")
    se = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": "datadog-intake"},
        "spec": {
            "hosts": ["trace.agent.datadoghq.com"],
            "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
        },
    }
    base = f"/apis/networking.istio.io/v1beta1/namespaces/{live_namespace}/serviceentries"
    # the new resource can take a moment to be served after Established
    live_cluster.wait_for(lambda: live_cluster.get(base).ok, timeout=30, what="serviceentries")
    live_cluster.post(base, se, check=True)
    got = live_cluster.get(f"{base}/datadog-intake", check=True).body
    assert got["spec"] == se["spec"]  # unknown fields preserved
    items = live_cluster.get(base, check=True).body["items"]
    assert [i["metadata"]["name"] for i in items] == ["datadog-intake"]


def _sar(user: str, groups: list[str], verb: str, resource: str, group: str) -> dict:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {"verb": verb, "resource": resource, "group": group},
        },
    }


def test_subject_access_review(live_cluster: LiveCluster) -> None:
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    denied = live_cluster.post(
        path,
        _sar("meshdoctor-restricted", ["system:authenticated"], "list", "clusterroles", "rbac.authorization.k8s.io"),
        check=True,
    ).body
    assert denied["status"]["allowed"] is False
    allowed = live_cluster.post(
        path,
        _sar(
            "meshdoctor-admin",
            ["system:masters", "system:authenticated"],
            "list",
            "clusterroles",
            "rbac.authorization.k8s.io",
        ),
        check=True,
    ).body
    assert allowed["status"]["allowed"] is True

    # the restricted user may not create SubjectAccessReviews, but may ask about itself
    assert live_cluster.post(path, _sar("x", [], "get", "pods", ""), token=live_cluster.restricted_token).status == 403
    ssar = live_cluster.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "default"}},
        },
        token=live_cluster.restricted_token,
        check=True,
    ).body
    assert ssar["status"]["allowed"] is False


def test_dry_run_create(live_cluster: LiveCluster, live_namespace: str) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dry"},
        "data": {"k": "v"},
    }
    base = f"/api/v1/namespaces/{live_namespace}/configmaps"
    r = live_cluster.post(base, cm, query={"dryRun": "All"}, check=True)
    assert r.status == 201
    assert r.body["metadata"]["name"] == "dry"
    assert r.body["data"] == {"k": "v"}
    assert live_cluster.get(f"{base}/dry").status == 404  # nothing was persisted
    # dry-run still goes through admission/validation: an invalid object is rejected
    bad = dict(cm, metadata={"name": "Not_Valid"})
    assert live_cluster.post(base, bad, query={"dryRun": "All"}).status == 422


def test_audit_log_records_requests(live_cluster: LiveCluster) -> None:
    marker = f"audit-probe-{_uid()}"
    live_cluster.get(f"/api/v1/namespaces/default/configmaps/{marker}")  # 404, still audited
    live_cluster.get("/apis/rbac.authorization.k8s.io/v1/clusterroles", token=live_cluster.restricted_token)

    def find() -> tuple[dict, dict] | None:
        events = live_cluster.audit_events()
        mine = [e for e in events if marker in e.get("requestURI", "")]
        denied = [
            e
            for e in events
            if e.get("user", {}).get("username") == "meshdoctor-restricted"
            and e.get("objectRef", {}).get("resource") == "clusterroles"
            and e.get("responseStatus", {}).get("code") == 403
        ]
        return (mine[-1], denied[-1]) if mine and denied else None

    mine, denied = live_cluster.wait_for(find, timeout=15, what="audit events")
    assert mine["level"] == "Metadata"
    assert mine["verb"] == "get"
    assert mine["user"]["username"] == "meshdoctor-admin"
    assert mine["responseStatus"]["code"] == 404
    assert mine["objectRef"] == {"resource": "configmaps", "namespace": "default", "name": marker, "apiVersion": "v1"}
    assert "requestObject" not in mine and "responseObject" not in mine  # Metadata level only
    assert denied["verb"] == "list"
    assert denied["annotations"]["authorization.k8s.io/decision"] == "forbid"
    # every event is at Metadata level and completed (RequestReceived stage is omitted)
    events = live_cluster.audit_events()
    assert {e["level"] for e in events} == {"Metadata"}
    assert {e["stage"] for e in events} <= {"ResponseComplete", "ResponseStarted", "Panic"}


def test_startup_is_fast_when_built(live_cluster: LiveCluster) -> None:
    # smoke check that the API answers quickly (no hidden retry loops in the harness)
    t0 = time.monotonic()
    live_cluster.get("/readyz", check=True)
    assert time.monotonic() - t0 < 5


def test_node_with_real_world_address_is_reached_on_loopback(live_cluster: LiveCluster, live_namespace: str) -> None:
    # e.g. a Node replayed from a recorded cluster: kwok rewrites its InternalIP to 127.0.0.1,
    # and the API server's egress to nodes only ever goes to kwok on loopback anyway
    node = f"ip-10-1-2-{int(_uid(), 16) % 250}.ec2.internal"
    live_cluster.post(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "10.1.2.3"},
                    {"type": "Hostname", "address": node},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        },
        check=True,
    )
    try:

        def fixed() -> dict | None:
            got = live_cluster.get(f"/api/v1/nodes/{node}", check=True).body["status"]
            loopback = {"type": "InternalIP", "address": "127.0.0.1"} in got["addresses"]
            return got if loopback else None

        got = live_cluster.wait_for(fixed, timeout=30, what=f"node {node} on 127.0.0.1")
        assert got["daemonEndpoints"]["kubeletEndpoint"]["Port"] == int(live_cluster.env["KWOK_PORT"])
        live_cluster.post(
            f"/api/v1/namespaces/{live_namespace}/pods",
            _pod("replayed", node, ["app"]),
            check=True,
        )
        live_cluster.wait_pod_ready(live_namespace, "replayed")
        # set_pod_log waits until the API server serves it, via kwok on 127.0.0.1
        live_cluster.set_pod_log(live_namespace, "replayed", "app", "from a replayed node")
        egress = (live_cluster.dir / "logs" / "egress-proxy.log").read_text()
        assert "CONNECT" in egress and "10.1.2.3" not in egress.split("->")[0]
    finally:
        live_cluster.delete(f"/api/v1/namespaces/{live_namespace}/pods/replayed", query={"gracePeriodSeconds": "0"})
        live_cluster.delete(f"/api/v1/nodes/{node}")
