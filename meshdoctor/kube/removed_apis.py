"""Workload API versions Kubernetes stopped serving, and in which release.

Source: Kubernetes "Deprecated API Migration Guide"
(https://kubernetes.io/docs/reference/using-api/deprecation-guide/): the v1.16 section removes
DaemonSet, Deployment and ReplicaSet from extensions/v1beta1, apps/v1beta1 and apps/v1beta2
(apps/v1 replaces them; `spec.selector` becomes required and immutable); the v1.25 section
removes CronJob from batch/v1beta1 (batch/v1 replaces it); the v1.22 section removes
Ingress from extensions/v1beta1.
"""

from __future__ import annotations

#: (apiVersion, kind) -> (the release that stopped serving it, the replacement apiVersion)
REMOVED_WORKLOAD_APIS: dict[tuple[str, str], tuple[tuple[int, int], str]] = {
    ("extensions/v1beta1", "DaemonSet"): ((1, 16), "apps/v1"),
    ("extensions/v1beta1", "Deployment"): ((1, 16), "apps/v1"),
    ("extensions/v1beta1", "ReplicaSet"): ((1, 16), "apps/v1"),
    ("apps/v1beta1", "Deployment"): ((1, 16), "apps/v1"),
    ("apps/v1beta1", "StatefulSet"): ((1, 16), "apps/v1"),
    ("apps/v1beta2", "DaemonSet"): ((1, 16), "apps/v1"),
    ("apps/v1beta2", "Deployment"): ((1, 16), "apps/v1"),
    ("apps/v1beta2", "ReplicaSet"): ((1, 16), "apps/v1"),
    ("apps/v1beta2", "StatefulSet"): ((1, 16), "apps/v1"),
    ("batch/v1beta1", "CronJob"): ((1, 25), "batch/v1"),
}

#: extensions/v1beta1 DaemonSets defaulted `updateStrategy` to OnDelete; apps/v1 defaults to
#: RollingUpdate (same migration guide, and the apps/v1 DaemonSet API reference).
LEGACY_DAEMONSET_UPDATE_STRATEGY = "OnDelete"
