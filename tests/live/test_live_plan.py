"""The closed loop: a scenario's fix plan, applied in order on the real API server, leaves it clean.

For every scenario fixture whose live check has findings with a fix: `check --emit-fixes DIR` on
the live cluster, then the plan's own `apply.sh` with the real kubectl (a server-side dry run of
every step, then the steps in order), then `check` again. The re-check must have no error left
but those whose fix is by hand (`plan.json` `manual`: rotate a rejected key...), and no finding
at all that a step claimed to resolve.

What the harness cannot do itself is simulated, and only that (each in a function below):
- Helm and the Datadog Operator do not run: `helm` is a stub that records its arguments, the
  `kubectl patch datadogagent` runs for real against the schemaless CRD, and the owner's render
  is simulated by applying the step's `*.rendered.yaml` (what the owner renders after it).
- No endpoints controller runs: a Service the plan changes gets its Endpoints and EndpointSlices'
  ports rewritten from the Service, target ports resolved on the endpoint's pod (`FindPort`).
- No DaemonSet or Deployment controller runs (the harness has the housekeeping controllers only)
  and no sidecar injector is called: after the plan, each workload whose pod template changed
  gets its pods replaced by pods made from the new template (new names, so kwok serves them
  fresh, empty logs), with the old pod's `istio-proxy` sidecar and `istio-init` kept unless the
  new template opts out of injection, and the DaemonSet's status set as its controller would.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.live.test_live_check import SCENARIO_NAMES, AppliedScenario, DumpScenario, run_cli, server_side_apply

CACHE = Path(os.environ.get("MESHDOCTOR_LIVE_CACHE", Path.home() / ".cache" / "meshdoctor-live"))
INJECT = "sidecar.istio.io/inject"

#: Pods the rollout simulation made (API paths): removed, and waited for, when their test ends.
MADE_PODS: list[str] = []


def kubectl_binary(cluster: Any) -> Path:
    path = Path(cluster.env.get("KUBECTL", CACHE / "bin" / "kubectl"))
    if not path.is_file():
        pytest.fail(f"kubectl not built at {path}: run `bash scripts/live-cluster.sh build`")
    return path


def label(finding: dict[str, Any]) -> str:
    """`MD101 DaemonSet default/datadog-agent`, as `meshdoctor.fixes.plan.finding_label` names it."""
    objects = ", ".join(
        f"{o['kind']} {o['namespace']}/{o['name']}" if o["namespace"] else f"{o['kind']} {o['name']}"
        for o in finding["objects"]
    )
    return f"{finding['rule']} {objects}" if objects else finding["rule"]


def live_check(cluster: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    code, text = run_cli(["check", "--kubeconfig", str(cluster.admin_kubeconfig), "-q", "-o", "json", *extra])
    return code, json.loads(text)


def apply_plan(cluster: Any, folder: Path) -> subprocess.CompletedProcess[str]:
    helm_stub = folder.parent / "helm-stub"
    helm_stub.write_text('#!/bin/sh\necho "helm $*" >> "$(dirname "$0")/helm-calls.log"\n')
    helm_stub.chmod(0o755)
    env = {
        **os.environ,
        "KUBECTL": f"{kubectl_binary(cluster)} --kubeconfig {cluster.admin_kubeconfig}",
        "HELM": str(helm_stub),
    }
    return subprocess.run(["bash", str(folder / "apply.sh")], capture_output=True, text=True, env=env, timeout=300)


def simulate_owner_renders(cluster: Any, folder: Path, plan: dict[str, Any]) -> None:
    """Helm and the Operator render their objects again: apply what the step says they render."""
    for step in plan["steps"]:
        if step.get("rendered"):
            for doc in yaml.safe_load_all((folder / step["rendered"]).read_text()):
                if isinstance(doc, dict):
                    r = server_side_apply(cluster, doc)
                    assert r.ok, f"rendered {doc['kind']} {doc['metadata']['name']}: {r.body}"


def _workload_path(kind: str, namespace: str, name: str) -> str:
    plural = {"DaemonSet": "daemonsets", "Deployment": "deployments"}[kind]
    return f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"


def _opted_out(template: dict[str, Any]) -> bool:
    meta = template.get("metadata") or {}
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    return str(marks.get(INJECT, "")).lower() == "false"


def planned_workloads(cluster: Any, plan: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The plan's DaemonSets and Deployments with their pods, read before the plan runs (it may delete them)."""
    found = []
    pods_by_namespace: dict[str, list[dict[str, Any]]] = {}
    for step in plan["steps"]:
        for ref in step["objects"]:
            if ref["kind"] not in ("DaemonSet", "Deployment"):
                continue
            workload = cluster.get(_workload_path(ref["kind"], ref["namespace"], ref["name"]))
            if workload.ok:
                ns = ref["namespace"]
                if ns not in pods_by_namespace:
                    pods_by_namespace[ns] = cluster.get(f"/api/v1/namespaces/{ns}/pods").body.get("items", [])
                found.append((workload.body, pods_by_namespace[ns]))
    return found


def simulate_rollouts(cluster: Any, workloads: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> list[str]:
    """Replace the pods of every planned workload whose template changed by pods of its new template."""
    rolled = []
    for before, pods in workloads:
        meta = before["metadata"]
        after = cluster.get(_workload_path(before["kind"], meta["namespace"], meta["name"])).body
        if after["spec"]["template"] != before["spec"]["template"]:
            rolled += _replace_pods(cluster, after, pods)
    return rolled


def _replace_pods(cluster: Any, workload: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    namespace, kind = workload["metadata"]["namespace"], workload["kind"]
    owners = [workload]
    if kind == "Deployment":  # the Deployment controller would make a ReplicaSet of the new template
        sets = cluster.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets").body.get("items", [])
        uid = workload["metadata"]["uid"]
        owners = [rs for rs in sets if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])]
        for rs in owners:
            rs["spec"]["template"] = copy.deepcopy(workload["spec"]["template"])
            assert cluster.put(f"/apis/apps/v1/namespaces/{namespace}/replicasets/{rs['metadata']['name']}", rs).ok
    template = workload["spec"]["template"]
    made = []
    for owner in owners:
        uid = owner["metadata"]["uid"]
        mine = [p for p in pods if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])]
        for old in mine:
            pod = _pod_from_template(template, old, owner)
            old_path = f"/api/v1/namespaces/{namespace}/pods/{old['metadata']['name']}"
            cluster.delete(old_path, query={"gracePeriodSeconds": "0"})
            r = cluster.post(f"/api/v1/namespaces/{namespace}/pods", pod)
            assert r.ok, f"pod {pod['metadata']['name']}: {r.body}"
            made.append(pod["metadata"]["name"])
            MADE_PODS.append(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
    for name in made:
        cluster.wait_pod_ready(namespace, name)
    if kind == "DaemonSet":
        count = len(made)
        fresh = cluster.get(_workload_path(kind, namespace, workload["metadata"]["name"])).body
        fresh["status"] = {
            "currentNumberScheduled": count,
            "desiredNumberScheduled": count,
            "numberReady": count,
            "numberAvailable": count,
            "updatedNumberScheduled": count,
            "numberMisscheduled": 0,
            "observedGeneration": fresh["metadata"].get("generation", 1),
        }
        r = cluster.put(_workload_path(kind, namespace, workload["metadata"]["name"]) + "/status", fresh)
        assert r.ok, r.body
    return made


def _carry_volumes(spec: dict[str, Any], old: dict[str, Any]) -> None:
    """The injected containers' volumes come along; the service account token volume is the new pod's own."""
    token = "kube-api-access-"
    old_volumes = {v["name"]: v for v in old["spec"].get("volumes") or []}
    have = {v["name"] for v in spec.get("volumes") or []}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        mounts = [m for m in container.get("volumeMounts") or [] if not m["name"].startswith(token)]
        if "volumeMounts" in container:
            container["volumeMounts"] = mounts
        for mount in mounts:
            if mount["name"] not in have and mount["name"] in old_volumes:
                spec.setdefault("volumes", []).append(old_volumes[mount["name"]])
                have.add(mount["name"])


def _pod_from_template(template: dict[str, Any], old: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    meta = copy.deepcopy(template.get("metadata") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    spec["nodeName"] = old["spec"].get("nodeName")
    old_containers = {c["name"]: c for c in old["spec"].get("containers") or []}
    old_init = {c["name"]: c for c in old["spec"].get("initContainers") or []}
    annotations = dict(meta.get("annotations") or {})
    if "istio-proxy" in old_containers and not _opted_out(template):
        names = {c["name"] for c in spec.get("containers") or []}
        if "istio-proxy" not in names:
            spec.setdefault("containers", []).append(old_containers["istio-proxy"])
        if "istio-init" in old_init and "istio-init" not in {c["name"] for c in spec.get("initContainers") or []}:
            spec.setdefault("initContainers", []).insert(0, old_init["istio-init"])
        _carry_volumes(spec, old)
        status = (old["metadata"].get("annotations") or {}).get("sidecar.istio.io/status")
        if status:
            annotations["sidecar.istio.io/status"] = status
    meta["annotations"] = annotations
    meta["name"] = f"{old['metadata']['name']}-fixed"[:63]
    meta["namespace"] = old["metadata"]["namespace"]
    meta["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _object_path(ref: dict[str, Any]) -> str | None:
    from meshdoctor.kube.kinds import KINDS

    info = KINDS.get(ref["kind"])
    if info is None:
        return None
    return f"{info.list_path(namespace=ref['namespace'] or None)}/{ref['name']}"


@pytest.fixture
def applied(live_cluster: Any) -> Any:
    """Put a scenario on the cluster for one test (a plan changes it), and take it off afterwards."""
    scenarios: list[AppliedScenario] = []

    def get(name: str) -> AppliedScenario:
        scenario = AppliedScenario(live_cluster, name)
        scenarios.append(scenario)  # registered first: removed even if apply fails
        try:
            return scenario.apply()
        except DumpScenario as exc:
            pytest.skip(f"not applicable to a live cluster: {exc}")

    yield get
    for scenario in scenarios:
        scenario.remove()
    # the simulated rollout's pods carry the fixed template: the next scenario must not see them
    for path in MADE_PODS:
        live_cluster.delete(path, query={"gracePeriodSeconds": "0"})
    for path in MADE_PODS:
        live_cluster.wait_for(lambda p=path: live_cluster.get(p).status == 404, 60, what=f"{path} deleted")
    MADE_PODS.clear()


@pytest.fixture
def plan_cleanup(live_cluster: Any) -> Any:
    """Delete afterwards what a plan created (a Secret, a ServiceEntry), so the next scenario starts clean."""
    created: list[str] = []

    def remember(plan: dict[str, Any]) -> None:
        for step in plan["steps"]:
            for ref in step["objects"]:
                path = _object_path(ref)
                if path and live_cluster.get(path).status == 404:
                    created.append(path)

    yield remember
    for path in created:
        live_cluster.delete(path)


def simulate_endpoints(cluster: Any, plan: dict[str, Any]) -> list[str]:
    """The endpoints controllers' part: a planned Service's Endpoints and EndpointSlices get its ports."""
    updated = []
    for step in plan["steps"]:
        for ref in step["objects"]:
            if ref["kind"] != "Service":
                continue
            ns, name = ref["namespace"], ref["name"]
            service = cluster.get(f"/api/v1/namespaces/{ns}/services/{name}")
            if not service.ok:
                continue
            endpoints = cluster.get(f"/api/v1/namespaces/{ns}/endpoints/{name}")
            if endpoints.ok and endpoints.body.get("subsets"):
                body = endpoints.body
                for subset in body["subsets"]:
                    pod = _target_pod(cluster, ns, subset)
                    subset["ports"] = [_endpoint_port(p, pod) for p in service.body["spec"].get("ports") or []]
                assert cluster.put(f"/api/v1/namespaces/{ns}/endpoints/{name}", body).ok
                updated.append(f"Endpoints {ns}/{name}")
            slices = cluster.get(
                f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                query={"labelSelector": f"kubernetes.io/service-name={name}"},
            )
            for item in slices.body.get("items", []) if slices.ok else []:
                pod = _target_pod(cluster, ns, {"addresses": [e for e in item.get("endpoints") or []]})
                item["ports"] = [_endpoint_port(p, pod) for p in service.body["spec"].get("ports") or []]
                path = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{item['metadata']['name']}"
                assert cluster.put(path, item).ok
                updated.append(f"EndpointSlice {ns}/{item['metadata']['name']}")
    return updated


def _target_pod(cluster: Any, namespace: str, subset: dict[str, Any]) -> dict[str, Any] | None:
    for address in subset.get("addresses") or []:
        target = address.get("targetRef") or {}
        if target.get("kind") == "Pod":
            pod = cluster.get(f"/api/v1/namespaces/{namespace}/pods/{target['name']}")
            if pod.ok:
                return dict(pod.body)
    return None


def _endpoint_port(port: dict[str, Any], pod: dict[str, Any] | None) -> dict[str, Any]:
    """A Service port as its endpoints carry it: the target port, a name resolved on the pod (`FindPort`)."""
    target = port.get("targetPort", port["port"])
    if isinstance(target, str) and pod is not None:
        for container in pod["spec"].get("containers") or []:
            for declared in container.get("ports") or []:
                if declared.get("name") == target:
                    target = declared["containerPort"]
    entry = {"port": target, "protocol": port.get("protocol", "TCP")}
    if port.get("name"):
        entry["name"] = port["name"]
    return entry


PLANNED = [name for name in SCENARIO_NAMES if not name.startswith("dump-") and name != "logs-only-dump"]


@pytest.mark.live
@pytest.mark.parametrize("name", PLANNED)
def test_applying_the_plan_in_order_leaves_no_error_and_no_claimed_finding(
    live_cluster: Any, applied: Any, plan_cleanup: Any, name: str, tmp_path: Path
) -> None:
    applied(name)
    folder = tmp_path / "fixes"
    _, before = live_check(live_cluster, "--fail-on", "never", "--emit-fixes", str(folder))
    plan = json.loads((folder / "plan.json").read_text())
    claimed = {label for step in plan["steps"] for label in step["resolves"]}
    by_hand = {m["resolves"] for m in plan["manual"]}
    if not plan["steps"]:
        pytest.skip(f"{name}: nothing to apply ({len(before['findings'])} finding(s), {len(by_hand)} by hand)")
    plan_cleanup(plan)
    workloads = planned_workloads(live_cluster, plan)
    result = apply_plan(live_cluster, folder)
    assert result.returncode == 0, f"apply.sh failed:\n{result.stdout}\n{result.stderr}"
    simulate_owner_renders(live_cluster, folder, plan)
    rolled = simulate_rollouts(live_cluster, workloads)
    simulate_endpoints(live_cluster, plan)
    _, after = live_check(live_cluster, "--fail-on", "never")
    remaining = [label(f) for f in after["findings"] if f.get("suppressed_by") is None]
    errors = [label(f) for f in after["findings"] if f["severity"] == "error" and f.get("suppressed_by") is None]
    print(
        f"\n{name}: {len(plan['steps'])} step(s), {len(before['findings'])} finding(s) before, "
        f"{len(remaining)} after ({', '.join(remaining) or 'none'}); pods rolled: {len(rolled)}"
    )
    assert [e for e in errors if e not in by_hand] == []
    assert sorted(set(remaining) & claimed) == []


@pytest.mark.live
def test_seed_broken_agent_reads_the_real_key_from_the_secret_after_the_plan(
    live_cluster: Any, applied: Any, plan_cleanup: Any, tmp_path: Path
) -> None:
    scenario = applied("seed-broken")
    literal = next(
        var["value"]
        for doc in yaml.safe_load_all((scenario.folder / "datadog" / "datadog-agent.yaml").read_text())
        if isinstance(doc, dict) and doc.get("kind") == "DaemonSet"
        for container in doc["spec"]["template"]["spec"]["containers"]
        for var in container.get("env") or []
        if var["name"] == "DD_API_KEY"
    )
    folder = tmp_path / "fixes"
    live_check(live_cluster, "--fail-on", "never", "--emit-fixes", str(folder))
    plan_cleanup(json.loads((folder / "plan.json").read_text()))
    result = apply_plan(live_cluster, folder)
    assert result.returncode == 0, result.stderr
    assert literal not in result.stdout + result.stderr  # the key passed through a pipe, never printed
    secret = live_cluster.get("/api/v1/namespaces/default/secrets/datadog-secret").body
    assert base64.b64decode(secret["data"]["api-key"]).decode() == literal
    daemonset = live_cluster.get("/apis/apps/v1/namespaces/default/daemonsets/datadog-agent").body
    [agent] = daemonset["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v for v in agent["env"]}
    assert env["DD_API_KEY"] == {
        "name": "DD_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "datadog-secret", "key": "api-key"}},
    }
    assert daemonset["spec"]["template"]["spec"]["serviceAccountName"] == "datadog-agent"
    # a second run of the plan keeps the Secret (it is never overwritten with what the agent now holds)
    again = apply_plan(live_cluster, folder)
    assert again.returncode == 0, again.stderr
    secret = live_cluster.get("/api/v1/namespaces/default/secrets/datadog-secret").body
    assert base64.b64decode(secret["data"]["api-key"]).decode() == literal
