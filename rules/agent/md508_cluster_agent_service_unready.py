"""MD508: the Service the agent dials for its Cluster Agent is missing or has no ready endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.cluster_agent_link import ClusterAgentLink, cluster_agent_links
from meshdoctor.datadog.install import (
    CLUSTER_AGENT_CMD_PORT,
    CLUSTER_AGENT_ENABLED_ENV,
    CLUSTER_AGENT_SERVICE_ENV,
    CLUSTER_AGENT_URL_ENV,
)
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.kube.meta import labels_of, namespace_of
from meshdoctor.kube.pod_spec import field_path, literal_env_fields
from meshdoctor.kube.service_endpoints import FROM_PODS, EndpointsStatus, ready_endpoints
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Evidence, Finding, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .cluster_agent_pods import LINK_KINDS, LINK_OPTIONAL_KINDS

#: The label the chart's and the Operator's Cluster Agent Service selects on (agent-services.yaml).
SELECTOR_LABEL = "app"


def _service_manifest(ref: ObjectRef, deployment: KubeObject) -> dict[str, Any]:
    """The Service the chart renders for the Cluster Agent, selecting this Deployment's pods."""
    labels = labels_of(pod_template(deployment) or {})
    selector = {SELECTOR_LABEL: labels[SELECTOR_LABEL]} if SELECTOR_LABEL in labels else dict(sorted(labels.items()))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ref.name, "namespace": ref.namespace},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": "agentport", "port": CLUSTER_AGENT_CMD_PORT, "protocol": "TCP"},
            ],
        },
    }


def _env_evidence(ctx: Context, link: ClusterAgentLink) -> list[Evidence]:
    """The agent's env entry that names the Service (else the one that turns the Cluster Agent on)."""
    template = pod_template(link.client) or {}
    for name in (CLUSTER_AGENT_URL_ENV, CLUSTER_AGENT_SERVICE_ENV, CLUSTER_AGENT_ENABLED_ENV):
        fields = literal_env_fields(template, name)
        if fields:
            path, value = fields[0]
            return [ctx.field(link.client, field_path(template_path(link.client), path), value)]
    return []


class ClusterAgentServiceUnready(Rule):
    """MD508."""

    id = "MD508"
    title = "The agent's Cluster Agent Service is missing or has no ready endpoint"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs(*LINK_KINDS, optional=LINK_OPTIONAL_KINDS)
    docs = RuleDocs(
        what="An agent (node agent DaemonSet or cluster check runner) with `DD_CLUSTER_AGENT_ENABLED` "
        "true whose Cluster Agent Service (`DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME`, default "
        "`datadog-cluster-agent`, or the Service `DD_CLUSTER_AGENT_URL` names) does not exist while a "
        "Cluster Agent Deployment runs in its namespace (without any Cluster Agent it is MD507's), or "
        "has no port the agent dials, or has no ready endpoint behind that port (EndpointSlices, "
        "Endpoints, else the pods its selector picks; not checked when none is in the input).",
        why="The agent dials `<NAME>_SERVICE_HOST:<NAME>_SERVICE_PORT` (or the URL) over HTTPS for "
        "its cluster metadata and for the cluster and endpoints checks the Cluster Agent dispatches "
        "to it. With nothing behind the Service, those checks stop (their metrics are lost: an "
        "error) and the cluster-level tags are missing (a warning when no check is dispatched to it).",
        fix="Find why the Cluster Agent pods are not ready (`kubectl rollout status deploy/<cluster "
        "agent>`, `kubectl describe pod`), or restore the Service (Helm: `helm upgrade` renders it "
        "again; meshdoctor writes the chart's Service, port 5005 `agentport`, selecting the Cluster "
        "Agent's pods).",
        references=(
            "https://docs.datadoghq.com/containers/cluster_agent/troubleshooting/",
            "https://github.com/DataDog/helm-charts/blob/main/charts/datadog/templates/agent-services.yaml",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per Cluster Agent Service that agents dial and that serves nothing."""
        reason = ctx.unavailable("Service")
        if reason:
            raise NotChecked(f"input missing: Service: {reason}")
        by_service: dict[ObjectRef, list[ClusterAgentLink]] = {}
        for link in cluster_agent_links(ctx):
            by_service.setdefault(link.service_ref, []).append(link)
        unknown: list[str] = []
        told = 0
        for ref, links in by_service.items():
            link = links[0]
            severity = max(one.consequence for one in links)
            clients = [ctx.ref(one.client) for one in links]
            losses = "; ".join(f"{ctx.ref(one.client)}: {one.loss_words()}" for one in links)
            if link.service is None:
                deployments = [d for one in links for d in one.use.deployments]
                if not deployments:
                    continue  # no Cluster Agent at all: MD507
                told += 1
                deployment = deployments[0]
                yield self.finding(
                    f"{', '.join(map(str, clients))} dial{'s' if len(clients) == 1 else ''} the Cluster Agent "
                    f"through {ref} ({link.how}), which does not exist, though {ctx.ref(deployment)} runs the "
                    f"Cluster Agent: {losses}.",
                    objects=[ref, *clients, ctx.ref(deployment)],
                    evidence=[e for one in links for e in _env_evidence(ctx, one)],
                    remediation=apply_manifests(
                        f"Create {ref} selecting the pods of {ctx.ref(deployment)} on port {CLUSTER_AGENT_CMD_PORT} "
                        "(the chart's Service; a Helm release renders it again at `helm upgrade`).",
                        [_service_manifest(ref, deployment)],
                        safe=False,
                    ),
                    severity=severity,
                )
                continue
            if link.service_port is None:
                told += 1
                yield self.finding(
                    f"{', '.join(map(str, clients))} dial{'s' if len(clients) == 1 else ''} the Cluster Agent at "
                    f"{link.how}, but {ref} has no such "
                    f"port: {losses}.",
                    objects=[ref, *clients],
                    evidence=[ctx.field(link.service, "spec.ports", (link.service.get("spec") or {}).get("ports"))],
                    remediation=Remediation(
                        summary=f"Point the agent at a port of {ref} (the Cluster Agent's {CLUSTER_AGENT_CMD_PORT})."
                    ),
                    severity=severity,
                )
                continue
            port = link.service_port.port
            status = ready_endpoints(ctx, link.service, port)
            if status.ready:
                told += 1
                continue
            namespace = ref.namespace
            if status.source == FROM_PODS and not any(namespace_of(p) == namespace for p in ctx.objects("Pod")):
                unknown.append(str(ref))
                continue
            told += 1
            yield self.finding(
                f"{ref} port {port}, which {', '.join(map(str, clients))} dial{'s' if len(clients) == 1 else ''} "
                "for the Cluster Agent "
                f"({link.how}), has {self._endpoint_words(status)}: {losses}.",
                objects=[ref, *clients],
                evidence=self._evidence(ctx, link.service, status),
                remediation=Remediation(
                    summary=f"Find why the pods behind {ref} are not ready (`kubectl -n {namespace} get pods`, "
                    "`kubectl describe pod`: events, failing probes, the Cluster Agent's log) and fix that; the "
                    "agents reconnect by themselves."
                ),
                severity=severity,
            )
        if unknown and not told:
            raise NotChecked(
                f"no Endpoints, EndpointSlices or Pods in the input for {', '.join(unknown)}: readiness cannot be told"
            )

    @staticmethod
    def _endpoint_words(status: EndpointsStatus) -> str:
        if status.not_ready:
            return f"{len(status.not_ready)} endpoint(s) in its {status.source}, none of them ready"
        if status.source == FROM_PODS:
            return "no ready pod behind its selector"
        return f"no address in its {status.source}"

    @staticmethod
    def _evidence(ctx: Context, service: KubeObject, status: EndpointsStatus) -> list[Evidence]:
        found: list[Evidence] = [ctx.field(service, "spec.selector", (service.get("spec") or {}).get("selector"))]
        for endpoint in status.not_ready[:5]:
            if endpoint.pod is None:
                continue
            pod = ctx.get(endpoint.pod.kind, endpoint.pod.namespace, endpoint.pod.name)
            if pod is not None:
                found.append(ctx.field(pod, "status.conditions", (pod.get("status") or {}).get("conditions")))
        return found
