"""Inbound mTLS mode of a workload port, the TLS a client sends, and whether a sidecar intercepts.

The `istio` check scrapes plain HTTP endpoints (istio-telemetry :42422, istiod :15014, sidecars
:15020/:15090). The scrape fails when the target's sidecar intercepts the port and requires mTLS,
so three questions matter, each answered as istiod answers it:

- `effective_mtls`: the server side's mode for a port.
  Istio 1.0-1.4 (`authentication.istio.io/v1alpha1`; 1.0.7 `pilot/pkg/model/config.go`
  AuthenticationPolicyByDestination, 1.4.10 `push_context.go` AuthenticationPolicyForWorkload):
  a `Policy` in the service's namespace whose `targets` name a Service that selects the pod (with
  a port selector matching the Service port, preferred over a target without ports), else a
  `Policy` without targets in that namespace, else the cluster `MeshPolicy` named `default`; a
  policy's mode is STRICT for a peer `mtls: {}` (or `mtls:` null), PERMISSIVE for `mtls: {mode:
  PERMISSIVE}`, DISABLE when it has no mtls peer; with no policy at all the inbound side is
  plaintext (DISABLE, `GetMutualTLSMode` of 1.4.10). The 1.0.7 chart always installs a MeshPolicy
  `default`: PERMISSIVE (`global.mtls.enabled: false`, the default) or STRICT (security chart
  enable-mesh-permissive.yaml / enable-mesh-mtls.yaml).
  Istio >= 1.5 (`security.istio.io` PeerAuthentication; 1.30 `pilot/pkg/security/authn/
  policy_applier.go` ComposePeerAuthentication): the oldest PeerAuthentication with a matching
  `selector` in the workload's namespace, then the oldest without a selector there, then the oldest
  without a selector in the root namespace; UNSET inherits from the next wider one, `portLevelMtls`
  (keyed by the workload's port) overrides; nothing at all is PERMISSIVE. A PeerAuthentication
  with a selector in the root namespace is ignored.
- `client_tls`: the TLS mode a client's sidecar uses towards a host, from DestinationRules
  (1.30 `push_context.go` destinationRule: the client's namespace first, then the service's, then
  the root namespace; in each, an exact host beats the longest matching wildcard, e.g. `*.local`).
  Istio 1.0 searched every namespace without that order; its own `default` DestinationRule lives in
  istio-system, the root namespace, so the answer is the same for the charts' objects.
- `behind_capturing_sidecar`: whether inbound traffic to the port reaches the sidecar at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshdoctor.istio.egress import DEFAULT_ROOT_NAMESPACE, exported_to, host_subset_of
from meshdoctor.istio.injection import (
    PROXY_CONTAINER,
    injection_decision,
    mesh_era,
    mesh_version,
    proxy_container_path,
    sidecar_redirects_traffic,
)
from meshdoctor.istio.mesh import mesh_config
from meshdoctor.kube.labels import map_selector_matches
from meshdoctor.kube.meta import labels_of, metadata, name_of, namespace_of
from meshdoctor.kube.workloads import pod_template
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Ports of the proxy itself, never redirected inbound: 15090 Envoy Prometheus, 15020 status /
#: merged metrics, 15021 health (1.30 injection-template.yaml `-d 15090,15021,<statusPort>`;
#: values.yaml `global.proxy.statusPort: 15020`).
PROXY_PORTS = frozenset({15090, 15020, 15021})
#: The status port is excluded from inbound capture wherever it exists (1.1+ `-d 15020`).
STATUS_PORT = 15020
#: 1.3 and 1.4 capture every inbound port (`-b *`) but the status port, so Envoy's 15090 too; 1.5's
#: istiod template excludes it (`-d 15090,...`), 1.6 adds 15021 (istio/istio 1.3.0-1.4.10
#: injection templates `-d {{ .ProxyConfig.StatusPort }}`; 1.5.0 istio-discovery `-d "15090,..."`).
ENVOY_PORT_CAPTURED_FROM = (1, 3)
ENVOY_PORT_EXCLUDED_SINCE = (1, 5)

#: Inbound interception annotations (istio-api annotations.yaml) and istio-init flags (-b, -d).
INCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/excludeInboundPorts"
STATUS_PORT_ANNOTATION = "status.sidecar.istio.io/port"
INTERCEPTION_MODE = "sidecar.istio.io/interceptionMode"

#: DNS domain of Kubernetes Services, for short DestinationRule hosts (pilot `--domain` default).
CLUSTER_DOMAIN = "cluster.local"

MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")


@dataclass(frozen=True)
class MtlsMode:
    """The mTLS mode a workload port accepts, and the object that set it."""

    mode: str
    """STRICT, PERMISSIVE, DISABLE, or UNSET (cannot tell: era unknown and no policy objects)."""
    source: str
    """`PeerAuthentication/<ns>/<name> (<scope>)`, `MeshPolicy//default ...`, or `default: ...`."""


def _ref(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind', '')}/{namespace_of(obj)}/{name_of(obj)}"


def _age_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return (str(metadata(obj).get("creationTimestamp") or "~"), name_of(obj))


def _template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    template = pod_template(dict(obj)) if obj.get("kind") else obj
    return template or {}


def _template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return labels_of(_template(obj))


def _root_namespace(reader: ObjectReader, mesh_info: Any) -> str:
    found = mesh_config(reader, mesh_info) if mesh_info is not None else mesh_config(reader)
    config: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if config.get("rootNamespace"):
        return str(config["rootNamespace"])
    namespace = getattr(mesh_info, "namespace", None) if mesh_info is not None else None
    return str(namespace or DEFAULT_ROOT_NAMESPACE)


def _era(reader: ObjectReader, mesh_info: Any) -> str:
    """`mesh_era`, else the era its policy kinds show (PeerAuthentication: istiod; MeshPolicy, Policy: mixer)."""
    era = mesh_era(mesh_info)
    if era != "unknown":
        return era
    if reader.objects("PeerAuthentication"):
        return "istiod"
    if reader.objects("MeshPolicy") or reader.objects("Policy"):
        return "mixer"
    return "unknown"


# -- server side -----------------------------------------------------------------------------------


def effective_mtls(reader: ObjectReader, workload_pod_like: KubeObject, port: int, mesh_info: Any = None) -> MtlsMode:
    """The mTLS mode the workload's sidecar enforces on inbound `port` (a container port)."""
    era = _era(reader, mesh_info)
    if era == "istiod":
        return _peer_authentication_mode(reader, workload_pod_like, port, _root_namespace(reader, mesh_info))
    if era == "mixer":
        return _v1alpha1_mode(reader, workload_pod_like, port)
    return MtlsMode(
        "UNSET",
        "mesh version unknown and no PeerAuthentication, Policy or MeshPolicy in the snapshot",
    )


def _pa_mode(mtls: Any) -> str:
    if not isinstance(mtls, Mapping):
        return "UNSET"
    mode = str(mtls.get("mode") or "UNSET").upper()
    return mode if mode in MODES else "UNSET"


def _pa_selector(pa: Mapping[str, Any]) -> dict[str, str] | None:
    selector = (pa.get("spec") or {}).get("selector")
    labels = (selector or {}).get("matchLabels") if isinstance(selector, Mapping) else None
    return {str(k): str(v) for k, v in labels.items()} if labels else None


def _peer_authentication_mode(reader: ObjectReader, workload: KubeObject, port: int, root: str) -> MtlsMode:
    namespace = namespace_of(workload)
    labels = _template_labels(workload)
    mesh_cfg = namespace_cfg = workload_cfg = None
    for pa in sorted(reader.objects("PeerAuthentication"), key=_age_key):
        pa_ns = namespace_of(pa)
        if pa_ns not in (namespace, root):
            continue
        selector = _pa_selector(pa)
        if selector is None:
            if pa_ns == root:
                mesh_cfg = mesh_cfg or pa
            else:
                namespace_cfg = namespace_cfg or pa
        elif pa_ns != root and all(labels.get(k) == v for k, v in selector.items()):
            workload_cfg = workload_cfg or pa
    mode, source = (
        "PERMISSIVE",
        "default: no PeerAuthentication applies (Istio >= 1.5 accepts both)",
    )
    for cfg, scope in (
        (mesh_cfg, "mesh-wide"),
        (namespace_cfg, "namespace-wide"),
        (workload_cfg, "workload"),
    ):
        if cfg is None:
            continue
        cfg_mode = _pa_mode((cfg.get("spec") or {}).get("mtls"))
        if cfg_mode != "UNSET":
            mode, source = cfg_mode, f"{_ref(cfg)} ({scope})"
    if workload_cfg is not None:
        per_port = (workload_cfg.get("spec") or {}).get("portLevelMtls") or {}
        for key, value in per_port.items():
            if str(key) == str(port):
                port_mode = _pa_mode(value)
                if port_mode != "UNSET":
                    return MtlsMode(port_mode, f"{_ref(workload_cfg)} (portLevelMtls {port})")
                return MtlsMode(mode, f"{source}; portLevelMtls {port} is UNSET in {_ref(workload_cfg)}")
    return MtlsMode(mode, source)


def _policy_mode(policy: Mapping[str, Any]) -> str:
    for peer in (policy.get("spec") or {}).get("peers") or []:
        if isinstance(peer, Mapping) and "mtls" in peer:
            mtls = peer.get("mtls")
            if isinstance(mtls, Mapping) and str(mtls.get("mode") or "").upper() == "PERMISSIVE":
                return "PERMISSIVE"
            return "STRICT"
    return "DISABLE"


def _services_for_port(
    reader: ObjectReader, workload: KubeObject, port: int
) -> list[tuple[KubeObject, Mapping[str, Any]]]:
    """(Service, service port) pairs in the workload's namespace that select it and reach `port`."""
    namespace = namespace_of(workload)
    labels = _template_labels(workload)
    named = {}
    for container in (_template(workload).get("spec") or {}).get("containers") or []:
        for cport in (container or {}).get("ports") or []:
            if isinstance(cport, Mapping) and cport.get("name"):
                named[str(cport["name"])] = cport.get("containerPort")
    found = []
    for service in reader.objects("Service"):
        if namespace_of(service) != namespace or not map_selector_matches(
            (service.get("spec") or {}).get("selector"), labels
        ):
            continue
        for sport in (service.get("spec") or {}).get("ports") or []:
            target = sport.get("targetPort", sport.get("port"))
            if isinstance(target, str) and not target.isdigit():
                target = named.get(target)
            if target is not None and str(target) == str(port):
                found.append((service, sport))
    return found


def _target_matches(
    target: Mapping[str, Any], service: Mapping[str, Any], sport: Mapping[str, Any], policy_ns: str
) -> tuple[bool, bool]:
    """(names this service, with a port selector that matches) for a v1alpha1 `targets` entry."""
    name = str(target.get("name") or "")
    svc_fqdn = f"{name_of(service)}.{namespace_of(service)}.svc.{CLUSTER_DOMAIN}"
    resolved = name if "." in name else f"{name}.{policy_ns}.svc.{CLUSTER_DOMAIN}"
    if resolved != svc_fqdn:
        return False, False
    selectors = target.get("ports") or []
    if not selectors:
        return True, False
    for selector in selectors:
        if not isinstance(selector, Mapping):
            continue
        if "number" in selector and str(selector["number"]) == str(sport.get("port")):
            return True, True
        if "name" in selector and selector["name"] == sport.get("name"):
            return True, True
    return False, False


def _v1alpha1_mode(reader: ObjectReader, workload: KubeObject, port: int) -> MtlsMode:
    namespace = namespace_of(workload)
    policies = sorted((p for p in reader.objects("Policy") if namespace_of(p) == namespace), key=_age_key)
    services = _services_for_port(reader, workload, port)
    portless = None
    for policy in policies:
        for target in (policy.get("spec") or {}).get("targets") or []:
            if not isinstance(target, Mapping):
                continue
            for service, sport in services:
                names, by_port = _target_matches(target, service, sport, namespace)
                if by_port:
                    return MtlsMode(
                        _policy_mode(policy),
                        f"{_ref(policy)} (targets {name_of(service)} port {sport.get('port')})",
                    )
                if names and portless is None:
                    portless = (policy, service)
    if portless is not None:
        policy, service = portless
        return MtlsMode(_policy_mode(policy), f"{_ref(policy)} (targets {name_of(service)})")
    for policy in policies:
        if not (policy.get("spec") or {}).get("targets"):
            return MtlsMode(_policy_mode(policy), f"{_ref(policy)} (namespace-wide)")
    for mesh_policy in reader.objects("MeshPolicy"):
        if name_of(mesh_policy) == "default":
            return MtlsMode(_policy_mode(mesh_policy), "MeshPolicy//default (mesh-wide)")
    return MtlsMode(
        "DISABLE",
        "default: no Policy or MeshPolicy applies (Istio < 1.5 then accepts plaintext only)",
    )


# -- client side -----------------------------------------------------------------------------------


def _fqdn(host: str, namespace: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host if "." in host or host.startswith("*") else f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _service_namespace(host: str) -> str | None:
    match = re.match(r"^[^.]+\.([^.]+)\.svc(\.|$)", host)
    return match.group(1) if match else None


def _most_specific(rules: Sequence[KubeObject], host: str) -> KubeObject | None:
    """Exact host first, then the longest wildcard that covers `host`; the oldest on a tie."""
    best: tuple[int, int, tuple[str, str]] | None = None
    chosen = None
    for rule in rules:
        dr_host = _fqdn(str((rule.get("spec") or {}).get("host") or ""), namespace_of(rule))
        if not host_subset_of(host, dr_host):
            continue
        rank = (0 if not dr_host.startswith("*") else 1, -len(dr_host), _age_key(rule))
        if best is None or rank < best:
            best, chosen = rank, rule
    return chosen


def destination_rule_for(
    reader: ObjectReader,
    host: str,
    client_namespace: str,
    root_namespace: str = DEFAULT_ROOT_NAMESPACE,
    service_namespace: str | None = None,
    default_export_to: Sequence[str] = ("*",),
) -> KubeObject | None:
    """The DestinationRule a client in `client_namespace` applies to `host`, or None."""
    host = _fqdn(host, client_namespace)
    service_namespace = service_namespace or _service_namespace(host)
    rules = reader.objects("DestinationRule")
    order = [client_namespace]
    if service_namespace:
        order.append(service_namespace)
    order.append(root_namespace)
    seen = set()
    for namespace in order:
        if namespace in seen:
            continue
        seen.add(namespace)
        candidates = [
            r for r in rules if namespace_of(r) == namespace and exported_to(r, client_namespace, default_export_to)
        ]
        chosen = _most_specific(candidates, host)
        if chosen is not None:
            return chosen
    return None


def client_tls(
    reader: ObjectReader,
    host: str,
    port: int,
    client_namespace: str,
    root_namespace: str | None = None,
    service_namespace: str | None = None,
) -> str:
    """The TLS mode (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL) a client's sidecar uses to `host:port`.

    `UNSET` when no DestinationRule sets one: then Istio >= 1.5 uses auto mTLS (ISTIO_MUTUAL to
    pods with a sidecar, plaintext otherwise) and 1.0-1.4 plaintext.
    """
    return client_tls_rule(reader, host, port, client_namespace, root_namespace, service_namespace)[0]


def client_tls_rule(
    reader: ObjectReader,
    host: str,
    port: int,
    client_namespace: str,
    root_namespace: str | None = None,
    service_namespace: str | None = None,
) -> tuple[str, KubeObject | None]:
    """`client_tls` with the DestinationRule that decided (None when none did)."""
    if root_namespace is None:
        root_namespace = _root_namespace(reader, None)
    rule = destination_rule_for(reader, host, client_namespace, root_namespace, service_namespace)
    if rule is None:
        return "UNSET", None
    policy = (rule.get("spec") or {}).get("trafficPolicy") or {}
    for setting in policy.get("portLevelSettings") or []:
        if isinstance(setting, Mapping) and str((setting.get("port") or {}).get("number")) == str(port):
            mode = (setting.get("tls") or {}).get("mode")
            if mode:
                return str(mode).upper(), rule
            break
    mode = (policy.get("tls") or {}).get("mode")
    return (str(mode).upper(), rule) if mode else ("UNSET", rule)


# -- interception of inbound traffic ---------------------------------------------------------------


def _ports(text: str) -> set[str]:
    return {p.strip() for p in str(text).split(",") if p.strip()}


def _init_flag(template: Mapping[str, Any], flag: str) -> str | None:
    for container in (template.get("spec") or {}).get("initContainers") or []:
        if isinstance(container, Mapping) and container.get("name") == "istio-init":
            args = [str(a) for a in container.get("args") or []]
            for index, arg in enumerate(args):
                if arg == flag and index + 1 < len(args):
                    return args[index + 1].strip().strip('"')
            return ""
    return None


def _container_ports(template: Mapping[str, Any]) -> set[str]:
    found = set()
    for container in (template.get("spec") or {}).get("containers") or []:
        if isinstance(container, Mapping) and container.get("name") != PROXY_CONTAINER:
            for cport in container.get("ports") or []:
                if isinstance(cport, Mapping) and cport.get("containerPort") is not None:
                    found.add(str(cport["containerPort"]))
    return found


def behind_capturing_sidecar(
    reader: ObjectReader, target_pod_like: KubeObject, port: int, mesh_info: Any = None
) -> bool | None:
    """Whether inbound connections to `port` of the target are redirected to its sidecar.

    No for the proxy's own ports (15090, 15020, 15021, the status port; but 1.3 and 1.4 capture
    15090, excluding only the status port), for a pod whose
    `istio-proxy` was written into its template rather than injected (Mixer's 1.0 pods: their
    `istio-proxy` serves 9091/15004 for Mixer, nothing redirects 42422 or 9093 to it), for ports
    outside `includeInboundPorts` or inside `excludeInboundPorts`. The include default is `*` since
    1.3 and the pod's declared container ports before (1.0.7-1.2 templates:
    `includeInboundPorts .Spec.Containers`). None when injection itself cannot be told.
    """
    template = _template(target_pod_like)
    annotations = {str(k): str(v) for k, v in (metadata(template).get("annotations") or {}).items()}
    status_port = annotations.get(STATUS_PORT_ANNOTATION)
    if port == STATUS_PORT or (status_port is not None and status_port == str(port)):
        return False
    version = mesh_version(mesh_info)
    envoy_port_captured = version is not None and ENVOY_PORT_CAPTURED_FROM <= version < ENVOY_PORT_EXCLUDED_SINCE
    if port in PROXY_PORTS and not envoy_port_captured and _init_flag(template, "-d") is None:
        return False
    if proxy_container_path(target_pod_like) is not None:
        if not sidecar_redirects_traffic(target_pod_like):
            return False
    else:
        injected = injection_decision(reader, target_pod_like, mesh_info).injected
        if injected is not True:
            return injected
    if annotations.get(INTERCEPTION_MODE, "").upper() == "NONE":
        return False
    include = _init_flag(template, "-b")
    exclude = _init_flag(template, "-d")
    if include is None:
        if INCLUDE_INBOUND_PORTS in annotations:
            include = annotations[INCLUDE_INBOUND_PORTS]
        elif version is not None and version < (1, 3):
            include = ",".join(sorted(_container_ports(template)))
        else:
            include = "*"
        exclude = annotations.get(EXCLUDE_INBOUND_PORTS, "")
    if str(port) in _ports(exclude or ""):
        return False
    if include.strip() == "*":
        return True
    return str(port) in _ports(include)
