"""MD403: an RBAC binding names the agent's service account in another namespace."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent_account import (
    ENV_KINDS,
    KUBELET_KINDS,
    AgentAccount,
    agent_accounts,
    agent_service_accounts,
)
from meshdoctor.datadog.permission_check import PermissionCheck, check_permissions
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.kube.bootstrap_policy import rbac_evaluator
from meshdoctor.kube.rbac import KINDS as RBAC_KINDS
from meshdoctor.kube.rbac import BindingSubject
from meshdoctor.model import Category, Finding, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .denied_requests import describe_denied
from .structural_fixes import binding_object, corrected_binding, misnamespaced_subjects


class BindingSubjectWrongNamespace(Rule):
    """MD403."""

    id = "MD403"
    title = "RBAC binding names the agent's service account in another namespace"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", *RBAC_KINDS, optional=[*ENV_KINDS, *KUBELET_KINDS])
    docs = RuleDocs(
        what="A ClusterRoleBinding (or a RoleBinding of the agent's namespace) whose "
        "ServiceAccount subject has the agent's account name but another namespace (or, in a "
        "ClusterRoleBinding, no namespace), while the agent lacks permissions it needs. A subject "
        "that is another agent's own account is left alone.",
        why="RBAC matches a service account by namespace and name "
        "(`system:serviceaccount:<ns>:<name>`): the binding grants nothing to the agent. It "
        "happens when the agent moves from `default` to its own namespace and the binding is "
        "re-applied unchanged. A ServiceAccount subject without a namespace in a "
        "ClusterRoleBinding is rejected by the API server, so such a manifest never applies.",
        fix="Set the subject's namespace to the agent's (meshdoctor writes the whole binding with "
        "the subject corrected) and apply it.",
        references=(
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects",
            "https://docs.datadoghq.com/containers/kubernetes/installation/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent and binding that misses it by namespace."""
        accounts = agent_accounts(ctx)
        agents = agent_service_accounts(accounts)
        evaluator = rbac_evaluator(ctx)
        for account in accounts:
            entries = misnamespaced_subjects(ctx, account, agents)
            if not entries:
                continue
            check = check_permissions(evaluator, ctx.snapshot.probes, account)
            if not check.denied:
                continue
            for entry in entries:
                binding = binding_object(ctx, entry.binding)
                if binding is None:
                    continue
                yield self._finding(ctx, account, entry, binding, check)

    def _finding(
        self,
        ctx: Context,
        account: AgentAccount,
        entry: BindingSubject,
        binding: KubeObject,
        check: PermissionCheck,
    ) -> Finding:
        written = entry.subject.get("namespace")
        subject = f"{written}/{account.name}" if written else f"{account.name} (no namespace)"
        fixed = corrected_binding(binding, entry, account)
        return self.finding(
            f"{entry.binding} grants {entry.role.kind} {entry.role.name} to service account "
            f"{subject}, but {account.ref} runs as {account.namespace}/{account.name}: the "
            f"agent is denied {describe_denied(check)}.",
            objects=[entry.binding, account.ref],
            evidence=[
                ctx.field(binding, f"subjects[{entry.subject_index}].namespace", written),
                ctx.field(account.workload, account.field_path, account.field_value),
            ],
            remediation=apply_manifests(
                f"Bind {entry.role.kind} {entry.role.name} to "
                f"{account.namespace}/{account.name}: the whole {entry.binding.kind} with the "
                "subject's namespace corrected.",
                [fixed],
                safe=True,
            ),
        )
