"""MD405: the agent's service account lacks permissions the features it uses need.

Where MD401, MD403 or MD404 explain the denials, the agent is judged as if their fixes were applied
(`structural_fixes`) and only what would still be denied is reported, with a fix to apply after
theirs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from meshdoctor.datadog.agent_account import (
    ENV_KINDS,
    KUBELET_KINDS,
    AgentAccount,
    agent_accounts,
    agent_service_accounts,
)
from meshdoctor.datadog.install import MANIFESTS, owner_of
from meshdoctor.datadog.permission_check import (
    PermissionCheck,
    Verdict,
    check_permissions,
    rules_for_denied,
    still_denied,
)
from meshdoctor.datadog.permissions import (
    ADMISSION_CONTROLLER,
    APISERVER_URLS,
    COMPONENT_STATUSES,
    ENDPOINT_SLICES,
    EVENTS,
    KUBELET,
    KUBELET_FINE_GRAINED,
    LEADER_ELECTION,
    LEADER_ELECTION_LEASE,
    METADATA,
    NAMESPACES,
    clusterrolebinding_manifest,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.bootstrap_policy import rbac_evaluator
from meshdoctor.kube.layered_reader import LayeredReader
from meshdoctor.kube.rbac import KINDS as RBAC_KINDS
from meshdoctor.model import Category, Evidence, Finding, ProbeEvidence, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import ObjectReader

from .denied_requests import describe_denied, describe_requests
from .structural_fixes import agent_grants, binding_object, structural_fixes

#: How bad a missing permission is, by feature: without metadata and the kubelet the agent has no
#: Kubernetes tags and no container metrics; the others lose one data source each.
FEATURE_SEVERITY: dict[str, Severity] = {
    METADATA: Severity.ERROR,
    KUBELET: Severity.ERROR,
    KUBELET_FINE_GRAINED: Severity.ERROR,
    EVENTS: Severity.WARNING,
    LEADER_ELECTION: Severity.WARNING,
    LEADER_ELECTION_LEASE: Severity.WARNING,
    APISERVER_URLS: Severity.WARNING,
    COMPONENT_STATUSES: Severity.INFO,
    # The Cluster Agent's own: without endpointslices no kube_service mapping and no endpoints checks
    # (data lost); without namespaces no namespace metadata, without its webhook no injected config.
    ENDPOINT_SLICES: Severity.ERROR,
    NAMESPACES: Severity.WARNING,
    ADMISSION_CONTROLLER: Severity.WARNING,
}


class AgentPermissionsMissing(Rule):
    """MD405."""

    id = "MD405"
    title = "The agent's service account lacks permissions the agent needs"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", *RBAC_KINDS, optional=[*ENV_KINDS, *KUBELET_KINDS, "Deployment"])
    docs = RuleDocs(
        what="For each agent DaemonSet and Cluster Agent Deployment, the authorization questions "
        "the features it uses raise (Kubernetes metadata, the kubelet, events with "
        "`DD_COLLECT_KUBERNETES_EVENTS`, leader election with `DD_LEADER_ELECTION` as a "
        "ConfigMap or a Lease, API server URLs, "
        "componentstatuses) answered for its service account. A node agent with "
        "`DD_CLUSTER_AGENT_ENABLED` gets metadata from the Cluster Agent and needs neither the "
        "metadata rules nor componentstatuses (the Helm chart removes them); the Cluster Agent "
        "needs no kubelet access, but namespaces, `discovery.k8s.io` endpointslices with "
        "`DD_KUBERNETES_USE_ENDPOINT_SLICES` and its mutating webhook (`DD_ADMISSION_CONTROLLER_WEBHOOK_NAME`, "
        "default `datadog-webhook`) with `DD_ADMISSION_CONTROLLER_ENABLED`, as the chart's "
        "`cluster-agent-rbac.yaml` grants them. The kubelet is reached with nodes/proxy or, on kubelets 1.33 "
        "and later (KEP-2862), nodes/pods and nodes/healthz (`datadog.kubelet."
        "fineGrainedAuthorization`). Permissions are judged with the API server's RBAC "
        "semantics (aggregated ClusterRoles, RoleBindings only in their namespace, group "
        "subjects). Either leader-election resource suffices unless "
        "`DD_LEADER_ELECTION_DEFAULT_RESOURCE` pins one. `/version` and `/healthz` are granted "
        "to every authenticated user by the default `system:discovery` and "
        "`system:public-info-viewer` bindings, counted unless the input holds them changed. "
        "Where the live source asked the API server (SubjectAccessReviews), its answer counts "
        "and both verdicts are shown. Error for metadata, endpointslices and kubelet, warning for events, leader "
        "election, API server URLs, namespaces and the admission webhook, info for componentstatuses. "
        "When MD401, MD403 or MD404 "
        "explains the denials, it judges the agent as if their fixes were applied and reports "
        "only what would still be denied.",
        why="Each denied request silently removes data: without pods/nodes no Kubernetes tags, "
        "without nodes/proxy and nodes/stats no kubelet and container metrics, without events "
        "no Kubernetes events, without the leader-election ConfigMap or Lease no elected agent "
        "collects cluster-level data. The agent logs `forbidden` and keeps running.",
        fix="Add the missing rules to the ClusterRole the agent is bound to (meshdoctor writes the "
        "whole role with the rules added; a role a Helm release or the Operator renders is left "
        "alone, as the next upgrade would revert it, and a separate role is added), or, when the "
        "agent has no ClusterRole bound cluster-wide, apply the ClusterRole and ClusterRoleBinding meshdoctor writes.",
        references=(
            "https://github.com/DataDog/datadog-agent/blob/main/Dockerfiles/manifests/rbac/clusterrole.yaml",
            "https://github.com/DataDog/helm-charts/blob/main/charts/datadog/templates/rbac.yaml",
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#default-roles-and-role-bindings",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent DaemonSet whose account is denied a needed request."""
        accounts = agent_accounts(ctx, with_cluster_agents=True)
        agents = agent_service_accounts(accounts)
        evaluator = rbac_evaluator(ctx)
        unknown: set[str] = set()
        found = False
        for account in accounts:
            check = check_permissions(evaluator, ctx.snapshot.probes, account)
            unknown.update(f"{v.request.describe()}: {v.not_read}" for v in check.unknown)
            if not check.denied:
                continue
            fixes = structural_fixes(ctx, evaluator, account, agents)
            view: ObjectReader = ctx
            if fixes.rules:
                # Judge what remains once those fixes are in (offline: the API server was not
                # asked about objects that do not exist yet).
                view = LayeredReader(ctx, fixes.objects, extra_wins=True)
                check = check_permissions(rbac_evaluator(view), {}, fixes.account)
                if not check.denied:
                    continue
            found = True
            yield self._finding(ctx, view, fixes.account, check, account, fixes.rules)
        if unknown and not found:
            raise NotChecked("the agent's bindings are not all known: " + "; ".join(sorted(unknown)))

    def _finding(
        self,
        ctx: Context,
        view: ObjectReader,
        account: AgentAccount,
        check: PermissionCheck,
        actual: AgentAccount,
        after: Sequence[str],
    ) -> Finding:
        severity = max(FEATURE_SEVERITY[f] for f in check.denied_features())
        evidence: list[Evidence] = [ctx.field(actual.workload, actual.field_path, actual.field_value)]
        objects = [account.ref]
        for entry in agent_grants(ctx, account):
            binding = binding_object(ctx, entry.binding)
            if binding is None or entry.binding in objects:
                continue
            objects.append(entry.binding)
            evidence.append(ctx.field(binding, "roleRef.name", entry.role.name))
        remediation = self._remediation(view, account, check)
        if after:
            fixed_by = " and ".join(after)
            remediation = dataclasses.replace(
                remediation, summary=f"{remediation.summary} Apply it after the fix of {fixed_by}."
            )
        evidence.extend(permission_evidence(check))
        disagreements = sum(1 for v in check.verdicts if v.disagree)
        note = (
            f" The API server and the snapshot's RBAC disagree on {disagreements} request(s); "
            "the API server's answers count."
            if disagreements
            else ""
        )
        runs = f"runs as {account.namespace}/{account.name}, which is denied"
        if after:
            plural = len(after) > 1
            runs = (
                f", even once the fix{'es' if plural else ''} of {' and '.join(after)} "
                f"{'are' if plural else 'is'} applied (running as "
                f"{account.namespace}/{account.name}), is denied"
            )
        return self.finding(
            f"{account.ref}{'' if after else ' '}{runs} {describe_denied(check)}.{note}",
            objects=objects,
            evidence=evidence,
            remediation=remediation,
            severity=severity,
        )

    def _remediation(self, ctx: ObjectReader, account: AgentAccount, check: PermissionCheck) -> Remediation:
        """The fix, judged on `ctx`: the snapshot, or the snapshot with the other fixes in."""
        evaluator = rbac_evaluator(ctx)
        entries = agent_grants(ctx, account)
        rules = rules_for_denied(check.denied, account.env)
        # 1. Bound to a ClusterRole only in its namespace, and that role covers everything:
        #    bind it cluster-wide.
        for entry in entries:
            if entry.binding.kind != "RoleBinding" or entry.role.kind != "ClusterRole":
                continue
            if evaluator.cluster_role_rules(entry.role.name) is None:
                continue
            binding = clusterrolebinding_manifest(
                _free_name(
                    ctx,
                    "ClusterRoleBinding",
                    [entry.role.name, f"{entry.role.name}-{account.namespace}"],
                ),
                entry.role.name,
                account.namespace,
                account.name,
            )
            if not still_denied(ctx, account, [binding]):
                return apply_manifests(
                    f"{entry.binding} grants ClusterRole {entry.role.name} in namespace "
                    f"{entry.binding.namespace} only; the agent reads cluster-wide. Bind the same "
                    "ClusterRole with a ClusterRoleBinding.",
                    [binding],
                    safe=True,
                )
        # 2. Bound cluster-wide to a ClusterRole it may edit: the whole role, rules added.
        for entry in sorted(
            (e for e in entries if e.binding.kind == "ClusterRoleBinding" and e.role.kind == "ClusterRole"),
            key=lambda e: (e.role.name != account.name, e.role.name),
        ):
            role = ctx.get("ClusterRole", "", entry.role.name)
            if role is None or owner_of(role).manager != MANIFESTS:
                continue
            aggregation = role.get("aggregationRule")
            if aggregation is None:
                fixed = clean_copy(role)
                fixed["rules"] = list(fixed.get("rules") or []) + copy.deepcopy(rules)
                return apply_manifests(
                    f"ClusterRole {entry.role.name}, bound to the agent by "
                    f"{entry.binding}, with {len(rules)} rule(s) added for "
                    f"{', '.join(check.denied_features())}; everything else kept.",
                    [fixed],
                    safe=False,
                )
            labels = _aggregation_labels(aggregation)
            if labels is not None:
                created = {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {
                        "name": _free_name(
                            ctx,
                            "ClusterRole",
                            [
                                f"{entry.role.name}-extra",
                                f"{entry.role.name}-{account.namespace}-extra",
                            ],
                        ),
                        "labels": labels,
                    },
                    "rules": rules,
                }
                return apply_manifests(
                    f"ClusterRole {entry.role.name} is aggregated (the controller "
                    "overwrites its rules): add a ClusterRole carrying the labels its selector "
                    f"matches, with the rules for {', '.join(check.denied_features())}.",
                    [created],
                    safe=False,
                )
        # 3. A ClusterRole and a ClusterRoleBinding of the missing rules.
        name = _free_name(ctx, "ClusterRole", [account.name, f"{account.name}-{account.namespace}"])
        binding_name = _free_name(ctx, "ClusterRoleBinding", [name, f"{name}-{account.namespace}"])
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        }
        binding = clusterrolebinding_manifest(binding_name, name, account.namespace, account.name)
        return apply_manifests(
            f"Grant {account.namespace}/{account.name} what "
            f"{', '.join(check.denied_features())} need with a ClusterRole and a "
            "ClusterRoleBinding.",
            [role, binding],
            safe=False,
        )


def _aggregation_labels(aggregation: Mapping[str, Any]) -> dict[str, str] | None:
    """Labels that make a new ClusterRole match the first plain `matchLabels` selector."""
    for selector in aggregation.get("clusterRoleSelectors") or []:
        labels = (selector or {}).get("matchLabels")
        if labels and not (selector or {}).get("matchExpressions"):
            return {str(k): str(v) for k, v in labels.items()}
    return None


def _free_name(reader: ObjectReader, kind: str, wanted: Sequence[str]) -> str:
    """The first of the names no cluster-scoped object of this kind has."""
    for name in wanted:
        if reader.get(kind, "", name) is None:
            return name
    return wanted[-1]


def verdict_evidence(verdict: Verdict) -> ProbeEvidence:
    """Both answers for one request, saying when they disagree."""
    offline = "allowed" if verdict.offline.allowed else "denied"
    offline_text = f"offline evaluation of the snapshot's RBAC: {offline}"
    if verdict.offline.allowed and verdict.offline.by:
        grant = verdict.offline.by[0]
        offline_text += f" by {grant.binding} of {grant.role}"
    if verdict.live is None:
        return ProbeEvidence(verdict.request.describe(), verdict.offline.allowed, offline_text)
    live = "allowed" if verdict.live.get("allowed") else "denied"
    detail = f"SubjectAccessReview: {live}"
    if verdict.live.get("reason"):
        detail += f" ({verdict.live['reason']})"
    detail += f"; {offline_text}"
    if verdict.disagree:
        detail += (
            "; the two disagree: the API server's answer counts (another authorizer, or RBAC "
            "objects changed since the snapshot)"
        )
    return ProbeEvidence(verdict.request.describe(), verdict.allowed, detail)


def permission_evidence(check: PermissionCheck) -> list[ProbeEvidence]:
    """Evidence for the denials: one line per feature offline, one per request with live answers.

    Where the live source asked the API server, every denied request and every request on which
    the two verdicts disagree gets its own line with both; otherwise one line per feature.
    """
    if any(v.live is not None for v in check.verdicts):
        return [verdict_evidence(v) for v in check.verdicts if not v.allowed or v.disagree]
    found = []
    for feature in check.denied_features():
        requests = [v.request for v in check.denied if v.feature == feature]
        found.append(
            ProbeEvidence(
                f"{feature}: {describe_requests(requests)}",
                False,
                "offline evaluation of the snapshot's RBAC: denied (no rule bound to "
                f"{check.account.namespace}/{check.account.name} allows it)",
            )
        )
    return found
