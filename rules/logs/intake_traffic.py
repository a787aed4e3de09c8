"""Log lines about the agent's traffic to the Datadog intake (MD601, MD605): hosts, ports, fix.

Both rules bucket their lines by the intake host they name and, when the lines mean the host is
not let out of the mesh, offer a ServiceEntry for that host and port.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Any

from meshdoctor.datadog.sites import HTTPS_PORT, site_of_host
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.istio.egress import covering_service_entries, service_entry_manifest
from meshdoctor.istio.mesh import mesh_info, service_entry_api_version, service_entry_has_export_to
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.logs.scanner import MatchGroup
from meshdoctor.model import Finding, Remediation, Severity
from meshdoctor.rule import Context
from meshdoctor.snapshot import KubeObject

from .log_rule import AgentLogs, LogRule, logs_command

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
        where = f"{ref.namespace}/{entry['metadata']['name']}"
        if not ref.namespace:  # a log file or flare names no namespace: apply it in the agent's
            del entry["metadata"]["namespace"]
            where = f"{entry['metadata']['name']} in the agent pod's namespace"
        return apply_manifests(
            f"Let {ref}'s pods reach {host}:{port} through their sidecar: ServiceEntry "
            f"{where} (MESH_EXTERNAL, TLS {port}). If a "
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

    def settled(self, ctx: Context, logs: AgentLogs, groups: list[MatchGroup], finding: Finding) -> Finding:
        """Lines older than the ServiceEntry that now covers their host are advice, not a loss."""
        if finding.severity is Severity.INFO:
            return finding
        fixed = predating_fix(ctx, logs.workload, groups)
        if fixed is None:
            return finding
        entry, created, last = fixed
        return dataclasses.replace(
            finding,
            severity=Severity.INFO,
            message=finding.message + f" ServiceEntry {namespace_of(entry)}/{name_of(entry)} covers that "
            f"host now and was created at {created}, after the last of these lines ({last}): they "
            "predate the fix. Check again after the agent has sent data (or restart it) to be sure.",
            remediation=None,
        )


def parsed_time(value: str | None) -> datetime | None:
    """A log line's normalized time (`2019-02-18T10:11:12Z`) or an object's timestamp; None otherwise."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def predating_fix(ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> tuple[KubeObject, str, str] | None:
    """The ServiceEntry that covers the lines' host now and was created after the last of them.

    Failures of a host that a ServiceEntry made after them covers are the past: the agent's
    log keeps them for as long as the pod runs (and `--since` reads them), though the fix came
    later. Returns (entry, its creation time, the last line's time), or None when the lines are
    not all older than such an entry (or a time is not known).
    """
    host = next((h for g in groups if (h := intake_host(g))), None)
    lasts = [parsed_time(g.last_seen) for g in groups]
    if host is None or not lasts or any(t is None for t in lasts):
        return None
    last = max(t for t in lasts if t is not None)
    coverage = covering_service_entries(ctx, namespace_of(workload), host, intake_port(groups[0]), client=workload)
    if not coverage.covered:
        return None
    for entry in coverage.entries:
        created = (entry.get("metadata") or {}).get("creationTimestamp")
        moment = parsed_time(created if isinstance(created, str) else None)
        if moment is not None and moment > last:
            return entry, str(created), max(str(g.last_seen) for g in groups)
    return None
