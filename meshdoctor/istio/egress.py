"""Which ServiceEntry lets a client reach an external host; does its sidecar capture the traffic.

With `outboundTrafficPolicy: REGISTRY_ONLY` (the 1.0 default, per the comment in 1.4.10
values.yaml) a sidecar sends a connection to a host it has no entry for to the BlackHole cluster.
The agent reaches its intake only when some ServiceEntry covers the intake host and port with a
protocol the agent's connection fits, that entry is exported to the agent's namespace, and the
agent's Sidecar resource (if any) imports it. This module answers those questions the way istiod
(`pilot/pkg/model`) does, and explains near misses.

Host semantics (istio/istio `pkg/config/host/name.go`, `SubsetOf`): `*` covers everything;
`*.example.com` covers `a.example.com` and `a.b.example.com`, never `example.com`; otherwise the
names must be equal. Names are compared lowercased, as DNS does (Istio's validation only admits
lowercase DNS-1123 names anyway).

Visibility (`pilot/pkg/model/push_context.go`, `initServiceRegistry`/`IsServiceVisible`): a
ServiceEntry's `spec.exportTo`, when empty, is the mesh config `defaultServiceExportTo` (default
`*`); `*` exports to all namespaces, `.` to the entry's own namespace, `~` to none, a name to that
namespace. The `networking.istio.io/exportTo` annotation is read from Kubernetes Services only
(`pilot/pkg/serviceregistry/kube/conversion.go`); on a ServiceEntry it does nothing. Istio 1.0 had
no exportTo field: an entry without one is visible everywhere, which the default `*` gives.

Sidecar scoping (`pilot/pkg/model/sidecar.go`, `push_context.go` `getSidecarScope`): a workload
uses the oldest Sidecar in its namespace whose `workloadSelector.labels` its labels include, else
the namespace's Sidecar without a selector, else the root namespace's Sidecar without a selector
(`rootNamespace` of the mesh config, `istio-system` by default), else none (everything visible).
An egress listener imports a service when one of its `namespace/host` entries has the service's
namespace (or `*`; `.` is the Sidecar's namespace; `~` matches no namespace) and the service's
host is a subset of the entry's host: a `*.datadoghq.com` ServiceEntry is imported by
`*/*.datadoghq.com` or `*/*`, not by `*/app.datadoghq.com`. A listener with a port imports only
services that have that port.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.istio.injection import injector_values
from meshdoctor.istio.mesh import mesh_config
from meshdoctor.istio.versions import EXCLUDE_OUTBOUND_PORTS_SINCE
from meshdoctor.kube.meta import metadata, namespace_of
from meshdoctor.kube.workloads import pod_template
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Root namespace default (mesh config `rootNamespace`; 1.30 istio-discovery configmap.yaml).
DEFAULT_ROOT_NAMESPACE = "istio-system"

#: `defaultServiceExportTo` when the mesh config does not set it
#: (push_context.go initDefaultExportMaps).
DEFAULT_SERVICE_EXPORT_TO = ("*",)

#: Which ServiceEntry port protocols carry a client's connection as the client speaks it.
#: The agent speaks TLS to its intake (HTTPS on 443): an HTTPS or TLS port routes it by SNI
#: without terminating it; a TCP port passes the bytes through; an unset protocol is sniffed
#: (1.3+; 1.0-1.2 reject a port without one). An HTTP, HTTP2 or GRPC port makes Envoy parse the agent's
#: TLS handshake as plaintext HTTP, so the connection fails. A DestinationRule that originates TLS
#: (the 1.0 `*.googleapis.com` sample: port 443 protocol `http` + `tls.mode: SIMPLE`) does not
#: change that: origination is for a client that sends plain HTTP and lets the sidecar encrypt; an
#: agent that already speaks TLS would need `DD_*_USE_HTTP`-style plaintext to benefit from it.
PROTOCOL_COMPATIBILITY: dict[str, frozenset[str]] = {
    "TLS": frozenset({"HTTPS", "TLS", "TCP", ""}),
    "HTTP": frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "TCP", ""}),
    "TCP": frozenset({"TCP", ""}),
}
_CLIENT_ALIASES = {
    "HTTPS": "TLS",
    "TLS": "TLS",
    "HTTP": "HTTP",
    "HTTP2": "HTTP",
    "GRPC": "HTTP",
    "TCP": "TCP",
}

#: Interception annotations (istio-api annotations.yaml) and the istio-init flags that carry them
#: (1.0.7 sidecar-injector-configmap.yaml: -i, -x; 1.4.10/1.30 injection templates: -o).
INCLUDE_OUTBOUND_IP_RANGES = "traffic.sidecar.istio.io/includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IP_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts"
_INIT_FLAGS = {
    INCLUDE_OUTBOUND_IP_RANGES: "-i",
    EXCLUDE_OUTBOUND_IP_RANGES: "-x",
    EXCLUDE_OUTBOUND_PORTS: "-o",
}
_VALUES_KEYS = {
    INCLUDE_OUTBOUND_IP_RANGES: "includeIPRanges",
    EXCLUDE_OUTBOUND_IP_RANGES: "excludeIPRanges",
    EXCLUDE_OUTBOUND_PORTS: "excludeOutboundPorts",
}
#: `global.proxy.includeIPRanges` default (1.0.7, 1.4.10, 1.30 values.yaml).
DEFAULT_INCLUDE_IP_RANGES = "*"


# -- hosts -----------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return str(name).strip().lower().rstrip(".")


def host_subset_of(host: str, pattern: str) -> bool:
    """Whether every name `host` stands for is covered by `pattern` (Istio `Name.SubsetOf`)."""
    host, pattern = _norm(host), _norm(pattern)
    if host.startswith("*"):
        if pattern.startswith("*"):
            return len(host) >= len(pattern) and host[1:].endswith(pattern[1:])
        return False
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return host == pattern


def host_matches(pattern: str, host: str) -> bool:
    """Whether a ServiceEntry/Sidecar host `pattern` covers the requested `host`."""
    return host_subset_of(host, pattern)


def _site_labels(name: str) -> set[str]:
    """Labels that identify a site (`datadoghq` in `*.datadoghq.eu`), for near-miss hints."""
    parts = [p for p in _norm(name).lstrip("*.").split(".") if p]
    return {p for p in parts[:-1] if len(p) >= 4 and p not in ("www", "com")}


def _host_near_miss(se_hosts: Sequence[str], host: str) -> str | None:
    want = _norm(host)
    for se_host in se_hosts:
        have = _norm(se_host)
        if have.startswith("*.") and have[2:] == want:
            return f"host {se_host} does not cover the bare domain {host}: a wildcard needs at least one more label"
        if not have.startswith("*") and want.endswith("." + have):
            return f"host {se_host} is the parent domain of {host}, not {host} itself (use *.{have})"
    for se_host in se_hosts:
        if _site_labels(se_host) & _site_labels(host):
            return f"host {se_host} does not cover {host} (another site or domain)"
    return None


# -- ports and protocols ---------------------------------------------------------------------------


def port_protocol(port: Mapping[str, Any]) -> str:
    """A ServiceEntry port's protocol: its `protocol` (any case), else "" (sniffed).

    Unlike a Service port, a ServiceEntry port's name never sets its protocol: every release
    converts it with `protocol.Parse(port.Protocol)` (1.0/1.1 pilot/pkg/serviceregistry/external
    conversion.go `model.ParseProtocol(port.Protocol)`; 1.8 to 1.30 serviceentry/conversion.go);
    the name prefix is read only by `kube.ConvertProtocol`, for Kubernetes Services. An empty
    protocol is sniffed from 1.3 (`// Empty string is used for protocol sniffing.`); 1.0-1.2
    validation rejects it ("unsupported protocol").
    """
    return str(port.get("protocol") or "").strip().upper()


def client_protocol(protocol: str) -> str:
    """What the client speaks, normalised to a key of `PROTOCOL_COMPATIBILITY`."""
    return _CLIENT_ALIASES.get(str(protocol).strip().upper(), "TCP")


def protocol_compatible(se_protocol: str, client: str) -> bool:
    """Whether a port declared `se_protocol` carries a connection the client makes in `client`."""
    return se_protocol.upper() in PROTOCOL_COMPATIBILITY[client_protocol(client)]


def _port_number(port: Mapping[str, Any]) -> int | None:
    try:
        return int(port.get("number"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


# -- exportTo --------------------------------------------------------------------------------------


def export_to(obj: Mapping[str, Any], default: Sequence[str] = DEFAULT_SERVICE_EXPORT_TO) -> list[str]:
    """An object's `spec.exportTo`, or the mesh default when it is empty."""
    values = [str(v) for v in ((obj.get("spec") or {}).get("exportTo") or [])]
    return values or [str(v) for v in default]


def exported_to(obj: Mapping[str, Any], namespace: str, default: Sequence[str] = DEFAULT_SERVICE_EXPORT_TO) -> bool:
    """Whether an Istio config object is visible in `namespace` (IsServiceVisible semantics)."""
    values = set(export_to(obj, default))
    own = str(((obj.get("metadata") or {}).get("namespace")) or "")
    if "*" in values:
        return True
    if "~" in values:
        return False
    return ("." in values and own == namespace) or namespace in values


# -- Sidecar ---------------------------------------------------------------------------------------
def _ref(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind', '')}/{namespace_of(obj)}/{metadata(obj).get('name', '')}"


def _age_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest first, as istiod sorts configs; objects without a timestamp (manifests) by name."""
    return (str(metadata(obj).get("creationTimestamp") or "~"), str(metadata(obj).get("name") or ""))


def _pod_labels(client: Mapping[str, Any] | None) -> dict[str, str] | None:
    if client is None:
        return None
    template = pod_template(dict(client)) if client.get("kind") else client
    labels = metadata(template).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def effective_sidecar(
    reader: ObjectReader,
    namespace: str,
    labels: Mapping[str, str] | None = None,
    root_namespace: str = DEFAULT_ROOT_NAMESPACE,
) -> KubeObject | None:
    """The Sidecar resource that scopes a workload in `namespace` with `labels`, or None.

    `labels=None` (workload unknown) skips the workload-selected Sidecars.
    """
    sidecars = [s for s in reader.objects("Sidecar") if namespace_of(s) == namespace]
    selected = sorted((s for s in sidecars if _workload_labels(s) is not None), key=_age_key)
    plain = sorted((s for s in sidecars if _workload_labels(s) is None), key=_age_key)
    if labels is not None:
        for sidecar in selected:
            wanted = _workload_labels(sidecar) or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                return sidecar
    if plain:
        return plain[0]
    root = sorted(
        (s for s in reader.objects("Sidecar") if namespace_of(s) == root_namespace and _workload_labels(s) is None),
        key=_age_key,
    )
    return root[0] if root else None


def _workload_labels(sidecar: Mapping[str, Any]) -> dict[str, str] | None:
    selector = (sidecar.get("spec") or {}).get("workloadSelector")
    if not isinstance(selector, Mapping):
        return None
    labels = selector.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if labels else None


def sidecar_imports(sidecar: Mapping[str, Any], service_namespace: str, service_host: str, port: int) -> bool:
    """Whether a Sidecar's egress listeners import `service_host` of `service_namespace` on `port`.

    The Sidecar's egress hosts are read relative to the namespace the workload runs in, which for
    a root-namespace Sidecar is not the Sidecar's own: pass a copy with the workload's namespace in
    `metadata.namespace` (as `covering_service_entries` does), as istiod converts it per namespace.
    """
    own = namespace_of(sidecar)
    for listener in (sidecar.get("spec") or {}).get("egress") or []:
        if not isinstance(listener, Mapping):
            continue
        listener_port = _port_number(listener.get("port") or {}) if listener.get("port") else None
        protocol = str((listener.get("port") or {}).get("protocol") or "").upper()
        if listener_port and protocol != "HTTP_PROXY" and listener_port != port:
            continue
        for entry in listener.get("hosts") or []:
            if str(entry).count("/") != 1:
                continue  # istiod logs and skips it
            ns, name = str(entry).split("/")
            if ns == ".":
                ns = own
            if ns == "~":
                continue
            if ns != "*" and ns != service_namespace:
                continue
            if host_subset_of(service_host, name):
                return True
    return False


# -- ServiceEntry coverage -------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """Whether ServiceEntries let a client reach host:port, and what almost did."""

    covered: bool
    """An entry fits host, port and protocol, is exported to the client, its Sidecar imports it."""
    entries: list[KubeObject] = field(default_factory=list)
    """The entries that cover it, in namespace/name order."""
    near_misses: list[tuple[KubeObject, str]] = field(default_factory=list)
    """(entry, why not) for entries that came close: same site, port, protocol or visibility."""
    sidecar: KubeObject | None = None
    """The Sidecar resource that scopes the client, if any."""


def covering_service_entries(
    reader: ObjectReader,
    client_namespace: str,
    host: str,
    port: int,
    protocol: str = "TLS",
    *,
    client: Mapping[str, Any] | None = None,
    root_namespace: str | None = None,
    default_export_to: Sequence[str] | None = None,
) -> Coverage:
    """The ServiceEntries through which a client in `client_namespace` reaches `host:port`.

    `protocol` is what the client speaks (`TLS` for the agent's HTTPS, see PROTOCOL_COMPATIBILITY).
    `client` (a pod or workload) picks a workload-selected Sidecar; without it only the namespace's
    and root namespace's Sidecars apply. `root_namespace` and `default_export_to` come from the mesh
    config; when not given they are read with `meshdoctor.istio.mesh.mesh_config`.
    """
    root_namespace, default_export_to = _mesh_defaults(reader, root_namespace, default_export_to)
    sidecar = effective_sidecar(reader, client_namespace, _pod_labels(client), root_namespace)
    scoped = _as_namespace(sidecar, client_namespace) if sidecar is not None else None
    entries: list[KubeObject] = []
    near: list[tuple[KubeObject, str]] = []
    for entry in reader.objects("ServiceEntry"):
        spec = entry.get("spec") or {}
        se_hosts = [str(h) for h in spec.get("hosts") or []]
        matched = [h for h in se_hosts if host_matches(h, host)]
        if not matched:
            hint = _host_near_miss(se_hosts, host)
            if hint is not None:
                near.append((entry, hint))
            continue
        ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
        same_number = [p for p in ports if _port_number(p) == port]
        if not same_number:
            listed = ", ".join(f"{_port_number(p)}/{port_protocol(p) or 'unset'}" for p in ports) or "none"
            near.append((entry, f"covers {host} but not port {port} (ports: {listed})"))
            continue
        fitting = [p for p in same_number if protocol_compatible(port_protocol(p), protocol)]
        if not fitting:
            declared = port_protocol(same_number[0]) or "unset"
            near.append(
                (
                    entry,
                    f"covers {host}:{port} with protocol {declared}, which does not carry a "
                    f"{client_protocol(protocol)} connection from the client",
                )
            )
            continue
        if not exported_to(entry, client_namespace, default_export_to):
            shown = ", ".join(export_to(entry, default_export_to))
            near.append(
                (
                    entry,
                    f"covers {host}:{port} but is not exported to namespace {client_namespace} (exportTo: {shown})",
                )
            )
            continue
        if scoped is not None and not any(sidecar_imports(scoped, namespace_of(entry), h, port) for h in matched):
            near.append(
                (
                    entry,
                    f"covers {host}:{port} but the Sidecar {_ref(sidecar or {})} does not "
                    f"import it (egress hosts need {namespace_of(entry) or '*'}/{matched[0]} or a "
                    "wildcard covering it)",
                )
            )
            continue
        entries.append(entry)
    return Coverage(bool(entries), entries, near, sidecar)


def _as_namespace(sidecar: KubeObject, namespace: str) -> KubeObject:
    """A root-namespace Sidecar applies per workload namespace: `.` is the workload's namespace."""
    if namespace_of(sidecar) == namespace:
        return sidecar
    copy = dict(sidecar)
    copy["metadata"] = {**metadata(sidecar), "namespace": namespace}
    return copy


def _mesh_defaults(
    reader: ObjectReader, root_namespace: str | None, default_export_to: Sequence[str] | None
) -> tuple[str, Sequence[str]]:
    if root_namespace is not None and default_export_to is not None:
        return root_namespace, default_export_to
    config = _mesh_config(reader)
    if root_namespace is None:
        root_namespace = str(config.get("rootNamespace") or DEFAULT_ROOT_NAMESPACE)
    if default_export_to is None:
        configured = config.get("defaultServiceExportTo")
        default_export_to = [str(v) for v in configured] if configured else DEFAULT_SERVICE_EXPORT_TO
    return root_namespace, default_export_to


def _mesh_config(reader: ObjectReader) -> Mapping[str, Any]:
    config = mesh_config(reader)
    return config if isinstance(config, Mapping) else {}


def effective_outbound_policy(
    reader: ObjectReader,
    client_pod_like: Mapping[str, Any],
    mesh_policy: str,
    root_namespace: str | None = None,
) -> str:
    """`ALLOW_ANY` or `REGISTRY_ONLY` here: the Sidecar's `outboundTrafficPolicy.mode` wins."""
    if root_namespace is None:
        root_namespace, _ = _mesh_defaults(reader, None, DEFAULT_SERVICE_EXPORT_TO)
    namespace = namespace_of(client_pod_like)
    sidecar = effective_sidecar(reader, namespace, _pod_labels(client_pod_like), root_namespace)
    mode = ((sidecar or {}).get("spec") or {}).get("outboundTrafficPolicy", {}) or {}
    return str(mode.get("mode") or mesh_policy) if isinstance(mode, Mapping) else mesh_policy


# -- the fix ---------------------------------------------------------------------------------------


def service_entry_manifest(
    name: str,
    namespace: str,
    hosts: Iterable[str],
    ports: Iterable[tuple[int, str] | Mapping[str, Any]],
    api_version: str = "networking.istio.io/v1beta1",
    export_to_namespaces: Sequence[str] | None = (".",),
) -> dict[str, Any]:
    """A complete MESH_EXTERNAL ServiceEntry for the given hosts and (number, protocol) ports.

    `exportTo: ["."]` keeps the entry visible only in its own namespace (so create it in the
    agent's namespace): exported mesh-wide (the default `*`) it would open the intake to every pod
    under REGISTRY_ONLY and could shadow another team's entry for the same host. Pass
    `export_to_namespaces=None` for Istio 1.0, whose ServiceEntry has no exportTo field.
    Resolution is DNS (Envoy resolves the host itself); a wildcard host cannot be resolved, so an
    entry with one uses NONE (the connection's original destination), as Istio's wildcard egress
    examples do.
    """
    host_list = [str(h) for h in hosts]
    port_list = []
    for port in ports:
        if isinstance(port, Mapping):
            number, protocol = int(port["number"]), str(port.get("protocol") or "TCP")
            port_name = str(port.get("name") or f"{protocol.lower()}-{number}")
        else:
            number, protocol = int(port[0]), str(port[1])
            port_name = f"{protocol.lower()}-{number}"
        port_list.append({"number": number, "name": port_name, "protocol": protocol.upper()})
    spec: dict[str, Any] = {"hosts": host_list}
    if export_to_namespaces is not None:
        spec["exportTo"] = list(export_to_namespaces)
    spec["location"] = "MESH_EXTERNAL"
    spec["ports"] = port_list
    spec["resolution"] = "NONE" if any(h.startswith("*") for h in host_list) else "DNS"
    return {
        "apiVersion": api_version,
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# -- interception of outbound traffic --------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """Whether the sidecar intercepts the pod's outbound connections to the internet on a port."""

    captured: bool | None
    """True: redirected to Envoy (so ServiceEntries and the outbound policy apply); False: bypasses
    Envoy; None: depends on the destination's IP, which is not known here."""
    reason: str
    """Which setting decided."""


def _init_args(template: Mapping[str, Any]) -> list[str] | None:
    spec = template.get("spec") or {}
    for container in spec.get("initContainers") or []:
        if isinstance(container, Mapping) and container.get("name") == "istio-init":
            return [str(a) for a in (container.get("args") or [])]
    return None


def _flag(args: Sequence[str], flag: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1].strip().strip('"')
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :].strip().strip('"')
    return None


def _injector_default(injector_config: Mapping[str, Any] | None, annotation: str) -> str | None:
    """The injector's default for a setting: `values` JSON (1.4+) or the 1.0 template text."""
    if not injector_config:
        return None
    values = injector_values(injector_config)
    proxy = ((values.get("global") or {}).get("proxy") or {}) if values else {}
    if _VALUES_KEYS[annotation] in proxy:
        value = proxy[_VALUES_KEYS[annotation]]
        return "" if value is None else str(value)
    template = str((injector_config.get("data") or {}).get("config") or "")
    match = re.search(re.escape(annotation) + r'`\s+"([^"]*)"', template)
    return match.group(1) if match else None


def _setting(
    template: Mapping[str, Any],
    injector_config: Mapping[str, Any] | None,
    annotation: str,
    default: str,
) -> tuple[str, str]:
    """(value, where it came from) for an interception setting of a pod."""
    args = _init_args(template)
    if args is not None:
        value = _flag(args, _INIT_FLAGS[annotation])
        if value is not None:
            return value, f"istio-init {_INIT_FLAGS[annotation]}"
        if annotation != INCLUDE_OUTBOUND_IP_RANGES:
            return "", f"istio-init (no {_INIT_FLAGS[annotation]})"
    annotations = metadata(template).get("annotations") or {}
    if annotation in annotations:
        return str(annotations[annotation]), f"annotation {annotation}"
    configured = _injector_default(injector_config, annotation)
    if configured is not None:
        return configured, "injector default"
    return default, "chart default"


def _networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    nets = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            return None
    return nets


_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def _internal(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Cluster-side ranges: RFC 1918, CGNAT 100.64/10, link-local, loopback, ULA."""
    if net.is_private or net.is_link_local or net.is_loopback:
        return True
    return isinstance(net, ipaddress.IPv4Network) and net.subnet_of(_CGNAT)


def _excluded_port(
    template: Mapping[str, Any],
    injector_config: Mapping[str, Any] | None,
    port: int,
    mesh_version: tuple[int, int] | None,
) -> Capture | None:
    """`Capture(False)` when excludeOutboundPorts lists the port, else None.

    Before 1.2 the injector passes no `-o`, so only a running pod's own istio-init `-o` counts there.
    """
    excluded_ports, ports_from = _setting(template, injector_config, EXCLUDE_OUTBOUND_PORTS, "")
    too_old = mesh_version is not None and mesh_version < EXCLUDE_OUTBOUND_PORTS_SINCE
    if too_old and not ports_from.startswith("istio-init"):
        return None
    if str(port) in {p.strip() for p in excluded_ports.split(",")}:
        return Capture(False, f"port {port} is in excludeOutboundPorts ({ports_from}: {excluded_ports!r})")
    return None


def egress_capture(
    pod_like: Mapping[str, Any],
    injector_config: Mapping[str, Any] | None,
    port: int = 443,
    mesh_version: tuple[int, int] | None = None,
) -> Capture:
    """Whether an injected pod's outbound connections to internet hosts on `port` reach Envoy.

    Read, most authoritative first: the running pod's `istio-init` args, the pod's
    `traffic.sidecar.istio.io/*` annotations, the injector ConfigMap (`values` JSON
    `global.proxy.includeIPRanges` / `excludeIPRanges` / `excludeOutboundPorts`, or the default
    baked into the 1.0 template), then the chart default `*`. An include list other than `*`
    restricts capture to those ranges (typically the cluster and service CIDRs), so traffic to the
    internet bypasses the sidecar; an empty list captures nothing. Before 1.2 (`mesh_version`)
    the injector passes no `-o`, so an excludeOutboundPorts annotation or value excludes nothing.
    """
    template = pod_template(dict(pod_like)) if pod_like.get("kind") else pod_like
    template = template or {}
    port_bypass = _excluded_port(template, injector_config, port, mesh_version)
    if port_bypass is not None:
        return port_bypass
    include, include_from = _setting(template, injector_config, INCLUDE_OUTBOUND_IP_RANGES, DEFAULT_INCLUDE_IP_RANGES)
    exclude, exclude_from = _setting(template, injector_config, EXCLUDE_OUTBOUND_IP_RANGES, "")
    include = include.strip()
    if include == "":
        return Capture(
            False,
            f"includeOutboundIPRanges is empty ({include_from}): no outbound traffic is captured",
        )
    if include != "*":
        nets = _networks(include)
        if nets is None:
            return Capture(None, f"includeOutboundIPRanges {include!r} ({include_from}) does not parse")
        if not any(n.prefixlen == 0 for n in nets):
            if all(_internal(n) for n in nets):
                return Capture(
                    False,
                    f"includeOutboundIPRanges is {include!r} ({include_from}): only those "
                    f"ranges are captured, traffic to the internet bypasses the sidecar",
                )
            return Capture(
                None,
                f"includeOutboundIPRanges is {include!r} ({include_from}): captured only if the "
                f"destination's IP is in those ranges",
            )
    excluded = _networks(exclude) or []
    if any(n.prefixlen == 0 for n in excluded):
        return Capture(False, f"excludeOutboundIPRanges {exclude!r} ({exclude_from}) excludes every address")
    public = [str(n) for n in excluded if not _internal(n)]
    if public:
        return Capture(
            None,
            f"excludeOutboundIPRanges excludes public ranges {', '.join(public)} ({exclude_from}): "
            f"captured unless the destination's IP is in them",
        )
    return Capture(
        True,
        f"includeOutboundIPRanges is {include!r} ({include_from}): outbound traffic is captured",
    )


def cluster_ip_capture(
    pod_like: Mapping[str, Any],
    injector_config: Mapping[str, Any] | None,
    port: int,
    addresses: Sequence[str],
    mesh_version: tuple[int, int] | None = None,
) -> Capture:
    """Whether a pod's outbound connections to in-cluster `addresses` (node IPs) on `port` reach Envoy.

    The same settings as `egress_capture`, read for destinations inside the cluster: an excluded
    port (1.2+) bypasses; an include list other than `*` captures the addresses it contains; an
    exclude list bypasses the addresses it contains. Without the addresses (no Nodes in the input)
    a list other than the defaults leaves the answer open (None).
    """
    template = pod_like if not pod_like.get("kind") else (pod_template(dict(pod_like)) or {})
    port_bypass = _excluded_port(template, injector_config, port, mesh_version)
    if port_bypass is not None:
        return port_bypass
    include, include_from = _setting(template, injector_config, INCLUDE_OUTBOUND_IP_RANGES, DEFAULT_INCLUDE_IP_RANGES)
    exclude, exclude_from = _setting(template, injector_config, EXCLUDE_OUTBOUND_IP_RANGES, "")
    ips = []
    for address in addresses:
        try:
            ips.append(ipaddress.ip_address(address))
        except ValueError:
            continue
    include_nets = [] if include.strip() in ("", "*") else _networks(include)
    exclude_nets = _networks(exclude) or []
    if include.strip() == "":
        return Capture(False, f"includeOutboundIPRanges is empty ({include_from}): nothing is captured")
    if include_nets is None:
        return Capture(None, f"includeOutboundIPRanges {include!r} ({include_from}) does not parse")
    if not ips:
        if include.strip() == "*" and not exclude_nets:
            return Capture(True, f"includeOutboundIPRanges is '*' ({include_from}): every destination is captured")
        return Capture(None, "the node addresses are not in the input, and the pod's IP ranges restrict capture")

    def captured(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if ip.is_loopback:  # istio-iptables: `-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN`, every release
            return False
        included = not include_nets or any(ip in net for net in include_nets)
        return included and not any(ip in net for net in exclude_nets)

    states = {captured(ip) for ip in ips}
    if states == {True}:
        return Capture(True, f"includeOutboundIPRanges {include!r} ({include_from}) captures the node addresses")
    if states == {False}:
        return Capture(
            False,
            f"the node addresses bypass the sidecar (includeOutboundIPRanges {include!r} ({include_from}), "
            f"excludeOutboundIPRanges {exclude!r} ({exclude_from}))",
        )
    return Capture(None, "some node addresses are captured, others bypass the sidecar")


def egress_captured(
    pod_like: Mapping[str, Any], injector_config: Mapping[str, Any] | None, port: int = 443
) -> bool | None:
    """`egress_capture(...).captured`: True, False, or None when the destination IP decides."""
    return egress_capture(pod_like, injector_config, port).captured


__all__ = [
    "Capture",
    "cluster_ip_capture",
    "Coverage",
    "PROTOCOL_COMPATIBILITY",
    "covering_service_entries",
    "effective_outbound_policy",
    "effective_sidecar",
    "egress_capture",
    "egress_captured",
    "export_to",
    "exported_to",
    "host_matches",
    "host_subset_of",
    "port_protocol",
    "protocol_compatible",
    "service_entry_manifest",
    "sidecar_imports",
]
