"""Agent hygiene: how the agent workload itself is deployed.

Ids: MD501 literal API key, MD502 log collection without host log mounts, MD503 removed workload
API, MD504 unpinned image, MD505 rollout not complete, MD506 DD_SITE not a site, MD507 a Cluster
Agent the agent uses but that does not exist; the agent's connection to its Cluster Agent: MD508 the
Service missing or without a ready endpoint, MD509 a NetworkPolicy drops it, MD510 strict mTLS on the
Cluster Agent refuses it (`meshdoctor.datadog.cluster_agent_link`, `cluster_agent_pods`).

One module per rule; what they read is domain code: `meshdoctor.kube.pod_spec` (containers and
host mounts with their field paths), `kube.nodes` (runtimes, kubelet versions), `kube.image_pins`,
and `datadog.log_mounts` (the host paths log collection reads).
"""

from __future__ import annotations

from meshdoctor.rule import Rule

from .md501_api_key_literal import ApiKeyInManifest
from .md502_log_host_mounts import LogCollectionWithoutHostMounts
from .md503_removed_workload_api import RemovedWorkloadApi
from .md504_unpinned_image import UnpinnedAgentImage
from .md505_rollout_incomplete import AgentRolloutIncomplete
from .md506_site_not_a_site import SiteIsNotASite
from .md507_cluster_agent_missing import ClusterAgentMissing
from .md508_cluster_agent_service_unready import ClusterAgentServiceUnready
from .md509_cluster_agent_network_policy import ClusterAgentNetworkPolicy
from .md510_cluster_agent_strict_mtls import ClusterAgentStrictMtls

RULES: list[type[Rule]] = [
    ApiKeyInManifest,
    LogCollectionWithoutHostMounts,
    RemovedWorkloadApi,
    UnpinnedAgentImage,
    AgentRolloutIncomplete,
    SiteIsNotASite,
    ClusterAgentMissing,
    ClusterAgentServiceUnready,
    ClusterAgentNetworkPolicy,
    ClusterAgentStrictMtls,
]
