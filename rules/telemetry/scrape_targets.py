"""What the agents' `istio` check scrapes: the Service ports, the agents that scrape them, the evidence.

The endpoints come from `meshdoctor.datadog.istio_check.configured_endpoints` (ConfigMaps the agents
read and Autodiscovery annotations); a target is one port of a Service that exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.datadog.istio_check import AD_ANNOTATIONS, AD_ANNOTATIONS_V2, CheckEndpoint, configured_endpoints
from meshdoctor.istio.mtls import CLUSTER_DOMAIN
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.network_policy import port_number
from meshdoctor.kube.service_endpoints import ServicePort, find_service_port
from meshdoctor.kube.workloads import template_path
from meshdoctor.model import Evidence, FieldEvidence, ObjectRef, ProbeEvidence
from meshdoctor.rule import Context, NotChecked
from meshdoctor.snapshot import KubeObject

#: What every telemetry rule reads: the scraped Services, the check's ConfigMaps and the agents.
SCRAPE_KINDS = ("Service", "ConfigMap", "DaemonSet", "Deployment")
#: Read when present: the pods behind a Service and their owners (`service_pods`, `workload_pods`).
POD_KINDS = ("Pod", "ReplicaSet", "StatefulSet", "ReplicationController", "Job", "CronJob")
#: Read when present: which of those pods are ready (`ready_endpoints`).
ENDPOINT_KINDS = ("Endpoints", "EndpointSlice")


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
        return ObjectRef("Service", namespace_of(self.service), name_of(self.service))

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
    is not there, are left to the check-config family; so are ExternalName Services. A Service in
    a namespace that was not read (`-n`, a partial dump) is not a target; when it leaves no target
    at all, `NotChecked` names it: a rule cannot pass on what it did not see.
    """
    grouped: dict[tuple[str, str, int], list[CheckEndpoint]] = {}
    services: dict[tuple[str, str, int], KubeObject] = {}
    unread: set[str] = set()
    for endpoint in configured_endpoints(ctx):
        port = port_number(endpoint.port)
        if not endpoint.service or not endpoint.namespace or port is None:
            continue
        key = (endpoint.namespace, endpoint.service, port)
        if key not in services:
            service = ctx.get("Service", endpoint.namespace, endpoint.service)
            why = ctx.not_read("Service", endpoint.namespace) if service is None else None
            if why is not None:
                unread.add(f"Service {endpoint.namespace}/{endpoint.service}: {why}")
            if service is None or (service.get("spec") or {}).get("type") == "ExternalName":
                continue
            services[key] = service
        grouped.setdefault(key, []).append(endpoint)
    if unread and not grouped:
        raise NotChecked("the scraped Services are not known: " + "; ".join(sorted(unread)))
    return [ScrapeTarget(services[key], key[2], tuple(grouped[key])) for key in sorted(grouped)]


def scrapers(ctx: Context, target: ScrapeTarget) -> list[KubeObject]:
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


# -- evidence and messages ------------------------------------------------------------------------


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


def scrape_evidence(ctx: Context, target: ScrapeTarget) -> list[Evidence]:
    """Where each of the target's URLs is configured, then what `--probe` saw at them."""
    return [*(_config_evidence(ctx, e) for e in target.endpoints), *_probe_evidence(ctx, target)]


def config_refs(target: ScrapeTarget) -> list[ObjectRef]:
    """The objects the target's URLs are configured in, each once, in configuration order."""
    refs: list[ObjectRef] = []
    for endpoint in target.endpoints:
        if endpoint.config_source not in refs:
            refs.append(endpoint.config_source)
    return refs


def where_configured(target: ScrapeTarget) -> str:
    """`istiod_endpoint in ConfigMap datadog/datadog-istio-check`, for messages."""
    parts = []
    for endpoint in target.endpoints:
        text = f"`{endpoint.key}` in {endpoint.config_source}"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)
