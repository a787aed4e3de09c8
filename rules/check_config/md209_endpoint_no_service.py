"""MD209: an istio check endpoint names a Service that does not exist."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.endpoint_eras import era_problem, mesh_and_mixer_telemetry
from meshdoctor.datadog.istio_check import configured_endpoints
from meshdoctor.kube.meta import name_of
from meshdoctor.model import Category, Finding, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs

from .endpoint_findings import endpoint_evidence, endpoint_remediation
from .references import AD_KINDS, DOCS_CHECK


class IstioCheckEndpointNoService(Rule):
    """MD209."""

    id = "MD209"
    title = "An istio check endpoint names a Service that does not exist"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", "Service", optional=AD_KINDS)
    docs = RuleDocs(
        what="An endpoint of an istio check instance in effect (`istio_mesh_endpoint`, "
        "`mixer_endpoint`, "
        "`istiod_endpoint`...) whose host is a Service name "
        "(`name.namespace[.svc[.cluster.local]]`) "
        "with no such Service in the snapshot: a typo, the wrong namespace (`istio-system` when "
        "the "
        "control plane runs elsewhere). An endpoint of the wrong mesh era is MD210 instead; a "
        "Service "
        "that exists but lacks the port, has no ready endpoint, or is walled off by NetworkPolicy "
        "or "
        "mTLS is the telemetry family's (MD3xx).",
        why="The name does not resolve: every check run fails with a connection error, the "
        "`istio.*.can_connect`/prometheus health service check is critical, and no metric arrives.",
        fix="Correct the host (the Service's name and namespace) in the check's configuration.",
        references=(
            DOCS_CHECK,
            "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info, telemetry = mesh_and_mixer_telemetry(ctx)
        services = ctx.objects("Service")
        unread: list[str] = []
        found = False
        for endpoint in configured_endpoints(ctx):
            if endpoint.service is None or endpoint.namespace is None:
                continue
            if ctx.get("Service", endpoint.namespace, endpoint.service) is not None:
                continue
            why = ctx.not_read("Service", endpoint.namespace)
            if why is not None:
                unread.append(f"{endpoint.key} {endpoint.url}: Service {endpoint.namespace}/{endpoint.service}: {why}")
                continue  # not read is not absent
            if era_problem(endpoint, info, telemetry) is not None:
                continue  # MD210 says why
            same_name = sorted(ctx.ref(s).namespace for s in services if name_of(s) == endpoint.service)
            right = None
            if len(same_name) == 1:
                right = endpoint.url.replace(
                    endpoint.host,
                    endpoint.host.replace(
                        f"{endpoint.service}.{endpoint.namespace}",
                        f"{endpoint.service}.{same_name[0]}",
                        1,
                    ),
                    1,
                )
            found = True
            hint = f" (a Service {endpoint.service} exists in {', '.join(same_name)})" if same_name else ""
            yield self.finding(
                f"{endpoint.key} {endpoint.url} in {endpoint.config_source} names Service "
                f"{endpoint.namespace}/{endpoint.service}, which does not exist{hint}.",
                objects=[
                    endpoint.config_source,
                    *([endpoint.agent_ref] if endpoint.agent_ref else []),
                ],
                evidence=endpoint_evidence(ctx, endpoint),
                remediation=endpoint_remediation(
                    ctx, endpoint, {endpoint.url: right} if right else {}, info, telemetry
                ),
            )
        if unread and not found:
            raise NotChecked("; ".join(sorted(set(unread))))
