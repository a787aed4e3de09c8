"""Which of the sidecar's two stats ports an istio check endpoint scrapes, and what the other adds.

Envoy serves its own stats on 15090 in every version; from Istio 1.7 pilot-agent's 15020 serves
the same plus pilot-agent's `istio_agent_*` metrics, which the check maps to `istio.mesh.agent.*`
(integrations-core istio datadog_checks/istio/metrics.py `MESH_METRICS`, used in both the
OpenMetrics V2 `IstioCheckV2` and the legacy check). The mesh's request and TCP metrics are in
both, so scraping 15090 loses nothing the check had; it only never collects the agent metrics
(integrations-core issue #13047). The facts are `istio.versions` (`MERGED_STATS_SINCE`,
`AGENT_METRICS_MERGED_SINCE`) and `datadog.paths.AUTO_CONF_MERGED_PORT_SINCE`.
"""

from __future__ import annotations

from meshdoctor.datadog import paths
from meshdoctor.datadog.agent import agent_release
from meshdoctor.datadog.istio_check import CheckEndpoint, agent_has_auto_conf
from meshdoctor.istio.mesh import MeshInfo
from meshdoctor.istio.versions import AGENT_METRICS_MERGED_SINCE, ENVOY_STATS_PORT, MERGED_STATS_PORT
from meshdoctor.snapshot import KubeObject, ObjectReader

#: The path both stats ports serve the Prometheus text on.
STATS_PATH = "/stats/prometheus"


def merges_agent_metrics(info: MeshInfo) -> bool:
    """Whether the mesh's 15020 carries pilot-agent's metrics that 15090 lacks (Istio 1.7+)."""
    return info.minor is not None and info.minor >= AGENT_METRICS_MERGED_SINCE


def scrapes_envoy_port(endpoint: CheckEndpoint) -> bool:
    """Whether an endpoint is `istio_mesh_endpoint` on Envoy's own 15090 `/stats/prometheus`."""
    return (
        endpoint.key == "istio_mesh_endpoint"
        and endpoint.port == ENVOY_STATS_PORT
        and endpoint.path.startswith(STATS_PATH)
    )


def merged_url(url: str) -> str:
    """The same URL on the merged port 15020."""
    return url.replace(f":{ENVOY_STATS_PORT}", f":{MERGED_STATS_PORT}", 1)


def auto_conf_scrapes_envoy_port(reader: ObjectReader, workload: KubeObject) -> bool:
    """Whether the agent's image ships an istio auto_conf.yaml that still scrapes 15090.

    Only an Agent 7 older than 7.44, by its release (`agent_release`: the pods' runtime evidence,
    else the tag; an unpinned image is newer; Agent 6 is not judged).
    """
    if not agent_has_auto_conf(reader, workload):
        return False
    release = agent_release(reader, workload).release
    if release is None:
        return False
    major, minor = release
    since = paths.AUTO_CONF_MERGED_PORT_SINCE.get(major)
    return since is not None and (major, minor) < since
