"""MD509: a NetworkPolicy drops the agent's connection to its Cluster Agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.cluster_agent_link import ClusterAgentLink, cluster_agent_links
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.kube.egress_policy import egress_policy_manifest
from meshdoctor.kube.network_policy import EGRESS, INGRESS, admitting_policy_manifest, pod_like, traffic_allowed
from meshdoctor.kube.representative_pods import representatives, workload_pods
from meshdoctor.model import Category, Evidence, FieldEvidence, Finding, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs

from .cluster_agent_pods import LINK_KINDS, LINK_OPTIONAL_KINDS, POD_KINDS, cluster_agent_pods


class ClusterAgentNetworkPolicy(Rule):
    """MD509."""

    id = "MD509"
    title = "A NetworkPolicy drops the agent's connection to its Cluster Agent"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs(*LINK_KINDS, optional=[*LINK_OPTIONAL_KINDS, *POD_KINDS, "NetworkPolicy", "Namespace"])
    docs = RuleDocs(
        what="An agent (node agent DaemonSet or cluster check runner) using the Cluster Agent, where a "
        "NetworkPolicy isolates the Cluster Agent's pods for ingress (or the agent's pods for egress) "
        "and none of the policies that select them lets the agent's pods reach the container port "
        "behind the Cluster Agent Service (5005 by default). Selection follows Kubernetes: "
        "`podSelector` and `namespaceSelector` (namespace labels, `kubernetes.io/metadata.name`), "
        "named and numbered ports, `endPort`, every policy that selects a pod adding what it allows.",
        why="The agent's HTTPS connection to the Cluster Agent times out: the cluster and endpoints "
        "checks it dispatches to the agent stop (their metrics are lost: an error), and the "
        "cluster-level tags are missing (a warning when no check is dispatched to the agent).",
        fix="Apply the NetworkPolicy meshdoctor writes: in the Cluster Agent's namespace, admitting the "
        "agent's pods (by their labels and namespace) to that port; for an agent isolated for "
        "egress, one in its namespace letting it send there. Existing policies are left as they are: "
        "policies add up.",
        references=("https://kubernetes.io/docs/concepts/services-networking/network-policies/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload whose pods a policy keeps from the Cluster Agent."""
        judged = [(link, pods) for link in cluster_agent_links(ctx) if (pods := cluster_agent_pods(ctx, link))]
        reason = ctx.unavailable("NetworkPolicy")
        if judged and reason:
            raise NotChecked(f"input missing: NetworkPolicy: {reason}")
        for link, targets in judged:
            sources = representatives(workload_pods(ctx, link.client))
            denied = []
            for target, port in targets:
                for source in sources:
                    verdict = traffic_allowed(ctx, target, source, port)
                    for direction, one in ((EGRESS, verdict.egress), (INGRESS, verdict.ingress)):
                        if not one.allowed:
                            denied.append((target, source, port, direction, one))
            if denied:
                yield self._finding(ctx, link, denied)

    def _finding(self, ctx: Context, link: ClusterAgentLink, denied: list[Any]) -> Finding:
        client = ctx.ref(link.client)
        target, source, port, _direction, _verdict = denied[0]
        evidence: list[Evidence] = []
        objects = [client, link.service_ref]
        manifests: list[dict[str, Any]] = []
        seen: set[str] = set()
        selectable = pod_like(link.client) or source
        for target_pod, _source_pod, pod_port, direction, verdict in denied:
            for ref in verdict.policies:
                if ref not in objects:
                    objects.append(ref)
                policy = ctx.get(ref.kind, ref.namespace, ref.name)
                if policy is not None and str(ref) not in seen:
                    seen.add(str(ref))
                    evidence.append(
                        ctx.field(policy, "spec.policyTypes", (policy.get("spec") or {}).get("policyTypes"))
                    )
            evidence.append(FieldEvidence(client, f"(network policy, {direction.lower()})", verdict.reason))
            manifest = (
                admitting_policy_manifest(target_pod, selectable, pod_port)
                if direction == INGRESS
                else egress_policy_manifest(target_pod, selectable, pod_port)
            )
            if manifest not in manifests:
                manifests.append(manifest)
        reasons = " ".join(dict.fromkeys(v.reason for *_, v in denied))
        return self.finding(
            f"{client} dials the Cluster Agent through {link.service_ref} ({link.how}), pod port {port}, but "
            f"a NetworkPolicy drops it: {reasons} So {link.loss_words()}.",
            objects=objects,
            evidence=evidence,
            remediation=apply_manifests(
                f"Let the pods of {client} reach the Cluster Agent's pod port {port}: "
                + " and ".join(f"NetworkPolicy {m['metadata']['namespace']}/{m['metadata']['name']}" for m in manifests)
                + " (policies add up; the existing ones stay as they are).",
                manifests,
                safe=True,
            ),
            severity=link.consequence,
        )
