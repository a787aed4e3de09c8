"""MD603: the agent's log shows the istio check failing; Mixer's log, its prometheus adapter."""

from __future__ import annotations

from typing import Any

from meshdoctor.datadog.paths import MESH_PORT_MIXER
from meshdoctor.kube.service_names import service_of_host
from meshdoctor.logs.scanner import MatchGroup
from meshdoctor.logs.workload_logs import CONTROL_PLANE_SOURCES, PREVIOUS, SIDECAR, TELEMETRY
from meshdoctor.model import ObjectRef, Remediation
from meshdoctor.rule import Context, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .log_rule import WORKLOAD_KINDS, LogRule, logs_command

#: Mixer's telemetry Service (istio/istio release-1.0 to 1.4 charts/mixer), whose port
#: `MESH_PORT_MIXER` its prometheus adapter serves.
MIXER_SERVICE = "istio-telemetry"


class IstioCheckCannotScrape(LogRule):
    """MD603."""

    id = "MD603"
    title = "The agent's log shows the istio check failing"
    families = frozenset({"telemetry", "check-config"})
    control_plane = True
    inputs = inputs(
        optional=[*WORKLOAD_KINDS, "Pod", "ReplicaSet", "Service"],
        logs=["agent", SIDECAR, TELEMETRY],
    )
    docs = RuleDocs(
        what="Agent log lines of the istio check: its endpoint refuses connections, does not "
        "resolve, times out, resets the connection, answers 5xx or 404, or its configuration "
        "names no usable endpoint or cannot be loaded. One finding per agent workload, family "
        "(telemetry or check configuration) and endpoint. Also Mixer's log (istio-telemetry, "
        "Istio < 1.5) saying its prometheus adapter did not start, its metrics server on 42422 "
        "stopped, or a scrape got only part of the istio_* metrics: one finding per Mixer "
        "Deployment and handler.",
        why="The check then sends no Istio metrics. When a telemetry or check-config rule "
        "(MD2xx, MD3xx) explains the lines on the same agent or the same Service, they are shown "
        "there; alone, they point at something the input does not show.",
        fix="For connection errors: the Service and port the line names must exist for this "
        "Istio version and have ready endpoints, and nothing (NetworkPolicy, STRICT mTLS) may "
        "stop the agent's scrape. For 404 and configuration errors: rewrite the check's "
        "conf.yaml for the mesh's version.",
        references=(
            "https://docs.datadoghq.com/integrations/istio/",
            "https://istio.io/latest/docs/ops/deployment/requirements/#ports-used-by-istio",
        ),
    )

    def bucket(self, group: MatchGroup) -> Any:
        """One finding per family and endpoint (host and port)."""
        values = group.values
        if values.get("host"):
            return (group.signature.supports, values.get("host"), values.get("port"))
        return (group.signature.id, group.key)

    def targets(self, ctx: Context, ref: ObjectRef, group: MatchGroup) -> list[ObjectRef]:
        """The Service the failing endpoint names (Mixer's own lines: istio-telemetry), if any."""
        host = group.values.get("host")
        if group.signature.source == "mixer":
            host = MIXER_SERVICE
        service = service_of_host(ctx, host, ref.namespace) if host else None
        return [service] if service is not None else []

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """What to check for the failing endpoint or configuration."""
        lead = groups[0]
        ref = ctx.ref(workload)
        if lead.signature.source in CONTROL_PLANE_SOURCES:
            return Remediation(
                summary=f"{lead.signature.title}: fix the handler the line names (or remove "
                f"it), then restart {ref} so that it serves istio_* metrics on "
                f"{MESH_PORT_MIXER} again.",
                commands=(
                    logs_command(ref.namespace, lead),
                    f"kubectl -n {ref.namespace} rollout restart {ref.kind.lower()}/{ref.name}",
                ),
            )
        host, port = lead.values.get("host"), lead.values.get("port")
        if lead.signature.supports == "telemetry" and host:
            parts = host.split(".")
            service, namespace = parts[0], (parts[1] if len(parts) > 1 else ref.namespace)
            return Remediation(
                summary=f"Check that {host}:{port} is an endpoint of this Istio version, that "
                f"Service {namespace}/{service} exposes port {port} with ready endpoints, and "
                "that no NetworkPolicy or STRICT mTLS stops the agent's scrape.",
                commands=(
                    f"kubectl -n {namespace} get service {service} -o yaml",
                    f"kubectl -n {namespace} get endpoints {service} -o yaml",
                ),
            )
        pod = lead.samples[0].pod if lead.samples else "<pod>"
        container = lead.samples[0].container.removesuffix(PREVIOUS) if lead.samples else "agent"
        return Remediation(
            summary=f"{lead.signature.title}: rewrite the istio check's conf.yaml (in the "
            f"ConfigMap mounted at conf.d/istio.d of {ref}) for the mesh's version.",
            commands=(f"kubectl -n {ref.namespace} exec {pod} -c {container} -- agent configcheck",),
        )
