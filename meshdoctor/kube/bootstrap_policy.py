"""The API server's default RBAC grants that a folder of manifests does not hold.

`/version` and `/healthz` are granted to every authenticated user by the default
ClusterRoleBindings `system:discovery` and `system:public-info-viewer`. An evaluation of a snapshot
adds those defaults wherever the snapshot does not hold an object of the same name (a live cluster
or a full `kubectl get clusterroles,clusterrolebindings` holds them, possibly modified, and those
win).
"""

from __future__ import annotations

from meshdoctor.kube.layered_reader import LayeredReader
from meshdoctor.kube.rbac import RbacEvaluator
from meshdoctor.snapshot import KubeObject, ObjectReader

#: The API group of Roles, ClusterRoles and their bindings (and of a `roleRef`).
RBAC_API_GROUP = "rbac.authorization.k8s.io"

#: The API server's default discovery grants (kubernetes
#: plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go `ClusterRoles()` and
#: testdata/cluster-role-bindings.yaml): every authenticated user may GET these non-resource URLs.
#: Only the two objects that matter to the agent (`/version`, `/healthz`) are modelled.
_DISCOVERY_URLS = ["/livez", "/readyz", "/healthz", "/version", "/version/"]
_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
BOOTSTRAP_POLICY: tuple[KubeObject, ...] = (
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:discovery", "labels": _BOOTSTRAP_LABELS},
        "rules": [
            {
                "nonResourceURLs": [
                    *_DISCOVERY_URLS,
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
                "verbs": ["get"],
            }
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:public-info-viewer", "labels": _BOOTSTRAP_LABELS},
        "rules": [{"nonResourceURLs": list(_DISCOVERY_URLS), "verbs": ["get"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:discovery", "labels": _BOOTSTRAP_LABELS},
        "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": "system:discovery"},
        "subjects": [{"apiGroup": RBAC_API_GROUP, "kind": "Group", "name": "system:authenticated"}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:public-info-viewer", "labels": _BOOTSTRAP_LABELS},
        "roleRef": {
            "apiGroup": RBAC_API_GROUP,
            "kind": "ClusterRole",
            "name": "system:public-info-viewer",
        },
        "subjects": [
            {"apiGroup": RBAC_API_GROUP, "kind": "Group", "name": "system:authenticated"},
            {"apiGroup": RBAC_API_GROUP, "kind": "Group", "name": "system:unauthenticated"},
        ],
    },
)


def with_bootstrap_policy(reader: ObjectReader) -> ObjectReader:
    """The snapshot plus the API server's default discovery grants it does not hold itself."""
    return LayeredReader(reader, BOOTSTRAP_POLICY, extra_wins=False)


def rbac_evaluator(reader: ObjectReader) -> RbacEvaluator:
    """An evaluator over the snapshot's RBAC objects plus the API server's default grants."""
    return RbacEvaluator(with_bootstrap_policy(reader))
