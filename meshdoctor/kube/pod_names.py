"""The names workload controllers generate for their pods.

A DaemonSet names its pods `<name>-<5>`, a Deployment (through its ReplicaSet) `<name>-<hash>-<5>`;
Kubernetes draws generated suffixes from the alphabet bcdfghjklmnpqrstvwxz2456789. A pod name of
that shape tells which workload a pod (or a log of it, without its Pod object) belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshdoctor.kube.meta import name_of

_GENERATED_SUFFIX = {
    "DaemonSet": re.compile(r"-[a-z0-9]{5}"),
    "Deployment": re.compile(r"-[a-z0-9]{5,10}-[a-z0-9]{5}"),
}


def is_generated_pod_name(workload: Mapping[str, Any], pod: str) -> bool:
    """Whether `pod` is a name the workload's controller generates for its pods (DaemonSet, Deployment)."""
    suffix = _GENERATED_SUFFIX.get(str(workload.get("kind")))
    if suffix is None:
        return False
    prefix = name_of(workload)
    return pod.startswith(prefix) and suffix.fullmatch(pod[len(prefix) :]) is not None
