"""What meshdoctor does to a live cluster, seen from the API server's side.

- A user without rights gets `not_checked` results (exit 0: nothing was found), never a crash.
- The same user bound to deploy/meshdoctor-clusterrole.yaml collects everything: the ClusterRole
  is sufficient.
- The audit log of a full collection (every kind, every log group, access reviews, probes) shows
  only `get` and `list`, plus `create` of subjectaccessreviews; exactly one LIST per kind (plus its
  `continue` pages) and one GET per container log.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshdoctor.kube.kinds import KINDS
from meshdoctor.rule import inputs
from meshdoctor.sources.live import LiveOptions, collect_live
from tests.live.test_live_check import live_report

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parents[2]
ALL_INPUTS = inputs(*KINDS, logs=["agent", "istio-proxy", "telemetry"], probes=True)


def _agent_world(cluster: Any, ns: str) -> None:
    """An agent DaemonSet with a sidecar, its ServiceAccount, an istio check config naming a Service
    with no endpoints (the API server answers the probe itself, nothing is dialled)."""
    cluster.post(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "datadog-agent"}},
        check=True,
    )
    conf = {"instances": [{"istiod_endpoint": f"http://istiod.{ns}:15014/metrics"}]}
    cluster.post(
        f"/api/v1/namespaces/{ns}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio-check"},
            "data": {"conf.yaml": yaml.safe_dump(conf)},
        },
        check=True,
    )
    cluster.post(
        f"/api/v1/namespaces/{ns}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istiod"},
            "spec": {"ports": [{"name": "http-monitoring", "port": 15014}]},
        },
        check=True,
    )
    labels = {"app": "datadog-agent"}
    pod_spec = {
        "serviceAccountName": "datadog-agent",
        "containers": [
            {
                "name": "agent",
                "image": "gcr.io/datadoghq/agent:7.60.1",
                "env": [{"name": "DD_LEADER_ELECTION", "value": "true"}],
            },
            {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.30.3"},
        ],
    }
    ds = cluster.post(
        f"/apis/apps/v1/namespaces/{ns}/daemonsets",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "datadog-agent"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
        check=True,
    ).body
    # the test cluster runs no workload controllers: the DaemonSet's pod is made here, as the
    # DaemonSet controller would make it
    owner = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "name": "datadog-agent",
        "uid": ds["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    name = "datadog-agent-live0"
    cluster.post(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
            "spec": {**pod_spec, "nodeName": cluster.node_names[0]},
        },
        check=True,
    )
    cluster.wait_for(
        lambda: (
            (cluster.get(f"/api/v1/namespaces/{ns}/pods/{name}").body.get("status") or {}).get("phase") == "Running"
        ),
        60,
        what="the agent pod Running",
    )
    cluster.set_pod_log(ns, name, "agent", "2024-01-01 UTC | CORE | INFO | hello\nline two")


def test_restricted_user_gets_not_checked_and_exit_3(live_cluster: Any) -> None:
    """Every read forbidden: nothing was diagnosed, so not 0 (DESIGN.md exit codes, issue 12 point 6)."""
    from meshdoctor.registry import load_rules

    code, report = live_report(live_cluster.restricted_kubeconfig)
    required = {rule.id: rule.inputs.kinds for rule in load_rules(())}
    statuses = {r["rule"]: (r["status"], r["reason"] or "") for r in report["results"]}
    assert report["findings"] == []
    assert code == 3
    for rule, kinds in required.items():
        if kinds:
            status, reason = statuses[rule]
            assert status == "not_checked" and "forbidden" in reason, (rule, status, reason)
    assert report["source"]["missing"], "the forbidden kinds are named in the report"
    assert all("forbidden: cannot list" in line for line in report["source"]["missing"] if "pods/log" not in line)


def test_meshdoctor_clusterrole_is_enough(live_cluster: Any, live_namespace: str) -> None:
    _agent_world(live_cluster, live_namespace)
    role, binding = list(yaml.safe_load_all((REPO / "deploy" / "meshdoctor-clusterrole.yaml").read_text()))
    suffix = live_namespace
    role["metadata"]["name"] = f"meshdoctor-{suffix}"
    binding["metadata"]["name"] = f"meshdoctor-{suffix}"
    binding["roleRef"]["name"] = role["metadata"]["name"]
    binding["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "meshdoctor-restricted"}]
    base = "/apis/rbac.authorization.k8s.io/v1"
    live_cluster.post(f"{base}/clusterroles", role, check=True)
    live_cluster.post(f"{base}/clusterrolebindings", binding, check=True)
    try:
        snapshot, source = collect_live(
            LiveOptions(kubeconfig=str(live_cluster.restricted_kubeconfig), probe=True, environ={}), ALL_INPUTS
        )
    finally:
        live_cluster.delete(f"{base}/clusterrolebindings/{binding['metadata']['name']}")
        live_cluster.delete(f"{base}/clusterroles/{role['metadata']['name']}")
    assert source.missing == ()
    assert snapshot.probes["rbac"]["available"] is True
    assert snapshot.probes["rbac"]["reason"] is None
    assert any(k.namespace == live_namespace and k.container == "agent" for k in snapshot.logs)
    probe = snapshot.probes["http"][f"http://istiod.{live_namespace}:15014/metrics"]
    # a Service without Endpoints: the API server answers itself, nothing is dialled
    assert (probe["service"], probe["status"], probe["ok"], probe["prometheus"]) == (
        f"{live_namespace}/istiod:15014",
        404,
        False,
        False,
    ), probe
    # (kube-apiserver 1.34 words a Service without endpoints as "services ... not found")
    assert probe["error"] == 'HTTP 404: services "istiod" not found', probe


def _stamp(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()


def test_audit_log_shows_only_reads_and_one_list_per_kind(live_cluster: Any, live_namespace: str) -> None:
    _agent_world(live_cluster, live_namespace)
    started = time.time() - 1
    snapshot, source = collect_live(
        LiveOptions(kubeconfig=str(live_cluster.admin_kubeconfig), probe=True, page_size=3, environ={}), ALL_INPUTS
    )
    time.sleep(1.5)  # the audit backend writes asynchronously
    ours = [
        e
        for e in live_cluster.audit_events()
        if str(e.get("userAgent", "")).startswith("meshdoctor/")
        and _stamp(e) >= started
        and (e.get("user") or {}).get("username") == "meshdoctor-admin"
        and e.get("stage") == "ResponseComplete"
    ]  # long-running requests (logs) also log ResponseStarted
    assert ours
    verbs = Counter(
        (e["verb"], (e.get("objectRef") or {}).get("resource", ""), (e.get("objectRef") or {}).get("subresource", ""))
        for e in ours
    )
    writes = {key for key in verbs if key[0] not in ("get", "list")}
    assert writes == {("create", "subjectaccessreviews", "")}
    assert snapshot.probes["rbac"]["reason"] is None
    assert verbs[("create", "subjectaccessreviews", "")] == len(snapshot.probes["rbac"]["answers"]) > 0

    lists = [e for e in ours if e["verb"] == "list"]
    first_pages = Counter(e["objectRef"]["resource"] for e in lists if "continue=" not in e["requestURI"])
    all_pages = Counter(e["objectRef"]["resource"] for e in lists)
    collected = snapshot.probes["live"]["lists"]
    assert set(first_pages) == {KINDS[k].plural for k in collected}
    assert all(count == 1 for count in first_pages.values()), first_pages
    for kind, info in collected.items():
        assert all_pages[KINDS[kind].plural] == info["pages"], kind
    assert any(info["pages"] > 1 for info in collected.values()), "page_size=3 must exercise continue"
    # not installed custom resources are not listed at all
    assert not set(snapshot.probes["live"]["not_installed"]) & set(collected)

    log_gets = Counter(
        (e["objectRef"].get("namespace"), e["objectRef"].get("name"), e["requestURI"])
        for e in ours
        if (e.get("objectRef") or {}).get("subresource") == "log"
    )
    assert len(log_gets) == len(snapshot.logs) and all(n == 1 for n in log_gets.values())
    pod_gets = [
        e
        for e in ours
        if e["verb"] == "get"
        and (e.get("objectRef") or {}).get("resource") == "pods"
        and not e["objectRef"].get("subresource")
    ]
    assert pod_gets == [], "no per-pod GET"
    assert source.missing == ()
