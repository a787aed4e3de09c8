"""The pods that stand for a workload or a group of pods when traffic between them is judged."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshdoctor.kube.meta import metadata, namespace_of
from meshdoctor.kube.network_policy import pod_like, stable_labels
from meshdoctor.kube.workloads import pods_of
from meshdoctor.snapshot import KubeObject, ObjectReader


def workload_pods(reader: ObjectReader, workload: KubeObject) -> list[KubeObject]:
    """A workload's pods, else (none in the input) its pod template as a pod-like."""
    pods = pods_of(reader, workload)
    if pods:
        return pods
    like = pod_like(workload)
    return [like] if like is not None else []


def representatives(pods: Iterable[KubeObject]) -> list[KubeObject]:
    """One pod per distinct namespace, stable labels, host network and annotation keys.

    Pods of one workload are judged alike by selectors, so one stands for all (IP blocks aside).
    """
    seen: set[tuple[Any, ...]] = set()
    chosen = []
    for pod in pods:
        key = (
            namespace_of(pod),
            tuple(sorted(stable_labels(pod).items())),
            bool((pod.get("spec") or {}).get("hostNetwork")),
            tuple(sorted(str(k) for k in (metadata(pod).get("annotations") or {}))),
        )
        if key in seen:
            continue
        seen.add(key)
        chosen.append(pod)
    return chosen
