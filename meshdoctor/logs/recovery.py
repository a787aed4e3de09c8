"""Retried, then succeeded: intake failures the agent's own log shows getting through afterwards.

The forwarder retries a failed transaction (DataDog/datadog-agent pkg/forwarder/worker.go,
comp/forwarder/defaultforwarder/worker.go: "Error while processing transaction: ...",
"Too many errors for endpoint '%s': retrying later"), so a handful of resets or refusals at
start-up — the agent up before its istio-proxy sidecar, a connection the intake closed — are
followed by success. The success line is `LOG-EGRESS-TX-SUCCESS` ("Successfully posted payload to
%q", logged at INFO for the process's first success and every `logging_frequency`-th; see the
catalogue).

Semantics: a group of failing lines for a host is *recovered* when, in every log (namespace, pod,
container) where it occurred, a success line for the same host comes after its last failing line.
Then nothing is being lost now: the finding is info. Failures after the last success (in any of
those logs) mean the path fails now: the severity stays. Hosts compare as the forwarder wrote
them, so a forwarder success never clears a logs-intake host (the logs agent has its own client
and logs no success at INFO: pkg/logs/client/tcp/connection_manager.go `log.Debugf("connected to
%v", ...)`, so its failures are never cleared here).
"""

from __future__ import annotations

from collections.abc import Iterable

from meshdoctor.logs.scanner import MatchGroup

#: The catalogue's success signature (signatures.yaml).
SUCCESS = "LOG-EGRESS-TX-SUCCESS"


def recovered(group: MatchGroup, groups: Iterable[MatchGroup]) -> bool:
    """Whether every log of `group` shows a success for its host after its last failing line."""
    host = group.values.get("host")
    if not host or group.signature.id == SUCCESS or not group.last_lines:
        return False
    successes = [g for g in groups if g.signature.id == SUCCESS and g.values.get("host") == host]
    for where, failed_at in group.last_lines:
        succeeded_at = max((line for g in successes if (line := g.last_line(where)) is not None), default=None)
        if succeeded_at is None or succeeded_at < failed_at:
            return False
    return True


def recovery_line(group: MatchGroup, groups: Iterable[MatchGroup]) -> int | None:
    """The last success line for the group's host in its first log, for the message."""
    host = group.values.get("host")
    if not group.last_lines:
        return None
    where = group.last_lines[0][0]
    lines = [
        line
        for g in groups
        if g.signature.id == SUCCESS and g.values.get("host") == host
        if (line := g.last_line(where)) is not None
    ]
    return max(lines) if lines else None
