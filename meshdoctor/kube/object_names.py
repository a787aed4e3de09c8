"""Names for the objects meshdoctor writes: a DNS-1123 label, and the short name a workload goes by."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshdoctor.kube.meta import labels_of, name_of
from meshdoctor.kube.workloads import pod_template

#: Labels that name an application, most telling first: the recommended `app.kubernetes.io/name`,
#: then the common conventions.
APP_NAME_LABELS = ("app.kubernetes.io/name", "app", "k8s-app", "name")


def dns_label(text: str) -> str:
    """`text` as a DNS-1123 label (lowercase letters, digits and `-`, at most 63); `policy` if none is left."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-") or "policy"


def short_name(obj: Mapping[str, Any]) -> str:
    """What a pod or workload is called: its app label (a workload's from its pod template), else its name."""
    labels = labels_of(pod_template(dict(obj)) or obj) if obj.get("kind") != "Pod" else labels_of(obj)
    for key in APP_NAME_LABELS:
        if labels.get(key):
            return labels[key]
    return name_of(obj) or "pods"
