"""MD304: strict mTLS on the scraped port refuses the agent's plaintext scrape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.injection import proxy_container_path
from meshdoctor.istio.mesh import ISTIOD, MIXER, MeshInfo, mesh_info, root_namespace, service_entry_api_version
from meshdoctor.istio.mtls import MtlsMode, behind_capturing_sidecar, effective_mtls
from meshdoctor.istio.outbound_tls import port_level_setting
from meshdoctor.istio.peer_authentication import (
    PEER_AUTHENTICATION_API,
    POLICY_API,
    mode_object,
    workload_peer_authentication,
)
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.network_policy import stable_labels
from meshdoctor.kube.object_names import dns_label
from meshdoctor.kube.service_pods import service_selector
from meshdoctor.model import Category, Evidence, FieldEvidence, Finding, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .scrape_targets import ENDPOINT_KINDS, POD_KINDS, SCRAPE_KINDS, ScrapeTarget, scrape_evidence, scrape_targets
from .scraping_clients import (
    AGENT_SIDECAR_KINDS,
    AgentClient,
    ambient_not_checked,
    numbered_pod_ports,
    scraping_clients,
    with_port_settings,
)


class MtlsBlocksScrape(Rule):
    """MD304."""

    id = "MD304"
    title = "Strict mTLS on the scraped port refuses the agent's plaintext scrape"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(
        *SCRAPE_KINDS,
        optional=[*POD_KINDS, *ENDPOINT_KINDS, *AGENT_SIDECAR_KINDS, "PeerAuthentication", "Policy", "MeshPolicy"],
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
        if info.not_read is not None:
            raise NotChecked(info.unknown_reason())  # mTLS policy lives in the control plane's namespace
        needed = {ISTIOD: ("PeerAuthentication",), MIXER: ("Policy", "MeshPolicy")}.get(info.era, ())
        missing = [f"{kind}: {ctx.unavailable(kind)}" for kind in needed if ctx.unavailable(kind)]
        if missing:
            raise NotChecked("input missing: " + "; ".join(missing))
        ambient: list[str] = []
        others = False
        for target in scrape_targets(ctx):
            service_port = target.service_port
            if service_port is None:
                continue
            strict = []
            for pod, port in numbered_pod_ports(ctx, target, service_port):
                mode = effective_mtls(ctx, pod, port, info)
                if mode.mode != "STRICT":
                    continue
                if behind_capturing_sidecar(ctx, pod, port, info) is not True:
                    continue
                strict.append((pod, port, mode))
            if not strict:
                continue
            for workload, client in scraping_clients(ctx, target, service_port, info, ambient):
                others = True
                if client.in_mesh and client.tls in ("ISTIO_MUTUAL", "AUTO"):
                    continue
                yield self._finding(ctx, target, workload, strict, client, info)
        if ambient and not others:
            raise ambient_not_checked(ambient, "whether the scrape reaches the STRICT port with mTLS")

    def _finding(
        self,
        ctx: Context,
        target: ScrapeTarget,
        workload: KubeObject,
        strict: list[tuple[KubeObject, int, MtlsMode]],
        client: AgentClient,
        info: MeshInfo,
    ) -> Finding:
        agent_ref = ctx.ref(workload)
        pod, port, mode = strict[0]
        mode_ref = mode_object(mode)
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
        evidence += scrape_evidence(ctx, target)
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
        client: AgentClient,
        workload: KubeObject,
        info: MeshInfo,
    ) -> Remediation:
        root = root_namespace(ctx, info)
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
        mode_ref = mode_object(mode)
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
                    "name": dns_label(f"{target.ref.name}-{target.port}-permissive"),
                    "namespace": namespace,
                },
                "spec": {
                    "targets": [{"name": target.ref.name, "ports": [{"number": target.port}]}],
                    "peers": [{"mtls": {"mode": "PERMISSIVE"}}],
                },
            }
        selector = service_selector(target.service) or stable_labels(pod)
        existing = workload_peer_authentication(ctx, pod, root_namespace(ctx, info))
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
                "name": dns_label(f"{target.ref.name}-{port}-permissive"),
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
        ctx: Context, target: ScrapeTarget, client: AgentClient, workload: KubeObject, info: MeshInfo
    ) -> dict[str, Any]:
        setting = {"port": {"number": target.port}, "tls": {"mode": "ISTIO_MUTUAL"}}
        if client.rule is not None:
            kept = port_level_setting(client.rule, target.port)
            if kept is not None:
                setting = {**kept, "tls": {"mode": "ISTIO_MUTUAL"}}
            return with_port_settings(client.rule, [target.port], [setting])
        return {
            "apiVersion": service_entry_api_version(info),
            "kind": "DestinationRule",
            "metadata": {
                "name": dns_label(f"{target.ref.name}-{target.port}-istio-mutual"),
                "namespace": namespace_of(workload),
            },
            "spec": {
                "host": target.host,
                "exportTo": ["."],
                "trafficPolicy": {"portLevelSettings": [setting]},
            },
        }
