"""Every kind meshdoctor rules may read, and where the API server serves it.

The live source lists exactly these (one LIST per kind a selected rule declares), the snapshot
writer names its files after them, and `deploy/meshdoctor-clusterrole.yaml` grants `get`/`list` on
exactly them (a test keeps the two in agreement).

Sources of the facts:
- built-in kinds: the Kubernetes API reference (v1.34), "API groups" and each kind's page
  (group, version, plural resource, scope);
- Istio: istio/istio 1.30.3 `manifests/charts/base/files/crd-all.gen.yaml` serves the five
  networking kinds in v1, v1beta1 and v1alpha3 and PeerAuthentication in v1 and v1beta1;
  istio/istio 1.4.10 `install/kubernetes/helm/istio-init/files/crd-10.yaml` serves
  authentication.istio.io v1alpha1 `policies` (namespaced) and `meshpolicies` (cluster-scoped);
- Datadog: DataDog/datadog-operator `config/crd/bases/v1/datadoghq.com_datadogagents.yaml`
  (v2alpha1 served and stored; v1alpha1 served by operator releases before 1.0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KindInfo:
    """Where one kind lives in the API."""

    kind: str
    """The kind, e.g. `DaemonSet`."""
    group: str
    """API group; `""` is the core group."""
    versions: tuple[str, ...]
    """Versions to ask for, preferred first; discovery picks the first one the server serves."""
    plural: str
    """The resource name in URLs and RBAC rules, e.g. `daemonsets`."""
    namespaced: bool
    """True for namespaced kinds."""
    custom: bool = False
    """True for custom resources, which may not be installed: discovery decides."""

    @property
    def version(self) -> str:
        """The preferred version."""
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        """`v1` for core, `group/version` otherwise."""
        version = version or self.version
        return f"{self.group}/{version}" if self.group else version

    def list_path(self, version: str | None = None, namespace: str | None = None) -> str:
        """The URL path of a LIST: all namespaces unless `namespace` is given (namespaced kinds)."""
        version = version or self.version
        base = f"/apis/{self.group}/{version}" if self.group else f"/api/{version}"
        if namespace and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    @property
    def resource(self) -> str:
        """`plural.group` (or `plural` for core), as `kubectl get` and error messages spell it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_ISTIO_NETWORKING = ("v1", "v1beta1", "v1alpha3")

KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in (
        # core
        KindInfo("Pod", "", ("v1",), "pods", True),
        KindInfo("Service", "", ("v1",), "services", True),
        KindInfo("Endpoints", "", ("v1",), "endpoints", True),
        KindInfo("ConfigMap", "", ("v1",), "configmaps", True),
        KindInfo("Secret", "", ("v1",), "secrets", True),
        KindInfo("ServiceAccount", "", ("v1",), "serviceaccounts", True),
        KindInfo("Namespace", "", ("v1",), "namespaces", False),
        KindInfo("Node", "", ("v1",), "nodes", False),
        KindInfo("Event", "", ("v1",), "events", True),
        KindInfo("ReplicationController", "", ("v1",), "replicationcontrollers", True),
        # apps, batch
        KindInfo("DaemonSet", "apps", ("v1",), "daemonsets", True),
        KindInfo("Deployment", "apps", ("v1",), "deployments", True),
        KindInfo("ReplicaSet", "apps", ("v1",), "replicasets", True),
        KindInfo("StatefulSet", "apps", ("v1",), "statefulsets", True),
        KindInfo("Job", "batch", ("v1",), "jobs", True),
        KindInfo("CronJob", "batch", ("v1", "v1beta1"), "cronjobs", True),
        # discovery, networking
        KindInfo("EndpointSlice", "discovery.k8s.io", ("v1",), "endpointslices", True),
        KindInfo("NetworkPolicy", "networking.k8s.io", ("v1",), "networkpolicies", True),
        # rbac
        KindInfo("Role", "rbac.authorization.k8s.io", ("v1",), "roles", True),
        KindInfo("ClusterRole", "rbac.authorization.k8s.io", ("v1",), "clusterroles", False),
        KindInfo("RoleBinding", "rbac.authorization.k8s.io", ("v1",), "rolebindings", True),
        KindInfo("ClusterRoleBinding", "rbac.authorization.k8s.io", ("v1",), "clusterrolebindings", False),
        # admission, CRDs
        KindInfo(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io",
            ("v1",),
            "mutatingwebhookconfigurations",
            False,
        ),
        KindInfo("CustomResourceDefinition", "apiextensions.k8s.io", ("v1",), "customresourcedefinitions", False),
        # Istio
        KindInfo("ServiceEntry", "networking.istio.io", _ISTIO_NETWORKING, "serviceentries", True, True),
        KindInfo("Sidecar", "networking.istio.io", _ISTIO_NETWORKING, "sidecars", True, True),
        KindInfo("DestinationRule", "networking.istio.io", _ISTIO_NETWORKING, "destinationrules", True, True),
        KindInfo("VirtualService", "networking.istio.io", _ISTIO_NETWORKING, "virtualservices", True, True),
        KindInfo("Gateway", "networking.istio.io", _ISTIO_NETWORKING, "gateways", True, True),
        KindInfo("PeerAuthentication", "security.istio.io", ("v1", "v1beta1"), "peerauthentications", True, True),
        KindInfo("Policy", "authentication.istio.io", ("v1alpha1",), "policies", True, True),
        KindInfo("MeshPolicy", "authentication.istio.io", ("v1alpha1",), "meshpolicies", False, True),
        # Datadog
        KindInfo("DatadogAgent", "datadoghq.com", ("v2alpha1", "v1alpha1"), "datadogagents", True, True),
    )
}


class UnknownKind(KeyError):
    """A kind no table row describes: a rule declared something meshdoctor cannot collect."""


def kind_info(kind: str) -> KindInfo:
    """The row of a kind; `UnknownKind` names it when there is none."""
    try:
        return KINDS[kind]
    except KeyError:
        raise UnknownKind(f"unknown kind {kind!r}: not in meshdoctor.kube.kinds.KINDS") from None


def known(kinds: Iterable[str]) -> tuple[list[KindInfo], list[str]]:
    """Split kinds into rows (sorted by kind) and names no row describes (sorted)."""
    rows = sorted((KINDS[k] for k in set(kinds) if k in KINDS), key=lambda info: info.kind)
    unknown = sorted(k for k in set(kinds) if k not in KINDS)
    return rows, unknown


def with_type(items: Iterable[dict[str, Any]], kind: str, api_version: str) -> list[dict[str, Any]]:
    """Items of a LIST, each given the `kind` and `apiVersion` the server leaves out of list items."""
    return [{"apiVersion": api_version, "kind": kind, **_untyped(item)} for item in items]


def _untyped(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in ("apiVersion", "kind")}
