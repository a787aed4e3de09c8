"""The logs of a workload's pods: which there are, which signatures each is scanned for, and merging.

Logs come in three groups (`meshdoctor.rule.LOG_GROUPS`): `agent` (every container of an agent pod
but the sidecar), `istio-proxy` (the sidecar) and `telemetry` (the control plane's Deployments:
istio-telemetry, istiod, pilot; every container but the sidecar). Each group is scanned for the
signatures of its own sources (`agent`, `istio-proxy`; `istiod` and `mixer` for `telemetry`), with
one `Scanner` per group and process. A log is scanned once per run (the groups are memoised in the
cache given, the run's context cache), streamed in large chunks (never whole), and the groups of
one workload's logs merge by signature and key.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from typing import Any

from meshdoctor.istio.versions import TELEMETRY_POD_LABELS
from meshdoctor.kube.meta import labels_of, name_of, namespace_of
from meshdoctor.kube.pod_names import is_generated_pod_name
from meshdoctor.kube.workloads import containers, pod_template, pods_of
from meshdoctor.logs.scanner import SAMPLES_PER_GROUP, MatchGroup, Scanner, group_matches, load_signatures
from meshdoctor.snapshot import KubeObject, LogKey, LogSource, ObjectReader

#: The sidecar's container name (Istio's injection template, every version).
SIDECAR = "istio-proxy"

#: What a previous instance's log is called in evidence (`kubectl logs --previous`).
PREVIOUS = " (previous)"

#: Signature sources of the control plane's logs (the `telemetry` log group), and which sources
#: each log group is scanned for.
CONTROL_PLANE_SOURCES = frozenset({"istiod", "mixer"})
TELEMETRY = "telemetry"
_GROUP_SOURCES = {"agent": ("agent",), SIDECAR: (SIDECAR,), TELEMETRY: ("istiod", "mixer")}


@functools.lru_cache(maxsize=4)
def shared_scanner(group: str) -> Scanner:
    """The built-in signatures of one log group's sources, compiled once per process.

    `agent` and `istio-proxy` are their own source; `telemetry` scans for `istiod` and `mixer`.
    """
    sources = _GROUP_SOURCES.get(group, (group,))
    return Scanner([s for s in load_signatures() if s.source in sources])


def telemetry_workloads(reader: ObjectReader) -> list[KubeObject]:
    """The Deployments whose pods make the `telemetry` log group (istio-telemetry, istiod, pilot).

    Picked by the pod labels the live source collects that group by (on the Deployment or its
    pod template); istio-policy's Mixer is not one of them.
    """
    out = []
    for deployment in reader.objects("Deployment"):
        template = pod_template(deployment) or {}
        labels = {**labels_of(template), **labels_of(deployment)}
        if any(str(labels.get(k)) == v for k, v in TELEMETRY_POD_LABELS):
            out.append(deployment)
    return out


def log_targets(reader: ObjectReader, workload: KubeObject, logged: Iterable[LogKey]) -> list[tuple[str, str, str]]:
    """(namespace, pod, container) of every log the workload's pods may have, in reading order.

    The pods are `pods_of` the workload, then pods that have logs in `logged` (the input's logs)
    but no Pod object, whose name is one the workload's controller generates (`--logs DIR` next to
    manifests without pods). Containers: the pod's (else the template's), then those the input
    has logs of that the pod does not list, by name; the sidecar last.
    """
    namespace = namespace_of(workload)
    template = pod_template(workload) or {}
    template_names = [str(c.get("name") or "") for c in containers(template, include_init=False)]
    targets: list[tuple[str, str, str]] = []
    known: set[str] = set()
    logged = list(logged)
    for pod in pods_of(reader, workload):
        pod_name = name_of(pod)
        known.add(pod_name)
        names = [str(c.get("name") or "") for c in containers(pod, include_init=False)] or template_names
        # logs of a container the Pod does not list (a flare's status.log) are its too
        names += sorted({k.container for k in logged if k.namespace == namespace and k.pod == pod_name} - set(names))
        targets.extend((namespace, pod_name, n) for n in _ordered(names))
    orphans: dict[str, set[str]] = {}
    for key in logged:
        if key.namespace != namespace or key.pod in known:
            continue
        if is_generated_pod_name(workload, key.pod):
            orphans.setdefault(key.pod, set()).add(key.container)
    for pod_name in sorted(orphans):
        if reader.get("Pod", namespace, pod_name) is None:
            names = [n for n in template_names if n in orphans[pod_name]]
            names += sorted(orphans[pod_name] - set(names))
            targets.extend((namespace, pod_name, n) for n in _ordered(names))
    return targets


def unclaimed_log_pods(
    reader: ObjectReader, logged: Iterable[LogKey], claimed: set[tuple[str, str]]
) -> list[KubeObject]:
    """Pods made from logs no workload reads: one synthetic Pod per (namespace, pod) of `logged`.

    A log is unclaimed when no workload's `log_targets` named its pod (`claimed`, pairs of
    namespace and pod) and the input has no Pod of that name (a known pod of another workload
    is not the agent's). This is how logs alone (`--logs DIR`, `--from agent.log`, a flare's
    agent log) are read at all: the lines are attributed to the file's namespace, pod and
    container, since no object says whose they are. The Pod is not added to the snapshot; it
    carries only names (its containers: the logs' containers, the sidecar last), in name order.
    """
    by_pod: dict[tuple[str, str], set[str]] = {}
    for key in logged:
        where = (key.namespace, key.pod)
        if where in claimed or reader.get("Pod", key.namespace, key.pod) is not None:
            continue
        by_pod.setdefault(where, set()).add(key.container)
    pods = []
    for (namespace, pod), names in sorted(by_pod.items()):
        spec = {"containers": [{"name": n} for n in _ordered(sorted(names))]}
        meta = {"namespace": namespace, "name": pod}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    return pods


def _ordered(names: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(n for n in names if n))
    return [n for n in unique if n != SIDECAR] + [n for n in unique if n == SIDECAR]


def has_a_line(log: LogSource) -> bool:
    """Whether a log has at least one line (reads one line, not the log)."""
    lines = iter(log.lines())
    try:
        return next(lines, None) is not None
    finally:
        close = getattr(lines, "close", None)
        if callable(close):
            close()


def scanned_groups(
    cache: dict[Any, Any],
    log: LogSource,
    namespace: str,
    pod: str,
    container: str,
    previous: bool,
    group: str | None = None,
) -> list[MatchGroup]:
    """The groups of one log, scanned once per run (memoised in `cache`, the run's context cache).

    `group` is the log group whose signatures apply; by default the agent's or its sidecar's,
    by container name.
    """
    group = group or (SIDECAR if container == SIDECAR else "agent")
    key = ("rules.logs", group, namespace, pod, container, previous)
    cached = cache.get(key)
    if cached is None:
        scanner = shared_scanner(group)
        shown = container + PREVIOUS if previous else container
        cached = group_matches(_scan(scanner, log, namespace, pod, shown))
        cache[key] = cached
    return list(cached)


def _scan(scanner: Scanner, log: LogSource, namespace: str, pod: str, container: str) -> Any:
    """Matches of a log: its raw bytes in chunks where the source offers them, else its lines."""
    opener = getattr(log, "open", None)
    if callable(opener):
        with opener() as handle:
            return scanner.scan_file(handle, namespace=namespace, pod=pod, container=container)
    raw = getattr(log, "raw", None)
    if callable(raw):
        data = io.BytesIO(raw())
        return scanner.scan_file(data, namespace=namespace, pod=pod, container=container)
    return scanner.scan(log.lines(), namespace=namespace, pod=pod, container=container)


def merge_groups(groups: Iterable[MatchGroup]) -> list[MatchGroup]:
    """Groups of several logs merged by signature and key: counts added, first/last widened.

    Samples are the first `SAMPLES_PER_GROUP` in reading order; timestamps compare as text
    (every log of one workload writes the same format). Linear in the number of groups: a
    DaemonSet of 1,000 pods merges 1,000 logs' groups (accumulated, then built once).
    """
    merged: dict[tuple[str, Any], list[Any]] = {}
    for group in groups:
        key = (group.signature.id, group.key)
        state = merged.get(key)
        if state is None:
            merged[key] = [group, None]
            continue
        if state[1] is None:  # a second group: start accumulating from the first
            first = state[0]
            state[1] = {
                "count": first.count,
                "firsts": [first.first_seen] if first.first_seen else [],
                "lasts": [first.last_seen] if first.last_seen else [],
                "samples": list(first.samples[:SAMPLES_PER_GROUP]),
                "pods": set(first.pods),
                "last_lines": dict(_latest(first.last_lines)),
            }
        acc = state[1]
        acc["count"] += group.count
        if group.first_seen:
            acc["firsts"].append(group.first_seen)
        if group.last_seen:
            acc["lasts"].append(group.last_seen)
        if len(acc["samples"]) < SAMPLES_PER_GROUP:
            acc["samples"].extend(group.samples[: SAMPLES_PER_GROUP - len(acc["samples"])])
        acc["pods"].update(group.pods)
        latest = acc["last_lines"]
        for where, line in group.last_lines:
            latest[where] = max(line, latest.get(where, 0))
    out = []
    for first, acc in merged.values():
        if acc is None:
            out.append(first)
            continue
        out.append(
            MatchGroup(
                first.signature,
                first.key,
                acc["count"],
                min(acc["firsts"]) if acc["firsts"] else None,
                max(acc["lasts"]) if acc["lasts"] else None,
                tuple(acc["samples"]),
                tuple(sorted(acc["pods"])),
                tuple(sorted(acc["last_lines"].items())),
            )
        )
    return out


def _latest(lines: Iterable[tuple[tuple[str, str, str], int]]) -> tuple[tuple[tuple[str, str, str], int], ...]:
    """The last line per log of several groups' `last_lines`, sorted."""
    latest: dict[tuple[str, str, str], int] = {}
    for where, line in lines:
        latest[where] = max(line, latest.get(where, 0))
    return tuple(sorted(latest.items()))
