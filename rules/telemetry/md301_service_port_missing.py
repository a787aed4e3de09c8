"""MD301: the Service the istio check scrapes has no such port."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.mesh import ISTIOD, MIXER, MeshInfo, mesh_info
from meshdoctor.istio.telemetry_ports import telemetry_fact
from meshdoctor.kube.service_pods import declares_port, service_pods
from meshdoctor.model import Category, Evidence, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .scrape_targets import (
    POD_KINDS,
    SCRAPE_KINDS,
    ScrapeTarget,
    config_refs,
    scrape_evidence,
    scrape_targets,
    where_configured,
)


def _wrong_era(target: ScrapeTarget, info: MeshInfo) -> bool:
    """Whether the check-config family owns this endpoint: another era's key or port."""
    if info.era not in (MIXER, ISTIOD):
        return False
    if any(e.era_hint in (MIXER, ISTIOD) and e.era_hint != info.era for e in target.endpoints):
        return True
    component, fact = telemetry_fact(target.ref.name, target.port, info)
    return component is not None and fact is None and info.minor is not None


class ServicePortMissing(Rule):
    """MD301."""

    id = "MD301"
    title = "The Service the istio check scrapes has no such port"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(*SCRAPE_KINDS, optional=POD_KINDS, probes=True)
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
            evidence += scrape_evidence(ctx, target)
            yield self.finding(
                f"{target.ref} has no port {target.port} (it has {', '.join(ports) or 'none'}), "
                f"but the istio check scrapes {target.urls()} ({where_configured(target)}): the scrape "
                "cannot connect.",
                objects=[target.ref, *config_refs(target)],
                evidence=evidence,
                remediation=self._remediation(ctx, target, info),
            )

    def _remediation(self, ctx: Context, target: ScrapeTarget, info: MeshInfo) -> Remediation:
        service = target.service
        _, fact = telemetry_fact(target.ref.name, target.port, info)
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
            declared = declares_port(service_pods(ctx, target.service, target.port), target.port)
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
