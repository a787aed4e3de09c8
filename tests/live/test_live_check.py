"""meshdoctor check against a real API server holding a scenario, compared with the offline run.

Each scenario fixture (fixtures/scenarios/NAME) is put on the live cluster, `meshdoctor check` runs
against the cluster (through `meshdoctor.cli.main.main` once the CLI has the live flags, else through
the same pipeline: `cli_live.collect_for_rules` -> engine -> JSON renderer) and against the
scenario's files (`--from`), and both must produce the same results and the same findings.
Every remediation manifest those runs emit must pass a server-side dry run (`dryRun=All`).

Putting a fixture on a 1.34 server needs conversions (helpers below): what the server no longer
serves is converted the way `kubectl convert` would (extensions/v1beta1 workloads -> apps/v1 with
the selector the old API defaulted from the template labels and, for DaemonSets, the old default
`OnDelete` update strategy; admissionregistration v1beta1 -> v1 with the fields v1 requires).
Webhooks get an always-false `matchConditions` so that the API server never calls them (their
Service is not on 127.0.0.1). Captured pods are bound to the simulated node
and adopted by the workload that owns them (the owner reference gets the live uid), so neither the
pod garbage collector nor a controller replaces them. Schemaless CRDs for every custom kind
meshdoctor reads are installed first (the fixture's own CRDs are not applied).
"""

from __future__ import annotations

import copy
import io
import json
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshdoctor.kube.kinds import KINDS

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "fixtures" / "scenarios"
FIELD_MANAGER = "meshdoctor-live-tests"

_ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
    "Service",
    "MutatingWebhookConfiguration",
    "DaemonSet",
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
]


class DumpScenario(Exception):
    """The scenario cannot be applied: a `kubectl cluster-info dump` (typed lists), or logs alone."""


def read_objects(folder: Path) -> list[dict[str, Any]]:
    """Every object of the scenario's manifests (`logs/` and non-YAML files skipped), Lists expanded."""
    objects: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or "logs" in path.relative_to(folder).parts[:1]:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind", "").endswith("List") and any("kind" not in i for i in doc.get("items") or []):
                raise DumpScenario(f"{path.relative_to(folder)} is a cluster-info dump list (items without kind)")
            if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
                objects.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
            elif doc.get("kind"):
                objects.append(doc)
    return objects


def custom_resource_definitions() -> list[dict[str, Any]]:
    """A schemaless CRD for every custom kind of meshdoctor.kube.kinds, every listed version served."""
    crds = []
    for info in KINDS.values():
        if not info.custom:
            continue
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{info.plural}.{info.group}"},
                "spec": {
                    "group": info.group,
                    "names": {
                        "kind": info.kind,
                        "plural": info.plural,
                        "singular": info.kind.lower(),
                        "listKind": f"{info.kind}List",
                    },
                    "scope": "Namespaced" if info.namespaced else "Cluster",
                    "versions": [
                        {
                            "name": v,
                            "served": True,
                            "storage": i == 0,
                            "schema": {
                                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                        for i, v in enumerate(info.versions)
                    ],
                },
            }
        )
    return crds


#: Kinds whose fixture status is written through the status subresource: the test cluster runs no
#: workload controller, so nothing overwrites it (pods and nodes get theirs from kwok).
STATUS_KINDS = ("DaemonSet", "Deployment", "ReplicaSet", "StatefulSet")


def _clean_meta(obj: dict[str, Any]) -> None:
    meta = obj.setdefault("metadata", {})
    for key in ("uid", "resourceVersion", "creationTimestamp", "selfLink", "generation", "managedFields"):
        meta.pop(key, None)
    if obj.get("kind") not in STATUS_KINDS:
        obj.pop("status", None)


def convert(obj: dict[str, Any], node: str, nodes: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The object as a 1.34 server accepts it; None for objects not applied (CRDs of the fixture).

    A pod bound to a node the fixture does not define is bound to `node` (a simulated node), so
    that the pod garbage collector does not delete it as an orphan.
    """
    obj = copy.deepcopy(obj)
    kind, api = obj.get("kind"), obj.get("apiVersion")
    if kind == "CustomResourceDefinition":
        return None  # our own schemaless CRDs are installed instead
    _clean_meta(obj)
    if kind in ("DaemonSet", "Deployment", "ReplicaSet", "StatefulSet") and api != "apps/v1":
        obj["apiVersion"] = "apps/v1"
        spec = obj.setdefault("spec", {})
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        spec.setdefault("selector", {"matchLabels": labels})
        for legacy in ("templateGeneration", "rollbackTo"):
            spec.pop(legacy, None)
        if kind == "DaemonSet" and api == "extensions/v1beta1":
            spec.setdefault("updateStrategy", {"type": "OnDelete"})
    if kind == "MutatingWebhookConfiguration":
        if api != "admissionregistration.k8s.io/v1":
            obj["apiVersion"] = "admissionregistration.k8s.io/v1"
            for hook in obj.get("webhooks") or []:
                hook.setdefault("sideEffects", "None")
                hook.setdefault("admissionReviewVersions", ["v1beta1"])
        # The API server must never call the webhook: it would dial istiod.istio-system.svc, which
        # is not on 127.0.0.1. A match condition that is always false keeps every other field as
        # the fixture has it.
        for hook in obj.get("webhooks") or []:
            hook["matchConditions"] = [{"name": "meshdoctor-live-tests-never", "expression": "false"}]
    if kind == "Secret":
        data = obj.pop("data", None) or {}
        obj["stringData"] = {**{k: "redacted-in-tests" for k in data}, **(obj.get("stringData") or {})}
    if kind == "Pod" and obj.get("spec", {}).get("nodeName") not in nodes:
        obj.setdefault("spec", {})["nodeName"] = node
    if KINDS.get(str(kind)) and KINDS[str(kind)].namespaced:
        obj["metadata"].setdefault("namespace", "default")
    return obj


def _path(obj: dict[str, Any]) -> tuple[str, str]:
    info = KINDS[obj["kind"]]
    group_version = obj["apiVersion"]
    base = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    ns = obj["metadata"].get("namespace") if info.namespaced else None
    collection = f"{base}/namespaces/{ns}/{info.plural}" if ns else f"{base}/{info.plural}"
    return collection, f"{collection}/{obj['metadata']['name']}"


def server_side_apply(cluster: Any, obj: dict[str, Any], dry_run: bool = False, subresource: str = "") -> Any:
    """PATCH application/apply-patch+yaml (creates or updates); returns the response."""
    _, item = _path(obj)
    if subresource:
        item += f"/{subresource}"
    query = {"fieldManager": FIELD_MANAGER, "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    return cluster.request("PATCH", item, obj, content_type="application/apply-patch+yaml", query=query)


class AppliedScenario:
    """A scenario on the cluster; `remove()` deletes what was created."""

    def __init__(self, cluster: Any, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.folder = SCENARIOS / name
        self.applied: list[dict[str, Any]] = []
        self.created_namespaces: list[str] = []
        self.logs_set: set[tuple[str, str]] = set()

    def apply(self) -> AppliedScenario:
        cluster = self.cluster
        for crd in custom_resource_definitions():
            r = server_side_apply(cluster, crd)
            assert r.ok, r.body
        for crd in custom_resource_definitions():
            cluster.wait_for(
                lambda n=crd["metadata"]["name"]: _established(cluster, n), 60, what=f"CRD {crd['metadata']['name']}"
            )
        node = cluster.node_names[0]
        raw = read_objects(self.folder)
        if not raw:  # logs alone (logs-alone-api-key): nothing to put on a cluster
            raise DumpScenario("no object in the scenario (logs only)")
        nodes = frozenset(o["metadata"]["name"] for o in raw if o.get("kind") == "Node")
        objects = [o for o in (convert(o, node, nodes) for o in raw) if o is not None]
        objects.sort(key=lambda o: _ORDER.index(o["kind"]) if o["kind"] in _ORDER else len(_ORDER) - 1)
        uids: dict[tuple[str, str, str], str] = {}
        # pods that name a service account the capture does not hold could not be created (the
        # ServiceAccount admission plugin): such accounts are created, and removed afterwards
        accounts = {
            (o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects if o["kind"] == "ServiceAccount"
        }
        for obj in list(objects):
            if obj["kind"] == "Pod":
                ns = obj["metadata"]["namespace"]
                account = (obj.get("spec") or {}).get("serviceAccountName") or "default"
                if account != "default" and (ns, account) not in accounts:
                    accounts.add((ns, account))
                    objects.insert(
                        objects.index(obj),
                        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": ns}},
                    )
        for obj in objects:
            if obj["kind"] == "Namespace" and cluster.get(_path(obj)[1]).status == 404:
                self.created_namespaces.append(obj["metadata"]["name"])
            if obj["metadata"].get("ownerReferences"):
                self._adopt(obj, uids)
            status = obj.pop("status", None)
            r = server_side_apply(cluster, obj)
            assert r.ok, f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}: {r.body}"
            if status:
                w = server_side_apply(cluster, {**obj, "status": status}, subresource="status")
                assert w.ok, f"status of {obj['kind']} {obj['metadata']['name']}: {w.body}"
            meta = r.body["metadata"]
            uids[(obj["kind"], meta.get("namespace", ""), meta["name"])] = meta["uid"]
            if obj["kind"] != "Namespace" or obj["metadata"]["name"] in self.created_namespaces:
                self.applied.append(obj)
        for obj in objects:
            if obj["kind"] == "Pod":
                path = _path(obj)[1]
                cluster.wait_for(lambda p=path: _phase(cluster, p) == "Running", 60, what=f"{path} Running")
        self._set_logs()
        return self

    def _adopt(self, pod: dict[str, Any], uids: dict[tuple[str, str, str], str]) -> None:
        """Point owner references at the live owners' uids; drop those whose owner is not there."""
        refs = []
        for ref in pod["metadata"].get("ownerReferences") or []:
            uid = uids.get((ref.get("kind"), pod["metadata"].get("namespace", ""), ref.get("name")))
            if uid:
                ref = {**ref, "uid": uid}
                if ref["kind"] in ("DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"):
                    ref["apiVersion"] = "apps/v1"
                refs.append(ref)
        if refs:
            pod["metadata"]["ownerReferences"] = refs
        else:
            pod["metadata"].pop("ownerReferences", None)

    def _set_logs(self) -> None:
        logs = self.folder / "logs"
        if not logs.is_dir():
            return
        for path in sorted(logs.glob("*/*/*.log")):
            ns, pod = path.parent.parent.name, path.parent.name
            previous = path.name.endswith(".previous.log")
            container = path.name[: -len(".previous.log")] if previous else path.name[: -len(".log")]
            if self.cluster.get(f"/api/v1/namespaces/{ns}/pods/{pod}").ok:
                self.cluster.set_pod_log(ns, pod, container, path.read_text(errors="replace"), previous=previous)
                self.logs_set.add((ns, pod))

    def remove(self) -> None:
        cluster = self.cluster
        for obj in reversed(self.applied):
            if obj["kind"] == "Namespace":
                continue
            cluster.request(
                "DELETE", _path(obj)[1], query={"propagationPolicy": "Background", "gracePeriodSeconds": "0"}
            )
        # pods the controllers made, kwok Logs objects
        for obj in self.applied:
            if obj["kind"] in ("DaemonSet", "Deployment", "ReplicaSet"):
                ns = obj["metadata"]["namespace"]
                labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                selector = ",".join(f"{k}={v}" for k, v in labels.items())
                cluster.request(
                    "DELETE",
                    f"/api/v1/namespaces/{ns}/pods",
                    query={"labelSelector": selector, "gracePeriodSeconds": "0"},
                )
        for ns, pod in sorted(self.logs_set):  # a later scenario's pod of the same name must not get these logs
            cluster.delete(f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{ns}/logs/{pod}")
        for ns in self.created_namespaces:
            cluster.delete(f"/api/v1/namespaces/{ns}")
        deadline = time.monotonic() + 120
        for obj in self.applied:
            while cluster.get(_path(obj)[1]).status != 404 and time.monotonic() < deadline:
                time.sleep(0.3)


def _phase(cluster: Any, path: str) -> str | None:
    r = cluster.get(path)
    return (r.body.get("status") or {}).get("phase") if r.ok and isinstance(r.body, dict) else None


def _established(cluster: Any, name: str) -> bool:
    r = cluster.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return r.ok and any(
        c.get("type") == "Established" and c.get("status") == "True"
        for c in (r.body.get("status") or {}).get("conditions") or []
    )


# -- running meshdoctor ----------------------------------------------------------------------


def cli_has_live_flags() -> bool:
    from meshdoctor.cli.main import cli

    check = cli.commands["check"]
    return any("--kubeconfig" in p.opts for p in check.params)


def run_cli(args: list[str]) -> tuple[int, str]:
    from meshdoctor.cli.main import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(args)
    return code, out.getvalue()


def live_report(kubeconfig: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """The JSON report of a live check (exit code, report)."""
    if cli_has_live_flags():
        code, text = run_cli(["check", "--kubeconfig", str(kubeconfig), "-q", "-o", "json", *extra])
        return code, json.loads(text)
    from meshdoctor.cli.live import LiveFlags, collect_for_rules
    from meshdoctor.cli.main import exit_code
    from meshdoctor.engine import run
    from meshdoctor.registry import load_rules
    from meshdoctor.renderers import report_to_dict

    rules = load_rules(())
    snapshot, source = collect_for_rules(rules, LiveFlags(kubeconfig=str(kubeconfig), quiet=True))
    report = run(rules, snapshot, source)
    return exit_code(report, "error"), report_to_dict(report)


def offline_report(folder: Path) -> tuple[int, dict[str, Any]]:
    code, text = run_cli(["check", "--from", str(folder), "-o", "json"])
    return code, json.loads(text)


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "results": [(r["rule"], r["status"]) for r in report["results"]],
        "findings": sorted(
            (f["rule"], f["severity"], json.dumps(f["objects"], sort_keys=True), f.get("suppressed_by") or "")
            for f in report["findings"]
        ),
    }


SCENARIO_NAMES = (
    sorted(p.name for p in SCENARIOS.iterdir() if (p / "expected.txt").is_file()) if SCENARIOS.is_dir() else []
)


@pytest.fixture(scope="module")
def applied(live_cluster: Any, request: Any) -> Any:
    scenarios: dict[str, AppliedScenario] = {}

    def get(name: str) -> AppliedScenario:
        for other in list(scenarios):
            if other != name:
                scenarios.pop(other).remove()
        if name not in scenarios:
            scenarios[name] = AppliedScenario(live_cluster, name)  # registered first: removed even if apply fails
            try:
                scenarios[name].apply()
            except DumpScenario as exc:
                pytest.skip(f"not applicable to a live cluster: {exc}")
        return scenarios[name]

    yield get
    for scenario in scenarios.values():
        scenario.remove()


#: Where the live run on a scenario legitimately differs from the offline run on its files: the
#: live cluster knows more (or other) things than the files. (scenario, rule) -> why. Any other
#: difference fails the test, and so does a listed one that disappears.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("helm-2.30-default", "MD505"): "same as seed-broken",
    ("helm-3.5-default", "MD505"): "same as seed-broken",
    ("helm-3.240-default", "MD505"): "same as seed-broken",
    ("helm-3.240-site-app-eu", "MD505"): "same as seed-broken",
    ("helm-3.240-confd-key-wrong", "MD505"): "same as seed-broken",
    ("helm-3.240-logs-registry-only", "MD505"): "same as seed-broken",
    ("operator-default", "MD505"): "same as seed-broken",
    ("operator-site-app-eu", "MD505"): "same as seed-broken",
    ("operator-registry-only", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-agent-networkpolicy", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-agent-not-ready", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-agent-rbac-from-2.30", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-agent-service-missing", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-agent-sidecar-registry-only", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-agent-strict-mtls", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-checks-runner-registry-only", "MD505"): "same as seed-broken",
    ("helm-3.240-cluster-checks-runner-registry-only", "MD103"): "same as seed-broken (kwok's Nodes are on 127.0.0.1)",
    ("helm-3.240-logs-registry-only", "MD103"): "same as seed-broken (kwok's Nodes are on 127.0.0.1)",
    ("operator-registry-only", "MD103"): "same as seed-broken (kwok's Nodes are on 127.0.0.1)",
    ("seed-broken", "MD502"): "the live cluster has a Node (kwok) whose container runtime is not docker; the "
    "fixture has no Node, so offline the docker-socket log collection is assumed",
    ("seed-fixed", "MD502"): "same as seed-broken",
    ("seed-broken", "MD503"): "the fixture's extensions/v1beta1 DaemonSet is served as apps/v1 by a 1.34 server",
    ("seed-broken", "MD505"): "the API server gives every DaemonSet a status (zeros when no controller "
    "ran); the fixture's DaemonSet has none, so offline the rule is not_checked",
    ("seed-fixed", "MD505"): "same as seed-broken",
    ("seed-broken", "MD103"): "kwok puts every Node (and so every pod's hostIP) on 127.0.0.1, which no "
    "sidecar captures; the fixture's pods run on 10.132.0.12 and .13, whose kubelet calls the sidecar drops",
    ("tutorial-final-state", "MD502"): "same as seed-broken (seed-fixed with the tutorial's ServiceEntries)",
    ("tutorial-final-state", "MD505"): "same as seed-broken",
    ("tutorial-final-state-latest", "MD502"): "same as seed-broken",
    ("tutorial-final-state-latest", "MD505"): "same as seed-broken",
    ("agent-removed-api", "MD503"): "the fixture's removed workload API is served as apps/v1 by a 1.34 server",
    ("rbac-missing-kubelet-permissions", "MD405"): "the live cluster's built-in ClusterRoleBinding "
    "system:service-account-issuer-discovery (group system:serviceaccounts) is named in the finding too",
    ("helm-3.240-cluster-agent-rbac-from-2.30", "MD405"): "same as rbac-missing-kubelet-permissions",
}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    """rule -> the result and finding tuples of that rule that are not in both reports."""
    left, right = set(a["results"] + a["findings"]), set(b["results"] + b["findings"])
    out: dict[str, list[Any]] = {}
    for item in sorted(left ^ right):
        out.setdefault(item[0], []).append(("live" if item in left else "offline",) + item[1:])
    return out


@pytest.mark.live
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_live_check_finds_what_the_offline_check_finds(live_cluster: Any, applied: Any, name: str) -> None:
    scenario = applied(name)
    offline_code, offline = offline_report(scenario.folder)
    live_code, live = live_report(live_cluster.admin_kubeconfig)
    assert live["source"]["kind"] == "live"
    assert live["source"].get("missing", []) == []
    differences = _differences(comparable(live), comparable(offline))
    print(f"\n{name}: differences {differences}")
    expected = sorted(rule for (scenario_name, rule) in KNOWN_DIFFERENCES if scenario_name == name)
    assert sorted(differences) == expected, differences
    if not expected:
        assert live_code == offline_code


@pytest.mark.live
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_live_check_equals_the_offline_check_of_its_own_snapshot(
    live_cluster: Any, applied: Any, name: str, tmp_path: Path
) -> None:
    """Same cluster state both ways: `check` live, and `snapshot -o DIR` then `check --from DIR`."""
    applied(name)
    folder = tmp_path / "snapshot"
    from click.testing import CliRunner

    from meshdoctor.cli.live import snapshot

    result = CliRunner().invoke(
        snapshot, ["-o", str(folder), "--kubeconfig", str(live_cluster.admin_kubeconfig), "-q"], standalone_mode=False
    )
    assert result.exception is None, result.output
    live_code, live = live_report(live_cluster.admin_kubeconfig)
    offline_code, offline = offline_report(folder)
    assert _differences(comparable(live), comparable(offline)) == {}
    assert live_code == offline_code


@pytest.mark.live
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_every_remediation_manifest_passes_a_server_side_dry_run(live_cluster: Any, applied: Any, name: str) -> None:
    scenario = applied(name)
    manifests: list[tuple[str, dict[str, Any]]] = []
    for report in (offline_report(scenario.folder)[1], live_report(live_cluster.admin_kubeconfig)[1]):
        for finding in report["findings"]:
            remediation = finding.get("remediation") or {}
            for text in [*remediation.get("manifests", []), *remediation.get("alternative_manifests", [])]:
                for doc in yaml.safe_load_all(text):
                    if isinstance(doc, dict):
                        manifests.append((finding["rule"], doc))
    rejected = []
    for rule, doc in manifests:
        if doc.get("kind") not in KINDS:
            rejected.append(f"{rule}: kind {doc.get('kind')!r} unknown to meshdoctor.kube.kinds")
            continue
        doc = copy.deepcopy(doc)
        if KINDS[doc["kind"]].namespaced:
            doc.setdefault("metadata", {}).setdefault("namespace", "default")
        r = server_side_apply(live_cluster, doc, dry_run=True)
        if not r.ok:
            message = r.body.get("message") if isinstance(r.body, dict) else r.body
            rejected.append(
                f"{rule}: {doc['apiVersion']} {doc['kind']} {doc['metadata'].get('name')}: HTTP {r.status} {message}"
            )
    print(f"\n{name}: {len(manifests)} remediation manifest(s), {len(rejected)} rejected")
    assert rejected == []
