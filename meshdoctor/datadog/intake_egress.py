"""Whether an agent workload's traffic to the Datadog intake gets out of the mesh: its egress model.

For an agent workload: is the pod in the mesh (`istio.injection.injection_decision`), does its
sidecar capture traffic to the internet on the intake's port (`istio.egress.egress_capture`), does
its sidecar drop unknown hosts (mesh config, Istio 1.0, or a Sidecar's `outboundTrafficPolicy`),
and, for every endpoint the agent needs (`datadog.agent.required_endpoints`), which ServiceEntries
cover it or almost do (`istio.egress.covering_service_entries`). Also what the agent logs when
its forwarder cannot deliver, and the ServiceEntry protocol and hosts that let it out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from meshdoctor.datadog.agent import RequiredEndpoint, agent_release, datadog_site, required_endpoints
from meshdoctor.datadog.agent_version import AgentRelease
from meshdoctor.istio.egress import (
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_SERVICE_EXPORT_TO,
    Coverage,
    covering_service_entries,
    effective_outbound_policy,
    effective_sidecar,
    egress_capture,
)
from meshdoctor.istio.injection import Injection, injection_decision, injector_configmap, sidecar_redirects_traffic
from meshdoctor.istio.mesh import MeshInfo, mesh_config_map, outbound_policy_of, parsed_mesh_config
from meshdoctor.istio.service_entry_visibility import with_default_sidecar_imports
from meshdoctor.kube.meta import labels_of, namespace_of
from meshdoctor.kube.service_names import service_of_host
from meshdoctor.kube.workloads import pod_template, pods_of
from meshdoctor.model import Severity
from meshdoctor.snapshot import EVERY_NAMESPACE, KubeObject, ObjectReader

#: The agent's forwarder logs this once an endpoint's circuit breaker is open (datadog-agent
#: pkg/forwarder/worker.go `process`: "Too many errors for endpoint '%s': retrying later"), and
#: this for every failed transaction (worker.go: "Error while processing transaction").
FORWARDER_ERRORS = ("Too many errors for endpoint", "Error while processing transaction")

#: Hosts of in-cluster Services: always in the registry, never blocked by REGISTRY_ONLY.
_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")

#: ServiceEntry port protocol to write for what the agent speaks.
_SE_PROTOCOL = {"HTTPS": "HTTPS", "TLS": "TLS", "HTTP": "HTTP", "TCP": "TCP"}

#: The metrics host of an agent version: `7-60-1-app.agent.<site>`.
_VERSIONED_HOST = re.compile(r"^\d+-\d+-\d+-app\.agent\.(?P<site>.+)$")


@dataclass
class EndpointState:
    """One endpoint the agent needs, as its sidecar sees it."""

    endpoint: RequiredEndpoint
    captured: bool | None
    """Whether the sidecar intercepts connections to it (egress_capture)."""
    coverage: Coverage | None = None
    """ServiceEntries covering it and near misses; None when not captured."""

    @property
    def blocked(self) -> bool:
        """Captured and covered by nothing."""
        return self.captured is True and self.coverage is not None and not self.coverage.covered


@dataclass
class AgentEgress:
    """What decides whether one agent workload reaches its intake."""

    workload: KubeObject
    subject: KubeObject
    """The first running pod, else the workload itself (its template predicts the pods)."""
    namespace: str
    injection: Injection
    policy: str
    """Effective outbound policy for the agent's pods: REGISTRY_ONLY or ALLOW_ANY."""
    sidecar_policy: KubeObject | None
    """The Sidecar whose `outboundTrafficPolicy` decided the policy, if one did."""
    mesh_configmap: KubeObject | None
    """The mesh config ConfigMap read for the agent's pods: their revision's (`istio-<rev>`), or
    `istio` when the revision is not known; None when it is not in the snapshot."""
    revision: str | None
    """The revision whose istiod configures the agent's sidecars, when known (`default` too)."""
    site: str
    release: AgentRelease
    """The release the agent runs and which evidence decided (its versioned host, logs transport)."""
    endpoints: list[EndpointState] = field(default_factory=list)


@dataclass(frozen=True)
class Loss:
    """What an agent loses because one blocked endpoint cannot be reached."""

    endpoint: RequiredEndpoint
    severity: Severity
    """The endpoint's consequence, lowered to a warning when a fallback that is open carries the data."""
    note: str
    """Why this severity: empty for the endpoint's own consequence."""


def losses(state: AgentEgress) -> dict[RequiredEndpoint, Loss]:
    """The blocked endpoints whose loss counts, by endpoint.

    A fallback (the TCP logs intake) counts only when what it stands in for is blocked too; a
    blocked endpoint with an open fallback costs a warning: the agent switches to the fallback
    (for logs, after its HTTPS test at start fails) and the data still flows.
    """
    found: dict[RequiredEndpoint, Loss] = {}
    for endpoint_state in state.endpoints:
        if not endpoint_state.blocked:
            continue
        endpoint = endpoint_state.endpoint
        if endpoint.fallback_for is not None:
            primary = [s for s in state.endpoints if s.endpoint.product == endpoint.fallback_for]
            if primary and not any(s.blocked for s in primary):
                continue
            found[endpoint] = Loss(endpoint, endpoint.consequence, f"and {endpoint.fallback_for} itself is blocked")
            continue
        fallbacks = [s for s in state.endpoints if s.endpoint.fallback_for == endpoint.product]
        if fallbacks and not any(s.blocked for s in fallbacks):
            open_ones = ", ".join(s.endpoint.address for s in fallbacks)
            severity = min(endpoint.consequence, Severity.WARNING)
            found[endpoint] = Loss(endpoint, severity, f"the agent falls back to {open_ones}, which is open")
            continue
        found[endpoint] = Loss(endpoint, endpoint.consequence, "")
    return found


def primary_endpoints(state: AgentEgress) -> list[RequiredEndpoint]:
    """The captured endpoints a fix must open: the agent's own, not the fallbacks it needs only if they fail."""
    return [s.endpoint for s in state.endpoints if s.captured is True and s.endpoint.fallback_for is None]


def is_cluster_host(host: str) -> bool:
    """Whether a host names an in-cluster Service (`.svc`, `.cluster.local`): never blocked."""
    return host.endswith(_CLUSTER_SUFFIXES)


def egress_not_read(reader: ObjectReader, info: MeshInfo) -> str | None:
    """Why the agent's egress cannot be judged from what was read (`-n`, a partial dump), or None.

    The control plane (version, injection, defaults) and its mesh config live in its namespace;
    a ServiceEntry of any namespace is exported to every namespace unless `exportTo` says
    otherwise (istio/api networking/v1alpha3/service_entry.proto `export_to`: "If no namespaces
    are specified then the service entry is exported to all namespaces by default"), so one that
    was not read may cover the intake.
    """
    if info.not_read is not None:
        return info.unknown_reason()
    if info.namespace is not None:
        why = reader.not_read("ConfigMap", info.namespace)
        if why is not None:
            return f"the mesh config (ConfigMap in {info.namespace}) is not known: {why}"
    why = reader.not_read("ServiceEntry", EVERY_NAMESPACE)
    if why is not None:
        return f"ServiceEntries exported from other namespaces may cover the intake: {why}"
    return None


def agent_egress(reader: ObjectReader, workload: KubeObject, info: MeshInfo) -> AgentEgress | None:
    """The egress model of an agent workload whose pods have a redirecting sidecar; else None."""
    pods = pods_of(reader, workload)
    subject = pods[0] if pods else workload
    injection = injection_decision(reader, subject, info)
    if injection.injected is not True or sidecar_redirects_traffic(subject) is False:
        return None
    namespace = namespace_of(workload)
    configmap = mesh_config_map(reader, info, injection.revision)
    config = parsed_mesh_config(configmap)
    mesh_policy = outbound_policy_of(config, info)
    root = str(config.get("rootNamespace") or DEFAULT_ROOT_NAMESPACE)
    exported = config.get("defaultServiceExportTo")
    default_export_to = [str(v) for v in exported] if isinstance(exported, list) and exported else None
    policy = effective_outbound_policy(reader, subject, mesh_policy, root)
    template = pod_template(subject) or {}
    labels = labels_of(template)
    sidecar = effective_sidecar(reader, namespace, labels, root)
    sidecar_mode = (((sidecar or {}).get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
    state = AgentEgress(
        workload=workload,
        subject=subject,
        namespace=namespace,
        injection=injection,
        policy=policy,
        sidecar_policy=sidecar if sidecar_mode else None,
        mesh_configmap=configmap,
        revision=injection.revision,
        site=datadog_site(reader, workload),
        release=agent_release(reader, workload),
    )
    injector = injector_configmap(reader, info, injection.revision or "default")
    for endpoint in required_endpoints(reader, workload):
        if is_cluster_host(endpoint.host) or service_of_host(reader, endpoint.host, namespace) is not None:
            continue  # an in-cluster Service (a proxy, say) is always in the registry
        captured = egress_capture(subject, injector, endpoint.port, info.minor).captured
        coverage = None
        if captured is True:
            coverage = covering_service_entries(
                reader,
                namespace,
                endpoint.host,
                endpoint.port,
                endpoint.protocol,
                client=subject,
                root_namespace=root,
                default_export_to=default_export_to or DEFAULT_SERVICE_EXPORT_TO,
            )
            coverage = with_default_sidecar_imports(coverage)
        state.endpoints.append(EndpointState(endpoint, captured, coverage))
    return state


def service_entry_protocol(endpoint: RequiredEndpoint) -> str:
    """The ServiceEntry port protocol that carries what the agent speaks to an endpoint (TLS else)."""
    return _SE_PROTOCOL.get(endpoint.protocol, "TLS")


def upgrade_proof_host(host: str) -> str:
    """`7-60-1-app.agent.<site>` -> `*.agent.<site>`: an entry that survives agent upgrades."""
    match = _VERSIONED_HOST.match(host)
    return f"*.agent.{match.group('site')}" if match else host


def forwarder_timestamp(line: str) -> str | None:
    """The agent's `2019-02-20 10:12:33 UTC` prefix of a log line, or None."""
    head = line.split(" | ", 1)[0].strip()
    return head if head[:4].isdigit() and len(head) >= 19 else None
