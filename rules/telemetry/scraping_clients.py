"""The agents as clients of a scrape target: through an Istio sidecar or not, and with which TLS.

Shared by MD304 (the server wants mTLS the agent does not send) and MD305 (the agent sends mTLS to
a port that speaks plaintext), with the corrected DestinationRule both fixes write. An agent in
Istio ambient mode has no sidecar whose TLS they could read: ztunnel carries its scrape (HBONE to an
ambient or HBONE-capable destination, plain TCP otherwise), so both rules leave it out and say so
when it is the only agent that matters (`ambient_not_checked`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshdoctor.fixes.manifests import clean_copy
from meshdoctor.istio.ambient import ambient_membership
from meshdoctor.istio.injection import injection_decision, proxy_container_path, sidecar_redirects_traffic
from meshdoctor.istio.mesh import MeshInfo, root_namespace
from meshdoctor.istio.mtls import client_tls_rule
from meshdoctor.istio.outbound_tls import auto_mtls, outbound_port_excluded
from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.network_policy import port_number
from meshdoctor.kube.representative_pods import representatives, workload_pods
from meshdoctor.kube.service_endpoints import ServicePort
from meshdoctor.kube.service_pods import pod_port, service_pods
from meshdoctor.model import Evidence, FieldEvidence
from meshdoctor.rule import Context, NotChecked
from meshdoctor.snapshot import KubeObject

from .scrape_targets import ScrapeTarget, scrapers

#: Read when present: whether the agent runs a sidecar and the TLS it sends (`agent_client`).
AGENT_SIDECAR_KINDS = ("Namespace", "MutatingWebhookConfiguration", "DestinationRule")


@dataclass(frozen=True)
class AgentClient:
    """How an agent pod sends to the target: through its sidecar or in plaintext."""

    in_mesh: bool
    tls: str
    """ISTIO_MUTUAL, DISABLE, SIMPLE, MUTUAL, UNSET, or `AUTO` (auto mTLS picks ISTIO_MUTUAL)."""
    rule: KubeObject | None
    """The DestinationRule that decided, if one did."""
    evidence: tuple[Evidence, ...]


def _require_destination_rules(ctx: Context) -> None:
    """An agent in the mesh: its TLS depends on DestinationRules, which must be in the input."""
    why = ctx.unavailable("DestinationRule")
    if why:
        raise NotChecked(f"input missing: DestinationRule: {why}")


def agent_client(
    ctx: Context,
    workload: KubeObject,
    target: ScrapeTarget,
    service_port: ServicePort,
    info: MeshInfo,
) -> AgentClient:
    """How the agent workload's pods send to the target: in the mesh or not, and the TLS."""
    pods = workload_pods(ctx, workload)
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
        return AgentClient(False, "DISABLE", None, tuple(evidence))
    bypass = outbound_port_excluded(pods[0] if pods else {}, service_port.port)
    if bypass is not None:
        evidence.append(ctx.field(pods[0], bypass, str(service_port.port)))
        return AgentClient(False, "DISABLE", None, tuple(evidence))
    tls, rule = client_tls_rule(
        ctx,
        target.host,
        service_port.port,
        namespace,
        root_namespace(ctx, info),
        target.ref.namespace,
    )
    if rule is not None:
        evidence.append(ctx.field(rule, "spec.trafficPolicy", (rule.get("spec") or {}).get("trafficPolicy")))
    if tls == "UNSET" and auto_mtls(ctx, info):
        tls = "AUTO"
    return AgentClient(True, tls, rule, tuple(evidence))


def numbered_pod_ports(ctx: Context, target: ScrapeTarget, service_port: ServicePort) -> list[tuple[KubeObject, int]]:
    """(pod, container port number) behind the target, one pod per kind; unresolved names left out."""
    found = []
    for pod in representatives(service_pods(ctx, target.service, target.port)):
        port = port_number(pod_port(service_port, pod))
        if port is not None:
            found.append((pod, port))
    return found


def scraping_clients(
    ctx: Context,
    target: ScrapeTarget,
    service_port: ServicePort,
    info: MeshInfo,
    ambient: list[str] | None = None,
) -> Iterator[tuple[KubeObject, AgentClient]]:
    """Each agent workload that scrapes the target, with how it sends there.

    An agent in the mesh is told only with the DestinationRules in the input (NotChecked otherwise).
    An agent in ambient mode is not yielded; `ambient` collects `<agent>: <why>` for it.
    """
    for workload in scrapers(ctx, target):
        pods = workload_pods(ctx, workload)
        subject = pods[0] if pods else workload
        membership = ambient_membership(ctx, subject, injection_decision(ctx, subject, info))
        if membership.enrolled:
            if ambient is not None:
                entry = f"{ctx.ref(workload)}: {membership.reason}"
                if entry not in ambient:
                    ambient.append(entry)
            continue
        client = agent_client(ctx, workload, target, service_port, info)
        if client.in_mesh:
            _require_destination_rules(ctx)
        yield workload, client


def ambient_not_checked(ambient: list[str], what: str) -> NotChecked:
    """The `NotChecked` of a sidecar TLS rule whose only relevant agents run in ambient mode."""
    return NotChecked(
        f"the agent runs in Istio ambient mode, without a sidecar ({'; '.join(ambient)}): ztunnel, not a "
        f"sidecar, carries its scrape, so {what} cannot be read from a DestinationRule and the agent's sidecar"
    )


def with_port_settings(rule: KubeObject, ports: list[int], settings: list[dict[str, Any]]) -> KubeObject:
    """The whole DestinationRule with `settings` (put last) replacing its settings for `ports`."""
    fixed = clean_copy(rule)
    policy = fixed.setdefault("spec", {}).setdefault("trafficPolicy", {})
    replaced = {str(p) for p in ports}
    others = [
        s for s in policy.get("portLevelSettings") or [] if str((s.get("port") or {}).get("number")) not in replaced
    ]
    policy["portLevelSettings"] = [*others, *settings]
    return fixed
