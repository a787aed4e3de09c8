"""MD510: strict mTLS on the Cluster Agent refuses the agent's connection from outside the mesh."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.cluster_agent_link import ClusterAgentLink, cluster_agent_links
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.ambient import ambient_membership
from meshdoctor.istio.injection import injection_decision, sidecar_redirects_traffic
from meshdoctor.istio.mesh import ISTIOD, MIXER, MeshInfo, mesh_info, root_namespace
from meshdoctor.istio.mtls import CLUSTER_DOMAIN, MtlsMode, behind_capturing_sidecar, client_tls_rule, effective_mtls
from meshdoctor.istio.outbound_tls import auto_mtls, outbound_port_excluded
from meshdoctor.istio.peer_authentication import PEER_AUTHENTICATION_API, mode_object, workload_peer_authentication
from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.network_policy import stable_labels
from meshdoctor.kube.object_names import dns_label
from meshdoctor.kube.representative_pods import workload_pods
from meshdoctor.kube.service_pods import service_selector
from meshdoctor.model import Category, Evidence, FieldEvidence, Finding, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .cluster_agent_pods import LINK_KINDS, LINK_OPTIONAL_KINDS, POD_KINDS, cluster_agent_pods

#: Read when present: the injection switches and the client sidecar's TLS (DestinationRule).
SIDECAR_KINDS = ("Namespace", "MutatingWebhookConfiguration", "DestinationRule", "PeerAuthentication")


class ClusterAgentStrictMtls(Rule):
    """MD510."""

    id = "MD510"
    title = "Strict mTLS on the Cluster Agent refuses the agent's connection"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs(*LINK_KINDS, optional=[*LINK_OPTIONAL_KINDS, *POD_KINDS, *SIDECAR_KINDS, "Policy", "MeshPolicy"])
    docs = RuleDocs(
        what="An agent (node agent DaemonSet or cluster check runner) using the Cluster Agent, whose "
        "Cluster Agent pods run an injected sidecar that captures the container port behind the "
        "Cluster Agent Service (5005 by default) and enforces STRICT mTLS there (PeerAuthentication "
        "from 1.5, mesh-wide, namespace or workload, `portLevelMtls` included; "
        "`authentication.istio.io` Policy/MeshPolicy before), while the agent does not send Istio "
        "mTLS: it has no sidecar (often opted out, with `hostNetwork`), its port is excluded from "
        "capture, or its sidecar's DestinationRule for the Service sets another TLS mode (or none, "
        "without auto mTLS). An agent in ambient mode is left out.",
        why="The agent's own HTTPS to the Cluster Agent is not Istio mTLS: the sidecar in front of the "
        "Cluster Agent resets it. The cluster and endpoints checks the Cluster Agent dispatches to "
        "the agent stop (their metrics are lost: an error) and the cluster-level tags are missing (a "
        "warning when no check is dispatched to the agent).",
        fix="Let that one port accept the agent's connection: a PeerAuthentication selecting the "
        "Cluster Agent's pods with `portLevelMtls` PERMISSIVE for the port (meshdoctor corrects the "
        "workload PeerAuthentication that applies, since only the oldest one counts); or put the "
        "agent in the mesh (it then needs a ServiceEntry for the intake, MD101).",
        references=(
            "https://istio.io/latest/docs/reference/config/security/peer_authentication/",
            "https://docs.datadoghq.com/containers/cluster_agent/troubleshooting/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload whose connection to the Cluster Agent strict mTLS refuses."""
        judged = [(link, pods) for link in cluster_agent_links(ctx) if (pods := cluster_agent_pods(ctx, link))]
        if not judged:
            return
        info = mesh_info(ctx)
        if info.not_read is not None:
            raise NotChecked(info.unknown_reason())
        needed = {ISTIOD: ("PeerAuthentication",), MIXER: ("Policy", "MeshPolicy")}.get(info.era, ())
        missing = [f"{kind}: {ctx.unavailable(kind)}" for kind in needed if ctx.unavailable(kind)]
        if missing:
            raise NotChecked("input missing: " + "; ".join(missing))
        for link, pods in judged:
            strict: list[tuple[KubeObject, int, MtlsMode]] = []
            for pod, port in pods:
                mode = effective_mtls(ctx, pod, port, info)
                if mode.mode == "STRICT" and behind_capturing_sidecar(ctx, pod, port, info) is True:
                    strict.append((pod, port, mode))
            if not strict:
                continue
            sends = self._client_sends(ctx, link, info)
            if sends is None:
                continue
            yield self._finding(ctx, link, strict, sends, info)

    @staticmethod
    def _client_sends(ctx: Context, link: ClusterAgentLink, info: MeshInfo) -> tuple[str, list[Evidence]] | None:
        """What the agent's pods send to the Service, in words, when it is not Istio mTLS; else None."""
        pods = workload_pods(ctx, link.client)
        subject = pods[0] if pods else link.client
        decision = injection_decision(ctx, subject, info)
        if ambient_membership(ctx, subject, decision).enrolled:
            return None
        client = ctx.ref(link.client)
        evidence: list[Evidence] = [FieldEvidence(client, "(injection)", decision.reason)]
        if decision.injected is not True or sidecar_redirects_traffic(subject) is False:
            return "it has no sidecar and speaks its own HTTPS, not Istio mTLS", evidence
        assert link.service_port is not None  # a link with Cluster Agent pods has a Service port
        port = link.service_port.port
        bypass = outbound_port_excluded(subject, port)
        if bypass is not None:
            evidence.append(ctx.field(subject, bypass, str(port)))
            return f"its sidecar does not capture port {port} ({bypass})", evidence
        service = link.service_ref
        host = f"{service.name}.{service.namespace}.svc.{CLUSTER_DOMAIN}"
        tls, rule = client_tls_rule(
            ctx, host, port, namespace_of(link.client), root_namespace(ctx, info), service.namespace
        )
        if tls == "ISTIO_MUTUAL" or (tls == "UNSET" and auto_mtls(ctx, info)):
            return None
        if rule is not None:
            evidence.append(ctx.field(rule, "spec.trafficPolicy", (rule.get("spec") or {}).get("trafficPolicy")))
            return f"its sidecar sends {tls} to {host} (DestinationRule {namespace_of(rule)})", evidence
        return "its sidecar sends plaintext (no DestinationRule sets TLS and auto mTLS is off)", evidence

    def _finding(
        self,
        ctx: Context,
        link: ClusterAgentLink,
        strict: list[tuple[KubeObject, int, MtlsMode]],
        sends: tuple[str, list[Evidence]],
        info: MeshInfo,
    ) -> Finding:
        pod, port, mode = strict[0]
        client = ctx.ref(link.client)
        mode_ref = mode_object(mode)
        evidence: list[Evidence] = []
        if mode_ref is not None:
            policy = ctx.get(mode_ref.kind, mode_ref.namespace, mode_ref.name)
            if policy is not None:
                key = "mtls" if mode_ref.kind == "PeerAuthentication" else "peers"
                evidence.append(ctx.field(policy, f"spec.{key}", (policy.get("spec") or {}).get(key)))
        evidence.extend(sends[1])
        objects = [r for r in (client, link.service_ref, mode_ref) if r is not None]
        return self.finding(
            f"{client} dials the Cluster Agent through {link.service_ref} ({link.how}); the Cluster Agent's "
            f"sidecar requires mTLS on pod port {port} (STRICT from {mode.source}), but {sends[0]}: the "
            f"sidecar resets the connection, so {link.loss_words()}.",
            objects=objects,
            evidence=evidence,
            remediation=self._remediation(ctx, link, pod, port, mode, info),
            severity=link.consequence,
        )

    @staticmethod
    def _remediation(
        ctx: Context, link: ClusterAgentLink, pod: KubeObject, port: int, mode: MtlsMode, info: MeshInfo
    ) -> Remediation:
        service = link.service_ref
        if info.era != ISTIOD:
            return Remediation(
                summary=f"Let {service} port {link.service_port.port if link.service_port else port} accept "
                "plaintext with an authentication.istio.io/v1alpha1 Policy targeting it "
                "(`peers: [{mtls: {mode: PERMISSIVE}}]`), or put the agent in the mesh.",
                safe=False,
            )
        root = root_namespace(ctx, info)
        if service.namespace == root:
            return Remediation(
                summary=f"{service} is in the mesh's root namespace {root}, where Istio ignores "
                "PeerAuthentications with a selector: move the Cluster Agent out of it, or put the agent "
                "in the mesh.",
                safe=False,
            )
        existing = workload_peer_authentication(ctx, pod, root)
        manifest: dict[str, Any]
        if existing is not None:
            manifest = clean_copy(existing)
            levels = manifest.setdefault("spec", {}).setdefault("portLevelMtls", {})
            levels[port] = {"mode": "PERMISSIVE"}
            what = f"PeerAuthentication {service.namespace}/{manifest['metadata']['name']} (the one that applies)"
        else:
            selector = service_selector(link.service or {}) or stable_labels(pod)
            manifest = {
                "apiVersion": PEER_AUTHENTICATION_API,
                "kind": "PeerAuthentication",
                "metadata": {"name": dns_label(f"{service.name}-{port}-permissive"), "namespace": service.namespace},
                "spec": {
                    "selector": {"matchLabels": selector},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {port: {"mode": "PERMISSIVE"}},
                },
            }
            what = f"a PeerAuthentication {service.namespace}/{manifest['metadata']['name']}"
        return apply_manifests(
            f"Let pod port {port} of the Cluster Agent accept the agent's connection (PERMISSIVE) with {what}, "
            "leaving every other port STRICT.",
            [manifest],
            safe=False,
            alternatives=(
                f"Or put {ctx.ref(link.client)} in the mesh: its sidecar then sends Istio mTLS to the Cluster "
                "Agent (it needs a ServiceEntry for the Datadog intake, see MD101).",
            ),
        )
