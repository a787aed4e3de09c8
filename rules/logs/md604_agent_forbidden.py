"""MD604: the agent's log shows the API server or the kubelet denying it a permission."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from meshdoctor.kube.rbac import SERVICE_ACCOUNT_USER_PREFIX, RbacEvaluator, Request, service_account_user
from meshdoctor.logs.scanner import MatchGroup
from meshdoctor.logs.workload_logs import SIDECAR
from meshdoctor.model import Finding, Remediation, Severity
from meshdoctor.rule import Context, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .log_rule import WORKLOAD_KINDS, AgentLogs, LogRule

#: The RBAC objects that say whether a denial still holds.
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


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
    inputs = inputs(optional=[*WORKLOAD_KINDS, "Pod", "ReplicaSet", *RBAC_KINDS], logs=["agent", SIDECAR])
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

    def settled(self, ctx: Context, logs: AgentLogs, groups: list[MatchGroup], finding: Finding) -> Finding:
        """Denials of what the RBAC in the input allows now are from before it changed: advice."""
        if finding.severity is Severity.INFO or any(ctx.unavailable(kind) for kind in RBAC_KINDS):
            return finding
        evaluator = RbacEvaluator(ctx)
        for group in groups:
            request = denied_request(group.values)
            if request is None or evaluator.not_read(request) or not evaluator.allows(request).allowed:
                return finding
        values = groups[0].values
        return dataclasses.replace(
            finding,
            severity=Severity.INFO,
            message=finding.message + f" The roles and bindings read now allow {values.get('user')} to "
            f"{missing_permission(values)}: the lines predate an RBAC change (the agent asks again on its "
            "next retry).",
            remediation=None,
        )


def denied_request(values: Mapping[str, str | None]) -> Request | None:
    """The authorization question a denial line names, asked for a service account; None otherwise.

    The kubelet asks about `nodes/<subresource>` (its `Forbidden (user=..., verb=..., resource=...,
    subresource=...)` names them as it asked).
    """
    user = values.get("user") or ""
    if not user.startswith(SERVICE_ACCOUNT_USER_PREFIX) or not values.get("verb") or not values.get("resource"):
        return None
    parts = user[len(SERVICE_ACCOUNT_USER_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    name, groups = service_account_user(parts[0], parts[1])
    return Request(
        name,
        groups,
        str(values.get("verb")),
        str(values.get("api_group") or ""),
        str(values.get("resource")),
        str(values.get("subresource") or ""),
        str(values.get("namespace") or ""),
    )
