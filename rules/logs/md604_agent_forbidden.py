"""MD604: the agent's log shows the API server or the kubelet denying it a permission."""

from __future__ import annotations

from collections.abc import Mapping

from meshdoctor.logs.scanner import MatchGroup
from meshdoctor.model import Remediation
from meshdoctor.rule import Context, RuleDocs
from meshdoctor.snapshot import KubeObject

from .log_rule import LogRule


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
