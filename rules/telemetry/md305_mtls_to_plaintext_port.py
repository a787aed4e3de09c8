"""MD305: the agent's sidecar sends Istio mTLS to a scraped port that speaks plaintext."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.istio.injection import proxy_container_path, sidecar_redirects_traffic
from meshdoctor.istio.mesh import ISTIOD, MeshInfo, mesh_info, service_entry_api_version
from meshdoctor.istio.mtls import behind_capturing_sidecar
from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.object_names import dns_label
from meshdoctor.kube.representative_pods import representatives
from meshdoctor.kube.service_pods import service_pods
from meshdoctor.model import Category, Evidence, FieldEvidence, Finding, ObjectRef, Severity
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


class MtlsToPlaintextPort(Rule):
    """MD305."""

    id = "MD305"
    title = "The agent's sidecar sends Istio mTLS to a scraped port that speaks plaintext"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(*SCRAPE_KINDS, optional=[*POD_KINDS, *ENDPOINT_KINDS, *AGENT_SIDECAR_KINDS], probes=True)
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
        if info.not_read is not None:
            raise NotChecked(info.unknown_reason())  # mTLS policy lives in the control plane's namespace
        found: dict[tuple[ObjectRef, ObjectRef], list[tuple[ScrapeTarget, int, AgentClient]]] = {}
        agents: dict[ObjectRef, KubeObject] = {}
        ambient: list[str] = []
        others = False
        for target in scrape_targets(ctx):
            service_port = target.service_port
            if service_port is None:
                continue
            plaintext = [
                (pod, port)
                for pod, port in numbered_pod_ports(ctx, target, service_port)
                if behind_capturing_sidecar(ctx, pod, port, info) is False
            ]
            if not plaintext:
                continue
            for workload, client in scraping_clients(ctx, target, service_port, info, ambient):
                others = True
                if not client.in_mesh or client.tls not in ("ISTIO_MUTUAL", "MUTUAL"):
                    continue
                agents[ctx.ref(workload)] = workload
                key = (ctx.ref(workload), target.ref)
                found.setdefault(key, []).append((target, plaintext[0][1], client))
        if ambient and not others:
            raise ambient_not_checked(ambient, "whether it sends Istio mTLS to the plaintext port")
        for (agent_ref, _), cases in sorted(found.items()):
            yield self._finding(ctx, agents[agent_ref], cases, info)

    def _finding(
        self,
        ctx: Context,
        workload: KubeObject,
        cases: list[tuple[ScrapeTarget, int, AgentClient]],
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
        pods = representatives(service_pods(ctx, target.service, target.port))
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
            evidence += scrape_evidence(ctx, one_target)
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
            return with_port_settings(rule, ports, settings)
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
                "name": dns_label(f"{target.ref.name}-{'-'.join(map(str, ports))}-plaintext"),
                "namespace": namespace,
            },
            "spec": spec,
        }
