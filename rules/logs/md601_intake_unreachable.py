"""MD601: the agent's log shows its traffic to the Datadog intake does not get through."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.logs.scanner import MatchGroup
from meshdoctor.logs.workload_logs import SIDECAR, TELEMETRY
from meshdoctor.model import Finding
from meshdoctor.rule import Context, RuleDocs, inputs

from .intake_traffic import IntakeLogRule
from .log_rule import WORKLOAD_KINDS, AgentLogs

#: The signature that proves the network path to a host works (the intake answered 403).
API_KEY_INVALID = "LOG-AGENT-API-KEY-INVALID"


class AgentIntakeUnreachable(IntakeLogRule):
    """MD601."""

    id = "MD601"
    title = "The agent's log shows its traffic to the Datadog intake does not get through"
    control_plane = True
    inputs = inputs(
        # ServiceEntry, Sidecar and the mesh config: whether a ServiceEntry made after the lines covers their host
        optional=[*WORKLOAD_KINDS, "Pod", "ReplicaSet", "ServiceEntry", "Sidecar", "ConfigMap"],
        logs=["agent", SIDECAR, TELEMETRY],
    )
    docs = RuleDocs(
        what="Lines of the agent's own log (forwarder and logs agent) that say sending to the "
        "Datadog intake failed on the network: `Too many errors for endpoint`, connections "
        "refused, timed out, closed (EOF) or reset, names that do not resolve, certificates "
        "rejected, 5xx answers from a proxy. One finding per agent workload and intake host. "
        "Also istiod's log (its validation webhook) refusing a ServiceEntry whose host is `*`, "
        "or a wildcard with resolution DNS: one finding per istiod Deployment and host.",
        why="These lines are what an agent in a mesh that does not let it out looks like from the "
        "inside: nothing reaches Datadog while the pod stays Running. When MD101 or MD102 "
        "already explains them, the lines are shown on that finding instead; alone, they point "
        "at a cause the input does not show (a dump without ServiceEntries, a NetworkPolicy "
        "outside the input). Hosts that answered 403 are left out: the path works, and MD602 "
        "says why data is dropped.",
        fix="For a host that is blocked (EOF, timeout, too many errors): a ServiceEntry for it "
        "in the agent's namespace (the manifest names the host and port from the log). DNS "
        "errors point at DD_SITE; x509 errors at something terminating TLS on the way.",
        references=(
            "https://docs.datadoghq.com/agent/configuration/network/",
            "https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/",
        ),
    )

    def host(self, group: MatchGroup) -> str | None:
        """The host of the URL the forwarder names, as it wrote it."""
        return group.values.get("host")

    def findings(self, ctx: Context, logs: AgentLogs, groups: list[MatchGroup]) -> Iterator[Finding]:
        """Leave out hosts that answered 403: their network path works."""
        answered = {g.values.get("host") for g in logs.groups if g.signature.id == API_KEY_INVALID}
        kept = [g for g in groups if not g.values.get("host") or g.values["host"] not in answered]
        yield from super().findings(ctx, logs, kept)
