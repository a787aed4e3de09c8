"""MD103: under REGISTRY_ONLY the agent's sidecar drops its calls to the kubelet."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from meshdoctor.datadog.agent import agent_container, env_value
from meshdoctor.datadog.intake_egress import AgentEgress
from meshdoctor.datadog.kubelet import KUBELET_PORT, KUBELET_PORT_ENV
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.egress import (
    EXCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_PORTS,
    cluster_ip_capture,
)
from meshdoctor.istio.injection import injector_configmap
from meshdoctor.istio.mesh import REGISTRY_ONLY, MeshInfo
from meshdoctor.istio.versions import EXCLUDE_OUTBOUND_PORTS_SINCE
from meshdoctor.kube.nodes import internal_addresses
from meshdoctor.kube.workloads import pod_template, pods_of
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .md101_intake_blocked import injection_evidence, policy_evidence, without_sidecar
from .meshed_agents import INTAKE_KINDS, INTAKE_OPTIONAL_KINDS, meshed_agents


def _kubelet_port(ctx: Context, state: AgentEgress) -> int:
    template = pod_template(state.workload) or {}
    value = env_value(ctx, template, agent_container(template), KUBELET_PORT_ENV, state.namespace or None)
    return int(value) if value and value.strip().isdigit() else KUBELET_PORT


def _kubelet_addresses(ctx: Context, state: AgentEgress, nodes: Sequence[str]) -> list[str]:
    """Where the agent's pods reach their kubelet: every Node's InternalIP, and the pods' `status.hostIP`."""
    host_ips = {str((pod.get("status") or {}).get("hostIP") or "") for pod in pods_of(ctx, state.workload)}
    return sorted(set(nodes) | (host_ips - {""}))


def _in_registry(ctx: Context, port: int, nodes: Sequence[str]) -> str | None:
    """What puts the node addresses on `port` in the mesh's registry, if anything does.

    A headless Service with that port (its endpoints are the nodes, as the prometheus-operator's
    `kubelet` Service is: pilot builds a listener per endpoint of a headless TCP Service), or a
    ServiceEntry with that port whose `addresses` hold every node address.
    """
    for service in ctx.objects("Service"):
        spec = service.get("spec") or {}
        ports = {p.get("port") for p in spec.get("ports") or [] if isinstance(p, dict)}
        if spec.get("clusterIP") == "None" and port in ports:
            return f"headless Service {ctx.ref(service)} with port {port}"
    for entry in ctx.objects("ServiceEntry"):
        spec = entry.get("spec") or {}
        ports = {p.get("number") for p in spec.get("ports") or [] if isinstance(p, dict)}
        nets = []
        for address in spec.get("addresses") or []:
            try:
                nets.append(ipaddress.ip_network(str(address), strict=False))
            except ValueError:
                continue
        if port in ports and nets and nodes and all(any(ipaddress.ip_address(n) in net for net in nets) for n in nodes):
            return f"{ctx.ref(entry)} with port {port} and the node addresses"
    return None


class KubeletEgressBlocked(Rule):
    """MD103."""

    id = "MD103"
    title = "The mesh blocks the agent's calls to the kubelet"
    category = Category.EGRESS
    severity = Severity.ERROR
    inputs = inputs(*INTAKE_KINDS, optional=[*INTAKE_OPTIONAL_KINDS, "Node", "Service"], logs=["agent"])
    explains_logs = False  # its fault shows as kubelet errors, not as the intake lines MD601 reads
    docs = RuleDocs(
        what="An agent DaemonSet whose pods run a sidecar that captures their connections to the "
        "node's IP on the kubelet port (10250, `DD_KUBERNETES_HTTPS_KUBELET_PORT`), in a mesh or "
        "Sidecar with `REGISTRY_ONLY` (or Istio 1.0), where neither a headless Service nor a "
        "ServiceEntry puts the node addresses on that port in the registry.",
        why="The agent reaches the kubelet at `status.hostIP:10250` for the pod list, the tags and "
        "the kubelet check. A node IP is no Service: the sidecar sends the connection to the "
        "BlackHoleCluster, so container metrics and pod tags are lost and the agent logs kubelet "
        "connection errors.",
        fix="Let the kubelet traffic bypass the sidecar: the pod annotation "
        '`traffic.sidecar.istio.io/excludeOutboundPorts: "10250"` (Istio 1.2+; no 1.0 or 1.1 '
        "injection template passes `-o`), or `excludeOutboundIPRanges` with the nodes' addresses, or "
        "take the agent out of the mesh.",
        references=(
            "https://istio.io/latest/docs/reference/config/annotations/",
            "https://docs.datadoghq.com/containers/kubernetes/installation/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        known_nodes = internal_addresses(ctx)
        for state, info in meshed_agents(ctx):
            if state.policy != REGISTRY_ONLY or state.workload.get("kind") != "DaemonSet":
                continue
            nodes = _kubelet_addresses(ctx, state, known_nodes)
            port = _kubelet_port(ctx, state)
            capture = cluster_ip_capture(state.subject, injector_configmap(ctx, info), port, nodes, info.minor)
            if capture.captured is False or _in_registry(ctx, port, nodes):
                continue
            ref = ctx.ref(state.workload)
            certain = capture.captured is True
            yield self.finding(
                f"{ref} runs in the mesh with REGISTRY_ONLY and its sidecar captures the kubelet port "
                f"{port} ({capture.reason}); the node addresses are in no Service or ServiceEntry, so "
                + (
                    "the agent's calls to the kubelet go to the BlackHoleCluster: pod tags and container "
                    "metrics are lost."
                    if certain
                    else "the agent's calls to the kubelet may go to the BlackHoleCluster."
                ),
                objects=[ref],
                evidence=[*injection_evidence(ctx, state), *policy_evidence(ctx, state, info)],
                remediation=self._remediation(ctx, state, info, port, nodes),
                severity=Severity.ERROR if certain else Severity.WARNING,
            )

    @staticmethod
    def _remediation(ctx: Context, state: AgentEgress, info: MeshInfo, port: int, nodes: Sequence[str]) -> Remediation:
        fixed = clean_copy(state.workload)
        template = pod_template(fixed) or {}
        annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
        ref = ctx.ref(state.workload)
        if info.minor is None or info.minor >= EXCLUDE_OUTBOUND_PORTS_SINCE:
            listed = [p for p in str(annotations.get(EXCLUDE_OUTBOUND_PORTS, "")).split(",") if p.strip()]
            annotations[EXCLUDE_OUTBOUND_PORTS] = ",".join([*listed, str(port)])
            how = f"{EXCLUDE_OUTBOUND_PORTS}: {annotations[EXCLUDE_OUTBOUND_PORTS]!r}"
        elif nodes:
            listed = [r for r in str(annotations.get(EXCLUDE_OUTBOUND_IP_RANGES, "")).split(",") if r.strip()]
            annotations[EXCLUDE_OUTBOUND_IP_RANGES] = ",".join([*listed, *(f"{n}/32" for n in nodes)])
            how = (
                f"{EXCLUDE_OUTBOUND_IP_RANGES} with the nodes' addresses (before 1.2 there is no excludeOutboundPorts)"
            )
        else:
            return apply_manifests(
                f"Istio {info.version} has no excludeOutboundPorts and the node addresses are not in the input: "
                f"take {ref} out of the mesh, or add the nodes' CIDR to {EXCLUDE_OUTBOUND_IP_RANGES}.",
                [without_sidecar(state.workload, info)],
                safe=False,
            )
        return apply_manifests(
            f"{ref} with {how} on its pod template: the kubelet traffic bypasses the sidecar; the pods restart.",
            [fixed],
            alternative_objects=[without_sidecar(state.workload, info)],
            safe=False,
        )
