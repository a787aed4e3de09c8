"""MD303: a NetworkPolicy drops the istio check's scrape."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.kube.egress_policy import egress_policy_manifest
from meshdoctor.kube.network_policy import (
    EGRESS,
    INGRESS,
    Verdict,
    admitting_policy_manifest,
    pod_like,
    policy_types,
    traffic_allowed,
)
from meshdoctor.kube.representative_pods import representatives, workload_pods
from meshdoctor.kube.service_endpoints import ServicePort
from meshdoctor.kube.service_pods import pod_port, service_pods, service_selector
from meshdoctor.model import Category, Evidence, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .scrape_targets import (
    ENDPOINT_KINDS,
    POD_KINDS,
    SCRAPE_KINDS,
    ScrapeTarget,
    scrape_evidence,
    scrape_targets,
    scrapers,
)


class NetworkPolicyBlocksScrape(Rule):
    """MD303."""

    id = "MD303"
    title = "A NetworkPolicy drops the istio check's scrape"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(
        *SCRAPE_KINDS,
        "NetworkPolicy",
        optional=["Namespace", *POD_KINDS, *ENDPOINT_KINDS],
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
            targets = representatives(service_pods(ctx, target.service, target.port))
            if not targets:
                continue
            for workload in scrapers(ctx, target):
                denied = self._denied(ctx, service_port, targets, representatives(workload_pods(ctx, workload)))
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
            port = pod_port(service_port, target_pod)
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
        selector = service_selector(target.service)
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
        evidence += scrape_evidence(ctx, target)
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
