"""Services, their ports and their ready endpoints, and the check-config URLs that name them.

The `istio` check scrapes URLs such as `http://istiod.istio-system:15014/metrics`; the scrape works
only if that Service exists, has that port, and the port has ready endpoints. This module answers
those three questions the way Kubernetes does:

- a Service port is found by number or by name; its `targetPort` (default: the port) is a number,
  or a NAME resolved per pod against the container ports of the same protocol (the endpoints
  controller's `FindPort`);
- endpoints come from `discovery.k8s.io` EndpointSlices (label `kubernetes.io/service-name`,
  `conditions.ready`, where null means ready), else from the `Endpoints` object (`addresses` vs
  `notReadyAddresses`), else, when neither is in the snapshot, from the pods the selector picks,
  as the endpoints controller would (an IP, not terminal, Ready condition; not-ready pods count as
  ready with `publishNotReadyAddresses`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from meshdoctor.kube.labels import map_selector_matches
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader, object_ref

#: The label an EndpointSlice carries naming its Service (discovery.k8s.io/v1 `LabelServiceName`).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

#: Where endpoints were read from.
FROM_SLICES = "EndpointSlice"
FROM_ENDPOINTS = "Endpoints"
FROM_PODS = "pods"

#: Every kind the functions here read: a rule using them declares these (all but Service optional).
KINDS = ("Service", "EndpointSlice", "Endpoints", "Pod")


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service."""

    service: ObjectRef
    """The Service."""
    name: str
    """The port's name; `""` for the single unnamed port."""
    port: int
    """The port clients connect to."""
    target_port: int | str
    """The pod port: a number, or a container port NAME resolved per pod."""
    protocol: str = "TCP"
    """TCP, UDP or SCTP."""
    node_port: int | None = None
    """The node port, for NodePort and LoadBalancer Services."""
    app_protocol: str | None = None
    """`appProtocol`, which Istio reads as the protocol when set."""


@dataclass(frozen=True)
class Endpoint:
    """One address of a Service port."""

    ip: str
    """The pod (or external) address."""
    port: int | None
    """The port on that address."""
    pod: ObjectRef | None = None
    """The pod behind it (`targetRef`), when known."""
    node: str | None = None
    """The node it runs on, when known."""

    def __str__(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}" if self.port is not None else host


@dataclass(frozen=True)
class EndpointsStatus:
    """The ready and not-ready endpoints of one Service port, and what they were read from."""

    ready: list[Endpoint] = field(default_factory=list)
    """Addresses that receive traffic."""
    not_ready: list[Endpoint] = field(default_factory=list)
    """Addresses that exist but do not (failing readiness, starting, terminating)."""
    source: str = FROM_PODS
    """`EndpointSlice`, `Endpoints` or `pods` (computed from the selector and pod readiness)."""


class EndpointUrl(NamedTuple):
    """A URL from a check's configuration, split into what a Service lookup needs."""

    host: str
    """The host as written (a name, an IP, or a template variable such as `%%host%%`)."""
    namespace: str | None
    """The Service's namespace; None when it is not a Service or the name does not say."""
    service: str | None
    """The Service name; None when the host is not a Service (IP, template, external name)."""
    port: int | str | None
    """The port: a number, a template variable (`%%port%%`), the scheme's default, or None."""
    path: str
    """The path, `""` when none."""


# -- Service ports ---------------------------------------------------------------------------


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def service_ports(service: Mapping[str, Any]) -> list[ServicePort]:
    """Every port of a Service, `targetPort` defaulted to the port as the API server does."""
    ref = object_ref(dict(service))
    found: list[ServicePort] = []
    for entry in (service.get("spec") or {}).get("ports") or []:
        number = _as_int(entry.get("port"))
        if number is None:
            continue
        raw_target = entry.get("targetPort")
        target: int | str
        if raw_target is None or raw_target == 0 or raw_target == "":
            target = number
        else:
            target_number = _as_int(raw_target)
            target = target_number if target_number is not None else str(raw_target)
        found.append(
            ServicePort(
                ref,
                str(entry.get("name") or ""),
                number,
                target,
                str(entry.get("protocol") or "TCP"),
                _as_int(entry.get("nodePort")),
                entry.get("appProtocol"),
            )
        )
    return found


def find_service_port(service: Mapping[str, Any], port: int | str, protocol: str | None = None) -> ServicePort | None:
    """A Service's port by number (`15014`, `"15014"`) or by name (`http-monitoring`)."""
    number = _as_int(port)
    for candidate in service_ports(service):
        if protocol is not None and candidate.protocol != protocol:
            continue
        if number is not None and candidate.port == number:
            return candidate
        if number is None and candidate.name == str(port):
            return candidate
    return None


def resolve_service_port(
    reader: ObjectReader, namespace: str, service_name: str, port: int | str
) -> ServicePort | None:
    """Port of Service `namespace/service_name`, by number or name; None if either is absent."""
    service = reader.get("Service", namespace, service_name)
    return find_service_port(service, port) if service is not None else None


def _pod_ports(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    ports: list[Mapping[str, Any]] = []
    for container in spec.get("containers") or []:
        ports.extend(p for p in container.get("ports") or [] if isinstance(p, Mapping))
    for container in spec.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":  # sidecar containers serve too
            ports.extend(p for p in container.get("ports") or [] if isinstance(p, Mapping))
    return ports


def target_port(service_port: ServicePort, pod: Mapping[str, Any]) -> int | None:
    """The pod port a Service port sends to: the number, or the NAME looked up in the pod."""
    if isinstance(service_port.target_port, int):
        return service_port.target_port
    for port in _pod_ports(pod):
        if port.get("name") == service_port.target_port and str(port.get("protocol") or "TCP") == service_port.protocol:
            return _as_int(port.get("containerPort"))
    return None


# -- endpoints -------------------------------------------------------------------------------


def _ref(target: Mapping[str, Any] | None, default_namespace: str) -> ObjectRef | None:
    if not target or not target.get("name"):
        return None
    return ObjectRef(
        str(target.get("kind") or "Pod"),
        str(target.get("namespace") or default_namespace),
        str(target["name"]),
    )


def _port_of(ports: list[Mapping[str, Any]], service_port: ServicePort) -> int | None | bool:
    """The number an endpoint port list gives a Service port (matched by name and protocol).

    False when the list has no such port (those addresses do not serve it); None when the port is
    listed without a number (an EndpointSlice's "all ports").
    """
    for entry in ports:
        if (
            str(entry.get("name") or "") == service_port.name
            and str(entry.get("protocol") or "TCP") == service_port.protocol
        ):
            return _as_int(entry.get("port"))
    return False


def _from_slices(slices: list[KubeObject], service_port: ServicePort) -> EndpointsStatus:
    ready: list[Endpoint] = []
    not_ready: list[Endpoint] = []
    seen: set[tuple[str, int | None]] = set()
    for endpoint_slice in slices:
        number = _port_of(list(endpoint_slice.get("ports") or []), service_port)
        if number is False:
            continue
        port = number if isinstance(number, int) else None
        namespace = str((endpoint_slice.get("metadata") or {}).get("namespace") or "")
        for endpoint in endpoint_slice.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            ip = str(addresses[0])  # "clients may choose to only use the first element"
            if (ip, port) in seen:
                continue
            seen.add((ip, port))
            found = Endpoint(ip, port, _ref(endpoint.get("targetRef"), namespace), endpoint.get("nodeName"))
            is_ready = (endpoint.get("conditions") or {}).get("ready")
            (ready if is_ready is None or is_ready is True else not_ready).append(found)
    return EndpointsStatus(ready, not_ready, FROM_SLICES)


def _from_endpoints(endpoints: KubeObject, service_port: ServicePort) -> EndpointsStatus:
    ready: list[Endpoint] = []
    not_ready: list[Endpoint] = []
    namespace = str((endpoints.get("metadata") or {}).get("namespace") or "")
    for subset in endpoints.get("subsets") or []:
        number = _port_of(list(subset.get("ports") or []), service_port)
        if number is False:
            continue
        port = number if isinstance(number, int) else None
        for key, into in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for address in subset.get(key) or []:
                into.append(
                    Endpoint(
                        str(address.get("ip") or ""),
                        port,
                        _ref(address.get("targetRef"), namespace),
                        address.get("nodeName"),
                    )
                )
    return EndpointsStatus(ready, not_ready, FROM_ENDPOINTS)


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _from_pods(reader: ObjectReader, service: Mapping[str, Any], service_port: ServicePort) -> EndpointsStatus:
    spec = service.get("spec") or {}
    selector = spec.get("selector")
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    namespace = service_port.service.namespace
    ready: list[Endpoint] = []
    not_ready: list[Endpoint] = []
    if not selector:
        return EndpointsStatus(ready, not_ready, FROM_PODS)  # selectorless: endpoints are managed by hand
    for pod in reader.objects("Pod"):
        meta = pod.get("metadata") or {}
        if str(meta.get("namespace") or "") != namespace:
            continue
        if not map_selector_matches(selector, meta.get("labels") or {}):
            continue
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if meta.get("deletionTimestamp") and not publish_not_ready:
            continue
        port = target_port(service_port, pod)
        if port is None:
            continue  # FindPort failed: the controller leaves the pod out of this port
        found = Endpoint(
            str(ip),
            port,
            ObjectRef("Pod", namespace, str(meta.get("name") or "")),
            (pod.get("spec") or {}).get("nodeName"),
        )
        (ready if publish_not_ready or pod_is_ready(pod) else not_ready).append(found)
    return EndpointsStatus(ready, not_ready, FROM_PODS)


def ready_endpoints(reader: ObjectReader, service: Mapping[str, Any], port: int | str) -> EndpointsStatus:
    """The ready and not-ready endpoints of a Service's port (number or name).

    Read from the Service's EndpointSlices when the snapshot has any, else from its Endpoints
    object, else worked out from its pods. A port the Service does not have has no endpoints.
    """
    meta = service.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    service_port = find_service_port(service, port)
    slices = [
        s
        for s in reader.objects("EndpointSlice")
        if str((s.get("metadata") or {}).get("namespace") or "") == namespace
        and ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == name
    ]
    endpoints = reader.get("Endpoints", namespace, name)
    source = FROM_SLICES if slices else FROM_ENDPOINTS if endpoints is not None else FROM_PODS
    if service_port is None:
        return EndpointsStatus([], [], source)
    if slices:
        return _from_slices(slices, service_port)
    if endpoints is not None:
        return _from_endpoints(endpoints, service_port)
    return _from_pods(reader, service, service_port)


# -- check-config URLs -------------------------------------------------------------------------

_URL = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?:[^@/?#]*@)?"
    r"(?P<host>\[[^\]]*\]|[^:/?#]*)"
    r"(?::(?P<port>[^/?#]*))?"
    r"(?P<path>[^?#]*)"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_endpoint_url(url: str) -> EndpointUrl:
    """Split a check URL into host, Service namespace and name, port and path.

    `svc.ns`, `svc.ns.svc`, `svc.ns.svc.<cluster domain>` and `pod.svc.ns.svc.<domain>` name a
    Service (cluster DNS resolves `svc.ns` through the `svc.<domain>` search path); a single label
    names a Service of the client's own namespace (namespace None). IPs, `localhost`, Autodiscovery
    template variables (`%%host%%`) and longer external names are not Services.
    """
    match = _URL.match(url.strip())
    assert match is not None  # every group is optional: the pattern always matches
    scheme = (match.group("scheme") or "").lower()
    host = match.group("host") or ""
    raw_port = match.group("port")
    port: int | str | None
    if raw_port:
        port = int(raw_port) if raw_port.isdigit() else raw_port
    else:
        port = _DEFAULT_PORTS.get(scheme)
    path = match.group("path") or ""
    namespace: str | None = None
    service: str | None = None
    name = host.lower().rstrip(".")
    if name and "%%" not in name and not _is_ip(name) and name != "localhost":
        labels = name.split(".")
        if "svc" in labels[2:4]:
            at = labels.index("svc", 2)
            service, namespace = labels[at - 2], labels[at - 1]
        elif len(labels) == 2:
            service, namespace = labels
        elif len(labels) == 1:
            service = labels[0]
    return EndpointUrl(host, namespace, service, port, path)
