"""ServiceAccounts: which one a pod template runs as, which ones bindings name, and when one is missing.

As the API server does: a pod template that names no account runs as `default` (which every
namespace has); `serviceAccountName` wins over its deprecated alias `serviceAccount`; a binding's
ServiceAccount subject without a namespace defaults to a RoleBinding's own namespace and matches
nobody in a ClusterRoleBinding; the ServiceAccount admission plugin refuses a pod whose account does
not exist, and the workload's controller records it as an event.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader

#: The account a pod runs as when its template names none; every namespace has it.
DEFAULT_ACCOUNT = "default"

#: The controller's event when the pod's service account is missing (kubernetes
#: plugin/pkg/admission/serviceaccount: "error looking up service account %s/%s: %v").
SERVICE_ACCOUNT_LOOKUP_ERROR = "error looking up service account"


def service_account_field(workload: KubeObject) -> tuple[str, str | None]:
    """The template field naming the account and what it holds (None when absent).

    `serviceAccountName`, else the deprecated `serviceAccount`; when neither is set, the path of
    `serviceAccountName` (where a fix would set it) and None: the pods run as `default`.
    """
    template = pod_template(workload) or {}
    spec = template.get("spec") or {}
    base = template_path(workload)
    if spec.get("serviceAccountName"):
        return f"{base}.spec.serviceAccountName", str(spec["serviceAccountName"])
    if spec.get("serviceAccount"):
        return f"{base}.spec.serviceAccount", str(spec["serviceAccount"])
    return f"{base}.spec.serviceAccountName", None


def bound_accounts(reader: ObjectReader, namespace: str) -> dict[str, list[tuple[KubeObject, int]]]:
    """ServiceAccounts of `namespace` that bindings name: name -> [(binding, subject index)].

    A subject without a namespace defaults to a RoleBinding's own namespace, as the API server does
    (and matches nobody in a ClusterRoleBinding).
    """
    found: dict[str, list[tuple[KubeObject, int]]] = {}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in reader.objects(kind):
            binding_namespace = namespace_of(binding) if kind == "RoleBinding" else ""
            for index, subject in enumerate(binding.get("subjects") or []):
                if not isinstance(subject, Mapping) or subject.get("kind") != "ServiceAccount":
                    continue
                subject_namespace = str(subject.get("namespace") or binding_namespace)
                if subject_namespace == namespace and subject.get("name"):
                    found.setdefault(str(subject["name"]), []).append((binding, index))
    return found


def service_account_manifest(namespace: str, name: str) -> KubeObject:
    """A complete ServiceAccount."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }


def lookup_error_events(reader: ObjectReader, workload: ObjectRef, account: str) -> list[KubeObject]:
    """Events of a workload saying its pods cannot be created for want of `account` (of its namespace)."""
    needle = f"{SERVICE_ACCOUNT_LOOKUP_ERROR} {workload.namespace}/{account}:"
    found = []
    for event in reader.objects("Event"):
        involved = event.get("involvedObject") or {}
        if (
            involved.get("kind") == workload.kind
            and involved.get("namespace") == workload.namespace
            and involved.get("name") == workload.name
            and needle in str(event.get("message") or "")
        ):
            found.append(event)
    return found
