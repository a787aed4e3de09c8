"""The faults in the agent's account and bindings (MD401, MD403, MD404) and the objects that fix them.

Each root cause gives one finding: MD401, MD403 and MD404 each report their own fault, and MD405
judges the agent as if their fixes were applied (`structural_fixes`) and reports only what would
still be denied. So each fault's condition and fix is written once, here, for its rule and MD405.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshdoctor.datadog.agent_account import AgentAccount
from meshdoctor.datadog.permission_check import PermissionCheck, check_permissions, role_features
from meshdoctor.datadog.permissions import clusterrole_manifest
from meshdoctor.fixes.manifests import clean_copy
from meshdoctor.kube.bootstrap_policy import RBAC_API_GROUP
from meshdoctor.kube.rbac import (
    ALL_SERVICE_ACCOUNTS_GROUP,
    BindingSubject,
    MissingRole,
    RbacEvaluator,
    bindings_for_service_account,
)
from meshdoctor.kube.service_accounts import DEFAULT_ACCOUNT, bound_accounts
from meshdoctor.model import ObjectRef
from meshdoctor.rule import Context
from meshdoctor.snapshot import KubeObject, ObjectReader


def binding_object(reader: ObjectReader, ref: ObjectRef) -> KubeObject | None:
    """The binding a reference names, or None."""
    return reader.get(ref.kind, ref.namespace, ref.name)


def agent_grants(reader: ObjectReader, account: AgentAccount) -> list[BindingSubject]:
    """Bindings meant for the agent: naming its account, or the service-account groups."""
    found = bindings_for_service_account(reader, account.namespace, account.name)
    groups = {ALL_SERVICE_ACCOUNTS_GROUP, f"{ALL_SERVICE_ACCOUNTS_GROUP}:{account.namespace}"}
    return found.named + [e for e in found.via_groups if e.subject.get("name") in groups]


# -- MD401: the agent runs as `default` ----------------------------------------------------------


def _preferred(accounts: list[str], workload_name: str) -> str:
    """The account meant for the agent: its own name, else one naming datadog, else the first."""
    if workload_name in accounts:
        return workload_name
    for name in accounts:
        if "datadog" in name:
            return name
    return accounts[0]


@dataclass(frozen=True)
class DefaultAccountFault:
    """An agent running as `default` while the RBAC objects bind another account."""

    account: AgentAccount
    """The agent (as `default`)."""
    chosen: str
    """The bound account it should run as."""
    binding: KubeObject
    """The binding naming that account."""
    subject_index: int
    """Index of the subject in the binding."""
    check: PermissionCheck
    """What `default` is denied."""


def default_account_fault(ctx: Context, evaluator: RbacEvaluator, account: AgentAccount) -> DefaultAccountFault | None:
    """MD401's condition for one agent, or None."""
    if account.name != DEFAULT_ACCOUNT:
        return None
    bound = bound_accounts(ctx, account.namespace)
    if DEFAULT_ACCOUNT in bound or not bound:
        return None
    check = check_permissions(evaluator, ctx.snapshot.probes, account)
    if not check.denied:
        return None  # `default` holds what the agent needs anyway (e.g. through a group)
    chosen = _preferred(sorted(bound), account.ref.name)
    binding, index = bound[chosen][0]
    return DefaultAccountFault(account, chosen, binding, index, check)


# -- MD403: a binding names the agent's account in another namespace -----------------------------


def misnamespaced_subjects(ctx: Context, account: AgentAccount, agents: set[tuple[str, str]]) -> list[BindingSubject]:
    """Bindings naming the agent's account name in another namespace, that no agent runs as.

    ClusterRoleBindings (any other namespace, or none) and RoleBindings of the agent's own
    namespace whose subject names another namespace; a RoleBinding elsewhere grants only there.
    """
    found = []
    for entry in bindings_for_service_account(ctx, account.namespace, account.name).other_namespace:
        subject_namespace = str(entry.subject.get("namespace") or "") or entry.binding.namespace
        if subject_namespace and (subject_namespace, account.name) in agents:
            continue  # another agent's own account
        if entry.binding.kind == "RoleBinding" and entry.binding.namespace != account.namespace:
            continue
        found.append(entry)
    return found


def corrected_binding(binding: KubeObject, entry: BindingSubject, account: AgentAccount) -> KubeObject:
    """The whole binding with the subject's namespace set to the agent's."""
    fixed = clean_copy(binding)
    fixed["subjects"][entry.subject_index]["namespace"] = account.namespace
    return fixed


# -- MD404: a binding of the agent refers to a role that does not exist --------------------------


def missing_role_fix(account: AgentAccount, binding: KubeObject, missing: MissingRole) -> tuple[list[KubeObject], str]:
    """The objects that give a binding's missing role back, granting what the agent uses."""
    role = missing.role
    created = clusterrole_manifest(role.name, role_features(account), env=account.env)
    if role.kind == "Role" and missing.binding.kind == "ClusterRoleBinding":
        # Invalid: a ClusterRoleBinding may only refer to a ClusterRole.
        fixed = clean_copy(binding)
        fixed["roleRef"] = {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": role.name}
        return [created, fixed], (
            f"{missing.binding} may only refer to a ClusterRole: create ClusterRole "
            f"{role.name} for the features the agent uses and point the binding at it."
        )
    if role.kind == "Role":
        created["kind"] = "Role"
        created["metadata"]["namespace"] = role.namespace
        # The API server rejects non-resource URLs in a Role (they are cluster-wide).
        created["rules"] = [r for r in created["rules"] if "nonResourceURLs" not in r]
        return [created], (
            f"Create Role {role.namespace}/{role.name} for the features the agent uses. A Role "
            "grants only in its namespace: the node agent's cluster-wide reads (pods, nodes, "
            "the kubelet) need a ClusterRole and a ClusterRoleBinding (see MD405)."
        )
    return [created], (
        f"Create ClusterRole {role.name}, which {missing.binding} refers to, granting what "
        f"the features the agent uses need ({', '.join(role_features(account))})."
    )


# -- all three, for MD405 ------------------------------------------------------------------------


@dataclass(frozen=True)
class StructuralFixes:
    """The agent as it would be once the fixes of MD401, MD403 and MD404 are applied."""

    account: AgentAccount
    """The account it would run as (MD401 switches `default` to the bound account)."""
    objects: list[KubeObject]
    """The corrected bindings (MD403) and re-created roles (MD404)."""
    rules: list[str]
    """Ids of the rules whose fixes are laid over the snapshot, in id order."""


def structural_fixes(
    ctx: Context, evaluator: RbacEvaluator, account: AgentAccount, agents: set[tuple[str, str]]
) -> StructuralFixes:
    """What MD401, MD403 and MD404 would change for this agent (nothing: `rules` is empty)."""
    rules: list[str] = []
    fault = default_account_fault(ctx, evaluator, account)
    if fault is not None:
        account = account.as_account(fault.chosen)
        rules.append("MD401")
    objects: list[KubeObject] = []
    for entry in misnamespaced_subjects(ctx, account, agents):
        binding = binding_object(ctx, entry.binding)
        if binding is not None:
            objects.append(corrected_binding(binding, entry, account))
    if objects:
        rules.append("MD403")
    missing = {m.binding: m for m in evaluator.missing_roles()}
    created = False
    for entry in agent_grants(ctx, account):
        binding = binding_object(ctx, entry.binding)
        if entry.binding in missing and binding is not None:
            objects.extend(missing_role_fix(account, binding, missing[entry.binding])[0])
            created = True
    if created:
        rules.append("MD404")
    return StructuralFixes(account, objects, rules)
