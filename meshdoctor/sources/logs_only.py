"""Logs with no object at all (`check --logs DIR`, `--from agent.log`): what is missing, and how to get it.

The log rules read such logs through synthetic pods (`meshdoctor.logs.workload_logs.unclaimed_log_pods`);
every other rule needs objects, so every kind a rule may read is recorded as missing with the
`kubectl get` that exports it, and a rule that needs one says so in its `not_checked` reason.
"""

from __future__ import annotations

from meshdoctor.kube.kinds import KINDS, KindInfo
from meshdoctor.snapshot import Snapshot

#: What a logs-only input lacks, before the command that would collect it.
LOGS_ONLY = "not in the input (logs only)"
# A flare alone counts as logs only: its agent Pod is evidence, not a listing of the cluster.


def export_command(info: KindInfo) -> str:
    """`kubectl get daemonsets.apps --all-namespaces -o yaml`: every object of a kind, as `--from` reads it."""
    every = " --all-namespaces" if info.namespaced else ""
    return f"kubectl get {info.resource}{every} -o yaml"


#: The one line `SourceInfo.missing` says for a logs-only input (the not-checked rules name each kind).
LOGS_ONLY_MISSING = (
    "objects: none in the input (logs only): every rule but the log rules is not checked, and its "
    "reason names the `kubectl get` that exports each kind it needs"
)


def mark_logs_only(snapshot: Snapshot) -> tuple[str, ...]:
    """Record every kind rules may read as missing, each with the command that exports it.

    Returns the lines for `SourceInfo.missing`: one, not one per kind (the rules' reasons are exact).
    """
    snapshot.default_missing_reason = LOGS_ONLY
    for kind, info in sorted(KINDS.items()):
        snapshot.mark_missing(kind, f"{LOGS_ONLY}; `{export_command(info)}` exports it")
    return (LOGS_ONLY_MISSING,)
