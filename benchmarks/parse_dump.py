"""Benchmark `load_offline` on a big `kubectl cluster-info dump` against bare `json.load`.

    python benchmarks/parse_dump.py                   # 10,000 pods, 1,000 nodes, in a temp dir
    python benchmarks/parse_dump.py --pods 20000 --nodes 2000 --out /tmp/dump --keep

Generates a synthetic dump shaped as kubectl writes it (`nodes.json`, `<ns>/{events,pods,services,
daemonsets,deployments,replicasets,replication-controllers}.json` as typed lists whose items carry
no kind, 4-space indented like kubectl's JSON printer, and a `<ns>/<pod>/logs.txt` per pod): a
Datadog agent DaemonSet with one pod per node (agent + istio-proxy, istio-init), istiod, and
application Deployments with sidecars filling the rest. Pod objects are 2-3 KB each.

Then measures, each in a fresh subprocess (best of --repeat, files in the page cache):

- `load_offline([dump])`: wall and CPU time, and peak RSS (VmHWM from /proc/self/status, else
  resource.getrusage: ru_maxrss is inherited over fork+exec from this bigger parent process, so
  it would overstate a small child); the same subprocess's peak after its imports is printed too;
- bare parsing: `json.load` of every list file of the dump, results kept, time and peak RSS; once
  as Python runs it (garbage collector on) and once with the collector off, which is how
  `load_offline` runs (it creates no reference cycles, and the collector's passes over millions of
  young dicts cost more than the parsing).

On a shared machine the wall time varies with the load; the ratio is taken on CPU time.

The DESIGN.md budget: an offline check of this dump under 3 s and 400 MB, within 1.5x of the
time to parse the same files; loading is the larger part of that check.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

_PEAK = """
def peak_mb():
    # VmHWM is the peak of this process image; ru_maxrss would carry the parent's over exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_LOAD = (
    _PEAK
    + """
import gc, sys, time
from meshdoctor.sources import load_offline
before = peak_mb()
wall, cpu = time.perf_counter(), time.process_time()
snapshot, source = load_offline([sys.argv[1]])
cpu_done = time.process_time()
wall_done = time.perf_counter()
# What the collector charges later for the new objects: a full pass (none after gc.freeze()).
collect = time.process_time()
gc.collect()
collect = time.process_time() - collect
print(wall_done - wall, cpu_done - cpu, before, peak_mb(), len(snapshot), len(snapshot.logs),
      collect)
"""
)

_BARE = (
    _PEAK
    + """
import gc, glob, json, os, sys, time
root = sys.argv[1]
if sys.argv[2] == "nogc":
    gc.disable()
before = peak_mb()
wall, cpu = time.perf_counter(), time.process_time()
files = glob.glob(os.path.join(root, "*.json")) + glob.glob(os.path.join(root, "*", "*.json"))
files.sort()
kept = []
for name in files:
    with open(name, encoding="utf-8") as f:
        kept.append(json.load(f))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(wall, cpu, before, peak_mb(), sum(len(d["items"]) for d in kept), len(files))
"""
)

IMAGES = [
    "gcr.io/datadoghq/agent:7.52.0",
    "docker.io/istio/proxyv2:1.21.0",
    "docker.io/istio/pilot:1.21.0",
    "registry.k8s.io/coredns/coredns:v1.11.1",
    "registry.k8s.io/kube-proxy:v1.29.2",
]


def _meta(name: str, ns: str | None, rng: random.Random, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    meta.update(
        {
            "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "resourceVersion": str(rng.randint(10_000, 9_999_999)),
            "creationTimestamp": f"2024-05-02T09:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
            "labels": labels,
        }
    )
    meta.update(extra)
    return meta


def node(i: int, rng: random.Random) -> dict[str, Any]:
    name = f"ip-10-{i // 250}-{i % 250}-{rng.randint(1, 250)}.ec2.internal"
    return {
        "metadata": _meta(
            name,
            None,
            rng,
            {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "m5.2xlarge",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[i % 3]}",
            },
            annotations={
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        ),
        "spec": {
            "providerID": f"aws:///eu-west-1a/i-{rng.getrandbits(64):016x}",
            "podCIDR": f"10.{i // 250}.{i % 250}.0/24",
        },
        "status": {
            "capacity": {
                "cpu": "8",
                "ephemeral-storage": "104845292Ki",
                "memory": "32386544Ki",
                "pods": "58",
            },
            "allocatable": {
                "cpu": "7910m",
                "ephemeral-storage": "95551679124",
                "memory": "31369712Ki",
                "pods": "58",
            },
            "conditions": [
                {
                    "type": t,
                    "status": "False" if t != "Ready" else "True",
                    "lastHeartbeatTime": "2024-05-02T10:00:00Z",
                    "lastTransitionTime": "2024-05-01T08:00:00Z",
                    "reason": f"Kubelet{t}",
                    "message": f"kubelet condition {t}",
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "addresses": [
                {"type": "InternalIP", "address": f"10.{i // 250}.{i % 250}.10"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{rng.getrandbits(128):032x}",
                "systemUUID": f"{rng.getrandbits(128):032x}",
                "bootID": f"{rng.getrandbits(128):032x}",
                "kernelVersion": "5.10.215-203.850.amzn2.x86_64",
                "osImage": "Amazon Linux 2",
                "containerRuntimeVersion": "containerd://1.7.11",
                "kubeletVersion": "v1.29.2-eks-5e0fdde",
                "kubeProxyVersion": "v1.29.2-eks-5e0fdde",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [
                {
                    "names": [f"{img}@sha256:{rng.getrandbits(256):064x}", img],
                    "sizeBytes": rng.randint(10**7, 10**9),
                }
                for img in IMAGES
            ],
        },
    }


def pod(
    name: str,
    ns: str,
    node_name: str,
    owner: tuple[str, str, str],
    containers: list[tuple[str, str]],
    rng: random.Random,
    labels: dict[str, str],
) -> dict[str, Any]:
    def container(cname: str, image: str) -> dict[str, Any]:
        return {
            "name": cname,
            "image": image,
            "env": [
                {
                    "name": "POD_NAME",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
                },
                {"name": "DD_SITE", "value": "datadoghq.eu"},
            ],
            "volumeMounts": [
                {
                    "name": "kube-api-access",
                    "readOnly": True,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                }
            ],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }

    return {
        "metadata": _meta(
            name,
            ns,
            rng,
            labels,
            annotations={
                "sidecar.istio.io/status": '{"initContainers":["istio-init"],'
                '"containers":["istio-proxy"],"volumes":["istio-envoy"]}'
            },
            ownerReferences=[
                {
                    "apiVersion": "apps/v1",
                    "kind": owner[0],
                    "name": owner[1],
                    "uid": owner[2],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            managedFields=_managed_fields([c for c, _ in containers]),
        ),
        "spec": {
            "initContainers": [
                {
                    "name": "istio-init",
                    "image": IMAGES[1],
                    "args": ["istio-iptables", "-p", "15001"],
                }
            ],
            "containers": [container(c, img) for c, img in containers],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
                }
            ],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            "nodeName": node_name,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.10",
            "podIP": f"10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "startTime": "2024-05-02T09:20:05Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2024-05-02T09:20:10Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": c,
                    "ready": True,
                    "restartCount": 0,
                    "image": img,
                    "imageID": img,
                    "containerID": f"containerd://{rng.getrandbits(256):064x}",
                    "state": {"running": {"startedAt": "2024-05-02T09:20:09Z"}},
                }
                for c, img in containers
            ],
        },
    }


def _managed_fields(containers: list[str]) -> list[dict[str, Any]]:
    """The managedFields the API server keeps on a pod (kubectl's JSON shows them): the
    controller's spec entry and the kubelet's status entry, which make a real pod ~9 KB."""
    spec_fields = {
        f'k:{{"name":"{c}"}}': {
            ".": {},
            "f:env": {".": {}, 'k:{"name":"POD_NAME"}': {".": {}, "f:name": {}, "f:valueFrom": {}}},
            "f:image": {},
            "f:imagePullPolicy": {},
            "f:name": {},
            "f:ports": {".": {}, 'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}}},
            "f:resources": {".": {}, "f:limits": {}, "f:requests": {}},
            "f:terminationMessagePath": {},
            "f:terminationMessagePolicy": {},
            "f:volumeMounts": {".": {}},
        }
        for c in containers
    }
    status_fields = {
        f'k:{{"name":"{c}"}}': {"f:ready": {}, "f:restartCount": {}, "f:started": {}, "f:state": {}} for c in containers
    }
    return [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-05-02T09:20:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:generateName": {}, "f:labels": {}, "f:ownerReferences": {}},
                "f:spec": {
                    "f:containers": spec_fields,
                    "f:dnsPolicy": {},
                    "f:enableServiceLinks": {},
                    "f:restartPolicy": {},
                    "f:schedulerName": {},
                    "f:securityContext": {},
                    "f:serviceAccount": {},
                    "f:serviceAccountName": {},
                    "f:terminationGracePeriodSeconds": {},
                    "f:volumes": {},
                },
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-05-02T09:20:10Z",
            "fieldsType": "FieldsV1",
            "subresource": "status",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {
                        f'k:{{"type":"{t}"}}': {
                            ".": {},
                            "f:lastProbeTime": {},
                            "f:lastTransitionTime": {},
                            "f:status": {},
                            "f:type": {},
                        }
                        for t in ("ContainersReady", "Initialized", "PodReadyToStartContainers", "Ready")
                    },
                    "f:containerStatuses": status_fields,
                    "f:hostIP": {},
                    "f:hostIPs": {},
                    "f:initContainerStatuses": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:podIPs": {},
                    "f:startTime": {},
                }
            },
        },
    ]


def write_list(path: Path, kind: str, api: str, items: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(
            {
                "kind": kind,
                "apiVersion": api,
                "metadata": {"resourceVersion": "48213"},
                "items": items,
            },
            out,
            indent=4,
        )
        out.write("\n")


def write_logs(root: Path, ns: str, pod_name: str, containers: list[str]) -> None:
    folder = root / ns / pod_name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "logs.txt", "w", encoding="utf-8") as out:
        for c in ["istio-init", *containers]:
            out.write(f"==== START logs for container {c} of pod {ns}/{pod_name} ====\n")
            if c == "agent":  # the agent's log: what the log rules scan (~40 KB)
                out.write(AGENT_LOG)
            else:
                for n in range(5):
                    out.write(f"2024-05-02 09:20:{n:02d} UTC | CORE | INFO | (pkg/x.go:{n} in f) | line {n} of {c}\n")
            out.write(f"==== END logs for container {c} of pod {ns}/{pod_name} ====\n")


#: An agent's log: start-up, check runs, and a forwarder error now and then (signature lines).
AGENT_LOG = "".join(
    f"2024-05-02 09:{20 + n // 60:02d}:{n % 60:02d} UTC | CORE | "
    + (
        "ERROR | (pkg/forwarder/worker.go:178 in process) | Error while processing transaction: error "
        'while sending transaction, rescheduling it: Post "https://7-52-0-app.agent.datadoghq.eu/api/v2/series": '
        "dial tcp 3.233.146.17:443: connect: connection refused\n"
        if n % 97 == 0
        else f"INFO | (pkg/collector/worker/check_logger.go:40 in CheckStarted) | check:cpu | Running check... {n}\n"
    )
    for n in range(400)
)


def generate(root: Path, pods: int, nodes: int, logs: bool) -> None:
    """Write the synthetic dump under `root`."""
    rng = random.Random(42)
    node_objs = [node(i, rng) for i in range(nodes)]
    write_list(root / "nodes.json", "NodeList", "v1", node_objs)
    names = [n["metadata"]["name"] for n in node_objs]
    by_ns: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def put(ns: str, file: str, obj: dict[str, Any]) -> None:
        by_ns.setdefault(ns, {}).setdefault(file, []).append(obj)

    agent_containers = [("agent", IMAGES[0]), ("istio-proxy", IMAGES[1])]
    ds_meta = _meta("datadog-agent", "datadog", rng, {"app": "datadog-agent"})
    put(
        "datadog",
        "daemonsets",
        {
            "metadata": ds_meta,
            "spec": {
                "selector": {"matchLabels": {"app": "datadog-agent"}},
                "template": {
                    "metadata": {"labels": {"app": "datadog-agent"}},
                    "spec": pod("t", "datadog", "", ("DaemonSet", "x", "0"), agent_containers, rng, {})["spec"],
                },
            },
            "status": {"desiredNumberScheduled": nodes, "numberReady": nodes},
        },
    )
    remaining = pods
    for _i, node_name in enumerate(names):
        if remaining == 0:
            break
        name = f"datadog-agent-{rng.getrandbits(25):05x}"
        put(
            "datadog",
            "pods",
            pod(
                name,
                "datadog",
                node_name,
                ("DaemonSet", "datadog-agent", ds_meta["uid"]),
                agent_containers,
                rng,
                {"app": "datadog-agent"},
            ),
        )
        remaining -= 1
    namespaces = [f"team-{i:02d}" for i in range(20)]
    app = 0
    while remaining > 0:
        ns = namespaces[app % len(namespaces)]
        dep = f"service-{app:04d}"
        replicas = min(remaining, 5)
        rs = f"{dep}-{rng.getrandbits(36):09x}"
        dep_meta = _meta(dep, ns, rng, {"app": dep})
        rs_meta = _meta(
            rs,
            ns,
            rng,
            {"app": dep},
            ownerReferences=[
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep, "uid": dep_meta["uid"], "controller": True}
            ],
        )
        put(
            ns,
            "deployments",
            {
                "metadata": dep_meta,
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": dep}}},
                "status": {"replicas": replicas, "readyReplicas": replicas},
            },
        )
        put(
            ns,
            "replicasets",
            {
                "metadata": rs_meta,
                "spec": {"replicas": replicas},
                "status": {"replicas": replicas},
            },
        )
        put(
            ns,
            "services",
            {
                "metadata": _meta(dep, ns, rng, {"app": dep}),
                "spec": {"selector": {"app": dep}, "ports": [{"name": "http", "port": 8080}]},
            },
        )
        for _ in range(replicas):
            name = f"{rs}-{rng.getrandbits(25):05x}"
            put(
                ns,
                "pods",
                pod(
                    name,
                    ns,
                    rng.choice(names),
                    ("ReplicaSet", rs, rs_meta["uid"]),
                    [("app", f"registry.example.com/{dep}:1.0"), ("istio-proxy", IMAGES[1])],
                    rng,
                    {"app": dep},
                ),
            )
            put(
                ns,
                "events",
                {
                    "metadata": _meta(f"{name}.17c9a5b1e2f3a4b5", ns, rng, {}),
                    "involvedObject": {"kind": "Pod", "namespace": ns, "name": name},
                    "reason": "Started",
                    "message": "Started container app",
                    "type": "Normal",
                    "count": 1,
                },
            )
        remaining -= replicas
        app += 1
    kinds = {
        "events": ("EventList", "v1"),
        "replication-controllers": ("ReplicationControllerList", "v1"),
        "services": ("ServiceList", "v1"),
        "daemonsets": ("DaemonSetList", "apps/v1"),
        "deployments": ("DeploymentList", "apps/v1"),
        "replicasets": ("ReplicaSetList", "apps/v1"),
        "pods": ("PodList", "v1"),
    }
    for ns, files in by_ns.items():
        for file, (kind, api) in kinds.items():
            write_list(root / ns / f"{file}.json", kind, api, files.get(file, []))
        if logs:
            for p in files.get("pods", []):
                write_logs(root, ns, p["metadata"]["name"], [c["name"] for c in p["spec"]["containers"]])


def measure(args: list[str], repeat: int) -> list[float]:
    """Best run (by CPU time) of a measurement subprocess: the numbers it printed."""
    best: list[float] | None = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, check=True)
        got = [float(x) for x in out.stdout.split()]
        if best is None or got[1] < best[1]:
            best = got
    assert best is not None
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-logs", action="store_true", help="write no logs.txt files")
    parser.add_argument("--out", help="write (or reuse) the dump here")
    parser.add_argument("--keep", action="store_true", help="keep the generated dump")
    args = parser.parse_args()

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="meshdoctor-dump-"))
    try:
        if not (root / "nodes.json").exists():
            generate(root, args.pods, args.nodes, not args.no_logs)
        json_bytes = sum(p.stat().st_size for p in root.glob("*.json")) + sum(
            p.stat().st_size for p in root.glob("*/*.json")
        )
        pods_json = sum(p.stat().st_size for p in root.glob("*/pods.json"))
        one_pod = json.load(open(next(root.glob("*/pods.json")), encoding="utf-8"))["items"][0]
        print(
            f"dump: {root}  {args.pods} pods, {args.nodes} nodes, "
            f"{json_bytes / 1e6:.1f} MB of JSON; "
            f"a pod is {len(json.dumps(one_pod)) / 1e3:.1f} KB compact, "
            f"{pods_json / max(args.pods, 1) / 1e3:.1f} KB as kubectl "
            f"indents it"
        )
        bare = measure([_BARE, str(root), "gc"], args.repeat)
        bare_nogc = measure([_BARE, str(root), "nogc"], args.repeat)
        load = measure([_LOAD, str(root)], args.repeat)
        for label, got in (
            ("json.load, same files", bare),
            ("json.load, gc disabled", bare_nogc),
            ("load_offline", load),
        ):
            print(
                f"{label:24} wall {got[0]:.3f} s  cpu {got[1]:.3f} s  peak RSS {got[3]:.0f} MB "
                f"(after imports {got[2]:.0f} MB)  {int(got[4])} objects"
            )
        print(
            f"load_offline: {int(load[5])} container logs registered; "
            f"a full garbage collection afterwards takes "
            f"{load[6]:.3f} s cpu (a caller that keeps the snapshot avoids it with gc.freeze())"
        )
        print(
            f"ratio (cpu): {load[1] / bare[1]:.2f}x json.load (budget 1.5x), "
            f"{load[1] / bare_nogc[1]:.2f}x json.load without gc; "
            f"under 3 s: {'yes' if load[0] < 3 else 'NO'}; "
            f"under 400 MB: {'yes' if load[3] < 400 else 'NO'}"
        )
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
