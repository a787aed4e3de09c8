"""How an agent reaches its Cluster Agent: the Service it dials, the port, the pods behind it.

Facts, each read in the source:

- DataDog/datadog-agent `pkg/util/clusteragent/clusteragent.go` `GetClusterAgentEndpoint`:
  `cluster_agent.url` (`DD_CLUSTER_AGENT_URL`, https only, `https://` added when no scheme is
  given) wins; otherwise the Kubernetes Service env of `cluster_agent.kubernetes_service_name`
  (`DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME`, default `datadog-cluster-agent`):
  `<NAME>_SERVICE_HOST` and `<NAME>_SERVICE_PORT`. The agent speaks HTTPS (the Cluster Agent's own
  certificate) on that connection, which Istio sees as opaque TCP.
- kubernetes/kubernetes `pkg/kubelet/envvars/envvars.go` `FromServices`: `<NAME>_SERVICE_PORT` is
  the Service's first port (`service.Spec.Ports[0].Port`).
- The Cluster Agent listens on `cluster_agent.cmd_port` (default 5005, `pkg/config/setup`); the
  chart's Service (DataDog/helm-charts `charts/datadog/templates/agent-services.yaml` @79f7c74f,
  3.240.0) exposes port 5005 `agentport` and selects `app: <release>-cluster-agent`.
- Checks the Cluster Agent dispatches: a node agent whose `DD_EXTRA_CONFIG_PROVIDERS` lists
  `clusterchecks` or `endpointschecks` (chart `_container-agent.yaml`: `clusterchecks
  endpointschecks` without cluster check runners, `endpointschecks` with them; the runners'
  `agent-clusterchecks-deployment.yaml`: `clusterchecks`) gets those checks only from the Cluster
  Agent's API: they stop running when it cannot reach it, and their metrics are lost (an error).
  Otherwise only the cluster-level tags (`kube_service`...) are missing, and
  `cluster_agent.tagging_fallback` is false by default (a warning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshdoctor.datadog.agent import FROM_SECRET, agent_container, agent_workloads, env_value, parse_override
from meshdoctor.datadog.install import CLUSTER_AGENT_URL_ENV, ClusterAgentUse, cluster_agent_use
from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.service_endpoints import ServicePort, service_ports
from meshdoctor.kube.service_names import service_of_host
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import ObjectRef, Severity
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Config providers whose checks come from the Cluster Agent's API.
DISPATCHED_CHECK_PROVIDERS = ("clusterchecks", "endpointschecks")
EXTRA_CONFIG_PROVIDERS_ENV = "DD_EXTRA_CONFIG_PROVIDERS"


@dataclass(frozen=True)
class ClusterAgentLink:
    """One agent workload's connection to the Cluster Agent."""

    client: KubeObject = field(compare=False)
    """The node agent DaemonSet or cluster check runner Deployment."""
    use: ClusterAgentUse
    """What its env says (`DD_CLUSTER_AGENT_*`)."""
    service_ref: ObjectRef
    """The Service it dials (by the Service name, or the host of `DD_CLUSTER_AGENT_URL`)."""
    service: KubeObject | None = field(compare=False)
    """That Service, None when it is not in the input."""
    service_port: ServicePort | None
    """The Service port it dials: the URL's, else the Service's first port; None without a Service."""
    how: str
    """How the agent names it: `DD_CLUSTER_AGENT_URL=...` or the Service env, in words."""
    dispatched_checks: tuple[str, ...] = ()
    """The providers of `DD_EXTRA_CONFIG_PROVIDERS` whose checks come from the Cluster Agent."""

    @property
    def consequence(self) -> Severity:
        """Error when checks the Cluster Agent dispatches stop; a warning when only tags are missing."""
        return Severity.ERROR if self.dispatched_checks else Severity.WARNING

    def loss_words(self) -> str:
        """What the agent loses when it cannot reach the Cluster Agent, in words."""
        tags = "its cluster-level tags (kube_service and the Cluster Agent's metadata)"
        if self.dispatched_checks:
            providers = " and ".join(self.dispatched_checks)
            return (
                f"the {providers} checks the Cluster Agent dispatches to it ({EXTRA_CONFIG_PROVIDERS_ENV}) stop "
                f"running and their metrics are lost, and {tags} are missing"
            )
        return f"{tags} are missing (no check is dispatched to it)"


def _dispatched(reader: ObjectReader, workload: KubeObject) -> tuple[str, ...]:
    template = pod_template(workload) or {}
    value = env_value(reader, template, agent_container(template), EXTRA_CONFIG_PROVIDERS_ENV, namespace_of(workload))
    if value in (None, FROM_SECRET):
        return ()
    listed = str(value).split()
    return tuple(p for p in DISPATCHED_CHECK_PROVIDERS if p in listed)


def cluster_agent_links(reader: ObjectReader) -> list[ClusterAgentLink]:
    """Every agent workload that uses the Cluster Agent, with the Service it dials.

    An agent whose `DD_CLUSTER_AGENT_URL` names no Service of the input (an external address) is
    left out: nothing here can judge that path.
    """
    found: list[ClusterAgentLink] = []
    for workload in agent_workloads(reader):
        use = cluster_agent_use(reader, workload)
        if not use.enabled:
            continue
        namespace = namespace_of(workload)
        if use.url:
            parsed = parse_override(use.url)
            if parsed is None:
                continue
            host, port, _ = parsed
            ref = service_of_host(reader, host, namespace)
            if ref is None:
                continue
            service = reader.get("Service", ref.namespace, ref.name)
            ports = service_ports(service) if service is not None else []
            service_port = next((p for p in ports if p.port == port), None)
            how = f"{CLUSTER_AGENT_URL_ENV}={use.url}"
        else:
            ref = ObjectRef("Service", namespace, use.service_name)
            service = use.service
            ports = service_ports(service) if service is not None else []
            service_port = ports[0] if ports else None
            env = _env_name(use.service_name)
            how = f"{env}_SERVICE_HOST:{env}_SERVICE_PORT, the Service's first port"
        found.append(ClusterAgentLink(workload, use, ref, service, service_port, how, _dispatched(reader, workload)))
    return found


def _env_name(service_name: str) -> str:
    """`datadog-cluster-agent` -> `DATADOG_CLUSTER_AGENT` (kubelet `makeEnvVariableName`)."""
    return service_name.upper().replace("-", "_")
