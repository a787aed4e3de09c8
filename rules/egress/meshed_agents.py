"""The agent workloads in the mesh, with their egress model, as both intake rules read them.

The workloads are the node agents, the cluster check runners and the Cluster Agent
(`meshdoctor.datadog.agent.egress_workloads`): each sends to the intake through its own sidecar.

MD101 and MD102 read the same objects and walk the same agents: those whose pods get a sidecar
that redirects their traffic (`meshdoctor.datadog.intake_egress.agent_egress`). When no agent's
mesh membership can be told, neither rule can say anything: `NotChecked`. An agent in Istio
ambient mode (`meshdoctor.istio.ambient`) has no sidecar: ztunnel passes its connections to hosts
outside the registry through, so the sidecar's outbound policy, ServiceEntries and capture settings
these rules read do not apply to it; it is left out, and when only such agents are there the
rules say so (`NotChecked`) rather than pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from meshdoctor.datadog.agent import RequiredEndpoint, egress_workloads
from meshdoctor.datadog.agent_version import AgentRelease, release_evidence
from meshdoctor.datadog.intake_egress import AgentEgress, agent_egress, egress_not_read
from meshdoctor.istio.ambient import ambient_membership
from meshdoctor.istio.injection import injection_decision
from meshdoctor.istio.mesh import MeshInfo, mesh_info
from meshdoctor.kube.workloads import pods_of
from meshdoctor.model import Evidence, LogEvidence, Severity
from meshdoctor.rule import Context, NotChecked

#: Why the sidecar egress rules do not apply to an ambient agent (see meshdoctor.istio.ambient).
AMBIENT_EGRESS = (
    "ztunnel forwards connections to hosts outside the registry as TCP passthrough; the sidecar's "
    "outboundTrafficPolicy, ServiceEntry matching and traffic.sidecar.istio.io capture settings do not apply"
)

#: What both intake rules (MD101, MD102) read, and what they read when it is in the input.
INTAKE_KINDS = ("DaemonSet", "Deployment", "ServiceEntry", "ConfigMap")
INTAKE_OPTIONAL_KINDS = ("Pod", "Namespace", "ReplicaSet", "MutatingWebhookConfiguration", "Sidecar")


def meshed_agents(ctx: Context) -> Iterator[tuple[AgentEgress, MeshInfo]]:
    """Agent workloads in the mesh; `NotChecked` when no agent's mesh membership can be told.

    Also `NotChecked` when what decides the agent's egress was not read everywhere (`-n`, a
    partial dump): the control plane, or ServiceEntries of other namespaces (exported to every
    namespace by default, so any of them may cover the intake): no finding rests on what was not read.
    """
    info = mesh_info(ctx)
    why = egress_not_read(ctx, info)
    if why is not None:
        raise NotChecked(why)
    unknown: list[str] = []
    ambient: list[str] = []
    told = 0
    for workload in egress_workloads(ctx):
        state = agent_egress(ctx, workload, info)
        if state is not None:
            told += 1
            yield state, info
            continue
        pods = pods_of(ctx, workload)
        decision = injection_decision(ctx, pods[0] if pods else workload, info)
        membership = ambient_membership(ctx, pods[0] if pods else workload, decision)
        if membership.enrolled:
            ambient.append(f"{ctx.ref(workload)}: {membership.reason}")
        elif decision.injected is None and info.era != "unknown":
            unknown.append(f"{ctx.ref(workload)}: {decision.reason}")
        else:
            told += 1
    if told:
        return
    reasons = []
    if ambient:
        reasons.append(
            f"the agent runs in Istio ambient mode, without a sidecar ({'; '.join(ambient)}): {AMBIENT_EGRESS}"
        )
    if unknown:
        reasons.append("cannot tell whether the agent's pods get a sidecar: " + "; ".join(unknown))
    if reasons:
        raise NotChecked("; and ".join(reasons))


def describe_endpoints(endpoints: Sequence[RequiredEndpoint]) -> str:
    """`metrics 7-60-1-app.agent.datadoghq.com:443, logs ...`: the endpoints a finding names."""
    return ", ".join(f"{e.product} {e.address}" for e in endpoints)


def consequence_words(severity: Severity) -> str:
    """What the blocked endpoints cost, said in the message when it is less than lost data."""
    if severity is Severity.WARNING:
        return " (no data is lost: a feature degrades, or the agent uses an open fallback)"
    if severity is Severity.INFO:
        return " (nothing is lost: the agent carries on without them)"
    return ""


def version_words(release: AgentRelease) -> str:
    """The sentence a finding adds when a running pod, not the image tag, decided the version.

    `' Agent version 6.10.0, from its start-up log line, pod datadog/x (agent log line 1).'`;
    empty when the tag decided (its hosts and transports say that already).
    """
    if not release.from_runtime:
        return ""
    where = f" ({release.container} log line {release.line_number})" if release.line_number else ""
    return f" Agent version {release.version}, from {release.evidence_words}{where}."


def version_evidence(ctx: Context, state: AgentEgress, already: Sequence[Evidence] = ()) -> list[Evidence]:
    """The pod status field that decided the agent's version, unless shown.

    A log line that decided is named in the message (`version_words`), not quoted: the log lines a
    finding quotes (`meshdoctor.logs.join.MAX_LOG_EVIDENCE`) are kept for what went wrong.
    """
    found = release_evidence(ctx, state.workload, state.release) if state.release.from_runtime else None
    if found is None or isinstance(found, LogEvidence) or found in already:
        return []
    return [found]
