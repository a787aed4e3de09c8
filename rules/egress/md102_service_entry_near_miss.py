"""Egress: the agent's traffic to the Datadog intake has to leave through the mesh.

Ids: MD101 intake egress blocked (nothing covers it), MD102 a ServiceEntry or Sidecar almost lets
it out (wrong site, port, protocol, exportTo, Sidecar egress hosts).

Both rules share one model of an agent workload's egress (`agent_egress`): is the pod in the mesh
(`istio_injection.injection_decision`), does its sidecar capture traffic to the internet on the
intake's port (`istio_egress.egress_capture`), does its sidecar drop unknown hosts (mesh config,
Istio 1.0, or a Sidecar's `outboundTrafficPolicy`), and, for every endpoint the agent needs
(`datadog_agent.required_endpoints`), which ServiceEntries cover it or almost do
(`istio_egress.covering_service_entries`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.datadog.agent import (
    RequiredEndpoint,
    agent_container,
    agent_workloads,
    datadog_site,
    required_endpoints,
)
from meshdoctor.datadog.sites import site_of_host
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.egress import (
    DEFAULT_ROOT_NAMESPACE,
    Coverage,
    covering_service_entries,
    effective_outbound_policy,
    effective_sidecar,
    egress_capture,
    export_to,
    exported_to,
    host_matches,
    port_protocol,
    protocol_compatible,
    service_entry_manifest,
    sidecar_imports,
)
from meshdoctor.istio.injection import (
    INJECT_KEY,
    Injection,
    injection_decision,
    injector_configmap,
    sidecar_redirects_traffic,
)
from meshdoctor.istio.mesh import (
    REGISTRY_ONLY,
    MeshInfo,
    mesh_config,
    mesh_config_map,
    mesh_info,
    outbound_traffic_policy,
    service_entry_api_version,
    service_entry_has_export_to,
)
from meshdoctor.kube.workloads import pod_template, pods_of, template_path
from meshdoctor.model import (
    Category,
    Evidence,
    FieldEvidence,
    Finding,
    LogEvidence,
    ObjectRef,
    Remediation,
    Severity,
)
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

#: The agent's forwarder logs this once an endpoint's circuit breaker is open (datadog-agent
#: pkg/forwarder/worker.go `process`: "Too many errors for endpoint '%s': retrying later"), and
#: this for every failed transaction (worker.go: "Error while processing transaction").
FORWARDER_ERRORS = ("Too many errors for endpoint", "Error while processing transaction")

#: Name of the ServiceEntry MD101's remediation writes.
SERVICE_ENTRY_NAME = "datadog-intake"

#: Istio 1.12 made the injector read the `sidecar.istio.io/inject` label (it wins over the
#: annotation); the istiod charts' webhook objectSelectors read the label too
#: (see meshdoctor.istio.injection).
INJECT_LABEL_SINCE = (1, 12)

#: Hosts of in-cluster Services: always in the registry, never blocked by REGISTRY_ONLY.
_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")

#: ServiceEntry port protocol to write for what the agent speaks.
_SE_PROTOCOL = {"HTTPS": "HTTPS", "TLS": "TLS", "HTTP": "HTTP", "TCP": "TCP"}

#: What both intake rules (MD101, MD102) read, and what they read when it is in the input.
_INTAKE_KINDS = ("DaemonSet", "Deployment", "ServiceEntry", "ConfigMap")
_INTAKE_OPTIONAL_KINDS = ("Pod", "Namespace", "ReplicaSet", "MutatingWebhookConfiguration", "Sidecar")

# Near-miss kinds, in the order istiod checks them.
WRONG_SITE = "wrong-site"
MISSING_HOST = "missing-host"
WRONG_PORT = "wrong-port"
WRONG_PROTOCOL = "wrong-protocol"
NOT_EXPORTED = "not-exported"
SIDECAR_HIDDEN = "sidecar-hidden"


# -- the shared model ------------------------------------------------------------------------------


@dataclass
class EndpointState:
    """One endpoint the agent needs, as its sidecar sees it."""

    endpoint: RequiredEndpoint
    captured: bool | None
    """Whether the sidecar intercepts connections to it (egress_capture)."""
    coverage: Coverage | None = None
    """ServiceEntries covering it and near misses; None when not captured."""

    @property
    def blocked(self) -> bool:
        """Captured and covered by nothing."""
        return self.captured is True and self.coverage is not None and not self.coverage.covered


@dataclass
class AgentEgress:
    """What decides whether one agent workload reaches its intake."""

    workload: KubeObject
    subject: KubeObject
    """The first running pod, else the workload itself (its template predicts the pods)."""
    namespace: str
    injection: Injection
    policy: str
    """Effective outbound policy for the agent's pods: REGISTRY_ONLY or ALLOW_ANY."""
    sidecar_policy: KubeObject | None
    """The Sidecar whose `outboundTrafficPolicy` decided the policy, if one did."""
    site: str
    endpoints: list[EndpointState] = field(default_factory=list)


def _is_cluster_host(host: str) -> bool:
    return host.endswith(_CLUSTER_SUFFIXES)


def agent_egress(ctx: Context, workload: KubeObject, info: MeshInfo) -> AgentEgress | None:
    """The egress model of an agent workload whose pods have a redirecting sidecar; else None."""
    pods = pods_of(ctx, workload)
    subject = pods[0] if pods else workload
    injection = injection_decision(ctx, subject, info)
    if injection.injected is not True or sidecar_redirects_traffic(subject) is False:
        return None
    namespace = str((workload.get("metadata") or {}).get("namespace") or "")
    mesh_policy = outbound_traffic_policy(ctx, info)
    policy = effective_outbound_policy(ctx, subject, mesh_policy)
    template = pod_template(subject) or {}
    labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
    root = str(mesh_config(ctx, info).get("rootNamespace") or DEFAULT_ROOT_NAMESPACE)
    sidecar = effective_sidecar(ctx, namespace, labels, root)
    sidecar_mode = (((sidecar or {}).get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
    state = AgentEgress(
        workload=workload,
        subject=subject,
        namespace=namespace,
        injection=injection,
        policy=policy,
        sidecar_policy=sidecar if sidecar_mode else None,
        site=datadog_site(ctx, workload),
    )
    injector = injector_configmap(ctx, info)
    for endpoint in required_endpoints(ctx, workload):
        if _is_cluster_host(endpoint.host):
            continue
        captured = egress_capture(subject, injector, endpoint.port).captured
        coverage = None
        if captured is True:
            coverage = covering_service_entries(
                ctx, namespace, endpoint.host, endpoint.port, endpoint.protocol, client=subject
            )
            coverage = _without_default_egress_misses(coverage)
        state.endpoints.append(EndpointState(endpoint, captured, coverage))
    return state


def _without_default_egress_misses(coverage: Coverage) -> Coverage:
    """A Sidecar without `egress` imports everything (istiod's default listener is `*/*`).

    `istio_egress.sidecar_imports` finds no listener there and reports a near miss; an entry that
    failed only that test does cover the host.
    """
    sidecar = coverage.sidecar
    if sidecar is None or ((sidecar.get("spec") or {}).get("egress")):
        return coverage
    hidden = [e for e, why in coverage.near_misses if "does not import it" in why]
    if not hidden:
        return coverage
    rest = [(e, why) for e, why in coverage.near_misses if "does not import it" not in why]
    return Coverage(True, coverage.entries + hidden, rest, sidecar)


def _agent_states(ctx: Context) -> Iterator[tuple[AgentEgress, MeshInfo]]:
    """Agent workloads in the mesh; `NotChecked` when no agent's mesh membership can be told."""
    info = mesh_info(ctx)
    unknown: list[str] = []
    told = 0
    for workload in agent_workloads(ctx):
        state = agent_egress(ctx, workload, info)
        if state is not None:
            told += 1
            yield state, info
            continue
        pods = pods_of(ctx, workload)
        decision = injection_decision(ctx, pods[0] if pods else workload, info)
        if decision.injected is None and info.era != "unknown":
            unknown.append(f"{ctx.ref(workload)}: {decision.reason}")
        else:
            told += 1
    if unknown and not told:
        raise NotChecked("cannot tell whether the agent's pods get a sidecar: " + "; ".join(unknown))


def _describe(endpoints: Sequence[RequiredEndpoint]) -> str:
    return ", ".join(f"{e.product} {e.address}" for e in endpoints)


# -- evidence --------------------------------------------------------------------------------------

_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")


def _value_at(obj: Any, path: str) -> Any:
    """The value at a dotted path with `[i]` and `['key']` steps, or None."""
    node = obj
    for name, index, key in _PATH_STEP.findall(path):
        if index:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        else:
            node = node.get(key or name) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node


def _injection_evidence(ctx: Context, state: AgentEgress) -> list[Evidence]:
    """The fields that decided the injection (paths as istio_injection writes them)."""
    found: list[Evidence] = []
    for path in state.injection.evidence_paths:
        head, sep, rest = path.partition(":")
        if sep and "/" in head and not head.startswith(("spec", "metadata")):
            parts = head.split("/")
            kind, name = parts[0], parts[-1]
            namespace = parts[1] if len(parts) == 3 else ""
            obj = ctx.get(kind, namespace, name)
            if obj is None:
                continue
            found.append(ctx.field(obj, rest, _value_at(obj, rest)))
        else:
            value = _value_at(state.subject, path)
            if isinstance(value, Mapping) and "image" in value:
                path, value = f"{path}.image", value["image"]
            found.append(ctx.field(state.subject, path, value))
    return found


def _policy_evidence(ctx: Context, state: AgentEgress, info: MeshInfo) -> list[Evidence]:
    if state.sidecar_policy is not None:
        mode = ((state.sidecar_policy.get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
        return [ctx.field(state.sidecar_policy, "spec.outboundTrafficPolicy.mode", mode)]
    found: list[Evidence] = []
    cm = mesh_config_map(ctx, info)
    mode = (mesh_config(ctx, info).get("outboundTrafficPolicy") or {}).get("mode")
    if cm is not None and mode is not None:
        return [ctx.field(cm, "data.mesh.outboundTrafficPolicy.mode", mode)]
    if cm is not None:
        found.append(ctx.field(cm, "data.mesh.outboundTrafficPolicy.mode", None))
    if info.version is not None and info.namespace is not None:
        for deployment in ctx.objects("Deployment"):
            if (deployment.get("metadata") or {}).get("namespace") != info.namespace:
                continue
            template = pod_template(deployment) or {}
            for index, container in enumerate((template.get("spec") or {}).get("containers") or []):
                image = str(container.get("image") or "")
                if image.rsplit("/", 1)[-1].startswith("pilot:"):
                    path = f"{template_path(deployment)}.spec.containers[{index}].image"
                    found.append(ctx.field(deployment, path, image))
                    return found
    return found


def _policy_words(state: AgentEgress, info: MeshInfo) -> str:
    if state.sidecar_policy is not None:
        meta = state.sidecar_policy.get("metadata") or {}
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        return f"Sidecar {name} sets outboundTrafficPolicy REGISTRY_ONLY"
    if info.minor is not None and info.minor < (1, 1):
        return f"Istio {info.version} has no ALLOW_ANY: it drops every host outside the registry"
    return "the mesh's outboundTrafficPolicy is REGISTRY_ONLY"


def _log_evidence(ctx: Context, workload: KubeObject) -> list[Evidence]:
    """The first forwarder error line of each agent pod's log, with the count of such lines."""
    found: list[Evidence] = []
    container = agent_container(pod_template(workload))
    if container is None:
        return found
    name = str(container.get("name", ""))
    for pod in pods_of(ctx, workload):
        meta = pod.get("metadata") or {}
        namespace, pod_name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        log = ctx.logs(namespace, pod_name, name)
        if log is None:
            continue
        first: tuple[int, str] | None = None
        count, last = 0, ""
        for number, line in enumerate(log.lines(), start=1):
            if any(sig in line for sig in FORWARDER_ERRORS):
                count += 1
                last = line
                if first is None:
                    first = (number, line)
        if first is not None:
            found.append(
                LogEvidence(
                    namespace,
                    pod_name,
                    name,
                    first[0],
                    first[1],
                    count=count,
                    first_seen=_timestamp(first[1]),
                    last_seen=_timestamp(last),
                )
            )
    return found


def _timestamp(line: str) -> str | None:
    """The agent's `2019-02-20 10:12:33 UTC` prefix of a log line, or None."""
    head = line.split(" | ", 1)[0].strip()
    return head if head[:4].isdigit() and len(head) >= 19 else None


# -- MD101 -----------------------------------------------------------------------------------------


_VERSIONED_HOST = re.compile(r"^\d+-\d+-\d+-app\.agent\.(?P<site>.+)$")


def _upgrade_proof(host: str) -> str:
    """`7-60-1-app.agent.<site>` -> `*.agent.<site>`: an entry that survives agent upgrades."""
    match = _VERSIONED_HOST.match(host)
    return f"*.agent.{match.group('site')}" if match else host


def intake_service_entry(namespace: str, endpoints: Sequence[RequiredEndpoint], info: MeshInfo) -> dict[str, Any]:
    """The ServiceEntry that lets an agent in `namespace` reach all its endpoints, for the era.

    The versioned metrics host becomes `*.agent.<site>` (it changes with every agent upgrade; the
    wildcard also covers `trace.agent.<site>`), so the entry has resolution NONE: the sidecar
    forwards to the address the agent resolved, matched by SNI on the TLS/HTTPS ports.
    """
    hosts = list(dict.fromkeys(_upgrade_proof(e.host) for e in endpoints))
    for wildcard in [h for h in hosts if h.startswith("*.")]:
        hosts = [h for h in hosts if h == wildcard or not host_matches(wildcard, h)]
    ports: dict[int, str] = {}
    for endpoint in sorted(endpoints, key=lambda e: e.protocol != "HTTPS"):
        ports.setdefault(endpoint.port, _SE_PROTOCOL.get(endpoint.protocol, "TLS"))
    return service_entry_manifest(
        SERVICE_ENTRY_NAME,
        namespace,
        hosts,
        sorted(ports.items()),
        api_version=service_entry_api_version(info),
        export_to_namespaces=(".",) if service_entry_has_export_to(info) else None,
    )


def without_sidecar(workload: KubeObject, info: MeshInfo) -> dict[str, Any]:
    """The whole workload with its pod template opted out of injection, as the mesh honours it."""
    fixed = clean_copy(workload)
    template = pod_template(fixed)
    if template is None:
        return fixed
    meta = template.setdefault("metadata", {})
    meta.setdefault("annotations", {})[INJECT_KEY] = "false"
    if info.minor is None or info.minor >= INJECT_LABEL_SINCE:
        meta.setdefault("labels", {})[INJECT_KEY] = "false"
    return fixed


class IntakeEgressBlocked(Rule):
    """MD101."""

    id = "MD101"
    title = "The mesh blocks the agent's traffic to the Datadog intake"
    category = Category.EGRESS
    severity = Severity.ERROR
    inputs = inputs(*_INTAKE_KINDS, optional=_INTAKE_OPTIONAL_KINDS, logs=["agent"])
    docs = RuleDocs(
        what="An agent workload whose pods run an Istio sidecar (or will get one: the injection "
        "webhook selects the namespace and the pod does not opt out) that captures their traffic "
        "to the internet (`includeOutboundIPRanges` `*`, the default), in a mesh that drops "
        "traffic to hosts outside its registry (Istio 1.0, whose sidecar knows no ALLOW_ANY; "
        "`outboundTrafficPolicy.mode: REGISTRY_ONLY` in the mesh config; or a Sidecar resource "
        "with that mode for the agent's pods), where at least one intake endpoint the agent needs "
        "(metrics, logs over HTTPS or TCP, traces, process, orchestrator, remote configuration, "
        "per its DD_SITE, version and env) is covered by no ServiceEntry at all. Endpoints that "
        "a ServiceEntry almost covers are MD102's.",
        why="The sidecar sends the agent's connections to the BlackHole cluster: no metrics, "
        "events, service checks, logs or traces reach Datadog, and the agent log fills with "
        "`Too many errors for endpoint ... retrying later`. The pods themselves look healthy.",
        fix="Apply the ServiceEntry meshdoctor writes (location MESH_EXTERNAL, in the agent's "
        "namespace, exported only there, the right apiVersion for the mesh's era) for the hosts "
        "and ports of the agent's site and products; a wildcard host needs resolution NONE. Or "
        "take the agent out of the mesh: the second manifest is the workload with "
        '`sidecar.istio.io/inject: "false"` on its pod template (label and annotation on '
        "Istio 1.12+, annotation before) — it then also leaves mTLS, so review before applying.",
        references=(
            "https://docs.datadoghq.com/agent/configuration/network/",
            "https://docs.datadoghq.com/agent/logs/log_transport/",
            "https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/",
            "https://istio.io/latest/docs/reference/config/networking/service-entry/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload with intake endpoints that nothing lets out."""
        for state, info in _agent_states(ctx):
            if state.policy != REGISTRY_ONLY:
                continue
            blocked = [
                s.endpoint
                for s in state.endpoints
                if s.blocked and not s.coverage.near_misses  # type: ignore[union-attr]
            ]
            if not blocked:
                continue
            ref = ctx.ref(state.workload)
            evidence: list[Evidence] = _injection_evidence(ctx, state)
            evidence.extend(_policy_evidence(ctx, state, info))
            for endpoint in blocked:
                evidence.append(
                    FieldEvidence(
                        ObjectRef("ServiceEntry", state.namespace, "*"),
                        "spec.hosts",
                        f"<absent>: no ServiceEntry visible from namespace {state.namespace} "
                        f"covers {endpoint.address} ({endpoint.product}: {endpoint.why})",
                    )
                )
            evidence.extend(_log_evidence(ctx, state.workload))
            needed = [s.endpoint for s in state.endpoints if s.captured is True]
            yield self.finding(
                f"{ref} runs in the mesh ({state.injection.reason}) and "
                f"{_policy_words(state, info)}; no ServiceEntry covers {len(blocked)} of the "
                f"{len(needed)} intake endpoints it needs for {state.site}: {_describe(blocked)}.",
                objects=[ref],
                evidence=evidence,
                remediation=self._remediation(ctx, state, info, needed),
            )

    @staticmethod
    def _remediation(
        ctx: Context, state: AgentEgress, info: MeshInfo, needed: Sequence[RequiredEndpoint]
    ) -> Remediation:
        service_entry = intake_service_entry(state.namespace, needed, info)
        hosts = service_entry["spec"]["hosts"]
        ref = ctx.ref(state.workload)
        wildcard = (
            " The versioned metrics host is written *.agent." + state.site + " so that agent "
            "upgrades keep working; a wildcard host needs resolution NONE."
            if any(h.startswith("*") for h in hosts)
            else ""
        )
        how = "label and annotation" if info.minor is None or info.minor >= INJECT_LABEL_SINCE else "annotation"
        return apply_manifests(
            f"ServiceEntry {state.namespace}/{SERVICE_ENTRY_NAME} (MESH_EXTERNAL) for "
            f"{', '.join(hosts)}, the {state.site} intake of the agent's products.{wildcard} "
            f'Or, instead, {ref} with sidecar.istio.io/inject: "false" ({how}) on its pod '
            "template, which takes the agent out of the mesh.",
            [service_entry],
            alternative_objects=[without_sidecar(state.workload, info)],
            safe=False,
            alternatives=(
                f"Or let the agent's pods bypass the sidecar for the intake only, with the pod "
                f"annotation traffic.sidecar.istio.io/excludeOutboundPorts "
                f"({','.join(str(p) for p in sorted({e.port for e in needed}))}).",
            ),
        )


# -- MD102 -----------------------------------------------------------------------------------------


@dataclass
class NearMiss:
    """An object that almost lets an agent reach some endpoints, and what is wrong with it."""

    kind: str
    target: KubeObject
    """The ServiceEntry to correct, or the Sidecar for SIDECAR_HIDDEN."""
    entry: KubeObject
    endpoints: list[RequiredEndpoint] = field(default_factory=list)


def near_miss_kind(
    entry: KubeObject,
    endpoint: RequiredEndpoint,
    namespace: str,
    default_export_to: Sequence[str],
) -> str:
    """Why a ServiceEntry does not cover an endpoint, in the order istiod checks it."""
    spec = entry.get("spec") or {}
    hosts = [str(h) for h in spec.get("hosts") or []]
    if not any(host_matches(h, endpoint.host) for h in hosts):
        wanted = site_of_host(endpoint.host)
        others = {site_of_host(h) for h in hosts} - {None, wanted}
        return WRONG_SITE if wanted is not None and others else MISSING_HOST
    ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
    same = [p for p in ports if _port_number(p) == endpoint.port]
    if not same:
        return WRONG_PORT
    if not any(protocol_compatible(port_protocol(p), endpoint.protocol) for p in same):
        return WRONG_PROTOCOL
    if not exported_to(entry, namespace, default_export_to):
        return NOT_EXPORTED
    return SIDECAR_HIDDEN


def _port_number(port: Mapping[str, Any]) -> int | None:
    try:
        return int(port.get("number"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _default_export_to(ctx: Context) -> list[str]:
    configured = mesh_config(ctx).get("defaultServiceExportTo")
    return [str(v) for v in configured] if configured else ["*"]


def _visible(
    entry: KubeObject,
    state: AgentEgress,
    sidecar: KubeObject | None,
    default: Sequence[str],
    port: int,
) -> bool:
    """Whether the agent's sidecar loads the entry: exported to it, imported by its Sidecar."""
    if not exported_to(entry, state.namespace, default):
        return False
    if sidecar is None or not (sidecar.get("spec") or {}).get("egress"):
        return True
    scoped = sidecar
    if (sidecar.get("metadata") or {}).get("namespace") != state.namespace:
        scoped = {
            **sidecar,
            "metadata": {**(sidecar.get("metadata") or {}), "namespace": state.namespace},
        }
    entry_ns = str((entry.get("metadata") or {}).get("namespace") or "")
    return any(sidecar_imports(scoped, entry_ns, str(h), port) for h in (entry.get("spec") or {}).get("hosts") or [])


def _key(obj: KubeObject) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def near_misses(ctx: Context, state: AgentEgress) -> list[NearMiss]:
    """The near misses that keep the agent's endpoints out, grouped by object and kind.

    Under REGISTRY_ONLY every near miss of an uncovered endpoint counts. Under ALLOW_ANY only a
    wrong protocol does, and only when the agent's sidecar loads the entry: a port declared HTTP
    makes the sidecar parse the agent's TLS as plaintext, whatever the policy.
    """
    default = _default_export_to(ctx)
    grouped: dict[tuple[str, tuple[str, str, str], tuple[str, str, str]], NearMiss] = {}
    for endpoint_state in state.endpoints:
        coverage = endpoint_state.coverage
        if endpoint_state.captured is not True or coverage is None or coverage.covered:
            continue
        for entry, _why in coverage.near_misses:
            kind = near_miss_kind(entry, endpoint_state.endpoint, state.namespace, default)
            if state.policy != REGISTRY_ONLY and (
                kind != WRONG_PROTOCOL
                or not _visible(entry, state, coverage.sidecar, default, endpoint_state.endpoint.port)
            ):
                continue
            target = coverage.sidecar if kind == SIDECAR_HIDDEN and coverage.sidecar else entry
            group = (kind, _key(target), _key(entry))
            miss = grouped.setdefault(group, NearMiss(kind, target, entry))
            if endpoint_state.endpoint not in miss.endpoints:
                miss.endpoints.append(endpoint_state.endpoint)
    order = [WRONG_SITE, MISSING_HOST, WRONG_PORT, WRONG_PROTOCOL, NOT_EXPORTED, SIDECAR_HIDDEN]
    return sorted(grouped.values(), key=lambda m: (order.index(m.kind), _key(m.target), _key(m.entry)))


def _se_port_protocol(endpoint: RequiredEndpoint) -> str:
    return _SE_PROTOCOL.get(endpoint.protocol, "TLS")


def corrected_service_entry(
    entry: KubeObject, endpoints: Sequence[RequiredEndpoint], namespace: str, default: Sequence[str]
) -> dict[str, Any]:
    """The whole ServiceEntry, corrected so that it covers every endpoint for `namespace`.

    Hosts of another Datadog site move to the agent's site, missing hosts are added, missing ports
    added, ports of an incompatible protocol get the agent's, the agent's namespace is added to
    `exportTo`, and a wildcard host gets resolution NONE. Every other field is kept.
    """
    fixed = clean_copy(entry)
    spec = fixed.setdefault("spec", {})
    hosts = [str(h) for h in spec.get("hosts") or []]
    for endpoint in endpoints:
        if any(host_matches(h, endpoint.host) for h in hosts):
            continue
        wanted = site_of_host(endpoint.host)
        moved = False
        if wanted is not None:
            for index, host in enumerate(hosts):
                other = site_of_host(host)
                if other is not None and other != wanted:
                    candidate = host[: len(host) - len(other)] + wanted
                    if host_matches(candidate, endpoint.host):
                        hosts[index] = candidate
                        moved = True
                        break
        if not moved:
            hosts.append(endpoint.host)
    spec["hosts"] = list(dict.fromkeys(hosts))
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    names = {str(p.get("name")) for p in ports}
    for endpoint in endpoints:
        same = [p for p in ports if _port_number(p) == endpoint.port]
        if any(protocol_compatible(port_protocol(p), endpoint.protocol) for p in same):
            continue
        protocol = _se_port_protocol(endpoint)
        if same:
            same[0]["protocol"] = protocol
            if port_protocol({"name": same[0].get("name")}) not in ("", protocol):
                same[0]["name"] = _unique_name(f"{protocol.lower()}-{endpoint.port}", names)
            continue
        ports.append(
            {
                "number": endpoint.port,
                "name": _unique_name(f"{protocol.lower()}-{endpoint.port}", names),
                "protocol": protocol,
            }
        )
    spec["ports"] = ports
    if not exported_to(fixed, namespace, default):
        current = [v for v in export_to(fixed, default) if v != "~"]
        spec["exportTo"] = current + [namespace]
    if any(h.startswith("*") for h in spec["hosts"]) and str(spec.get("resolution", "")).upper() == "DNS":
        spec["resolution"] = "NONE"
    return fixed


def _unique_name(name: str, names: set[str]) -> str:
    candidate, n = name, 2
    while candidate in names:
        candidate, n = f"{name}-{n}", n + 1
    names.add(candidate)
    return candidate


def corrected_sidecar(sidecar: KubeObject, entry: KubeObject, endpoints: Sequence[RequiredEndpoint]) -> dict[str, Any]:
    """The whole Sidecar with `<entry namespace>/<entry host>` added to its egress hosts.

    The host goes to the listener of the endpoints' port, else the first one without a port.
    """
    fixed = clean_copy(sidecar)
    listeners = [x for x in (fixed.get("spec") or {}).get("egress") or [] if isinstance(x, dict)]
    entry_ns = str((entry.get("metadata") or {}).get("namespace") or "")
    wanted: list[tuple[int, str]] = []
    for endpoint in endpoints:
        for host in (entry.get("spec") or {}).get("hosts") or []:
            if host_matches(str(host), endpoint.host):
                wanted.append((endpoint.port, f"{entry_ns}/{host}"))
    for port, host in wanted:
        listener = next(
            (x for x in listeners if _port_number(x.get("port") or {}) == port),
            next((x for x in listeners if not x.get("port")), listeners[0] if listeners else None),
        )
        if listener is None:
            continue
        hosts = listener.setdefault("hosts", [])
        if host not in hosts:
            hosts.append(host)
    return fixed


_KIND_WORDS = {
    WRONG_SITE: "lists hosts of another Datadog site",
    MISSING_HOST: "does not list the host",
    WRONG_PORT: "does not declare the port",
    WRONG_PROTOCOL: "declares the port with a protocol that breaks the agent's TLS",
    NOT_EXPORTED: "is not exported to the agent's namespace",
    SIDECAR_HIDDEN: "is not imported by the agent's Sidecar egress hosts",
}


class IntakeServiceEntryNearMiss(Rule):
    """MD102."""

    id = "MD102"
    title = "A ServiceEntry for the Datadog intake does not cover what the agent uses"
    category = Category.EGRESS
    severity = Severity.ERROR
    inputs = inputs(*_INTAKE_KINDS, optional=_INTAKE_OPTIONAL_KINDS)
    docs = RuleDocs(
        what="An agent workload in the mesh whose intake endpoints a ServiceEntry almost covers: "
        "its hosts are another Datadog site's (`*.datadoghq.eu` for an agent on datadoghq.com) or "
        "leave out a host the agent uses; it lacks the port (10516 for TCP logs); it declares "
        "443 as HTTP (or HTTP2/GRPC) although the agent speaks TLS; its `exportTo` leaves out the "
        "agent's namespace; or the agent's Sidecar resource does not import it in `egress.hosts`. "
        "One finding per object and kind. Under ALLOW_ANY only the protocol matters (traffic to "
        "unknown hosts passes anyway, but a port declared HTTP captures the agent's TLS).",
        why="The sidecar treats the intake as unknown (BlackHole under REGISTRY_ONLY) or parses "
        "the agent's TLS handshake as HTTP: payloads are dropped or reset while a ServiceEntry "
        "that looks right is in place, which makes the fault hard to see.",
        fix="Apply the corrected object meshdoctor writes: the whole ServiceEntry with the hosts "
        "of the agent's site, the missing ports, HTTPS/TLS instead of HTTP, the agent's namespace "
        "in exportTo (every other field kept), or the whole Sidecar with the entry's "
        "`<namespace>/<host>` added to its egress hosts.",
        references=(
            "https://istio.io/latest/docs/reference/config/networking/service-entry/",
            "https://istio.io/latest/docs/reference/config/networking/sidecar/",
            "https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/",
            "https://docs.datadoghq.com/agent/configuration/network/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per (object, near-miss kind) per agent workload."""
        for state, _info in _agent_states(ctx):
            misses = near_misses(ctx, state)
            if not misses:
                continue
            default = _default_export_to(ctx)
            per_entry: dict[tuple[str, str, str], list[RequiredEndpoint]] = {}
            for miss in misses:
                if miss.kind != SIDECAR_HIDDEN:
                    bucket = per_entry.setdefault(_key(miss.entry), [])
                    bucket.extend(e for e in miss.endpoints if e not in bucket)
            for miss in misses:
                yield self._finding(ctx, state, miss, per_entry.get(_key(miss.entry), []), default)

    def _finding(
        self,
        ctx: Context,
        state: AgentEgress,
        miss: NearMiss,
        entry_endpoints: Sequence[RequiredEndpoint],
        default: Sequence[str],
    ) -> Finding:
        workload = ctx.ref(state.workload)
        target = ctx.ref(miss.target)
        entry = ctx.ref(miss.entry)
        spec = miss.entry.get("spec") or {}
        hosts = [str(h) for h in spec.get("hosts") or []]
        eps = _describe(miss.endpoints)
        evidence: list[Evidence] = []
        if miss.kind in (WRONG_SITE, MISSING_HOST):
            others = sorted({s for s in (site_of_host(h) for h in hosts) if s and s != state.site})
            detail = (
                f"{entry} lists hosts of {', '.join(others)} ({', '.join(hosts)}) but {workload} "
                f"sends to {state.site}: {eps} not covered."
                if miss.kind == WRONG_SITE
                else f"{entry} lists {', '.join(hosts)}, which does not cover {eps}."
            )
            evidence.append(ctx.field(miss.entry, "spec.hosts", hosts))
        elif miss.kind == WRONG_PORT:
            listed = sorted({_port_number(p) for p in spec.get("ports") or [] if isinstance(p, Mapping)} - {None})  # type: ignore[type-var]
            missing = sorted({e.port for e in miss.endpoints})
            detail = (
                f"{entry} covers the hosts but declares ports "
                f"{', '.join(map(str, listed)) or 'none'}, "
                f"not {', '.join(map(str, missing))}: {eps} not covered."
            )
            evidence.append(ctx.field(miss.entry, "spec.ports", spec.get("ports")))
        elif miss.kind == WRONG_PROTOCOL:
            bad = []
            for index, port in enumerate(spec.get("ports") or []):
                if isinstance(port, Mapping) and _port_number(port) in {e.port for e in miss.endpoints}:
                    bad.append(f"{_port_number(port)}/{port_protocol(port) or 'unset'}")
                    evidence.append(ctx.field(miss.entry, f"spec.ports[{index}].protocol", port.get("protocol")))
            detail = (
                f"{entry} declares {', '.join(bad)} but the agent speaks TLS there: the sidecar "
                f"parses the handshake as plaintext HTTP and the connection fails ({eps})."
            )
        elif miss.kind == NOT_EXPORTED:
            shown = export_to(miss.entry, default)
            detail = (
                f"{entry} covers the intake but is exported to {', '.join(shown)}, not to "
                f"namespace {state.namespace} where {workload} runs: {eps} not covered."
            )
            evidence.append(ctx.field(miss.entry, "spec.exportTo", spec.get("exportTo")))
        else:
            egress_hosts = [
                h
                for listener in (miss.target.get("spec") or {}).get("egress") or []
                if isinstance(listener, Mapping)
                for h in listener.get("hosts") or []
            ]
            detail = (
                f"{target} scopes {workload} and its egress hosts "
                f"({', '.join(map(str, egress_hosts))}) "
                f"do not import {entry}: {eps} not covered."
            )
            evidence.append(ctx.field(miss.target, "spec.egress", (miss.target.get("spec") or {}).get("egress")))
        words = _KIND_WORDS[miss.kind]
        message = f"{words[0].upper()}{words[1:]}: {detail}"
        if miss.kind == SIDECAR_HIDDEN:
            fixed = corrected_sidecar(miss.target, miss.entry, miss.endpoints)
            summary = (
                f"Add {entry.namespace}/<host> for the intake to the egress "
                f"hosts of {target} (the whole Sidecar, every other field kept)."
            )
        else:
            fixed = corrected_service_entry(miss.entry, entry_endpoints, state.namespace, default)
            summary = (
                f"Replace {entry} with the corrected whole object (every other field kept); it "
                f"fixes every near miss meshdoctor found on it for {workload}."
            )
        return self.finding(
            message,
            objects=[target, workload] if target == entry else [target, entry, workload],
            evidence=evidence,
            remediation=apply_manifests(summary, [fixed], safe=miss.kind not in (SIDECAR_HIDDEN,)),
        )


RULES = [IntakeEgressBlocked, IntakeServiceEntryNearMiss]
