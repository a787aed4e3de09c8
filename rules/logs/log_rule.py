"""Logs: what the agent and its sidecar logged, read against the signature catalogue.

Ids: MD601 the agent cannot reach the intake, MD602 the intake rejects the API key, MD603 the
istio check cannot scrape its endpoints, MD604 the API server or kubelet denies the agent,
MD605 the agent's sidecar drops or fails its intake traffic.

Each rule reads the logs of the agent workloads' pods (`agent` containers: every container but
the sidecar; `istio-proxy`: the sidecar); MD601 and MD603 also read the control plane's
(`telemetry`: the istio-telemetry / istiod / pilot Deployments' pods, every container but the
sidecar) for istiod's rejections of ServiceEntries and Mixer's prometheus adapter errors. Logs
are scanned with the shared `Scanner` of
`meshdoctor/logs/signatures.yaml`, and yields one finding per group of like lines (one signature,
one key: a host, a permission...) per workload, with the count, first and last timestamps and up
to two sample lines. The finding's `supports` names the signature's family: the engine moves the
lines of an egress, check-config, telemetry or rbac finding onto the structural finding that
explains them (`meshdoctor.logs.join`), so a log finding is reported only when nothing structural
explains it. MD602 is never joined: no structural rule can see that a key is invalid.

Each log is scanned once per run, whatever the number of rules reading it (the groups are kept in
the run's context cache), streamed in large chunks (never whole).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from meshdoctor.datadog.agent import agent_workloads, datadog_site
from meshdoctor.datadog.paths import MESH_PORT_MIXER
from meshdoctor.datadog.sites import HTTPS_PORT, site_of_host
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.istio.egress import service_entry_manifest
from meshdoctor.istio.mesh import mesh_info, service_entry_api_version, service_entry_has_export_to
from meshdoctor.istio.versions import TELEMETRY_POD_LABELS
from meshdoctor.kube.workloads import containers, pod_template, pods_of
from meshdoctor.logs.scanner import SAMPLES_PER_GROUP, MatchGroup, Scanner, Signature, load_signatures
from meshdoctor.model import Category, Finding, LogEvidence, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject, LogSource

#: The sidecar's container name (Istio's injection template, every version).
SIDECAR = "istio-proxy"

#: What a previous instance's log is called in evidence (`kubectl logs --previous`).
PREVIOUS = " (previous)"

#: Signatures whose lines mean "this intake host is not let out of the mesh": a ServiceEntry for
#: the host the line names is a certain part of the fix. Others (DNS, x509, resets, 5xx) point
#: elsewhere: a wrong site, an egress gateway, a DestinationRule.
SERVICE_ENTRY_SIGNATURES = frozenset(
    {
        "LOG-EGRESS-TOO-MANY-ERRORS",
        "LOG-EGRESS-TX-EOF",
        "LOG-EGRESS-TX-TIMEOUT",
        "LOG-EGRESS-LOGS-HTTP-SEND",
        "LOG-EGRESS-ENVOY-BLACKHOLE",
        "LOG-EGRESS-ENVOY-JSON-BLACKHOLE",
        "LOG-EGRESS-ENVOY-PASSTHROUGH",
    }
)

#: Signature sources of the control plane's logs (the `telemetry` log group), and which sources
#: each log group is scanned for.
CONTROL_PLANE_SOURCES = frozenset({"istiod", "mixer"})
TELEMETRY = "telemetry"
_GROUP_SOURCES = {"agent": ("agent",), SIDECAR: (SIDECAR,), TELEMETRY: ("istiod", "mixer")}

#: The signature that proves the network path to a host works (the intake answered 403).
API_KEY_INVALID = "LOG-AGENT-API-KEY-INVALID"

#: Generated pod names: a DaemonSet's `<name>-<5>` and a Deployment's `<name>-<hash>-<5>`
#: (Kubernetes names generated suffixes from the alphabet bcdfghjklmnpqrstvwxz2456789).
_POD_SUFFIX = {
    "DaemonSet": re.compile(r"-[a-z0-9]{5}"),
    "Deployment": re.compile(r"-[a-z0-9]{5,10}-[a-z0-9]{5}"),
}


@functools.lru_cache(maxsize=4)
def shared_scanner(group: str) -> Scanner:
    """The built-in signatures of one log group's sources, compiled once per process.

    `agent` and `istio-proxy` are their own source; `telemetry` scans for `istiod` and `mixer`.
    """
    sources = _GROUP_SOURCES.get(group, (group,))
    return Scanner([s for s in load_signatures() if s.source in sources])


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


def log_targets(ctx: Context, workload: KubeObject) -> list[tuple[str, str, str]]:
    """(namespace, pod, container) of every log the workload's pods may have, in reading order.

    The pods are `pods_of` the workload, then pods that have logs in the input but no Pod object
    whose name is one the workload's controller generates (`--logs DIR` next to manifests
    without pods). Containers: the pod's (else the template's), the sidecar last.
    """
    meta = workload.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    template = pod_template(workload) or {}
    template_names = [str(c.get("name") or "") for c in containers(template, include_init=False)]
    targets: list[tuple[str, str, str]] = []
    known: set[str] = set()
    for pod in pods_of(ctx, workload):
        pod_name = str((pod.get("metadata") or {}).get("name") or "")
        known.add(pod_name)
        names = [str(c.get("name") or "") for c in containers(pod, include_init=False)]
        targets.extend((namespace, pod_name, n) for n in _ordered(names or template_names))
    suffix = _POD_SUFFIX.get(str(workload.get("kind")))
    if suffix is not None:
        prefix = str(meta.get("name") or "")
        orphans: dict[str, set[str]] = {}
        for key in ctx.snapshot.logs:  # Context has no listing of logs; reading one is recorded
            if key.namespace != namespace or key.pod in known:
                continue
            if key.pod.startswith(prefix) and suffix.fullmatch(key.pod[len(prefix) :]):
                orphans.setdefault(key.pod, set()).add(key.container)
        for pod_name in sorted(orphans):
            if ctx.get("Pod", namespace, pod_name) is None:
                names = [n for n in template_names if n in orphans[pod_name]]
                names += sorted(orphans[pod_name] - set(names))
                targets.extend((namespace, pod_name, n) for n in _ordered(names))
    return targets


def _ordered(names: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(n for n in names if n))
    return [n for n in unique if n != SIDECAR] + [n for n in unique if n == SIDECAR]


def agent_logs(ctx: Context) -> list[AgentLogs]:
    """Every agent workload with the groups of signature lines its pods logged."""
    out = []
    for workload in agent_workloads(ctx):
        groups: list[MatchGroup] = []
        lines_read = False
        for namespace, pod, container in log_targets(ctx, workload):
            for previous in (False, True):
                log = ctx.logs(namespace, pod, container, previous)
                if log is not None:
                    lines_read = lines_read or _has_a_line(log)
                    groups.extend(_scanned(ctx, log, namespace, pod, container, previous))
        out.append(AgentLogs(workload, merge_groups(groups), lines_read))
    return out


def _has_a_line(log: LogSource) -> bool:
    """Whether a log has at least one line (reads one line, not the log)."""
    lines = iter(log.lines())
    try:
        return next(lines, None) is not None
    finally:
        close = getattr(lines, "close", None)
        if callable(close):
            close()


def telemetry_workloads(ctx: Context) -> list[KubeObject]:
    """The Deployments whose pods make the `telemetry` log group (istio-telemetry, istiod, pilot).

    Picked by the pod labels the live source collects that group by (on the Deployment or its
    pod template); istio-policy's Mixer is not one of them.
    """
    out = []
    for deployment in ctx.objects("Deployment"):
        template = pod_template(deployment) or {}
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            **((deployment.get("metadata") or {}).get("labels") or {}),
        }
        if any(str(labels.get(k)) == v for k, v in TELEMETRY_POD_LABELS):
            out.append(deployment)
    return out


def telemetry_logs(ctx: Context) -> list[AgentLogs]:
    """Every telemetry Deployment with the groups of istiod and Mixer lines its pods logged."""
    out = []
    for workload in telemetry_workloads(ctx):
        groups: list[MatchGroup] = []
        lines_read = False
        for namespace, pod, container in log_targets(ctx, workload):
            if container == SIDECAR:
                continue
            for previous in (False, True):
                log = ctx.logs(namespace, pod, container, previous)
                if log is not None:
                    lines_read = lines_read or _has_a_line(log)
                    groups.extend(_scanned(ctx, log, namespace, pod, container, previous, TELEMETRY))
        out.append(AgentLogs(workload, merge_groups(groups), lines_read))
    return out


def _scanned(
    ctx: Context,
    log: LogSource,
    namespace: str,
    pod: str,
    container: str,
    previous: bool,
    group: str | None = None,
) -> list[MatchGroup]:
    """The groups of one log, scanned once per run (memoised in the run's context cache).

    `group` is the log group whose signatures apply; by default the agent's or its sidecar's,
    by container name.
    """
    from meshdoctor.logs.scanner import group_matches

    group = group or (SIDECAR if container == SIDECAR else "agent")
    key = ("rules.logs", group, namespace, pod, container, previous)
    cached = ctx.cache.get(key)
    if cached is None:
        scanner = shared_scanner(group)
        shown = container + PREVIOUS if previous else container
        cached = group_matches(_scan(scanner, log, namespace, pod, shown))
        ctx.cache[key] = cached
    return list(cached)


def _scan(scanner: Scanner, log: LogSource, namespace: str, pod: str, container: str) -> Any:
    """Matches of a log: its raw bytes in chunks where the source offers them, else its lines."""
    opener = getattr(log, "open", None)
    if callable(opener):
        with opener() as handle:
            return scanner.scan_file(handle, namespace=namespace, pod=pod, container=container)
    raw = getattr(log, "raw", None)
    if callable(raw):
        data = io.BytesIO(raw())
        return scanner.scan_file(data, namespace=namespace, pod=pod, container=container)
    return scanner.scan(log.lines(), namespace=namespace, pod=pod, container=container)


def merge_groups(groups: Iterable[MatchGroup]) -> list[MatchGroup]:
    """Groups of several logs merged by signature and key: counts added, first/last widened.

    Samples are the first `SAMPLES_PER_GROUP` in reading order; timestamps compare as text
    (every log of one workload writes the same format).
    """
    merged: dict[tuple[str, Any], MatchGroup] = {}
    for group in groups:
        key = (group.signature.id, group.key)
        have = merged.get(key)
        if have is None:
            merged[key] = group
            continue
        firsts = [t for t in (have.first_seen, group.first_seen) if t]
        lasts = [t for t in (have.last_seen, group.last_seen) if t]
        merged[key] = MatchGroup(
            have.signature,
            have.key,
            have.count + group.count,
            min(firsts) if firsts else None,
            max(lasts) if lasts else None,
            (have.samples + group.samples)[:SAMPLES_PER_GROUP],
            tuple(sorted(set(have.pods) | set(group.pods))),
        )
    return list(merged.values())


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


def _supporting(finding: Finding, family: str) -> Finding:
    return dataclasses.replace(finding, supports=family)


class LogRule(Rule):
    """A rule whose findings are groups of log lines of some signatures, bucketed."""

    inputs = inputs("DaemonSet", "Deployment", optional=["Pod", "ReplicaSet"], logs=["agent", SIDECAR])
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
            what = "agent or control-plane" if self.control_plane else "agent"
            raise NotChecked(
                f"no {what} log lines in the input (a live check reads them; offline, give --logs DIR "
                "or a dump with logs.txt)"
            )
        for logs in workloads:
            groups = [g for g in logs.groups if self.wanted(g.signature)]
            yield from self.findings(ctx, logs, groups)

    def bucket(self, group: MatchGroup) -> Any:
        """Groups with the same bucket make one finding; by default each group is its own."""
        return (group.signature.id, group.key)

    def findings(self, ctx: Context, logs: AgentLogs, groups: list[MatchGroup]) -> Iterator[Finding]:
        """The findings of one workload's groups: one per bucket, in order of first appearance."""
        buckets: dict[Any, list[MatchGroup]] = {}
        for group in groups:
            buckets.setdefault(self.bucket(group), []).append(group)
        for members in buckets.values():
            yield self.group_finding(ctx, logs.workload, _by_weight(members))

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
        return _supporting(finding, lead.signature.supports)

    def message(self, group: MatchGroup) -> str:
        """What the lines of a group mean (the signature's message by default)."""
        return group.message

    def targets(self, ctx: Context, ref: ObjectRef, group: MatchGroup) -> list[ObjectRef]:
        """Objects the lines point at, after the workload and pods (none by default)."""
        return []

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """What to do about these lines."""
        raise NotImplementedError


# -- MD601, MD605: intake traffic ---------------------------------------------------------------


def intake_host(group: MatchGroup) -> str | None:
    """The Datadog intake host the lines name (URL host, SNI or authority), or None."""
    values = group.values
    for name in ("host", "sni", "authority"):
        host = values.get(name)
        if host and host != "-" and site_of_host(host) is not None:
            return host.lower().rstrip(".")
    return None


def intake_port(group: MatchGroup) -> int:
    """The port the lines name (URL port, or the port of the sidecar's destination); 443."""
    sample = group.samples[0].groups if group.samples else {}
    value = sample.get("port")
    if value and value.isdigit():
        return int(value)
    local = sample.get("downstream_local")
    if local and ":" in local and local.rsplit(":", 1)[1].isdigit():
        return int(local.rsplit(":", 1)[1])
    return HTTPS_PORT


def service_entry_name(host: str) -> str:
    """`datadog-<host with dots as dashes>`, cut to a valid object name (63 characters).

    Not MD101's `datadog-intake`: applying it must not replace a ServiceEntry the input may
    already have under that name for other hosts.
    """
    name = "datadog-" + re.sub(r"[^a-z0-9-]+", "-", host.lower()).strip("-")
    return name[:63].rstrip("-")


def intake_remediation(ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
    """A ServiceEntry for the host the lines name when they mean it is blocked; else words."""
    ref = ctx.ref(workload)
    blocked = [g for g in groups if g.signature.id in SERVICE_ENTRY_SIGNATURES and intake_host(g)]
    if blocked:
        group = blocked[0]
        host, port = str(intake_host(group)), intake_port(group)
        info = mesh_info(ctx)
        entry = service_entry_manifest(
            service_entry_name(host),
            ref.namespace,
            [host],
            [(port, "TLS")],
            api_version=service_entry_api_version(info),
            export_to_namespaces=(".",) if service_entry_has_export_to(info) else None,
        )
        return apply_manifests(
            f"Let {ref}'s pods reach {host}:{port} through their sidecar: ServiceEntry "
            f"{ref.namespace}/{entry['metadata']['name']} (MESH_EXTERNAL, TLS {port}). If a "
            f"ServiceEntry should cover {host} already, check its hosts, ports and exportTo "
            "instead.",
            [entry],
            safe=False,
            alternatives=('Or take the agent out of the mesh (sidecar.istio.io/inject: "false" on its pod template).',),
        )
    lead = groups[0]
    return Remediation(
        summary=f"{lead.signature.title}. {lead.message}",
        commands=(logs_command(ref.namespace, lead),),
    )


def logs_command(namespace: str, group: MatchGroup) -> str:
    """`kubectl logs` for the first sample line's container (with --previous where it was)."""
    if not group.samples:
        return f"kubectl -n {namespace} logs <pod>"
    sample = group.samples[0]
    container = sample.container.removesuffix(PREVIOUS)
    previous = " --previous" if sample.container.endswith(PREVIOUS) else ""
    return f"kubectl -n {namespace} logs {sample.pod} -c {container}{previous}"


class IntakeLogRule(LogRule):
    """A log rule about traffic to the Datadog intake: one finding per host, a ServiceEntry as fix."""

    families = frozenset({"egress"})

    def host(self, group: MatchGroup) -> str | None:
        """The intake host the lines name, which buckets them."""
        return intake_host(group)

    def bucket(self, group: MatchGroup) -> Any:
        """One finding per intake host; lines without a host each on their own."""
        host = self.host(group)
        return host if host else (group.signature.id, group.key)

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """A ServiceEntry for the host the lines name, when they mean it is blocked."""
        return intake_remediation(ctx, workload, groups)


class AgentIntakeUnreachable(IntakeLogRule):
    """MD601."""

    id = "MD601"
    title = "The agent's log shows its traffic to the Datadog intake does not get through"
    control_plane = True
    inputs = inputs(
        "DaemonSet",
        "Deployment",
        optional=["Pod", "ReplicaSet"],
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


class SidecarDropsIntakeTraffic(IntakeLogRule):
    """MD605."""

    id = "MD605"
    title = "The agent's sidecar drops or fails its traffic to the Datadog intake"
    source = SIDECAR
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


# -- MD602: API key -----------------------------------------------------------------------------


class ApiKeyRejected(LogRule):
    """MD602."""

    id = "MD602"
    title = "The Datadog intake rejects the agent's API key"
    families = frozenset({"agent-api-key"})
    inputs = inputs(
        "DaemonSet",
        "Deployment",
        # DD_SITE may come from a ConfigMap or an envFrom Secret (its key names only)
        optional=["Pod", "ReplicaSet", "ConfigMap", "Secret"],
        logs=["agent", SIDECAR],
    )
    docs = RuleDocs(
        what="Agent log lines that say the API key is invalid (`API Key invalid, dropping "
        "transaction`, HTTP 403), that no valid key was found, or that no key is configured. One "
        "finding per agent workload.",
        why="A 403 means the network path to the intake works: this is not a mesh or egress "
        "problem, and adding ServiceEntries will not bring the data back. The key is wrong, "
        "revoked, or belongs to an organisation on another Datadog site than DD_SITE.",
        fix="Check the key in the Secret DD_API_KEY reads against the organisation of the "
        "agent's DD_SITE (Organization Settings > API Keys), replace it there, and restart the "
        "agent pods.",
        references=(
            "https://docs.datadoghq.com/account_management/api-app-keys/",
            "https://docs.datadoghq.com/getting_started/site/",
        ),
    )

    def bucket(self, group: MatchGroup) -> Any:
        """All of a workload's API-key lines make one finding."""
        return self.id

    def group_finding(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Finding:
        """One finding saying it is the key, not the network."""
        ref = ctx.ref(workload)
        site = datadog_site(ctx, workload)
        hosts = sorted({str(g.values["host"]) for g in groups if g.values.get("host")})
        lead = groups[0]
        # The 403 signature's own message says the path works; the others need saying it.
        path = "" if hosts else " This is an API-key problem, not an egress one."
        finding = self.finding(
            f"{ref} (DD_SITE {site}): {lead.message}{path} {seen_words(lead)}{also_words(groups[1:])}",
            objects=group_objects(ctx, workload, groups),
            evidence=group_evidence(groups),
            remediation=self.remediation(ctx, workload, groups),
            severity=lead.signature.severity,
        )
        return _supporting(finding, "agent-api-key")

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """Replace the key (or the site), restart the pods."""
        ref = ctx.ref(workload)
        site = datadog_site(ctx, workload)
        return Remediation(
            summary=f"Replace DD_API_KEY of {ref} with a valid API key of the organisation on "
            f"{site} (in the Secret it reads), then restart the agent pods. If the key is right, "
            "DD_SITE names the wrong site.",
            commands=(f"kubectl -n {ref.namespace} rollout restart {ref.kind.lower()}/{ref.name}",),
            safe=False,
        )


# -- MD603: the istio check ---------------------------------------------------------------------

#: Mixer's telemetry Service (istio/istio release-1.0 to 1.4 charts/mixer), whose port
#: `MESH_PORT_MIXER` its prometheus adapter serves.
MIXER_SERVICE = "istio-telemetry"


def service_of_host(ctx: Context, host: str, namespace: str) -> ObjectRef | None:
    """The Service a host names (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`), when it exists."""
    parts = host.lower().rstrip(".").split(".")
    if len(parts) > 2 and parts[2] != "svc":
        return None
    name, ns = parts[0], (parts[1] if len(parts) > 1 else namespace)
    if ctx.get("Service", ns, name) is None:
        return None
    return ObjectRef("Service", ns, name)


class IstioCheckCannotScrape(LogRule):
    """MD603."""

    id = "MD603"
    title = "The agent's log shows the istio check failing"
    families = frozenset({"telemetry", "check-config"})
    control_plane = True
    inputs = inputs(
        "DaemonSet",
        "Deployment",
        optional=["Pod", "ReplicaSet", "Service"],
        logs=["agent", SIDECAR, TELEMETRY],
    )
    docs = RuleDocs(
        what="Agent log lines of the istio check: its endpoint refuses connections, does not "
        "resolve, times out, resets the connection, answers 5xx or 404, or its configuration "
        "names no usable endpoint or cannot be loaded. One finding per agent workload, family "
        "(telemetry or check configuration) and endpoint. Also Mixer's log (istio-telemetry, "
        "Istio < 1.5) saying its prometheus adapter did not start, its metrics server on 42422 "
        "stopped, or a scrape got only part of the istio_* metrics: one finding per Mixer "
        "Deployment and handler.",
        why="The check then sends no Istio metrics. When a telemetry or check-config rule "
        "(MD2xx, MD3xx) explains the lines on the same agent or the same Service, they are shown "
        "there; alone, they point at something the input does not show.",
        fix="For connection errors: the Service and port the line names must exist for this "
        "Istio version and have ready endpoints, and nothing (NetworkPolicy, STRICT mTLS) may "
        "stop the agent's scrape. For 404 and configuration errors: rewrite the check's "
        "conf.yaml for the mesh's version.",
        references=(
            "https://docs.datadoghq.com/integrations/istio/",
            "https://istio.io/latest/docs/ops/deployment/requirements/#ports-used-by-istio",
        ),
    )

    def bucket(self, group: MatchGroup) -> Any:
        """One finding per family and endpoint (host and port)."""
        values = group.values
        if values.get("host"):
            return (group.signature.supports, values.get("host"), values.get("port"))
        return (group.signature.id, group.key)

    def targets(self, ctx: Context, ref: ObjectRef, group: MatchGroup) -> list[ObjectRef]:
        """The Service the failing endpoint names (Mixer's own lines: istio-telemetry), if any."""
        host = group.values.get("host")
        if group.signature.source == "mixer":
            host = MIXER_SERVICE
        service = service_of_host(ctx, host, ref.namespace) if host else None
        return [service] if service is not None else []

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """What to check for the failing endpoint or configuration."""
        lead = groups[0]
        ref = ctx.ref(workload)
        if lead.signature.source in CONTROL_PLANE_SOURCES:
            return Remediation(
                summary=f"{lead.signature.title}: fix the handler the line names (or remove "
                f"it), then restart {ref} so that it serves istio_* metrics on "
                f"{MESH_PORT_MIXER} again.",
                commands=(
                    logs_command(ref.namespace, lead),
                    f"kubectl -n {ref.namespace} rollout restart {ref.kind.lower()}/{ref.name}",
                ),
            )
        host, port = lead.values.get("host"), lead.values.get("port")
        if lead.signature.supports == "telemetry" and host:
            parts = host.split(".")
            service, namespace = parts[0], (parts[1] if len(parts) > 1 else ref.namespace)
            return Remediation(
                summary=f"Check that {host}:{port} is an endpoint of this Istio version, that "
                f"Service {namespace}/{service} exposes port {port} with ready endpoints, and "
                "that no NetworkPolicy or STRICT mTLS stops the agent's scrape.",
                commands=(
                    f"kubectl -n {namespace} get service {service} -o yaml",
                    f"kubectl -n {namespace} get endpoints {service} -o yaml",
                ),
            )
        pod = lead.samples[0].pod if lead.samples else "<pod>"
        container = lead.samples[0].container.removesuffix(PREVIOUS) if lead.samples else "agent"
        return Remediation(
            summary=f"{lead.signature.title}: rewrite the istio check's conf.yaml (in the "
            f"ConfigMap mounted at conf.d/istio.d of {ref}) for the mesh's version.",
            commands=(f"kubectl -n {ref.namespace} exec {pod} -c {container} -- agent configcheck",),
        )


# -- MD604: RBAC --------------------------------------------------------------------------------


def missing_permission(values: Mapping[str, str | None]) -> str:
    """The permission a denial names: `list pods (API group "") at the cluster scope`.

    Kubelet denials (they name a subresource) have no scope; API server ones are cluster-wide
    unless they name a namespace.
    """
    resource = str(values.get("resource") or "-")
    kubelet = "subresource" in values
    if values.get("subresource"):
        resource += f"/{values['subresource']}"
    group = values.get("api_group")
    where = f' (API group "{group}")' if "api_group" in values and group is not None else ""
    if values.get("namespace"):
        scope = f" in namespace {values['namespace']}"
    else:
        scope = "" if kubelet else " at the cluster scope"
    return f"{values.get('verb') or '-'} {resource}{where}{scope}"


def can_i(values: Mapping[str, str | None]) -> str:
    """The `kubectl auth can-i` command that asks the question the denied request asked."""
    resource = str(values.get("resource") or "")
    if values.get("api_group"):
        resource += f".{values['api_group']}"
    parts = ["kubectl auth can-i", str(values.get("verb") or "get"), resource]
    if values.get("subresource"):
        parts.append(f"--subresource={values['subresource']}")
    if values.get("namespace"):
        parts.append(f"-n {values['namespace']}")
    elif "subresource" not in values:
        parts.append("--all-namespaces")
    if values.get("user"):
        parts.append(f"--as={values['user']}")
    return " ".join(parts)


class AgentForbidden(LogRule):
    """MD604."""

    id = "MD604"
    title = "The agent's log shows the API server or the kubelet denying it"
    families = frozenset({"rbac"})
    docs = RuleDocs(
        what="Agent log lines where the API server (`... is forbidden: User ... cannot list "
        "resource ...`, both wordings) or the kubelet (`Forbidden (user=..., verb=..., "
        "resource=..., subresource=...)`) denied the agent's service account. One finding per "
        "agent workload, user and permission, which the finding names.",
        why="Without these permissions the agent has no Kubernetes tags, events, leader election "
        "or kubelet metrics. When an RBAC rule (MD4xx) explains the denial on the same agent, "
        "the lines are shown there; alone, the RBAC objects are outside the input (a dump).",
        fix="Grant the permission named to the user named (the agent's service account) in the "
        "ClusterRole bound to it; the `kubectl auth can-i` command given asks the same question.",
        references=(
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/",
            "https://docs.datadoghq.com/containers/kubernetes/installation/",
        ),
    )

    def message(self, group: MatchGroup) -> str:
        """Who denied whom which permission, then the signature's message."""
        values = group.values
        who = "the kubelet" if "subresource" in values else "the API server"
        user = values.get("user") or "the agent"
        return f"{who} denies {user} to {missing_permission(values)}: no role bound to it grants that permission."

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """Which permission to grant to whom, and the question to ask the API server."""
        values = groups[0].values
        return Remediation(
            summary=f"Grant {missing_permission(values)} to {values.get('user') or 'the agent'}"
            " in the ClusterRole bound to it (MD401-MD405 say which binding or role is wrong).",
            commands=(can_i(values),),
        )


RULES: list[type[Rule]] = [
    AgentIntakeUnreachable,
    ApiKeyRejected,
    IstioCheckCannotScrape,
    AgentForbidden,
    SidecarDropsIntakeTraffic,
]
