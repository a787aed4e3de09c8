"""MD102: a ServiceEntry or Sidecar almost lets the agent's intake traffic out.

Near misses: hosts of another Datadog site, a missing host, port or protocol, an `exportTo` that
leaves out the agent's namespace, or a Sidecar whose egress hosts do not import the entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.datadog.agent import RequiredEndpoint
from meshdoctor.datadog.intake_egress import AgentEgress, Loss, losses, service_entry_protocol
from meshdoctor.datadog.sites import site_of_host
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.egress import (
    export_to,
    exported_to,
    host_matches,
    port_protocol,
    protocol_compatible,
)
from meshdoctor.istio.mesh import REGISTRY_ONLY
from meshdoctor.istio.service_entry_visibility import default_export_to, sidecar_loads
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.model import Category, Evidence, Finding, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .meshed_agents import (
    INTAKE_KINDS,
    INTAKE_OPTIONAL_KINDS,
    consequence_words,
    describe_endpoints,
    meshed_agents,
    version_evidence,
    version_words,
)

# Near-miss kinds, in the order istiod checks them.
WRONG_SITE = "wrong-site"
MISSING_HOST = "missing-host"
WRONG_PORT = "wrong-port"
WRONG_PROTOCOL = "wrong-protocol"
NOT_EXPORTED = "not-exported"
SIDECAR_HIDDEN = "sidecar-hidden"


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


#: Port-name prefixes that Kubernetes Service conventions read as a protocol. They do not set a
#: ServiceEntry port's protocol (only `protocol` does), but a corrected port keeps no name that
#: says otherwise, so the fix reads true.
_PROTOCOL_NAME_PREFIXES = ("https", "http2", "http", "grpc-web", "grpc", "tls", "tcp", "mongo", "redis", "mysql")


def _name_reads_as_other_protocol(name: str, protocol: str) -> bool:
    lowered = name.lower()
    for prefix in _PROTOCOL_NAME_PREFIXES:
        if lowered == prefix or lowered.startswith(prefix + "-"):
            return prefix.upper() != protocol
    return False


def _port_number(port: Mapping[str, Any]) -> int | None:
    try:
        return int(port.get("number"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _key(obj: KubeObject) -> tuple[str, str, str]:
    return (str(obj.get("kind")), namespace_of(obj), name_of(obj))


def near_misses(ctx: Context, state: AgentEgress) -> list[NearMiss]:
    """The near misses that keep the agent's endpoints out, grouped by object and kind.

    Under REGISTRY_ONLY every near miss of an uncovered endpoint counts. Under ALLOW_ANY only a
    wrong protocol does, and only when the agent's sidecar loads the entry: a port declared HTTP
    makes the sidecar parse the agent's TLS as plaintext, whatever the policy.
    """
    default = default_export_to(ctx, state.revision)
    grouped: dict[tuple[str, tuple[str, str, str], tuple[str, str, str]], NearMiss] = {}
    for endpoint_state in state.endpoints:
        coverage = endpoint_state.coverage
        if endpoint_state.captured is not True or coverage is None or coverage.covered:
            continue
        for entry, _why in coverage.near_misses:
            kind = near_miss_kind(entry, endpoint_state.endpoint, state.namespace, default)
            if state.policy != REGISTRY_ONLY and (
                kind != WRONG_PROTOCOL
                or not sidecar_loads(entry, state.namespace, coverage.sidecar, default, endpoint_state.endpoint.port)
            ):
                continue
            target = coverage.sidecar if kind == SIDECAR_HIDDEN and coverage.sidecar else entry
            group = (kind, _key(target), _key(entry))
            miss = grouped.setdefault(group, NearMiss(kind, target, entry))
            if endpoint_state.endpoint not in miss.endpoints:
                miss.endpoints.append(endpoint_state.endpoint)
    order = [WRONG_SITE, MISSING_HOST, WRONG_PORT, WRONG_PROTOCOL, NOT_EXPORTED, SIDECAR_HIDDEN]
    return sorted(grouped.values(), key=lambda m: (order.index(m.kind), _key(m.target), _key(m.entry)))


# -- remediation -----------------------------------------------------------------------------------


def corrected_service_entry(
    entry: KubeObject,
    endpoints: Sequence[RequiredEndpoint],
    namespace: str,
    default: Sequence[str],
    speaks: Sequence[RequiredEndpoint] = (),
) -> dict[str, Any]:
    """The whole ServiceEntry, corrected so that it covers every endpoint for `namespace`.

    Hosts of another Datadog site move to the agent's site, missing hosts are added, missing ports
    added, ports of an incompatible protocol get the agent's, the agent's namespace is added to
    `exportTo`, and a wildcard host gets resolution NONE. A TCP port without addresses where the
    agent (`speaks`: every endpoint it uses) talks TLS becomes TLS. Every other field is kept.
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
        protocol = service_entry_protocol(endpoint)
        if same:
            same[0]["protocol"] = protocol
            if _name_reads_as_other_protocol(str(same[0].get("name") or ""), protocol):
                same[0]["name"] = _unique_name(f"{protocol.lower()}-{endpoint.port}", names)
            continue
        ports.append(
            {
                "number": endpoint.port,
                "name": _unique_name(f"{protocol.lower()}-{endpoint.port}", names),
                "protocol": protocol,
            }
        )
    if not spec.get("addresses"):
        # Istio's analyzer warns on a TCP (or unset) port without addresses (IST0134,
        # istio/istio@0a617ca9 pkg/config/analysis/analyzers/serviceentry/protocoladdresses.go):
        # the port then matches any address. Where the agent speaks TLS there, say TLS (SNI).
        for port in ports:
            if str(port.get("protocol") or "TCP").upper() != "TCP":
                continue
            speaking = [
                e for e in (*endpoints, *speaks) if e.port == _port_number(port) and service_entry_protocol(e) != "TCP"
            ]
            if speaking:
                port["protocol"] = service_entry_protocol(speaking[0])
                if _name_reads_as_other_protocol(str(port.get("name") or ""), port["protocol"]):
                    port["name"] = _unique_name(f"{port['protocol'].lower()}-{port.get('number')}", names)
    for port in ports:
        if not port.get("name"):
            port["name"] = _unique_name(f"{str(port.get('protocol') or 'tcp').lower()}-{port.get('number')}", names)
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
    entry_ns = namespace_of(entry)
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


# -- the rule --------------------------------------------------------------------------------------

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
    inputs = inputs(*INTAKE_KINDS, optional=INTAKE_OPTIONAL_KINDS, logs=["agent"])
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
        for state, _info in meshed_agents(ctx):
            lost = losses(state)
            misses = []
            for miss in near_misses(ctx, state):
                counted = [e for e in miss.endpoints if e in lost or state.policy != REGISTRY_ONLY]
                if counted:
                    misses.append(NearMiss(miss.kind, miss.target, miss.entry, counted))
            if not misses:
                continue
            default = default_export_to(ctx, state.revision)
            per_entry: dict[tuple[str, str, str], list[RequiredEndpoint]] = {}
            for miss in misses:
                if miss.kind != SIDECAR_HIDDEN:
                    bucket = per_entry.setdefault(_key(miss.entry), [])
                    bucket.extend(e for e in miss.endpoints if e not in bucket)
            for miss in misses:
                severity = max((lost[e].severity for e in miss.endpoints if e in lost), default=self.severity)
                yield self._finding(ctx, state, miss, per_entry.get(_key(miss.entry), []), default, severity, lost)

    def _finding(
        self,
        ctx: Context,
        state: AgentEgress,
        miss: NearMiss,
        entry_endpoints: Sequence[RequiredEndpoint],
        default: Sequence[str],
        severity: Severity,
        lost: Mapping[RequiredEndpoint, Loss],
    ) -> Finding:
        workload = ctx.ref(state.workload)
        target = ctx.ref(miss.target)
        entry = ctx.ref(miss.entry)
        spec = miss.entry.get("spec") or {}
        hosts = [str(h) for h in spec.get("hosts") or []]
        eps = describe_endpoints(miss.endpoints)
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
        notes = sorted({lost[e].note for e in miss.endpoints if e in lost and lost[e].note})
        detail = detail[:-1] + "".join(f"; {n}" for n in notes) + consequence_words(severity) + "."
        message = f"{words[0].upper()}{words[1:]}: {detail}{version_words(state.release)}"
        evidence.extend(version_evidence(ctx, state, evidence))
        if miss.kind == SIDECAR_HIDDEN:
            fixed = corrected_sidecar(miss.target, miss.entry, miss.endpoints)
            summary = (
                f"Add {entry.namespace}/<host> for the intake to the egress "
                f"hosts of {target} (the whole Sidecar, every other field kept)."
            )
        else:
            fixed = corrected_service_entry(
                miss.entry, entry_endpoints, state.namespace, default, speaks=[s.endpoint for s in state.endpoints]
            )
            summary = (
                f"Replace {entry} with the corrected whole object (every other field kept); it "
                f"fixes every near miss meshdoctor found on it for {workload}."
            )
        return self.finding(
            message,
            objects=[target, workload] if target == entry else [target, entry, workload],
            evidence=evidence,
            remediation=apply_manifests(summary, [fixed], safe=miss.kind not in (SIDECAR_HIDDEN,)),
            severity=severity,
        )
