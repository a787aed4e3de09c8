"""MD605: the agent's sidecar drops or fails its traffic to the Datadog intake (its access log)."""

from __future__ import annotations

from meshdoctor.logs.workload_logs import SIDECAR
from meshdoctor.rule import RuleDocs, inputs

from .intake_traffic import IntakeLogRule
from .log_rule import WORKLOAD_KINDS


class SidecarDropsIntakeTraffic(IntakeLogRule):
    """MD605."""

    id = "MD605"
    title = "The agent's sidecar drops or fails its traffic to the Datadog intake"
    source = SIDECAR
    # ServiceEntry, Sidecar and the mesh config: whether a ServiceEntry made after the lines covers their host
    inputs = inputs(
        optional=[*WORKLOAD_KINDS, "Pod", "ReplicaSet", "ServiceEntry", "Sidecar", "ConfigMap"],
        logs=["agent", SIDECAR],
    )
    docs = RuleDocs(
        what="Access-log lines of the agent pods' `istio-proxy` (text or JSON format) for "
        "connections to the Datadog intake that went to BlackHoleCluster, failed upstream "
        "(response flags UH, UF, URX, NR...), or left through PassthroughCluster. One finding "
        "per agent workload and intake host.",
        why="BlackHoleCluster is where a REGISTRY_ONLY sidecar sends a host no ServiceEntry "
        "covers: the proof, seen from the mesh, that the intake traffic is dropped. "
        "PassthroughCluster works only as long as the mesh allows any host (a warning).",
        fix="A ServiceEntry for the host (the SNI of the connection) and port the line names, in "
        "the agent's namespace.",
        references=(
            "https://istio.io/latest/docs/tasks/observability/logs/access-log/",
            "https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/",
        ),
    )
