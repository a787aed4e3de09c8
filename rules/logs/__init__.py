"""Logs: what the agent and its sidecar logged, read against the signature catalogue.

Ids: MD601 the agent cannot reach the intake, MD602 the intake rejects the API key, MD603 the
istio check cannot scrape its endpoints, MD604 the API server or kubelet denies the agent,
MD605 the agent's sidecar drops or fails its intake traffic.

Each rule reads the logs of the agent workloads' pods (`agent` containers: every container but
the sidecar; `istio-proxy`: the sidecar); MD601 and MD603 also read the control plane's
(`telemetry`: the istio-telemetry / istiod / pilot Deployments' pods, every container but the
sidecar) for istiod's rejections of ServiceEntries and Mixer's prometheus adapter errors. Logs
are scanned with the shared `Scanner` of `meshdoctor/logs/signatures.yaml`
(`meshdoctor.logs.workload_logs`), and each rule yields one finding per group of like lines (one
signature, one key: a host, a permission...) per workload (`log_rule.LogRule`). The finding's
`supports` names the signature's family: the engine moves the lines of an egress, check-config,
telemetry or rbac finding onto the structural finding that explains them
(`meshdoctor.logs.join`), so a log finding is reported only when nothing structural explains it.
MD602 is never joined: no structural rule can see that a key is invalid.
"""

from __future__ import annotations

from meshdoctor.rule import Rule

from .md601_intake_unreachable import AgentIntakeUnreachable
from .md602_api_key_rejected import ApiKeyRejected
from .md603_istio_check_failing import IstioCheckCannotScrape
from .md604_agent_forbidden import AgentForbidden
from .md605_sidecar_drops_intake import SidecarDropsIntakeTraffic

RULES: list[type[Rule]] = [
    AgentIntakeUnreachable,
    ApiKeyRejected,
    IstioCheckCannotScrape,
    AgentForbidden,
    SidecarDropsIntakeTraffic,
]
