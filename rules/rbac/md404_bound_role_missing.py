"""MD404: a binding of the agent's service account refers to a role that does not exist."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent_account import ENV_KINDS, KUBELET_KINDS, AgentAccount, agent_accounts
from meshdoctor.datadog.permission_check import PermissionCheck, check_permissions
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.kube.bootstrap_policy import rbac_evaluator
from meshdoctor.kube.rbac import KINDS as RBAC_KINDS
from meshdoctor.kube.rbac import BindingSubject, MissingRole
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .denied_requests import describe_denied
from .structural_fixes import agent_grants, binding_object, missing_role_fix


class BoundRoleMissing(Rule):
    """MD404."""

    id = "MD404"
    title = "The agent's RBAC binding refers to a role that does not exist"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", *RBAC_KINDS, optional=[*ENV_KINDS, *KUBELET_KINDS])
    docs = RuleDocs(
        what="A ClusterRoleBinding or RoleBinding naming the agent's service account (or the "
        "group `system:serviceaccounts[:<namespace>]`) whose `roleRef` names a ClusterRole or Role "
        "that is not there (or a Role from a ClusterRoleBinding), while the agent lacks "
        "permissions it needs.",
        why="The API server accepts a binding to a role that does not exist and grants nothing "
        "through it: the agent's calls are forbidden as if it were not bound at all. It happens "
        "when the role was renamed, deleted with an old release, or left out of the manifests.",
        fix="Create the role the binding names (meshdoctor writes a ClusterRole granting what the "
        "features the agent uses need, from the Datadog manifests and Helm chart), or point the "
        "binding at the role that exists.",
        references=(
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#rolebinding-and-clusterrolebinding",
            "https://github.com/DataDog/helm-charts/blob/main/charts/datadog/templates/rbac.yaml",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent and binding whose role is missing."""
        evaluator = rbac_evaluator(ctx)
        missing = {m.binding: m for m in evaluator.missing_roles()}
        for account in agent_accounts(ctx):
            entries = [e for e in agent_grants(ctx, account) if e.binding in missing]
            if not entries:
                continue
            check = check_permissions(evaluator, ctx.snapshot.probes, account)
            if not check.denied:
                continue
            seen: set[ObjectRef] = set()
            for entry in entries:
                if entry.binding in seen:
                    continue
                seen.add(entry.binding)
                binding = binding_object(ctx, entry.binding)
                if binding is not None:
                    yield self._finding(ctx, account, entry, binding, missing[entry.binding], check)

    def _finding(
        self,
        ctx: Context,
        account: AgentAccount,
        entry: BindingSubject,
        binding: KubeObject,
        missing: MissingRole,
        check: PermissionCheck,
    ) -> Finding:
        role = missing.role
        if entry.subject.get("kind") == "Group":
            group = entry.subject.get("name")
            subject = f"group {group} (which holds {account.namespace}/{account.name})"
        else:
            subject = f"{account.namespace}/{account.name}"
        manifests, summary = missing_role_fix(account, binding, missing)
        why = "does not exist" if missing.reason == "not found" else f"it cannot use ({missing.reason})"
        return self.finding(
            f"{missing.binding} binds {subject} to {role.kind} "
            f"{role.name}, which {why}: the binding grants nothing and the agent is denied "
            f"{describe_denied(check)}.",
            objects=[missing.binding, role, account.ref],
            evidence=[
                ctx.field(binding, "roleRef.name", role.name),
                ctx.field(binding, "roleRef.kind", role.kind),
                ctx.field(binding, f"subjects[{entry.subject_index}].name", entry.subject.get("name")),
            ],
            remediation=apply_manifests(summary, manifests, safe=False),
        )
