"""The pods behind a Service, and the container ports a Service port lands on.

The pods are the ones its endpoints name, else the pods its selector picks, else (manifests not
applied yet) pod-likes of the workloads whose pod template it selects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshdoctor.kube.labels import map_selector_matches
from meshdoctor.kube.meta import labels_of, namespace_of
from meshdoctor.kube.network_policy import pod_like, port_number
from meshdoctor.kube.service_endpoints import EndpointsStatus, ServicePort, ready_endpoints, target_port
from meshdoctor.kube.workloads import pod_template
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Workload kinds whose templates a Service may be meant to select (for a corrected selector).
SERVED_BY_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def service_selector(service: Mapping[str, Any]) -> dict[str, str]:
    """A Service's `spec.selector` as strings (`{}` when it has none)."""
    return {str(k): str(v) for k, v in ((service.get("spec") or {}).get("selector") or {}).items()}


def service_pods(
    reader: ObjectReader, service: KubeObject, port: int, status: EndpointsStatus | None = None
) -> list[KubeObject]:
    """The pods behind a Service's port.

    Its endpoints' pods (`status`, read when not given), else the pods its selector picks, else
    (manifests not yet applied) pod-likes of the workloads whose template it selects.
    """
    namespace = namespace_of(service)
    if status is None:
        status = ready_endpoints(reader, service, port)
    pods: list[KubeObject] = []
    for endpoint in status.ready + status.not_ready:
        if endpoint.pod is not None and endpoint.pod.kind == "Pod":
            pod = reader.get("Pod", endpoint.pod.namespace, endpoint.pod.name)
            if pod is not None and pod not in pods:
                pods.append(pod)
    selector = service_selector(service)
    if not pods and selector:
        pods = [
            p
            for p in reader.objects("Pod")
            if namespace_of(p) == namespace and map_selector_matches(selector, labels_of(p))
        ]
    if not pods and selector:
        for kind in SERVED_BY_KINDS:
            for workload in reader.objects(kind):
                template = pod_template(workload) or {}
                if namespace_of(workload) == namespace and map_selector_matches(selector, labels_of(template)):
                    like = pod_like(workload)
                    if like is not None:
                        pods.append(like)
    return pods


def serving_workloads(reader: ObjectReader, namespace: str, service_port: ServicePort) -> list[KubeObject]:
    """The workloads of a namespace whose pod template declares the container port a Service port targets."""
    found = []
    for kind in SERVED_BY_KINDS:
        for workload in reader.objects(kind):
            if namespace_of(workload) != namespace:
                continue
            template = pod_template(workload) or {}
            if target_port(service_port, template) is None:
                continue
            wanted = service_port.target_port
            declared = [
                p
                for c in (template.get("spec") or {}).get("containers") or []
                for p in c.get("ports") or []
                if (isinstance(wanted, int) and port_number(p.get("containerPort")) == wanted)
                or (isinstance(wanted, str) and p.get("name") == wanted)
            ]
            if declared:
                found.append(workload)
    return found


def pod_port(service_port: ServicePort, pod: Mapping[str, Any]) -> int | str:
    """The container port a Service port sends to on this pod (its name when unresolved)."""
    number = target_port(service_port, pod)
    return number if number is not None else service_port.target_port


def declares_port(pods: Iterable[Mapping[str, Any]], port: int) -> bool:
    """Whether a container of one of the pods declares that container port number."""
    return any(
        port_number(p.get("containerPort")) == port
        for pod in pods
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
    )
