"""The NetworkPolicy that lets a workload's pods send to another workload's port.

The egress counterpart of `network_policy.admitting_policy_manifest`: the fix for a sender isolated
for egress, written in the sender's namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.network_policy import EGRESS, NAMESPACE_NAME_LABEL, stable_labels
from meshdoctor.kube.object_names import dns_label, short_name


def egress_policy_manifest(
    target_pod: Mapping[str, Any], source_pod: Mapping[str, Any], port: int | str
) -> dict[str, Any]:
    """A complete NetworkPolicy letting the source's pods send to the target's pods on the port.

    It lives in the source's namespace; the target is named by its stable labels and its
    namespace's `kubernetes.io/metadata.name`.
    """
    source_labels = stable_labels(source_pod)
    target_labels = stable_labels(target_pod)
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace_of(target_pod) or "default"}},
        "podSelector": {"matchLabels": target_labels} if target_labels else {},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": dns_label(f"allow-{short_name(source_pod)}-to-{short_name(target_pod)}-{port}"),
            "namespace": namespace_of(source_pod) or "default",
        },
        "spec": {
            "podSelector": {"matchLabels": source_labels} if source_labels else {},
            "policyTypes": [EGRESS],
            "egress": [{"to": [peer], "ports": [{"protocol": "TCP", "port": port}]}],
        },
    }
