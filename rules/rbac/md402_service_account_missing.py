"""MD402: the agent DaemonSet names a service account that does not exist."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent_account import ENV_KINDS, KUBELET_KINDS, AgentAccount, agent_accounts
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.kube.service_accounts import DEFAULT_ACCOUNT, lookup_error_events, service_account_manifest
from meshdoctor.model import Category, Evidence, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject


class AgentServiceAccountMissing(Rule):
    """MD402."""

    id = "MD402"
    title = "Agent DaemonSet names a service account that does not exist"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", optional=["ServiceAccount", "Event", *ENV_KINDS, *KUBELET_KINDS])
    docs = RuleDocs(
        what="An agent DaemonSet whose pod template sets `serviceAccountName` (other than "
        "`default`, which every namespace has) to a ServiceAccount that is not in the "
        "DaemonSet's namespace. Without ServiceAccounts in the input (a cluster-info dump), the "
        "DaemonSet's `FailedCreate` events decide; with neither the rule is not checked.",
        why="The ServiceAccount admission plugin refuses every pod of the DaemonSet (`pods is "
        "forbidden: error looking up service account <ns>/<name>`): no agent pod runs on any "
        "node, so nothing at all reaches Datadog. This happens when the agent is moved to a new "
        "namespace and only the DaemonSet and bindings are re-applied.",
        fix="Create the ServiceAccount in the DaemonSet's namespace (meshdoctor writes it); the "
        "DaemonSet controller retries and the pods start. Check that the bindings name the same "
        "namespace (MD403).",
        references=(
            "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/",
            "https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#serviceaccount",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent DaemonSet naming an absent ServiceAccount."""
        accounts = [a for a in agent_accounts(ctx) if a.name != DEFAULT_ACCOUNT]
        if not accounts:
            return
        listed = ctx.unavailable("ServiceAccount") is None
        unknown = []
        for account in accounts:
            events = lookup_error_events(ctx, account.ref, account.name)
            if listed:
                if ctx.get("ServiceAccount", account.namespace, account.name) is not None:
                    continue
            elif not events:
                unknown.append(account)
                continue
            yield self._finding(ctx, account, events, listed)
        if unknown:
            names = ", ".join(f"{a.namespace}/{a.name}" for a in unknown)
            raise NotChecked(
                f"ServiceAccount: {ctx.unavailable('ServiceAccount')}, and no event of the agent "
                f"DaemonSet tells whether {names} exists"
            )

    def _finding(self, ctx: Context, account: AgentAccount, events: list[KubeObject], listed: bool) -> Finding:
        workload = account.workload
        status = workload.get("status") or {}
        evidence: list[Evidence] = [ctx.field(workload, account.field_path, account.field_value)]
        if "desiredNumberScheduled" in status:
            evidence.append(
                ctx.field(
                    workload,
                    "status.currentNumberScheduled",
                    status.get("currentNumberScheduled", 0),
                )
            )
        for event in events[:1]:
            evidence.append(ctx.field(event, "message", event.get("message")))
        where = (
            "is not in the namespace"
            if listed
            else "does not exist (the DaemonSet's events say so; the input has no ServiceAccounts)"
        )
        return self.finding(
            f"{account.ref} runs its pods as service account {account.namespace}/{account.name}, "
            f"which {where}: the API server refuses to create the agent pods (error looking up "
            "service account).",
            objects=[account.ref, ObjectRef("ServiceAccount", account.namespace, account.name)],
            evidence=evidence,
            remediation=apply_manifests(
                f"Create ServiceAccount {account.namespace}/{account.name}; the DaemonSet "
                "controller then creates the agent pods.",
                [service_account_manifest(account.namespace, account.name)],
                safe=True,
            ),
        )
