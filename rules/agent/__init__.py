"""Agent hygiene: how the agent workload itself is deployed.

Ids: MD501 literal API key, MD502 log collection without host log mounts, MD503 removed workload
API, MD504 unpinned image, MD505 rollout not complete, MD506 DD_SITE not a site, MD507 a Cluster
Agent the agent uses but that does not exist.

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

RULES: list[type[Rule]] = [
    ApiKeyInManifest,
    LogCollectionWithoutHostMounts,
    RemovedWorkloadApi,
    UnpinnedAgentImage,
    AgentRolloutIncomplete,
    SiteIsNotASite,
    ClusterAgentMissing,
]
