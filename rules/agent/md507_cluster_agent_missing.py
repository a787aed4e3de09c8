"""MD507: the node agent is told to use a Cluster Agent that is not there."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.datadog.install import CLUSTER_AGENT_ENABLED_ENV, cluster_agent_use
from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.pod_spec import field_path, literal_env_fields
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs


class ClusterAgentMissing(Rule):
    """MD507."""

    id = "MD507"
    title = "The agent uses a Cluster Agent that does not exist"
    category = Category.AGENT
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Service", optional=["Deployment", "ConfigMap"])
    docs = RuleDocs(
        what="A node agent DaemonSet with `DD_CLUSTER_AGENT_ENABLED` true (the Helm chart's and the "
        "Operator's default) and no `DD_CLUSTER_AGENT_URL`, whose namespace holds neither the Service "
        "it resolves (`DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME`, default `datadog-cluster-agent`) "
        "nor a Cluster Agent Deployment.",
        why="The agent finds the Cluster Agent through that Service's `<NAME>_SERVICE_HOST` env "
        "(datadog-agent pkg/util/clusteragent `GetClusterAgentEndpoint`) and gets its cluster "
        "metadata from it; with `cluster_agent.tagging_fallback` false by default it does not fall "
        "back to the API server. Metrics still flow, without `kube_service` and cluster-level tags, "
        "and cluster checks are not dispatched: a warning.",
        fix="Deploy the Cluster Agent (Helm `clusterAgent.enabled=true`, the Operator's default), point "
        "`DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME` at its Service, or set `DD_CLUSTER_AGENT_ENABLED` "
        "false and grant the node agent the metadata permissions (MD405 then asks for them).",
        references=("https://docs.datadoghq.com/containers/cluster_agent/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        reason = ctx.unavailable("Service")
        if reason:
            raise NotChecked(f"input missing: Service: {reason}")
        for workload in agent_workloads(ctx, kinds=("DaemonSet",)):
            use = cluster_agent_use(ctx, workload)
            if not use.enabled or use.url or use.service is not None or use.deployments:
                continue
            namespace = namespace_of(workload)
            ref = ctx.ref(workload)
            template = pod_template(workload) or {}
            evidence = [
                ctx.field(workload, field_path(template_path(workload), path), literal)
                for path, literal in literal_env_fields(template, CLUSTER_AGENT_ENABLED_ENV)
            ][:1]
            yield self.finding(
                f"{ref} has {CLUSTER_AGENT_ENABLED_ENV}=true, but namespace {namespace} has no Service "
                f"{use.service_name} and no Cluster Agent Deployment: the agent gets no cluster metadata "
                "(kube_service and cluster-level tags) and runs no cluster checks.",
                objects=[ref, ObjectRef("Service", namespace, use.service_name)],
                evidence=evidence,
                remediation=Remediation(
                    summary=f"Deploy the Cluster Agent with its Service {use.service_name} in {namespace} "
                    "(Helm: clusterAgent.enabled=true), or set DD_CLUSTER_AGENT_ENABLED=false on the agent "
                    "and grant it the metadata permissions."
                ),
            )
