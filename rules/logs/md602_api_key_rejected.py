"""MD602: the Datadog intake rejects the agent's API key (never joined: no structural rule sees it)."""

from __future__ import annotations

from typing import Any

from meshdoctor.datadog.agent import datadog_site
from meshdoctor.logs.scanner import MatchGroup
from meshdoctor.logs.workload_logs import SIDECAR
from meshdoctor.model import Finding, Remediation
from meshdoctor.rule import Context, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .log_rule import (
    WORKLOAD_KINDS,
    LogRule,
    also_words,
    group_evidence,
    group_objects,
    restart_commands,
    seen_words,
    supporting,
)


class ApiKeyRejected(LogRule):
    """MD602."""

    id = "MD602"
    title = "The Datadog intake rejects the agent's API key"
    families = frozenset({"agent-api-key"})
    inputs = inputs(
        # DD_SITE may come from a ConfigMap or an envFrom Secret (its key names only)
        optional=[*WORKLOAD_KINDS, "Pod", "ReplicaSet", "ConfigMap", "Secret"],
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
        return supporting(finding, "agent-api-key")

    def remediation(self, ctx: Context, workload: KubeObject, groups: list[MatchGroup]) -> Remediation:
        """Replace the key (or the site), restart the pods."""
        ref = ctx.ref(workload)
        site = datadog_site(ctx, workload)
        return Remediation(
            summary=f"Replace DD_API_KEY of {ref} with a valid API key of the organisation on "
            f"{site} (in the Secret it reads), then restart the agent pods. If the key is right, "
            "DD_SITE names the wrong site.",
            commands=restart_commands(ref),
            safe=False,
        )
