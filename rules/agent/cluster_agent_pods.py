"""The Cluster Agent pods behind the Service an agent dials, and the container port it lands on.

Shared by MD508-MD510: the link comes from `meshdoctor.datadog.cluster_agent_link`, the pods from
the Service's endpoints, else its selector's pods, else the templates it selects (manifests).
"""

from __future__ import annotations

from meshdoctor.datadog.cluster_agent_link import ClusterAgentLink
from meshdoctor.kube.network_policy import port_number
from meshdoctor.kube.representative_pods import representatives
from meshdoctor.kube.service_pods import pod_port, service_pods
from meshdoctor.rule import Context
from meshdoctor.snapshot import KubeObject

#: What the three rules read: the agents and their env, the Service and its endpoints.
LINK_KINDS = ("DaemonSet", "Deployment", "Service")
LINK_OPTIONAL_KINDS = ("ConfigMap", "Pod", "EndpointSlice", "Endpoints")
#: What MD509 and MD510 read as well: the agents' pods (a runner's through its ReplicaSet) and the
#: workloads a Service selects when no pod is in the input.
POD_KINDS = ("ReplicaSet", "StatefulSet")


def cluster_agent_pods(ctx: Context, link: ClusterAgentLink) -> list[tuple[KubeObject, int]]:
    """(pod, container port number) behind the link's Service port, one pod per kind of pod."""
    if link.service is None or link.service_port is None:
        return []
    found = []
    for pod in representatives(service_pods(ctx, link.service, link.service_port.port)):
        port = port_number(pod_port(link.service_port, pod))
        if port is not None:
            found.append((pod, port))
    return found
