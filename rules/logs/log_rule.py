"""What every log rule does: read the workloads' logs, bucket the groups of like lines, say them.

A `LogRule` reads the logs of the agent workloads' pods (and, with `control_plane`, of the
control plane's: `meshdoctor.logs.workload_logs`), keeps the groups of its own signatures, and
yields one finding per bucket of groups per workload, with the count, first and last timestamps
and up to two sample lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from meshdoctor.datadog.agent import agent_workloads, lone_agent_pods
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.logs.recovery import recovered, recovery_line
from meshdoctor.logs.scanner import SAMPLES_PER_GROUP, MatchGroup, Signature
from meshdoctor.logs.workload_logs import (
    CONTROL_PLANE_SOURCES,
    PREVIOUS,
    SIDECAR,
    TELEMETRY,
    has_a_line,
    log_targets,
    merge_groups,
    scanned_groups,
    telemetry_workloads,
    unclaimed_log_pods,
)
from meshdoctor.model import Category, Finding, LogEvidence, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, inputs
from meshdoctor.snapshot import KubeObject

#: The kinds whose objects are the agent and control-plane workloads whose logs are read.
WORKLOAD_KINDS = ("DaemonSet", "Deployment")

# -- reading the agent's logs -----------------------------------------------------------------


@dataclass
class AgentLogs:
    """What one agent workload's pods logged: groups of like lines, merged over its pods."""

    workload: KubeObject
    """The agent DaemonSet or Deployment."""
    groups: list[MatchGroup]
    """Groups in order of first appearance (pods by name, agent containers then the sidecar)."""
    lines_read: bool = False
    """Whether any of its logs had a line at all: with none, the logs say nothing either way."""


def agent_logs(ctx: Context) -> list[AgentLogs]:
    """Every agent workload with the groups of signature lines its pods logged.

    Then agent Pods no controller owns (`lone_agent_pods`: a flare's agent); then, for logs no
    workload reads (`unclaimed_log_pods`: logs alone, pods missing from the input), one synthetic
    Pod each, scanned as an agent's (the sidecar's as the sidecar's).
    """
    out = []
    claimed: set[tuple[str, str]] = set()
    for workload in agent_workloads(ctx):
        out.append(_workload_logs(ctx, workload, claimed))
    for pod in lone_agent_pods(ctx):  # a flare's agent: read as a workload of one pod
        if (namespace_of(pod), name_of(pod)) not in claimed:
            out.append(_workload_logs(ctx, pod, claimed))
    for workload in telemetry_workloads(ctx):
        claimed.update((namespace, pod) for namespace, pod, _ in log_targets(ctx, workload, ctx.snapshot.logs))
    for pod in unclaimed_log_pods(ctx, ctx.snapshot.logs, claimed):
        out.append(_workload_logs(ctx, pod, claimed))
    return out


def _workload_logs(ctx: Context, workload: KubeObject, claimed: set[tuple[str, str]]) -> AgentLogs:
    """The groups of one workload's (or one synthetic Pod's) logs, its pods added to `claimed`."""
    groups: list[MatchGroup] = []
    lines_read = False
    # The input's logs: Context has no listing of them (reading one is recorded).
    for namespace, pod, container in log_targets(ctx, workload, ctx.snapshot.logs):
        claimed.add((namespace, pod))
        for previous in (False, True):
            log = ctx.logs(namespace, pod, container, previous)
            if log is not None:
                lines_read = lines_read or has_a_line(log)
                groups.extend(scanned_groups(ctx.cache, log, namespace, pod, container, previous))
    return AgentLogs(workload, merge_groups(groups), lines_read)


def telemetry_logs(ctx: Context) -> list[AgentLogs]:
    """Every telemetry Deployment with the groups of istiod and Mixer lines its pods logged."""
    out = []
    for workload in telemetry_workloads(ctx):
        groups: list[MatchGroup] = []
        lines_read = False
        for namespace, pod, container in log_targets(ctx, workload, ctx.snapshot.logs):
            if container == SIDECAR:
                continue
            for previous in (False, True):
                log = ctx.logs(namespace, pod, container, previous)
                if log is not None:
                    lines_read = lines_read or has_a_line(log)
                    groups.extend(scanned_groups(ctx.cache, log, namespace, pod, container, previous, TELEMETRY))
        out.append(AgentLogs(workload, merge_groups(groups), lines_read))
    return out


# -- words and objects ------------------------------------------------------------------------


def seen_words(group: MatchGroup) -> str:
    """Say how often and when: `Seen 4 times in 1 log, 2019-02-21T09:14:32Z to ...`."""
    times = "once" if group.count == 1 else f"{group.count} times"
    logs = len(group.pods)
    where = f"in {logs} log{'s' if logs != 1 else ''}"
    if group.first_seen and group.last_seen and group.first_seen != group.last_seen:
        when = f", {group.first_seen} to {group.last_seen}"
    elif group.first_seen:
        when = f", at {group.first_seen}"
    else:
        when = ""
    return f"Seen {times} {where}{when}."


def group_objects(ctx: Context, workload: KubeObject, groups: Iterable[MatchGroup]) -> list[ObjectRef]:
    """The workload, then every pod whose log has the lines (a pod is named once)."""
    refs = [ctx.ref(workload)]
    namespace = refs[0].namespace
    for pod in sorted({p[1] for g in groups for p in g.pods}):
        if ObjectRef("Pod", namespace, pod) not in refs:  # a lone Pod (logs alone) is named once
            refs.append(ObjectRef("Pod", namespace, pod))
    return refs


def group_evidence(groups: Iterable[MatchGroup], limit: int = 3) -> list[LogEvidence]:
    """Sample lines of the groups, the first of each before the second of any, at most `limit`."""
    samples = [g.evidence() for g in groups]
    out: list[LogEvidence] = []
    for rank in range(SAMPLES_PER_GROUP):
        for items in samples:
            if rank < len(items) and len(out) < limit:
                out.append(items[rank])
    return out


def also_words(groups: Iterable[MatchGroup]) -> str:
    """` Also: <title> (3 lines); ...` for the other groups of a finding; empty when none."""
    parts = [f"{g.signature.title} ({g.count} line{'s' if g.count != 1 else ''})" for g in groups]
    return f" Also: {'; '.join(parts)}." if parts else ""


def _by_weight(groups: list[MatchGroup]) -> list[MatchGroup]:
    """Worst severity first, then the most repeated, then the first seen (stable)."""
    return sorted(groups, key=lambda g: (-g.signature.severity.rank, -g.count))


def as_history(finding: Finding) -> Finding:
    """A finding whose lines come only from previous containers' logs: a past run's fault, advice."""
    return dataclasses.replace(
        finding,
        severity=Severity.INFO,
        message=finding.message + " Only in the previous container's log (`kubectl logs --previous`): "
        "a past run's fault; the running container has not logged it.",
    )


def as_recovered(finding: Finding, host: str, line: int | None) -> Finding:
    """A finding whose failures the agent's log shows getting through afterwards: advice."""
    where = f" (line {line})" if line is not None else ""
    return dataclasses.replace(
        finding,
        severity=Severity.INFO,
        message=finding.message + f" After the last of them the forwarder posted to {host} successfully{where}: "
        "the retries got through and nothing is being lost now.",
    )


def supporting(finding: Finding, family: str) -> Finding:
    """The finding with `supports` naming the family whose structural findings may absorb it."""
    return dataclasses.replace(finding, supports=family)


def restart_commands(ref: ObjectRef) -> tuple[str, ...]:
    """How to restart a workload's pods.

    A lone Pod (logs alone: `--logs DIR`) is deleted for its controller to recreate; a log file
    with no namespace (`--from agent.log`, a flare) names no object to restart: no command.
    """
    if ref.kind != "Pod":
        return (f"kubectl -n {ref.namespace} rollout restart {ref.kind.lower()}/{ref.name}",)
    return (f"kubectl -n {ref.namespace} delete pod {ref.name}",) if ref.namespace else ()


def logs_command(namespace: str, group: MatchGroup) -> str:
    """`kubectl logs` for the first sample line's container (with --previous where it was)."""
    where = f"-n {namespace} " if namespace else ""
    if not group.samples:
        return f"kubectl {where}logs <pod>"
    sample = group.samples[0]
    container = sample.container.removesuffix(PREVIOUS)
    previous = " --previous" if sample.container.endswith(PREVIOUS) else ""
    return f"kubectl {where}logs {sample.pod} -c {container}{previous}"


# -- the base class ---------------------------------------------------------------------------


class LogRule(Rule):
    """A rule whose findings are groups of log lines of some signatures, bucketed."""

    # The workload kinds are optional: logs alone are read through `unclaimed_log_pods`; with
    # neither workloads nor lines, `check` says the kinds are missing as the engine would.
    inputs = inputs(optional=WORKLOAD_KINDS + ("Pod", "ReplicaSet"), logs=["agent", SIDECAR])
    severity = Severity.ERROR
    category = Category.LOGS

    #: The signature source and families this rule reports.
    source: ClassVar[str] = "agent"
    families: ClassVar[frozenset[str]] = frozenset()
    #: Whether the rule also reads the control plane's logs (its `istiod` and `mixer` lines).
    control_plane: ClassVar[bool] = False

    def wanted(self, signature: Signature) -> bool:
        """Whether lines of this signature are this rule's."""
        sources = {self.source} | (CONTROL_PLANE_SOURCES if self.control_plane else set())
        return signature.source in sources and signature.supports in self.families

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per workload and bucket of groups of this rule's signatures."""
        workloads = agent_logs(ctx)
        if self.control_plane:
            workloads += telemetry_logs(ctx)
        if not any(logs.lines_read for logs in workloads):
            missing = [(kind, ctx.unavailable(kind)) for kind in WORKLOAD_KINDS]
            if any(why is not None for _, why in missing):
                raise NotChecked("input missing: " + "; ".join(f"{k}: {why}" for k, why in missing if why is not None))
            what = "agent or control-plane" if self.control_plane else "agent"
            raise NotChecked(
                f"no {what} log lines in the input (a live check reads them; offline, give --logs DIR "
                "or a dump with logs.txt)"
            )
        for logs in workloads:
            groups = [g for g in logs.groups if self.wanted(g.signature)]
            past = bool(groups) and all(container.endswith(PREVIOUS) for g in groups for _, _, container in g.pods)
            for finding in self.findings(ctx, logs, groups):
                yield as_history(finding) if past else finding

    def bucket(self, group: MatchGroup) -> Any:
        """Groups with the same bucket make one finding; by default each group is its own."""
        return (group.signature.id, group.key)

    def findings(self, ctx: Context, logs: AgentLogs, groups: list[MatchGroup]) -> Iterator[Finding]:
        """The findings of one workload's groups: one per bucket, in order of first appearance."""
        buckets: dict[Any, list[MatchGroup]] = {}
        for group in groups:
            buckets.setdefault(self.bucket(group), []).append(group)
        for members in buckets.values():
            ordered = _by_weight(members)
            finding = self.group_finding(ctx, logs.workload, ordered)
            lead = ordered[0]
            if lead.signature.supports == "egress" and all(recovered(g, logs.groups) for g in members):
                finding = as_recovered(finding, str(lead.values.get("host")), recovery_line(lead, logs.groups))
            yield self.settled(ctx, logs, ordered, finding)

    def settled(self, ctx: Context, logs: AgentLogs, groups: list[MatchGroup], finding: Finding) -> Finding:
        """The finding once what the cluster shows now is weighed (a fix made after the lines); as is by default."""
        return finding

    def group_finding(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Finding:
        """Groups as one finding: the leading group's message, objects, samples, remediation."""
        ref = ctx.ref(workload)
        lead = groups[0]
        finding = self.finding(
            f"{ref}: {self.message(lead)} {seen_words(lead)}{also_words(groups[1:])}",
            objects=[*group_objects(ctx, workload, groups), *self.targets(ctx, ref, lead)],
            evidence=group_evidence(groups),
            remediation=self.remediation(ctx, workload, groups),
            severity=lead.signature.severity,
        )
        return supporting(finding, lead.signature.supports)

    def message(self, group: MatchGroup) -> str:
        """What the lines of a group mean (the signature's message by default)."""
        return group.message

    def targets(self, ctx: Context, ref: ObjectRef, group: MatchGroup) -> list[ObjectRef]:
        """Objects the lines point at, after the workload and pods (none by default)."""
        return []

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """What to do about these lines."""
        raise NotImplementedError
