"""The shapes of the object fields meshdoctor reads, checked where objects enter (offline sources).

An API server never serves a Deployment whose pod template `spec` is a string or whose labels are a
list: its typed decoding rejects them, and `kubectl apply` says "invalid type" before sending. Files
can hold anything, so each object read offline is checked here against the shapes below — only the
fields the domain code and rules read, and only their structure (mapping, list, scalar), with null
allowed everywhere (Go's decoding treats null as absent). A mismatch is an `InputError` naming the
file, the line of the field, the object and the field path, with exit code 2, like kubectl's own
refusal: a file whose objects could not exist in a cluster cannot describe one, and skipping the
object would diagnose a cluster without it. Rules and helpers can then trust the structure.

Field names and types are those of the Kubernetes API (k8s.io/api core/v1, apps/v1, batch/v1,
rbac/v1, networking/v1, discovery/v1, admissionregistration/v1, apiextensions/v1 types.go) and of
the Istio API (istio.io/api networking/v1alpha3, security/v1beta1, and authentication/v1alpha1
for the Mixer era).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from meshdoctor.errors import InputError


class _Leaf:
    """A leaf shape, named for messages."""

    __slots__ = ("name", "accepts")

    def __init__(self, name: str, accepts: Callable[[Any], bool]) -> None:
        self.name = name
        self.accepts = accepts


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


#: A string, number or boolean (Go decodes some as strings, some as numbers; rules use `str()`).
SCALAR: Final = _Leaf("a scalar", _is_scalar)
#: Any mapping (a field whose inside meshdoctor does not read, or reads defensively).
MAPPING: Final = _Leaf("a mapping", lambda value: isinstance(value, dict))
#: Any list.
LIST: Final = _Leaf("a list", lambda value: isinstance(value, list))
#: `map[string]string`: labels, annotations, selectors, ConfigMap data.
STRING_MAP: Final = _Leaf(
    "a mapping of strings",
    lambda value: (
        isinstance(value, dict) and all(isinstance(k, str) and (v is None or _is_scalar(v)) for k, v in value.items())
    ),
)


class MapOf:
    """`map[K]T`: a mapping whose values have one shape (keys may be numbers: `portLevelMtls`)."""

    __slots__ = ("values",)

    def __init__(self, values: Shape) -> None:
        self.values = values


# A shape: a leaf, a dict (a mapping whose named fields have shapes; other fields are free),
# a one-element list (a list whose elements have that shape), or MapOf.
Shape = _Leaf | dict[str, Any] | list[Any] | MapOf

STRINGS: Final = [SCALAR]

SELECTOR: Final = {
    "matchLabels": STRING_MAP,
    "matchExpressions": [{"key": SCALAR, "operator": SCALAR, "values": STRINGS}],
}

METADATA: Final = {
    "name": SCALAR,
    "namespace": SCALAR,
    "labels": STRING_MAP,
    "annotations": STRING_MAP,
    "ownerReferences": [{"kind": SCALAR, "name": SCALAR, "uid": SCALAR, "controller": SCALAR}],
}

_KEY_REF: Final = {"name": SCALAR, "key": SCALAR, "optional": SCALAR}

CONTAINER: Final = {
    "name": SCALAR,
    "image": SCALAR,
    "command": STRINGS,
    "args": STRINGS,
    "env": [
        {
            "name": SCALAR,
            "value": SCALAR,
            "valueFrom": {
                "configMapKeyRef": _KEY_REF,
                "secretKeyRef": _KEY_REF,
                "fieldRef": MAPPING,
                "resourceFieldRef": MAPPING,
            },
        }
    ],
    "envFrom": [
        {
            "prefix": SCALAR,
            "configMapRef": {"name": SCALAR, "optional": SCALAR},
            "secretRef": {"name": SCALAR, "optional": SCALAR},
        }
    ],
    "volumeMounts": [{"name": SCALAR, "mountPath": SCALAR, "subPath": SCALAR, "readOnly": SCALAR}],
    "ports": [{"name": SCALAR, "containerPort": SCALAR, "protocol": SCALAR, "hostPort": SCALAR}],
    "readinessProbe": MAPPING,
    "livenessProbe": MAPPING,
    "securityContext": MAPPING,
    "resources": MAPPING,
}

_KEY_TO_PATH: Final = [{"key": SCALAR, "path": SCALAR, "mode": SCALAR}]

VOLUME: Final = {
    "name": SCALAR,
    "configMap": {"name": SCALAR, "items": _KEY_TO_PATH, "optional": SCALAR},
    "secret": {"secretName": SCALAR, "items": _KEY_TO_PATH},
    "hostPath": {"path": SCALAR, "type": SCALAR},
    "emptyDir": MAPPING,
    "projected": {
        "sources": [
            {
                "configMap": {"name": SCALAR, "items": _KEY_TO_PATH},
                "secret": {"name": SCALAR, "items": _KEY_TO_PATH},
                "serviceAccountToken": MAPPING,
                "downwardAPI": MAPPING,
            }
        ]
    },
}

POD_SPEC: Final = {
    "containers": [CONTAINER],
    "initContainers": [CONTAINER],
    "ephemeralContainers": [MAPPING],
    "volumes": [VOLUME],
    "serviceAccountName": SCALAR,
    "serviceAccount": SCALAR,
    "nodeName": SCALAR,
    "hostNetwork": SCALAR,
    "restartPolicy": SCALAR,
    "nodeSelector": STRING_MAP,
    "tolerations": [MAPPING],
    "affinity": MAPPING,
    "securityContext": MAPPING,
    "imagePullSecrets": [MAPPING],
}

POD_TEMPLATE: Final = {"metadata": METADATA, "spec": POD_SPEC}

_CONTAINER_STATUS: Final = [
    {
        "name": SCALAR,
        "image": SCALAR,
        "imageID": SCALAR,
        "ready": SCALAR,
        "restartCount": SCALAR,
        "state": MapOf(MAPPING),
        "lastState": MapOf(MAPPING),
    }
]

_WORKLOAD: Final = {"spec": {"template": POD_TEMPLATE, "selector": SELECTOR, "updateStrategy": MAPPING}}

_PORT: Final = {"name": SCALAR, "number": SCALAR, "protocol": SCALAR, "targetPort": SCALAR}

_NETWORK_PEER: Final = {
    "podSelector": SELECTOR,
    "namespaceSelector": SELECTOR,
    "ipBlock": {"cidr": SCALAR, "except": STRINGS},
}

_POLICY_PORTS: Final = [{"port": SCALAR, "endPort": SCALAR, "protocol": SCALAR}]

_WEBHOOK: Final = [
    {
        "name": SCALAR,
        "namespaceSelector": SELECTOR,
        "objectSelector": SELECTOR,
        "clientConfig": {"service": MAPPING, "url": SCALAR},
        "rules": [MAPPING],
    }
]

_ISTIO_SELECTOR: Final = {"matchLabels": STRING_MAP}

_KIND_SHAPES: Final[Mapping[str, dict[str, Any]]] = {
    "Pod": {
        "spec": POD_SPEC,
        "status": {
            "phase": SCALAR,
            "podIP": SCALAR,
            "hostIP": SCALAR,
            "conditions": [{"type": SCALAR, "status": SCALAR}],
            "containerStatuses": _CONTAINER_STATUS,
            "initContainerStatuses": _CONTAINER_STATUS,
        },
    },
    "Deployment": _WORKLOAD,
    "DaemonSet": _WORKLOAD,
    "StatefulSet": _WORKLOAD,
    "ReplicaSet": _WORKLOAD,
    "Job": _WORKLOAD,
    "ReplicationController": {"spec": {"template": POD_TEMPLATE, "selector": STRING_MAP}},
    "CronJob": {"spec": {"jobTemplate": {"metadata": METADATA, "spec": {"template": POD_TEMPLATE}}}},
    "PodTemplate": {"template": POD_TEMPLATE},
    "Service": {
        "spec": {
            "selector": STRING_MAP,
            "ports": [{"name": SCALAR, "port": SCALAR, "targetPort": SCALAR, "protocol": SCALAR}],
            "clusterIP": SCALAR,
            "type": SCALAR,
        }
    },
    "Endpoints": {
        "subsets": [
            {
                "addresses": [{"ip": SCALAR, "targetRef": MAPPING, "nodeName": SCALAR}],
                "notReadyAddresses": [{"ip": SCALAR, "targetRef": MAPPING, "nodeName": SCALAR}],
                "ports": [{"name": SCALAR, "port": SCALAR, "protocol": SCALAR}],
            }
        ]
    },
    "EndpointSlice": {
        "endpoints": [{"addresses": STRINGS, "conditions": MapOf(SCALAR), "targetRef": MAPPING}],
        "ports": [{"name": SCALAR, "port": SCALAR, "protocol": SCALAR}],
    },
    "ConfigMap": {"data": STRING_MAP, "binaryData": STRING_MAP},
    "Secret": {"data": STRING_MAP, "stringData": STRING_MAP},
    "ServiceAccount": {"secrets": [MAPPING], "imagePullSecrets": [MAPPING]},
    "Namespace": {},
    "Node": {"status": {"nodeInfo": MapOf(SCALAR), "addresses": [MAPPING], "conditions": [MAPPING]}},
    "Event": {"involvedObject": MAPPING},
    "Role": {
        "rules": [
            {
                "apiGroups": STRINGS,
                "resources": STRINGS,
                "verbs": STRINGS,
                "resourceNames": STRINGS,
                "nonResourceURLs": STRINGS,
            }
        ]
    },
    "RoleBinding": {
        "roleRef": {"kind": SCALAR, "name": SCALAR, "apiGroup": SCALAR},
        "subjects": [{"kind": SCALAR, "name": SCALAR, "namespace": SCALAR, "apiGroup": SCALAR}],
    },
    "CustomResourceDefinition": {
        "spec": {
            "group": SCALAR,
            "scope": SCALAR,
            "names": {"kind": SCALAR, "plural": SCALAR, "singular": SCALAR, "listKind": SCALAR},
            "versions": [{"name": SCALAR, "served": SCALAR, "storage": SCALAR}],
        }
    },
    "NetworkPolicy": {
        "spec": {
            "podSelector": SELECTOR,
            "policyTypes": STRINGS,
            "ingress": [{"from": [_NETWORK_PEER], "ports": _POLICY_PORTS}],
            "egress": [{"to": [_NETWORK_PEER], "ports": _POLICY_PORTS}],
        }
    },
    "MutatingWebhookConfiguration": {"webhooks": _WEBHOOK},
    "ValidatingWebhookConfiguration": {"webhooks": _WEBHOOK},
    "ServiceEntry": {
        "spec": {
            "hosts": STRINGS,
            "addresses": STRINGS,
            "ports": [_PORT],
            "exportTo": STRINGS,
            "location": SCALAR,
            "resolution": SCALAR,
            "endpoints": [{"address": SCALAR, "ports": MapOf(SCALAR), "labels": STRING_MAP}],
            "workloadSelector": {"labels": STRING_MAP},
        }
    },
    "Sidecar": {
        "spec": {
            "workloadSelector": {"labels": STRING_MAP},
            "egress": [{"hosts": STRINGS, "port": _PORT, "bind": SCALAR, "captureMode": SCALAR}],
            "ingress": [MAPPING],
            "outboundTrafficPolicy": {"mode": SCALAR, "egressProxy": MAPPING},
        }
    },
    "DestinationRule": {
        "spec": {
            "host": SCALAR,
            "exportTo": STRINGS,
            "trafficPolicy": {"tls": MAPPING, "portLevelSettings": [{"port": MapOf(SCALAR), "tls": MAPPING}]},
            "subsets": [{"name": SCALAR, "labels": STRING_MAP, "trafficPolicy": MAPPING}],
            "workloadSelector": _ISTIO_SELECTOR,
        }
    },
    "VirtualService": {"spec": {"hosts": STRINGS, "gateways": STRINGS, "exportTo": STRINGS}},
    "Gateway": {"spec": {"selector": STRING_MAP, "servers": [{"hosts": STRINGS, "port": _PORT, "tls": MAPPING}]}},
    "PeerAuthentication": {
        "spec": {"selector": _ISTIO_SELECTOR, "mtls": {"mode": SCALAR}, "portLevelMtls": MapOf({"mode": SCALAR})}
    },
    "AuthorizationPolicy": {"spec": {"selector": _ISTIO_SELECTOR, "action": SCALAR, "rules": [MAPPING]}},
    "EnvoyFilter": {"spec": {"workloadSelector": {"labels": STRING_MAP}, "configPatches": [MAPPING]}},
    "Policy": {"spec": {"targets": [MAPPING], "peers": [MAPPING]}},
    "MeshPolicy": {"spec": {"targets": [MAPPING], "peers": [MAPPING]}},
}
#: Kind -> shape of its fields (metadata, spec and status are checked for every kind: `COMMON`).
KIND_SHAPES: Final[Mapping[str, dict[str, Any]]] = {
    **_KIND_SHAPES,
    "ClusterRole": {**_KIND_SHAPES["Role"], "aggregationRule": {"clusterRoleSelectors": [SELECTOR]}},
    "ClusterRoleBinding": _KIND_SHAPES["RoleBinding"],
}

#: Fields every object may have, whatever its kind: their structure only.
COMMON: Final = {"metadata": METADATA, "spec": MAPPING, "status": MAPPING}


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def _mismatch(value: Any, shape: Shape, path: str) -> tuple[str, str] | None:
    """The first (path, message) where `value` does not have `shape`, iteratively; None if it has."""
    pending: list[tuple[Any, Shape, str]] = [(value, shape, path)]
    while pending:
        current, expected, where = pending.pop()
        if current is None:
            continue  # null is absent, as Go decodes it
        if isinstance(expected, _Leaf):
            if not expected.accepts(current):
                return where, f"is {_type_name(current)}, not {expected.name}"
        elif isinstance(expected, dict):
            if not isinstance(current, dict):
                return where, f"is {_type_name(current)}, not a mapping"
            for field, inner in expected.items():
                if field in current:
                    pending.append((current[field], inner, f"{where}.{field}" if where else field))
        elif isinstance(expected, list):
            if not isinstance(current, list):
                return where, f"is {_type_name(current)}, not a list"
            pending.extend((item, expected[0], f"{where}[{index}]") for index, item in enumerate(current))
        else:
            if not isinstance(current, dict):
                return where, f"is {_type_name(current)}, not a mapping"
            pending.extend((item, expected.values, f"{where}.{key}") for key, item in current.items())
    return None


def _role_ref_problem(obj: dict[str, Any]) -> tuple[str, str] | None:
    """A binding's `roleRef` problem: it is required, with a name and kind Role or ClusterRole.

    Only ClusterRole for a ClusterRoleBinding (kubernetes/kubernetes
    pkg/apis/rbac/validation/validation.go `ValidateRoleBinding` / `ValidateClusterRoleBinding`).
    Without one a binding names no role, so the API server refuses it.
    """
    ref = obj.get("roleRef")
    allowed = ("ClusterRole",) if obj.get("kind") == "ClusterRoleBinding" else ("Role", "ClusterRole")
    if not isinstance(ref, dict):
        return "roleRef", "is missing"
    if ref.get("kind") not in allowed:
        return "roleRef.kind", f"is {ref.get('kind')!r}, not {' or '.join(allowed)}"
    if not isinstance(ref.get("name"), str) or not ref["name"]:
        return "roleRef.name", "is missing"
    return None


#: Kind -> the check of fields the API server requires (beyond structure) that helpers rely on.
REQUIRED: Final[Mapping[str, Callable[[dict[str, Any]], tuple[str, str] | None]]] = {
    "RoleBinding": _role_ref_problem,
    "ClusterRoleBinding": _role_ref_problem,
}


def check_shape(obj: dict[str, Any], file: str, line: int | None, field_lines: Any = None) -> None:
    """Raise InputError if a field meshdoctor reads has a structure the API would refuse.

    `field_lines` (path -> line), when the source has it, names the line of the field itself.
    """
    kind = str(obj.get("kind"))
    shape = {**COMMON, **KIND_SHAPES.get(kind, {})}
    found = _mismatch(obj, shape, "")
    required = REQUIRED.get(kind)
    if found is None and required is not None:
        found = required(obj)
    if found is None:
        return
    path, problem = found
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = f"{namespace}/{meta.get('name')}" if isinstance(namespace, str) and namespace else str(meta.get("name"))
    if field_lines is not None:
        line = field_lines(path) or line
    raise InputError(file, f"{kind} {name}: {path} {problem} (the API server would refuse it)", line)
