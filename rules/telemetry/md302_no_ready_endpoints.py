"""Telemetry: the endpoints the agents' `istio` check scrapes must be reachable.

Ids: MD301 Service lacks the scraped port, MD302 no ready endpoint behind it, MD303 a
NetworkPolicy drops the scrape, MD304 mTLS the plaintext scraper cannot pass, MD305 the agent's
sidecar sends mTLS to a port that speaks plaintext.

The endpoints come from `meshdoctor.datadog.istio_check.configured_endpoints` (ConfigMaps the agents read
and Autodiscovery annotations). This family looks only at endpoints that name a Service that
exists: an endpoint naming no Service, or the wrong era's endpoint, is the check-config family's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.datadog.istio_check import (
    AD_ANNOTATIONS,
    AD_ANNOTATIONS_V2,
    CheckEndpoint,
    configured_endpoints,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.injection import (
    injection_decision,
    proxy_container_path,
    sidecar_redirects_traffic,
)
from meshdoctor.istio.mesh import (
    ISTIOD,
    MIXER,
    MeshInfo,
    mesh_config,
    mesh_info,
    service_entry_api_version,
)
from meshdoctor.istio.mtls import (
    CLUSTER_DOMAIN,
    MtlsMode,
    behind_capturing_sidecar,
    client_tls_rule,
    effective_mtls,
)
from meshdoctor.istio.versions import TELEMETRY_ENDPOINTS, TelemetryEndpoint
from meshdoctor.kube.labels import map_selector_matches
from meshdoctor.kube.meta import labels_of, metadata, name_of, namespace_of
from meshdoctor.kube.network_policy import (
    EGRESS,
    INGRESS,
    NAMESPACE_NAME_LABEL,
    Verdict,
    admitting_policy_manifest,
    pod_like,
    policy_types,
    port_number,
    stable_labels,
    traffic_allowed,
)
from meshdoctor.kube.service_endpoints import (
    FROM_ENDPOINTS,
    FROM_PODS,
    FROM_SLICES,
    SERVICE_NAME_LABEL,
    EndpointsStatus,
    ServicePort,
    find_service_port,
    pod_is_ready,
    ready_endpoints,
    target_port,
)
from meshdoctor.kube.workloads import owner_chain, pod_template, pods_of, template_path
from meshdoctor.model import (
    Category,
    Evidence,
    FieldEvidence,
    Finding,
    ObjectRef,
    ProbeEvidence,
    Remediation,
    Severity,
)
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

# -- facts this family needs that the facts modules do not hold yet -------------------------------

#: Auto mTLS (a client sidecar sends ISTIO_MUTUAL to pods that have a sidecar when no
#: DestinationRule sets TLS) is on by default from 1.5: istio/istio 1.4.10 values.yaml
#: `global.mtls.auto: false`; 1.5.0 operator/data/profiles/default.yaml `mtls.auto: true`. The
#: mesh config key is `enableAutoMtls`.
AUTO_MTLS_DEFAULT_SINCE = (1, 5)
AUTO_MTLS_KEY = "enableAutoMtls"

#: PeerAuthentication (security.istio.io) replaced the authentication.istio.io/v1alpha1 `Policy`
#: in 1.5; v1beta1 is served from 1.5 through 1.30 (1.30.3 base CRD: v1 and v1beta1 served).
PEER_AUTHENTICATION_API = "security.istio.io/v1beta1"
#: The Mixer-era authentication policy kind
#: (1.0.7 templates/crds.yaml `policies.authentication.istio.io`).
POLICY_API = "authentication.istio.io/v1alpha1"

#: Component of a Service name, for the telemetry endpoint facts (`istiod-<rev>` is istiod).
_COMPONENT_OF_SERVICE = {
    "istio-telemetry": "istio-telemetry",
    "istio-pilot": "istio-pilot",
    "istio-galley": "istio-galley",
    "istiod": "istiod",
}

#: Workload kinds whose templates a Service may be meant to select (for a corrected selector).
_SERVED_BY_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

#: What every telemetry rule reads: the scraped Services, the check's ConfigMaps and the agents.
_SCRAPE_KINDS = ("Service", "ConfigMap", "DaemonSet", "Deployment")
#: Read when present: the pods behind a Service and their owners (`_target_pods`, `_agent_pods`).
_POD_KINDS = ("Pod", "ReplicaSet", "StatefulSet", "ReplicationController", "Job", "CronJob")
#: Read when present: which of those pods are ready (`ready_endpoints`).
_ENDPOINT_KINDS = ("Endpoints", "EndpointSlice")
#: Read when present: whether the agent runs a sidecar and the TLS it sends (`agent_client`).
_AGENT_SIDECAR_KINDS = ("Namespace", "MutatingWebhookConfiguration", "DestinationRule")

#: Pod annotation listing outbound ports that bypass the sidecar (istio-api annotations.yaml).
EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts"


# -- what the agents scrape -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeTarget:
    """One port of an existing Service that at least one configured endpoint scrapes."""

    service: KubeObject
    """The Service."""
    port: int
    """The port the URLs name."""
    endpoints: tuple[CheckEndpoint, ...]
    """Every configured endpoint naming it, in configuration order."""

    @property
    def ref(self) -> ObjectRef:
        """The Service's reference."""
        meta = self.service.get("metadata") or {}
        return ObjectRef("Service", str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    @property
    def service_port(self) -> ServicePort | None:
        """The Service's port of that number, or None."""
        return find_service_port(self.service, self.port)

    @property
    def host(self) -> str:
        """The Service's cluster DNS name."""
        return f"{self.ref.name}.{self.ref.namespace}.svc.{CLUSTER_DOMAIN}"

    def urls(self) -> str:
        """The distinct URLs, for messages."""
        seen: list[str] = []
        for endpoint in self.endpoints:
            if endpoint.url not in seen:
                seen.append(endpoint.url)
        return ", ".join(seen)


def scrape_targets(ctx: Context) -> list[ScrapeTarget]:
    """The Service ports the agents' istio check scrapes, for Services that exist.

    Endpoints with a template variable, an IP or an external host, and those naming a Service that
    is not there, are left to the check-config family; so are ExternalName Services.
    """
    grouped: dict[tuple[str, str, int], list[CheckEndpoint]] = {}
    services: dict[tuple[str, str, int], KubeObject] = {}
    for endpoint in configured_endpoints(ctx):
        port = port_number(endpoint.port)
        if not endpoint.service or not endpoint.namespace or port is None:
            continue
        key = (endpoint.namespace, endpoint.service, port)
        if key not in services:
            service = ctx.get("Service", endpoint.namespace, endpoint.service)
            if service is None or (service.get("spec") or {}).get("type") == "ExternalName":
                continue
            services[key] = service
        grouped.setdefault(key, []).append(endpoint)
    return [ScrapeTarget(services[key], key[2], tuple(grouped[key])) for key in sorted(grouped)]


def _scrapers(ctx: Context, target: ScrapeTarget) -> list[KubeObject]:
    """The agent workloads that scrape a target (every node agent for Autodiscovery annotations)."""
    found: dict[ObjectRef, KubeObject] = {}
    for endpoint in target.endpoints:
        if endpoint.agent_ref is not None:
            ref = endpoint.agent_ref
            workload = ctx.get(ref.kind, ref.namespace, ref.name)
            if workload is not None:
                found.setdefault(ref, workload)
            continue
        for workload in agent_workloads(ctx):
            if workload.get("kind") == "DaemonSet":
                found.setdefault(ctx.ref(workload), workload)
    return [found[ref] for ref in sorted(found)]


def _config_evidence(ctx: Context, endpoint: CheckEndpoint) -> FieldEvidence:
    """Where the URL is written: the ConfigMap key or the Autodiscovery annotation."""
    ref = endpoint.config_source
    source = ctx.get(ref.kind, ref.namespace, ref.name)
    if endpoint.source_kind in (AD_ANNOTATIONS, AD_ANNOTATIONS_V2):
        prefix = template_path(source) if source is not None else ""
        path = ".".join(p for p in (prefix, f"metadata.annotations['{endpoint.file_name}']") if p)
    else:
        path = f"data['{endpoint.file_name}'].instances[{endpoint.instance_index}].{endpoint.key}"
    if source is None:
        return FieldEvidence(ref, path, endpoint.url)
    return ctx.field(source, path, endpoint.url)


def _probe_evidence(ctx: Context, target: ScrapeTarget) -> list[Evidence]:
    """What `--probe` saw at the target's URLs (through the API server's service proxy).

    The proxy connects from the API server, not from the agent: it shows whether the Service
    port answers with the expected metrics, not whether the agent's network path is open.
    """
    records = (ctx.snapshot.probes or {}).get("http") or {}
    found: list[Evidence] = []
    for url in dict.fromkeys(e.url for e in target.endpoints):
        record = records.get(url)
        if not isinstance(record, Mapping):
            continue
        if record.get("ok"):
            detail = f"HTTP {record.get('status')}, found {', '.join(record.get('found') or [])}"
        else:
            detail = str(record.get("error") or f"HTTP {record.get('status')}")
        if record.get("latency_ms") is not None:
            detail += f" ({record.get('latency_ms')} ms, via the API server's service proxy)"
        found.append(ProbeEvidence(url, bool(record.get("ok")), detail))
    return found


def _scrape_evidence(ctx: Context, target: ScrapeTarget) -> list[Evidence]:
    """Where each of the target's URLs is configured, then what `--probe` saw at them."""
    return [*(_config_evidence(ctx, e) for e in target.endpoints), *_probe_evidence(ctx, target)]


def _config_refs(target: ScrapeTarget) -> list[ObjectRef]:
    refs: list[ObjectRef] = []
    for endpoint in target.endpoints:
        if endpoint.config_source not in refs:
            refs.append(endpoint.config_source)
    return refs


def _where(target: ScrapeTarget) -> str:
    """`istiod_endpoint in ConfigMap datadog/datadog-istio-check`, for messages."""
    parts = []
    for endpoint in target.endpoints:
        text = f"`{endpoint.key}` in {endpoint.config_source}"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)


def _selector(service: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((service.get("spec") or {}).get("selector") or {}).items()}


def _target_pods(ctx: Context, target: ScrapeTarget, status: EndpointsStatus | None = None) -> list[KubeObject]:
    """The pods behind a Service.

    Its endpoints' pods, else the pods its selector picks, else (manifests not yet applied)
    pod-likes of the workloads whose template it selects.
    """
    namespace = target.ref.namespace
    if status is None:
        status = ready_endpoints(ctx, target.service, target.port)
    pods: list[KubeObject] = []
    for endpoint in status.ready + status.not_ready:
        if endpoint.pod is not None and endpoint.pod.kind == "Pod":
            pod = ctx.get("Pod", endpoint.pod.namespace, endpoint.pod.name)
            if pod is not None and pod not in pods:
                pods.append(pod)
    selector = _selector(target.service)
    if not pods and selector:
        pods = [
            p
            for p in ctx.objects("Pod")
            if namespace_of(p) == namespace and map_selector_matches(selector, labels_of(p))
        ]
    if not pods and selector:
        for kind in _SERVED_BY_KINDS:
            for workload in ctx.objects(kind):
                template = pod_template(workload) or {}
                if namespace_of(workload) == namespace and map_selector_matches(selector, labels_of(template)):
                    like = pod_like(workload)
                    if like is not None:
                        pods.append(like)
    return pods


def _waiting_reason(container_status: Mapping[str, Any]) -> str:
    waiting = (container_status.get("state") or {}).get("waiting") or {}
    return str(waiting.get("reason") or "not ready")


def _representatives(pods: Iterable[KubeObject]) -> list[KubeObject]:
    """One pod per distinct namespace, stable labels, host network and annotation keys.

    Pods of one workload are judged alike by selectors, so one stands for all (IP blocks aside).
    """
    seen: set[tuple[Any, ...]] = set()
    chosen = []
    for pod in pods:
        key = (
            namespace_of(pod),
            tuple(sorted(stable_labels(pod).items())),
            bool((pod.get("spec") or {}).get("hostNetwork")),
            tuple(sorted(str(k) for k in (metadata(pod).get("annotations") or {}))),
        )
        if key in seen:
            continue
        seen.add(key)
        chosen.append(pod)
    return chosen


def _agent_pods(ctx: Context, workload: KubeObject) -> list[KubeObject]:
    pods = pods_of(ctx, workload)
    if pods:
        return pods
    like = pod_like(workload)
    return [like] if like is not None else []


def _pod_port(service_port: ServicePort, pod: Mapping[str, Any]) -> int | str:
    """The container port a Service port sends to on this pod (its name when unresolved)."""
    number = target_port(service_port, pod)
    return number if number is not None else service_port.target_port


def _declares_port(pods: Iterable[Mapping[str, Any]], port: int) -> bool:
    """Whether a container of one of the pods declares that container port number."""
    return any(
        port_number(p.get("containerPort")) == port
        for pod in pods
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
    )


def _short(obj: Mapping[str, Any]) -> str:
    labels = labels_of(pod_template(dict(obj)) or obj) if obj.get("kind") != "Pod" else labels_of(obj)
    for key in ("app.kubernetes.io/name", "app", "k8s-app", "name"):
        if labels.get(key):
            return labels[key]
    return name_of(obj) or "pods"


def _dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-") or "policy"


# -- MD301 ----------------------------------------------------------------------------------------


def _component(service_name: str) -> str | None:
    if service_name in _COMPONENT_OF_SERVICE:
        return _COMPONENT_OF_SERVICE[service_name]
    if service_name.startswith("istiod-"):
        return "istiod"
    return None


def _facts_for(service_name: str, port: int, info: MeshInfo) -> tuple[str | None, TelemetryEndpoint | None]:
    """(component, the fact for that port in this mesh version) — fact None when not served."""
    component = _component(service_name)
    if component is None:
        return None, None
    minor = info.minor
    for fact in TELEMETRY_ENDPOINTS:
        if fact.component == component and fact.port == port and (minor is None or fact.served_by(minor)):
            return component, fact
    return component, None


def _wrong_era(target: ScrapeTarget, info: MeshInfo) -> bool:
    """Whether the check-config family owns this endpoint: another era's key or port."""
    if info.era not in (MIXER, ISTIOD):
        return False
    if any(e.era_hint in (MIXER, ISTIOD) and e.era_hint != info.era for e in target.endpoints):
        return True
    component, fact = _facts_for(target.ref.name, target.port, info)
    return component is not None and fact is None and info.minor is not None


class ServicePortMissing(Rule):
    """MD301."""

    id = "MD301"
    title = "The Service the istio check scrapes has no such port"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(*_SCRAPE_KINDS, optional=_POD_KINDS, probes=True)
    docs = RuleDocs(
        what="An endpoint of the `istio` check (`istiod_endpoint`, `istio_mesh_endpoint`, "
        "`mixer_endpoint`...) whose host is a Service that exists, on a port number that Service "
        "does not have, while that port is right for the mesh's version (a port of the wrong era "
        "is reported by the check-config family instead).",
        why="kube-proxy forwards only the ports a Service lists: the connection to the ClusterIP "
        "on any other port is refused or times out, the check reports `istio.openmetrics.health` "
        "(or `istio.prometheus.health`) CRITICAL and the mesh or control-plane metrics stop. This "
        "happens when a Service is rewritten by hand, trimmed by a values override, or replaced by "
        "a revision's Service that lacks the monitoring port.",
        fix="Add the port back to the Service with the name and target port upstream gives it "
        "(istiod `http-monitoring` 15014; istio-telemetry `prometheus` 42422 and `http-monitoring` "
        "9093 in 1.0, 15014 from 1.1). meshdoctor writes the whole Service with the port added; if "
        "the Service is owned by an installer (Helm, istioctl, the operator), change its values "
        "instead so the next upgrade keeps it.",
        references=(
            "https://kubernetes.io/docs/concepts/services-networking/service/#defining-a-service",
            "https://docs.datadoghq.com/integrations/istio/",
            "https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per scraped Service port the Service lacks."""
        info = mesh_info(ctx)
        for target in scrape_targets(ctx):
            if target.service_port is not None or _wrong_era(target, info):
                continue
            service = target.service
            ports = [
                f"{p.get('port')}" + (f" ({p.get('name')})" if p.get("name") else "")
                for p in (service.get("spec") or {}).get("ports") or []
            ]
            evidence: list[Evidence] = [ctx.field(service, "spec.ports", ", ".join(ports) or None)]
            evidence += _scrape_evidence(ctx, target)
            yield self.finding(
                f"{target.ref} has no port {target.port} (it has {', '.join(ports) or 'none'}), "
                f"but the istio check scrapes {target.urls()} ({_where(target)}): the scrape "
                "cannot connect.",
                objects=[target.ref, *_config_refs(target)],
                evidence=evidence,
                remediation=self._remediation(ctx, target, info),
            )

    def _remediation(self, ctx: Context, target: ScrapeTarget, info: MeshInfo) -> Remediation:
        service = target.service
        _, fact = _facts_for(target.ref.name, target.port, info)
        fixed = clean_copy(service)
        spec = fixed.setdefault("spec", {})
        ports = spec.setdefault("ports", [])
        taken = {str(p.get("name")) for p in ports if p.get("name")}
        notes = []
        for existing in ports:
            if not existing.get("name"):
                existing["name"] = f"{str(existing.get('protocol') or 'TCP').lower()}-{existing.get('port')}"
                notes.append(
                    f"named the unnamed port {existing.get('port')} `{existing['name']}` "
                    "(a Service with several ports must name each)"
                )
                taken.add(existing["name"])
        if fact is not None:
            name, target_port_value = fact.port_name, fact.port
            why = f"as upstream Istio names it ({fact.what})"
            safe = True
        else:
            name = "http-metrics"
            target_port_value = target.port
            declared = _declares_port(_target_pods(ctx, target), target.port)
            why = (
                "targetPort is the container port of that number the selected pods declare"
                if declared
                else "no selected pod declares that port: check that targetPort is the port the metrics are served on"
            )
            safe = False
        if name in taken:
            name = f"{name}-{target.port}"
            safe = False
        ports.append({"name": name, "port": target.port, "targetPort": target_port_value, "protocol": "TCP"})
        summary = (
            f"Add port {target.port} `{name}` (targetPort {target_port_value}) to {target.ref}, "
            f"{why}" + ("; " + "; ".join(notes) if notes else "") + ". If an installer owns the Service, "
            "set it in the installer's values too."
        )
        return apply_manifests(summary, [fixed], safe=safe and not notes)


# -- MD302 ----------------------------------------------------------------------------------------


class NoReadyEndpoints(Rule):
    """MD302."""

    id = "MD302"
    title = "No ready endpoint behind the Service the istio check scrapes"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(*_SCRAPE_KINDS, optional=[*_POD_KINDS, *_ENDPOINT_KINDS], probes=True)
    docs = RuleDocs(
        what="An endpoint of the `istio` check whose Service has the port but no ready address "
        "behind it: the EndpointSlices (or the Endpoints object) list only not-ready addresses or "
        "none at all, or, when neither is in the input, no pod the Service selects is Ready. A "
        "Service whose selector matches no pod at all is reported with the corrected selector.",
        why="The ClusterIP has nowhere to send the scrape: connections are refused, the check "
        "reports its health service check CRITICAL and the control-plane or mesh metrics stop. The "
        "usual causes are a control-plane rollout stuck on a failing readiness probe, a "
        "scaled-to-zero Deployment, or a selector left behind by a relabelled Deployment (revision "
        "upgrades change `istio.io/rev`).",
        fix="Find why the pods are not ready (`kubectl rollout status`, `kubectl describe pod`: "
        "events, failing probes) and fix that; when the selector matches no pod, apply the "
        "corrected Service meshdoctor writes (the selector of the workload that serves the port).",
        references=(
            "https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/",
            "https://kubernetes.io/docs/tasks/debug/debug-application/debug-service/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per scraped Service port without a ready endpoint."""
        targets = [t for t in scrape_targets(ctx) if t.service_port is not None]
        unknown = []
        for target in targets:
            status = ready_endpoints(ctx, target.service, target.port)
            if status.ready:
                continue
            namespace = target.ref.namespace
            if status.source == FROM_PODS and not any(namespace_of(p) == namespace for p in ctx.objects("Pod")):
                unknown.append(target)
                continue
            yield self._finding(ctx, target, status)
        if unknown and len(unknown) == len(targets):
            names = ", ".join(str(t.ref) for t in unknown)
            raise NotChecked(f"no Endpoints, EndpointSlices or Pods in the input for {names}: readiness cannot be told")

    def _finding(self, ctx: Context, target: ScrapeTarget, status: EndpointsStatus) -> Finding:
        service = target.service
        ref = target.ref
        evidence: list[Evidence] = []
        selector = _selector(service)
        pods = _target_pods(ctx, target, status)
        running = [p for p in pods if p.get("status")]
        fixed_service: KubeObject | None = None
        if status.source == FROM_SLICES:
            evidence += self._slice_evidence(ctx, target)
        elif status.source == FROM_ENDPOINTS:
            evidence += self._endpoints_evidence(ctx, target)
        else:
            evidence.append(ctx.field(service, "spec.selector", selector or None))
        for pod in running[:5]:
            evidence.append(self._pod_evidence(ctx, pod))
        evidence += _scrape_evidence(ctx, target)
        not_ready = len(status.not_ready)
        if not selector and status.source == FROM_PODS:
            cause = f"{ref} has no selector and no Endpoints object: nothing receives the scrape"
        elif not running and not status.not_ready:
            cause = f"the selector of {ref} ({self._selector_text(selector)}) matches no pod"
            fixed_service, candidate = self._corrected_service(ctx, target)
            if candidate is not None:
                evidence.append(
                    ctx.field(
                        candidate,
                        f"{template_path(candidate)}.metadata.labels",
                        labels_of(pod_template(candidate) or {}),
                    )
                )
        elif (unresolved := self._unresolved_target_port(target, running)) is not None:
            cause = (
                f"{ref} port {target.port} sends to targetPort `{unresolved}`, which no container "
                "port of the selected pods is named, so the pods are left out of its endpoints"
            )
            fixed_service = self._numbered_target_port(target, running)
            service_port_index = self._port_index(service, target.port)
            evidence.append(ctx.field(service, f"spec.ports[{service_port_index}].targetPort", unresolved))
        elif not status.not_ready and status.source != FROM_PODS:
            cause = f"the {status.source} of {ref} list no address for port {target.port}"
        else:
            count = not_ready or len(running)
            where = {FROM_SLICES: "in its EndpointSlices", FROM_ENDPOINTS: "in its Endpoints"}.get(
                status.source, "among the pods its selector picks"
            )
            cause = f"{ref} port {target.port} has {count} endpoint(s) {where}, none of them ready"
        message = f"{cause}; the istio check scrapes {target.urls()} ({_where(target)}) and gets no answer."
        return self.finding(
            message,
            objects=[ref, *_config_refs(target)],
            evidence=evidence,
            remediation=self._remediation(ctx, target, running, fixed_service),
        )

    @staticmethod
    def _port_index(service: Mapping[str, Any], port: int) -> int:
        for index, entry in enumerate((service.get("spec") or {}).get("ports") or []):
            if port_number(entry.get("port")) == port:
                return index
        return 0

    @staticmethod
    def _unresolved_target_port(target: ScrapeTarget, pods: list[KubeObject]) -> str | None:
        """The targetPort NAME when Ready pods are selected but none declares it, else None."""
        service_port = target.service_port
        if service_port is None or not isinstance(service_port.target_port, str):
            return None
        ready = [p for p in pods if pod_is_ready(p)]
        if not ready or any(target_port(service_port, p) is not None for p in ready):
            return None
        return service_port.target_port

    def _numbered_target_port(self, target: ScrapeTarget, pods: list[KubeObject]) -> KubeObject | None:
        """The Service with that port's targetPort set to the port number, or None.

        None unless the pods declare a container port of that number.
        """
        if not _declares_port(pods, target.port):
            return None
        fixed = clean_copy(target.service)
        ports = (fixed.get("spec") or {}).get("ports") or []
        ports[self._port_index(fixed, target.port)]["targetPort"] = target.port
        return fixed

    @staticmethod
    def _selector_text(selector: Mapping[str, str]) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "none"

    def _slice_evidence(self, ctx: Context, target: ScrapeTarget) -> list[Evidence]:
        found: list[Evidence] = []
        for endpoint_slice in ctx.objects("EndpointSlice"):
            if namespace_of(endpoint_slice) != target.ref.namespace:
                continue
            if labels_of(endpoint_slice).get(SERVICE_NAME_LABEL) != target.ref.name:
                continue
            endpoints = endpoint_slice.get("endpoints") or []
            if not endpoints:
                found.append(ctx.field(endpoint_slice, "endpoints", None))
            for index, endpoint in enumerate(endpoints):
                conditions = endpoint.get("conditions") or {}
                found.append(ctx.field(endpoint_slice, f"endpoints[{index}].conditions", conditions or None))
        return found

    def _endpoints_evidence(self, ctx: Context, target: ScrapeTarget) -> list[Evidence]:
        endpoints = ctx.get("Endpoints", target.ref.namespace, target.ref.name)
        if endpoints is None:
            return []
        subsets = endpoints.get("subsets") or []
        if not subsets:
            return [ctx.field(endpoints, "subsets", None)]
        found: list[Evidence] = []
        for index, subset in enumerate(subsets):
            found.append(ctx.field(endpoints, f"subsets[{index}].addresses", self._ips(subset.get("addresses"))))
            if subset.get("notReadyAddresses"):
                found.append(
                    ctx.field(
                        endpoints,
                        f"subsets[{index}].notReadyAddresses",
                        self._ips(subset.get("notReadyAddresses")),
                    )
                )
        return found

    @staticmethod
    def _ips(addresses: Any) -> str | None:
        if not addresses:
            return None
        return ", ".join(str(a.get("ip")) for a in addresses if isinstance(a, Mapping))

    @staticmethod
    def _pod_evidence(ctx: Context, pod: KubeObject) -> FieldEvidence:
        conditions = (pod.get("status") or {}).get("conditions") or []
        for index, condition in enumerate(conditions):
            if condition.get("type") == "Ready":
                text = f"Ready={condition.get('status')}"
                detail = condition.get("reason") or condition.get("message")
                waiting = [
                    f"{c.get('name')}: {_waiting_reason(c)}"
                    for c in (pod.get("status") or {}).get("containerStatuses") or []
                    if not c.get("ready")
                ]
                if detail:
                    text += f" ({detail})"
                if waiting:
                    text += "; " + "; ".join(waiting)
                return ctx.field(pod, f"status.conditions[{index}]", text)
        return ctx.field(
            pod,
            "status.conditions",
            "no Ready condition" if not pod_is_ready(pod) else "Ready=True",
        )

    def _corrected_service(self, ctx: Context, target: ScrapeTarget) -> tuple[KubeObject | None, KubeObject | None]:
        """The Service re-pointed at the one workload of its namespace that serves the port.

        Returns it with that workload; (None, None) when there is not exactly one.
        """
        service_port = target.service_port
        assert service_port is not None
        candidates = []
        for kind in _SERVED_BY_KINDS:
            for workload in ctx.objects(kind):
                if namespace_of(workload) != target.ref.namespace:
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
                    candidates.append(workload)
        if len(candidates) != 1:
            return None, None
        workload = candidates[0]
        template_labels = labels_of(pod_template(workload) or {})
        match_labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = {str(k): str(v) for k, v in match_labels.items()}
        # Keep the keys the Service chose, with the pods' values.
        for key in _selector(target.service):
            if key in template_labels:
                selector[key] = template_labels[key]
        if not selector or not all(template_labels.get(k) == v for k, v in selector.items()):
            return None, None
        selector = dict(sorted(selector.items()))
        fixed = clean_copy(target.service)
        fixed.setdefault("spec", {})["selector"] = selector
        return fixed, workload

    def _remediation(
        self, ctx: Context, target: ScrapeTarget, pods: list[KubeObject], fixed: KubeObject | None
    ) -> Remediation:
        ref = target.ref
        ns = ref.namespace
        commands = [f"kubectl -n {ns} get endpointslices -l {SERVICE_NAME_LABEL}={ref.name} -o wide"]
        owners: list[str] = []
        for pod in pods:
            chain = owner_chain(ctx, pod)
            if chain:
                top = chain[-1]
                text = f"{str(top.get('kind')).lower()}/{name_of(top)}"
                if text not in owners and top.get("kind") in (
                    "Deployment",
                    "DaemonSet",
                    "StatefulSet",
                ):
                    owners.append(text)
        commands += [f"kubectl -n {ns} rollout status {owner}" for owner in owners]
        commands += [f"kubectl -n {ns} describe pod {name_of(p)}" for p in pods[:3] if not pod_is_ready(p)]
        selector = _selector(target.service)
        if not pods and selector:
            commands.append(f"kubectl -n {ns} get pods -l {self._selector_text(selector)} -o wide")
        if fixed is not None and fixed["spec"].get("selector") != target.service["spec"].get("selector"):
            return apply_manifests(
                f"Point the selector of {ref} at the workload that serves port {target.port} "
                f"({self._selector_text(fixed['spec']['selector'])}); review it, then apply.",
                [fixed],
                safe=False,
                before=commands,
            )
        if fixed is not None:
            return apply_manifests(
                f"Send port {target.port} of {ref} to container port {target.port}, "
                "which the selected pods declare, instead of a port name they do not have.",
                [fixed],
                safe=False,
                before=commands,
            )
        return Remediation(
            summary="Find why the pods behind the Service are not ready (rollout, probe failures, "
            "events) and fix that cause.",
            commands=tuple(commands),
            safe=False,
        )


# -- MD303 ----------------------------------------------------------------------------------------


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
            "name": _dns_label(f"allow-{_short(source_pod)}-to-{_short(target_pod)}-{port}"),
            "namespace": namespace_of(source_pod) or "default",
        },
        "spec": {
            "podSelector": {"matchLabels": source_labels} if source_labels else {},
            "policyTypes": [EGRESS],
            "egress": [{"to": [peer], "ports": [{"protocol": "TCP", "port": port}]}],
        },
    }


class NetworkPolicyBlocksScrape(Rule):
    """MD303."""

    id = "MD303"
    title = "A NetworkPolicy drops the istio check's scrape"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(
        *_SCRAPE_KINDS,
        "NetworkPolicy",
        optional=["Namespace", *_POD_KINDS, *_ENDPOINT_KINDS],
        probes=True,
    )
    docs = RuleDocs(
        what="An endpoint of the `istio` check whose Service exists, where a NetworkPolicy keeps "
        "the agent pods from the target pods' port: the target pods are isolated for ingress and "
        "no policy selecting them admits the agent pods (by pod and namespace selector, or IP "
        "block) on that port, or the agent pods are isolated for egress and nothing lets them send "
        "there. Policies are evaluated with the networking.k8s.io/v1 semantics on the pod port the "
        "Service forwards to.",
        why="The CNI drops the packets silently: the scrape times out, the check reports its "
        "health service check CRITICAL and the metrics stop, while every object looks healthy. A "
        "default-deny policy added to istio-system (or to the agent's namespace) for hardening is "
        "the usual cause.",
        fix="Apply the NetworkPolicy meshdoctor writes: in the target's namespace, it admits the "
        "agent pods (by their labels AND their namespace's `kubernetes.io/metadata.name`) to that "
        "port only; for an egress denial, one in the agent's namespace that lets the agent pods "
        "send to the target pods on that port (they also need DNS, which a default-deny egress "
        "policy usually already allows). Agents on the host network are matched by no pod or "
        "namespace selector: admit the nodes' addresses with an `ipBlock` instead.",
        references=(
            "https://kubernetes.io/docs/concepts/services-networking/network-policies/",
            "https://docs.datadoghq.com/integrations/istio/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload and scraped Service port a NetworkPolicy blocks."""
        for target in scrape_targets(ctx):
            service_port = target.service_port
            if service_port is None:
                continue
            targets = _representatives(_target_pods(ctx, target))
            if not targets:
                continue
            for workload in _scrapers(ctx, target):
                denied = self._denied(ctx, service_port, targets, _representatives(_agent_pods(ctx, workload)))
                if denied:
                    yield self._finding(ctx, target, workload, denied)

    @staticmethod
    def _denied(
        ctx: Context, service_port: ServicePort, targets: list[KubeObject], agents: list[KubeObject]
    ) -> list[tuple[KubeObject, KubeObject, int | str, Verdict, str]]:
        """(target pod, agent pod, pod port, verdict, direction) of every denied direction."""
        denied = []
        seen_policies: set[tuple[str, tuple[ObjectRef, ...]]] = set()
        for target_pod in targets:
            port = _pod_port(service_port, target_pod)
            for agent_pod in agents:
                verdict = traffic_allowed(ctx, target_pod, agent_pod, port)
                for direction, one in ((EGRESS, verdict.egress), (INGRESS, verdict.ingress)):
                    if one.allowed:
                        continue
                    key = (direction, tuple(one.policies))
                    if key in seen_policies:
                        continue
                    seen_policies.add(key)
                    denied.append((target_pod, agent_pod, port, one, direction))
        return denied

    @staticmethod
    def _selectable(workload: KubeObject, pod: KubeObject) -> Mapping[str, Any]:
        """The agent as the policy names it: by its pod template's labels.

        A running pod also carries labels the mesh adds (`security.istio.io/tlsMode`), which
        come and go with the sidecar.
        """
        return pod_like(workload) or pod

    @staticmethod
    def _selected(target: ScrapeTarget, pod: KubeObject) -> Mapping[str, Any]:
        """The target pods as the policy names them: by the Service's selector when it has one."""
        selector = _selector(target.service)
        if not selector:
            return pod
        return {
            "kind": "Pod",
            "metadata": {
                "namespace": target.ref.namespace,
                "name": target.ref.name,
                "labels": selector,
            },
            "spec": pod.get("spec") or {},
        }

    def _finding(
        self,
        ctx: Context,
        target: ScrapeTarget,
        workload: KubeObject,
        denied: list[tuple[KubeObject, KubeObject, int | str, Verdict, str]],
    ) -> Finding:
        agent_ref = ctx.ref(workload)
        policies: list[ObjectRef] = []
        evidence: list[Evidence] = []
        manifests = []
        for target_pod, agent_pod, port, verdict, direction in denied:
            for ref in verdict.policies:
                if ref in policies:
                    continue
                policies.append(ref)
                policy = ctx.get("NetworkPolicy", ref.namespace, ref.name)
                if policy is None:
                    continue
                evidence.append(
                    ctx.field(
                        policy,
                        "spec.podSelector",
                        (policy.get("spec") or {}).get("podSelector") or {},
                    )
                )
                evidence.append(ctx.field(policy, "spec.policyTypes", policy_types(policy)))
                rules_key = "ingress" if direction == INGRESS else "egress"
                evidence.append(ctx.field(policy, f"spec.{rules_key}", (policy.get("spec") or {}).get(rules_key)))
            source, destination = (
                self._selectable(workload, agent_pod),
                self._selected(target, target_pod),
            )
            if direction == INGRESS:
                manifests.append(admitting_policy_manifest(destination, source, port))
            else:
                manifests.append(egress_policy_manifest(destination, source, port))
        evidence += _scrape_evidence(ctx, target)
        reasons = " ".join(v.reason for _, _, _, v, _ in denied)
        directions = sorted({d.lower() for _, _, _, _, d in denied})
        ports = sorted({str(p) for _, _, p, _, _ in denied})
        message = (
            f"{agent_ref} cannot reach {target.ref} port {target.port} (pod port "
            f"{', '.join(ports)}), which its istio check scrapes ({target.urls()}): "
            f"{reasons}"
        )
        unique = []
        for manifest in manifests:
            if manifest not in unique:
                unique.append(manifest)
        host_network = any((a.get("spec") or {}).get("hostNetwork") for _, a, _, _, _ in denied)
        return self.finding(
            message,
            objects=[*policies, target.ref, agent_ref],
            evidence=evidence,
            remediation=apply_manifests(
                f"Admit the agent pods of {agent_ref} to port {', '.join(ports)} of the pods "
                f"behind {target.ref} ({' and '.join(directions)}), and nothing else.",
                unique,
                safe=not host_network,
                alternatives=(
                    "The agent runs on the host network: pod and namespace selectors do not match "
                    "it; admit the nodes' CIDR with an ipBlock instead.",
                )
                if host_network
                else (),
            ),
        )


# -- MD304 ----------------------------------------------------------------------------------------


_SOURCE = re.compile(r"^(?P<kind>[A-Za-z]+)/(?P<namespace>[^/]*)/(?P<name>[^ ;]+)")


def _mode_object(mode: MtlsMode) -> ObjectRef | None:
    """The object an `MtlsMode.source` names (`PeerAuthentication/ns/name (scope)`), or None."""
    match = _SOURCE.match(mode.source)
    if not match or match.group("kind") == "default":
        return None
    return ObjectRef(match.group("kind"), match.group("namespace"), match.group("name"))


def _root_namespace(ctx: Context, info: MeshInfo) -> str:
    root = mesh_config(ctx, info).get("rootNamespace")
    return str(root or info.namespace or "istio-system")


def _auto_mtls(ctx: Context, info: MeshInfo) -> bool:
    setting = mesh_config(ctx, info).get(AUTO_MTLS_KEY)
    if isinstance(setting, bool):
        return setting
    if info.minor is not None:
        return info.minor >= AUTO_MTLS_DEFAULT_SINCE
    return info.era == ISTIOD


def _workload_peer_authentication(ctx: Context, pod: Mapping[str, Any], root: str) -> KubeObject | None:
    """The workload-level PeerAuthentication that applies to a pod, or None.

    Only the oldest one whose selector matches counts (1.30 `policy_applier.go`
    ComposePeerAuthentication; the root namespace's selector ones are ignored), so a fix goes into
    that one rather than into a new one that would be ignored.
    """
    namespace = namespace_of(pod)
    labels = labels_of(pod)
    matching = []
    if namespace == root:
        return None
    for policy in ctx.objects("PeerAuthentication"):
        selector = ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if namespace_of(policy) != namespace or not selector:
            continue
        if all(labels.get(str(k)) == str(v) for k, v in selector.items()):
            matching.append(policy)
    matching.sort(key=lambda p: (str(metadata(p).get("creationTimestamp") or "~"), name_of(p)))
    return matching[0] if matching else None


def _require_destination_rules(ctx: Context) -> None:
    """An agent in the mesh: its TLS depends on DestinationRules, which must be in the input."""
    why = ctx.unavailable("DestinationRule")
    if why:
        raise NotChecked(f"input missing: DestinationRule: {why}")


def _outbound_port_excluded(pod: Mapping[str, Any], port: int) -> str | None:
    """The field path that keeps outbound `port` away from the pod's sidecar, or None.

    istio-init's `-o` (excludeOutboundPorts) on a running pod, else the pod (template)
    annotation the injector turns into it (1.30 injection-template.yaml, 1.0.7
    sidecar-injector-configmap.yaml: `-o "{{ annotation ... excludeOutboundPorts ... }}"`).
    """
    spec = pod.get("spec") or {}
    for index, container in enumerate(spec.get("initContainers") or []):
        if container.get("name") != "istio-init":
            continue
        args = [str(a) for a in container.get("args") or []]
        for at, arg in enumerate(args[:-1]):
            if arg == "-o" and str(port) in _port_list(args[at + 1]):
                return f"spec.initContainers[{index}].args[{at + 1}]"
        return None
    annotations = metadata(pod).get("annotations") or {}
    if str(port) in _port_list(str(annotations.get(EXCLUDE_OUTBOUND_PORTS, ""))):
        return f"metadata.annotations['{EXCLUDE_OUTBOUND_PORTS}']"
    return None


def _port_list(text: str) -> set[str]:
    return {p.strip().strip('"') for p in text.split(",") if p.strip()}


@dataclass(frozen=True)
class _Client:
    """How an agent pod sends to the target: through its sidecar or in plaintext."""

    in_mesh: bool
    tls: str
    """ISTIO_MUTUAL, DISABLE, SIMPLE, MUTUAL, UNSET, or `AUTO` (auto mTLS picks ISTIO_MUTUAL)."""
    rule: KubeObject | None
    """The DestinationRule that decided, if one did."""
    evidence: tuple[Evidence, ...]


def agent_client(
    ctx: Context,
    workload: KubeObject,
    target: ScrapeTarget,
    service_port: ServicePort,
    info: MeshInfo,
) -> _Client:
    """How the agent workload's pods send to the target: in the mesh or not, and the TLS."""
    pods = _agent_pods(ctx, workload)
    namespace = namespace_of(workload)
    in_mesh = False
    evidence: list[Evidence] = []
    for pod in pods[:1]:
        path = proxy_container_path(pod)
        if path is not None and sidecar_redirects_traffic(pod):
            in_mesh = True
            evidence.append(ctx.field(pod, f"{path}.name", "istio-proxy"))
        elif pod.get("status"):
            evidence.append(ctx.field(pod, "spec.containers", "no istio-proxy container"))
        else:
            decision = injection_decision(ctx, workload, info)
            in_mesh = decision.injected is True
            evidence.append(FieldEvidence(ctx.ref(workload), "(injection)", decision.reason))
    if not in_mesh:
        return _Client(False, "DISABLE", None, tuple(evidence))
    bypass = _outbound_port_excluded(pods[0] if pods else {}, service_port.port)
    if bypass is not None:
        evidence.append(ctx.field(pods[0], bypass, str(service_port.port)))
        return _Client(False, "DISABLE", None, tuple(evidence))
    tls, rule = client_tls_rule(
        ctx,
        target.host,
        service_port.port,
        namespace,
        _root_namespace(ctx, info),
        target.ref.namespace,
    )
    if rule is not None:
        evidence.append(ctx.field(rule, "spec.trafficPolicy", (rule.get("spec") or {}).get("trafficPolicy")))
    if tls == "UNSET" and _auto_mtls(ctx, info):
        tls = "AUTO"
    return _Client(True, tls, rule, tuple(evidence))


def _numbered_pod_ports(ctx: Context, target: ScrapeTarget, service_port: ServicePort) -> list[tuple[KubeObject, int]]:
    """(pod, container port number) behind the target, one pod per kind; unresolved names left out."""
    found = []
    for pod in _representatives(_target_pods(ctx, target)):
        port = port_number(_pod_port(service_port, pod))
        if port is not None:
            found.append((pod, port))
    return found


def _scraping_clients(
    ctx: Context, target: ScrapeTarget, service_port: ServicePort, info: MeshInfo
) -> Iterator[tuple[KubeObject, _Client]]:
    """Each agent workload that scrapes the target, with how it sends there.

    An agent in the mesh is told only with the DestinationRules in the input (NotChecked otherwise).
    """
    for workload in _scrapers(ctx, target):
        client = agent_client(ctx, workload, target, service_port, info)
        if client.in_mesh:
            _require_destination_rules(ctx)
        yield workload, client


def _port_level_setting(rule: KubeObject, port: int) -> dict[str, Any] | None:
    """A DestinationRule's port-level traffic setting for a port, or None."""
    policy = (rule.get("spec") or {}).get("trafficPolicy") or {}
    for setting in policy.get("portLevelSettings") or []:
        if str((setting.get("port") or {}).get("number")) == str(port):
            return dict(setting)
    return None


def _with_port_settings(rule: KubeObject, ports: list[int], settings: list[dict[str, Any]]) -> KubeObject:
    """The whole DestinationRule with `settings` (put last) replacing its settings for `ports`."""
    fixed = clean_copy(rule)
    policy = fixed.setdefault("spec", {}).setdefault("trafficPolicy", {})
    replaced = {str(p) for p in ports}
    others = [
        s for s in policy.get("portLevelSettings") or [] if str((s.get("port") or {}).get("number")) not in replaced
    ]
    policy["portLevelSettings"] = [*others, *settings]
    return fixed


class MtlsBlocksScrape(Rule):
    """MD304."""

    id = "MD304"
    title = "Strict mTLS on the scraped port refuses the agent's plaintext scrape"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(
        *_SCRAPE_KINDS,
        optional=[*_POD_KINDS, *_ENDPOINT_KINDS, *_AGENT_SIDECAR_KINDS, "PeerAuthentication", "Policy", "MeshPolicy"],
        probes=True,
    )
    docs = RuleDocs(
        what="An endpoint of the `istio` check whose target port enforces STRICT mTLS "
        "(PeerAuthentication from 1.5, `authentication.istio.io` Policy/MeshPolicy before, "
        "`portLevelMtls` and port targets included), where that port really is intercepted by an "
        "injected sidecar (not the proxy's own 15020/15090/15021, not a port excluded from "
        "capture, not a hand-written `istio-proxy` such as Mixer 1.0's istio-telemetry, not "
        "istiod's 15014), and the agent does not send Istio mTLS: it is outside the mesh, or its "
        "sidecar's DestinationRule for that host sets another TLS mode (or none, without auto "
        "mTLS).",
        why="The check speaks plain HTTP. The target's sidecar only accepts mTLS on a STRICT port, "
        "so it resets the connection: the check reports `Connection reset by peer` and its health "
        "service check CRITICAL, and the metrics stop.",
        fix="When the agent is outside the mesh (the usual choice, so it needs no ServiceEntry to "
        "reach Datadog), let that one port of that one workload accept plaintext: a "
        "PeerAuthentication (security.istio.io, Istio 1.5+) whose selector is the Service's "
        "selector and whose `portLevelMtls` sets the container port to PERMISSIVE, leaving the "
        "rest STRICT; on Istio 1.0-1.4 an authentication.istio.io/v1alpha1 Policy targeting the "
        "Service and port with `peers: [{mtls: {mode: PERMISSIVE}}]`. A workload "
        "PeerAuthentication that already exists is corrected in place, because only the oldest one "
        "applies. A DestinationRule alone cannot help an agent without a sidecar: it configures "
        "clients' sidecars. When the agent is in the mesh, the fix is on its side instead: a "
        "DestinationRule (or a port-level setting in the one that applies) with `ISTIO_MUTUAL` for "
        "that host and port, keeping the server STRICT.",
        references=(
            "https://istio.io/latest/docs/reference/config/security/peer_authentication/",
            "https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/",
            "https://istio.io/latest/docs/ops/integrations/prometheus/#tls-settings",
            "https://istio.io/v1.4/docs/reference/config/security/istio.authentication.v1alpha1/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload and scraped Service port STRICT mTLS refuses."""
        info = mesh_info(ctx)
        needed = {ISTIOD: ("PeerAuthentication",), MIXER: ("Policy", "MeshPolicy")}.get(info.era, ())
        missing = [f"{kind}: {ctx.unavailable(kind)}" for kind in needed if ctx.unavailable(kind)]
        if missing:
            raise NotChecked("input missing: " + "; ".join(missing))
        for target in scrape_targets(ctx):
            service_port = target.service_port
            if service_port is None:
                continue
            strict = []
            for pod, port in _numbered_pod_ports(ctx, target, service_port):
                mode = effective_mtls(ctx, pod, port, info)
                if mode.mode != "STRICT":
                    continue
                if behind_capturing_sidecar(ctx, pod, port, info) is not True:
                    continue
                strict.append((pod, port, mode))
            if not strict:
                continue
            for workload, client in _scraping_clients(ctx, target, service_port, info):
                if client.in_mesh and client.tls in ("ISTIO_MUTUAL", "AUTO"):
                    continue
                yield self._finding(ctx, target, workload, strict, client, info)

    def _finding(
        self,
        ctx: Context,
        target: ScrapeTarget,
        workload: KubeObject,
        strict: list[tuple[KubeObject, int, MtlsMode]],
        client: _Client,
        info: MeshInfo,
    ) -> Finding:
        agent_ref = ctx.ref(workload)
        pod, port, mode = strict[0]
        mode_ref = _mode_object(mode)
        evidence: list[Evidence] = []
        if mode_ref is not None:
            policy = ctx.get(mode_ref.kind, mode_ref.namespace, mode_ref.name)
            if policy is not None:
                spec = policy.get("spec") or {}
                if "portLevelMtls" in mode.source:
                    evidence.append(
                        ctx.field(
                            policy,
                            f"spec.portLevelMtls['{port}']",
                            (spec.get("portLevelMtls") or {}).get(
                                port, (spec.get("portLevelMtls") or {}).get(str(port))
                            ),
                        )
                    )
                elif mode_ref.kind == "PeerAuthentication":
                    evidence.append(ctx.field(policy, "spec.mtls", spec.get("mtls")))
                else:
                    evidence.append(ctx.field(policy, "spec.peers", spec.get("peers")))
        else:
            evidence.append(FieldEvidence(target.ref, "(mTLS mode)", f"{mode.mode}: {mode.source}"))
        proxy = proxy_container_path(pod)
        if proxy is not None and pod.get("status"):
            evidence.append(ctx.field(pod, f"{proxy}.name", "istio-proxy"))
        evidence += list(client.evidence)
        evidence += _scrape_evidence(ctx, target)
        if client.in_mesh:
            sent = client.tls if client.tls != "UNSET" else "plaintext (no DestinationRule sets TLS, no auto mTLS)"
            why = f"its sidecar sends {sent} to {target.host}" + (
                f" (DestinationRule {namespace_of(client.rule)}/{name_of(client.rule)})"
                if client.rule is not None
                else ""
            )
        else:
            why = "the agent has no sidecar and scrapes in plaintext"
        message = (
            f"{target.ref} port {target.port} reaches a sidecar that requires mTLS on pod port "
            f"{port} "
            f"(STRICT from {mode.source}); {agent_ref} scrapes {target.urls()} but {why}: the "
            "sidecar resets the connection."
        )
        objects = [r for r in (mode_ref, target.ref, agent_ref) if r is not None]
        return self.finding(
            message,
            objects=objects,
            evidence=evidence,
            remediation=self._remediation(ctx, target, pod, port, mode, client, workload, info),
        )

    def _remediation(
        self,
        ctx: Context,
        target: ScrapeTarget,
        pod: KubeObject,
        port: int,
        mode: MtlsMode,
        client: _Client,
        workload: KubeObject,
        info: MeshInfo,
    ) -> Remediation:
        root = _root_namespace(ctx, info)
        if info.era == ISTIOD and target.ref.namespace == root and not client.in_mesh:
            return Remediation(
                summary=f"{target.ref} is in the mesh's root namespace {root}, where Istio ignores "
                "PeerAuthentications with a selector: no port-level exception can be written for it. "
                "Put the agent in the mesh (its sidecar then sends Istio mTLS; it needs a ServiceEntry "
                "for the Datadog intake, see MD101), or serve the metrics from a workload outside "
                f"{root}.",
                safe=False,
            )
        server_side = self._permissive_manifest(ctx, target, pod, port, mode, info)
        if client.in_mesh:
            rule = self._mutual_rule(ctx, target, client, workload, info)
            return apply_manifests(
                f"The agent is in the mesh: make its sidecar use ISTIO_MUTUAL to "
                f"{target.host} port {target.port}, keeping the server STRICT.",
                [rule],
                safe=False,
                alternatives=(
                    f"Or leave the agent as it is and let pod port {port} accept plaintext "
                    "(PERMISSIVE) on the server side.",
                ),
                alternative_objects=[server_side],
            )
        kind = server_side["kind"]
        summary = (
            f"Let pod port {port} behind {target.ref} accept plaintext (PERMISSIVE) with a "
            f"{kind}, leaving every other port as it is."
            if kind == "PeerAuthentication"
            else f"Let {target.ref} port {target.port} accept plaintext (PERMISSIVE) with an "
            f"authentication Policy targeting that Service port (Istio {info.version or '< 1.5'})."
        )
        return apply_manifests(
            summary,
            [server_side],
            safe=False,
            alternatives=(
                "Or put the agent in the mesh (its sidecar then sends Istio mTLS; it needs a "
                "ServiceEntry for the Datadog intake, see MD101).",
                "Or mount Istio's workload certificates into the agent and scrape over https with "
                "`tls_cert`/`tls_private_key`/`tls_ca_cert` in the check instance.",
            ),
        )

    @staticmethod
    def _permissive_manifest(
        ctx: Context,
        target: ScrapeTarget,
        pod: KubeObject,
        port: int,
        mode: MtlsMode,
        info: MeshInfo,
    ) -> dict[str, Any]:
        mode_ref = _mode_object(mode)
        namespace = target.ref.namespace
        if info.era == MIXER:
            if mode_ref is not None and mode_ref.kind == "Policy" and "port" in mode.source:
                existing = ctx.get("Policy", mode_ref.namespace, mode_ref.name)
                if existing is not None:
                    fixed = clean_copy(existing)
                    fixed.setdefault("spec", {})["peers"] = [{"mtls": {"mode": "PERMISSIVE"}}]
                    return fixed
            return {
                "apiVersion": POLICY_API,
                "kind": "Policy",
                "metadata": {
                    "name": _dns_label(f"{target.ref.name}-{target.port}-permissive"),
                    "namespace": namespace,
                },
                "spec": {
                    "targets": [{"name": target.ref.name, "ports": [{"number": target.port}]}],
                    "peers": [{"mtls": {"mode": "PERMISSIVE"}}],
                },
            }
        selector = _selector(target.service) or stable_labels(pod)
        existing = _workload_peer_authentication(ctx, pod, _root_namespace(ctx, info))
        if existing is not None:
            fixed = clean_copy(existing)
            levels = fixed.setdefault("spec", {}).setdefault("portLevelMtls", {})
            levels.pop(str(port), None)
            levels[port] = {"mode": "PERMISSIVE"}
            return fixed
        return {
            "apiVersion": PEER_AUTHENTICATION_API,
            "kind": "PeerAuthentication",
            "metadata": {
                "name": _dns_label(f"{target.ref.name}-{port}-permissive"),
                "namespace": namespace,
            },
            "spec": {
                "selector": {"matchLabels": dict(sorted(selector.items()))},
                "mtls": {"mode": "UNSET"},
                "portLevelMtls": {port: {"mode": "PERMISSIVE"}},
            },
        }

    @staticmethod
    def _mutual_rule(
        ctx: Context, target: ScrapeTarget, client: _Client, workload: KubeObject, info: MeshInfo
    ) -> dict[str, Any]:
        setting = {"port": {"number": target.port}, "tls": {"mode": "ISTIO_MUTUAL"}}
        if client.rule is not None:
            kept = _port_level_setting(client.rule, target.port)
            if kept is not None:
                setting = {**kept, "tls": {"mode": "ISTIO_MUTUAL"}}
            return _with_port_settings(client.rule, [target.port], [setting])
        return {
            "apiVersion": service_entry_api_version(info),
            "kind": "DestinationRule",
            "metadata": {
                "name": _dns_label(f"{target.ref.name}-{target.port}-istio-mutual"),
                "namespace": namespace_of(workload),
            },
            "spec": {
                "host": target.host,
                "exportTo": ["."],
                "trafficPolicy": {"portLevelSettings": [setting]},
            },
        }


# -- MD305 ----------------------------------------------------------------------------------------


class MtlsToPlaintextPort(Rule):
    """MD305."""

    id = "MD305"
    title = "The agent's sidecar sends Istio mTLS to a scraped port that speaks plaintext"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(*_SCRAPE_KINDS, optional=[*_POD_KINDS, *_ENDPOINT_KINDS, *_AGENT_SIDECAR_KINDS], probes=True)
    docs = RuleDocs(
        what="An endpoint of the `istio` check scraped by an agent that runs an Istio sidecar, "
        "where a DestinationRule makes that sidecar originate Istio mTLS (`ISTIO_MUTUAL`, or "
        "`MUTUAL`) to the Service port, while no sidecar terminates TLS on the target port: "
        "istiod's 15014, Mixer 1.0's istio-telemetry 42422/9093 (its `istio-proxy` is written "
        "into the template and intercepts nothing), or a port excluded from inbound capture "
        "(15020/15090 on workloads). The usual source is a mesh-wide `*.local` rule with "
        "`ISTIO_MUTUAL` (Istio 1.0's `global.mtls.enabled` installs one) without the exact-host "
        "rule that turns it off for the control plane.",
        why="The target answers in plain HTTP and the agent's sidecar expects a TLS handshake: "
        "the scrape fails with `upstream connect error or disconnect/reset before headers`, the "
        "check reports its health service check CRITICAL and the metrics stop.",
        fix="Turn TLS off for that host and port on the agent's side: a DestinationRule for the "
        "Service's exact host whose `portLevelSettings` set `tls.mode: DISABLE` on that port (an "
        "exact host beats the `*.local` wildcard). meshdoctor corrects the exact-host rule that "
        "decided, or writes a new one in the agent's namespace (Istio >= 1.5: the client's "
        "namespace is looked up first, `exportTo: [.]` keeps it there) or in the Service's "
        "namespace (Istio 1.0-1.4). Or take the agent out of the mesh.",
        references=(
            "https://istio.io/latest/docs/reference/config/networking/destination-rule/#ClientTLSSettings",
            "https://istio.io/latest/docs/ops/configuration/traffic-management/tls-configuration/",
            "https://istio.io/v1.0/docs/tasks/security/mutual-tls/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per in-mesh agent workload and Service it sends mTLS to in vain."""
        info = mesh_info(ctx)
        found: dict[tuple[ObjectRef, ObjectRef], list[tuple[ScrapeTarget, int, _Client]]] = {}
        agents: dict[ObjectRef, KubeObject] = {}
        for target in scrape_targets(ctx):
            service_port = target.service_port
            if service_port is None:
                continue
            plaintext = [
                (pod, port)
                for pod, port in _numbered_pod_ports(ctx, target, service_port)
                if behind_capturing_sidecar(ctx, pod, port, info) is False
            ]
            if not plaintext:
                continue
            for workload, client in _scraping_clients(ctx, target, service_port, info):
                if not client.in_mesh or client.tls not in ("ISTIO_MUTUAL", "MUTUAL"):
                    continue
                agents[ctx.ref(workload)] = workload
                key = (ctx.ref(workload), target.ref)
                found.setdefault(key, []).append((target, plaintext[0][1], client))
        for (agent_ref, _), cases in sorted(found.items()):
            yield self._finding(ctx, agents[agent_ref], cases, info)

    def _finding(
        self,
        ctx: Context,
        workload: KubeObject,
        cases: list[tuple[ScrapeTarget, int, _Client]],
        info: MeshInfo,
    ) -> Finding:
        agent_ref = ctx.ref(workload)
        target, _, client = cases[0]
        rules = []
        for _, _, one in cases:
            assert one.rule is not None  # ISTIO_MUTUAL and MUTUAL come from a DestinationRule
            if one.rule not in rules:
                rules.append(one.rule)
        evidence: list[Evidence] = list(client.evidence)
        for one_rule in rules[1:]:
            evidence.append(
                ctx.field(
                    one_rule,
                    "spec.trafficPolicy",
                    (one_rule.get("spec") or {}).get("trafficPolicy"),
                )
            )
        pods = _representatives(_target_pods(ctx, target))
        pod = pods[0]
        proxy = proxy_container_path(pod)
        ports = ", ".join(str(port) for _, port, _ in cases)
        if proxy is None:
            evidence.append(ctx.field(pod, "spec.containers", "no istio-proxy container"))
        elif not sidecar_redirects_traffic(pod):
            evidence.append(ctx.field(pod, proxy, "istio-proxy written into the template: no redirection"))
        else:
            evidence.append(FieldEvidence(ctx.ref(pod), "(inbound capture)", f"port(s) {ports} not redirected"))
        for one_target, _, _ in cases:
            evidence += _scrape_evidence(ctx, one_target)
        rule_refs = [ctx.ref(r) for r in rules]
        service_ports = ", ".join(str(t.port) for t, _, _ in cases)
        urls = ", ".join(t.urls() for t, _, _ in cases)
        names = ", ".join(f"{r.namespace}/{r.name}" for r in rule_refs)
        message = (
            f"{agent_ref} runs a sidecar that sends {client.tls} to {target.host} port(s) "
            f"{service_ports} (DestinationRule {names}), but pod port(s) {ports} behind "
            f"{target.ref} have no sidecar to terminate it and answer in plaintext: the istio "
            f"check's scrape of {urls} fails."
        )
        fixed = self._disabling_rule(target, [t.port for t, _, _ in cases], workload, rules[0], info)
        return self.finding(
            message,
            objects=[*rule_refs, target.ref, agent_ref],
            evidence=evidence,
            remediation=apply_manifests(
                f"Make the agent's sidecar send plaintext to {target.host} port(s) "
                f"{service_ports}: a DestinationRule for that exact host with TLS DISABLE on "
                "those ports.",
                [fixed],
                safe=False,
                alternatives=(
                    'Or take the agent out of the mesh (`sidecar.istio.io/inject: "false"` on its '
                    "pod template); it then scrapes in plaintext directly.",
                ),
            ),
        )

    @staticmethod
    def _disabling_rule(
        target: ScrapeTarget,
        ports: list[int],
        workload: KubeObject,
        rule: KubeObject,
        info: MeshInfo,
    ) -> dict[str, Any]:
        settings = [{"port": {"number": p}, "tls": {"mode": "DISABLE"}} for p in ports]
        host = str((rule.get("spec") or {}).get("host") or "")
        if host in (target.host, f"{target.ref.name}.{target.ref.namespace}", target.ref.name):
            return _with_port_settings(rule, ports, settings)
        spec: dict[str, Any] = {"host": target.host}
        if info.era == ISTIOD:
            namespace = namespace_of(workload)
            spec["exportTo"] = ["."]
        else:
            namespace = target.ref.namespace
        spec["trafficPolicy"] = {"portLevelSettings": settings}
        return {
            "apiVersion": service_entry_api_version(info),
            "kind": "DestinationRule",
            "metadata": {
                "name": _dns_label(f"{target.ref.name}-{'-'.join(map(str, ports))}-plaintext"),
                "namespace": namespace,
            },
            "spec": spec,
        }


RULES = [
    ServicePortMissing,
    NoReadyEndpoints,
    NetworkPolicyBlocksScrape,
    MtlsBlocksScrape,
    MtlsToPlaintextPort,
]
