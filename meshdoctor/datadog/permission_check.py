"""Whether an agent's service account holds what the features it uses need, and what would grant it.

Each feature's requests (`requests_for`) are answered by the RBAC evaluator and, where the live
source asked, by the API server (its answer counts: it runs every authorizer). A feature with
ALTERNATIVES (leader election as a ConfigMap or a Lease) is satisfied by either set of permissions
unless the env pins the resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.datadog.agent_account import AgentAccount
from meshdoctor.datadog.permissions import (
    ALTERNATIVES,
    FEATURES,
    KUBELET_FINE_GRAINED,
    LEADER_FEATURES,
    Permission,
    permissions_for,
    requests_for,
    resource_names,
)
from meshdoctor.kube.bootstrap_policy import with_bootstrap_policy
from meshdoctor.kube.layered_reader import LayeredReader
from meshdoctor.kube.rbac import Decision, RbacEvaluator, Request, rbac_answer
from meshdoctor.snapshot import KubeObject, ObjectReader


@dataclass(frozen=True)
class Verdict:
    """One permission the agent needs, as the snapshot's RBAC and (live) the API server answer."""

    feature: str
    """The feature that needs it."""
    request: Request
    """The authorization question."""
    offline: Decision
    """The RbacEvaluator's answer from the snapshot's RBAC objects."""
    live: Mapping[str, Any] | None = None
    """The SubjectAccessReview answer recorded by the live source, if it asked."""
    not_read: str | None = None
    """Why the offline answer cannot be trusted: the request's namespace's RoleBindings were not read."""

    @property
    def unknown(self) -> bool:
        """True when only the offline answer is there, it denies, and it rests on bindings not read."""
        return self.live is None and not self.offline.allowed and self.not_read is not None

    @property
    def allowed(self) -> bool:
        """The API server's answer when known (it counts every authorizer), else the offline one."""
        if self.live is not None:
            return bool(self.live.get("allowed"))
        return self.offline.allowed

    @property
    def disagree(self) -> bool:
        """True when the live answer and the offline evaluation differ."""
        return self.live is not None and bool(self.live.get("allowed")) != self.offline.allowed


@dataclass(frozen=True)
class PermissionCheck:
    """The permissions one agent account needs, feature by feature, and which are denied."""

    account: AgentAccount
    """Whose permissions."""
    verdicts: list[Verdict] = field(default_factory=list)
    """Every request of the features judged (an alternative replaces a denied feature it covers)."""
    alternatives: dict[str, str] = field(default_factory=dict)
    """feature -> the alternative feature whose permissions are held instead."""

    @property
    def denied(self) -> list[Verdict]:
        """The verdicts that deny (not those that are unknown: a RoleBinding not read may allow)."""
        return [v for v in self.verdicts if not v.allowed and not v.unknown]

    @property
    def unknown(self) -> list[Verdict]:
        """The verdicts that cannot be told (`Verdict.unknown`)."""
        return [v for v in self.verdicts if v.unknown]

    def denied_features(self) -> list[str]:
        """Features with a denied request, in the order judged."""
        seen: list[str] = []
        for verdict in self.denied:
            if verdict.feature not in seen:
                seen.append(verdict.feature)
        return seen


def leader_resource_pinned(env: Mapping[str, str]) -> bool:
    """Whether the env chooses the leader-election resource (then no alternative counts)."""
    return env.get("DD_LEADER_ELECTION_DEFAULT_RESOURCE", "").strip() != ""


def _alternatives(account: AgentAccount, feature: str) -> tuple[str, ...]:
    """The features that may stand in for `feature` for this agent.

    Leader election: either resource, unless the env pins it. The kubelet: the fine-grained set
    only where every kubelet authorizes it (`fine_grained_kubelet`).
    """
    if feature in LEADER_FEATURES and leader_resource_pinned(account.env):
        return ()
    found = ALTERNATIVES.get(feature, ())
    if not account.fine_grained_kubelet:
        found = tuple(f for f in found if f != KUBELET_FINE_GRAINED)
    return found


def check_permissions(evaluator: RbacEvaluator, probes: Mapping[str, Any], account: AgentAccount) -> PermissionCheck:
    """Judge each request of the features the agent uses, alternatives applied.

    A feature with alternatives (`_alternatives`: leader election as a ConfigMap or a Lease, the
    kubelet through nodes/proxy or the fine-grained subresources) is satisfied by either set of
    permissions; when none is complete the feature itself is reported.
    """

    def judge(feature: str) -> list[Verdict]:
        requests = requests_for([feature], account.namespace, account.name, env=account.env)
        return [
            Verdict(feature, r, evaluator.allows(r), rbac_answer(probes, r), evaluator.not_read(r)) for r in requests
        ]

    verdicts: list[Verdict] = []
    alternatives: dict[str, str] = {}
    for feature in account.features:
        judged = judge(feature)
        if any(not v.allowed for v in judged):
            for other in _alternatives(account, feature):
                other_judged = judge(other)
                if all(v.allowed for v in other_judged):
                    judged, alternatives[feature] = other_judged, other
                    break
        verdicts.extend(judged)
    return PermissionCheck(account, verdicts, alternatives)


def still_denied(reader: ObjectReader, account: AgentAccount, added: Sequence[KubeObject]) -> list[Request]:
    """The agent's requests still denied once `added` is applied (offline evaluation)."""
    evaluator = RbacEvaluator(LayeredReader(with_bootstrap_policy(reader), added, extra_wins=True))
    check = check_permissions(evaluator, {}, account)
    return [v.request for v in check.denied]


# -- what a fix grants ---------------------------------------------------------------------------


def role_features(account: AgentAccount) -> list[str]:
    """The features a role for this agent grants: those it uses, leader election both ways.

    Both leader-election resources unless the env pins one, so agents before and after 7.47 work.
    The kubelet through nodes/proxy only: it works on every kubelet version.
    """
    features = list(account.features)
    if not leader_resource_pinned(account.env):
        for feature in list(features):
            for other in ALTERNATIVES.get(feature, ()):
                if other not in features and other in LEADER_FEATURES:
                    features.append(other)
    return sorted(features, key=FEATURES.index)


def _row_of(verdict: Verdict, env: Mapping[str, str]) -> Permission | None:
    """The table row of the verdict's feature that the request was asked for."""
    request = verdict.request
    for row in permissions_for([verdict.feature]):
        if request.verb not in row.verbs:
            continue
        if not request.is_resource_request:
            if request.non_resource_url in row.non_resource_urls:
                return row
            continue
        resource = request.resource + (f"/{request.subresource}" if request.subresource else "")
        if request.api_group != row.api_group or resource not in row.resources:
            continue
        names = resource_names(row, env)
        if (request.name in names) if names else True:
            return row
    return None


def rules_for_denied(verdicts: Sequence[Verdict], env: Mapping[str, str]) -> list[dict[str, Any]]:
    """PolicyRules granting exactly the denied requests, one per table row, in table order."""
    by_row: dict[Permission, list[Request]] = {}
    for verdict in verdicts:
        row = _row_of(verdict, env)
        if row is not None:
            by_row.setdefault(row, []).append(verdict.request)
    rules: list[dict[str, Any]] = []
    for row, requests in by_row.items():
        verbs = [v for v in row.verbs if any(r.verb == v for r in requests)]
        rule: dict[str, Any] = {}
        if row.non_resource_urls:
            urls = {r.non_resource_url for r in requests}
            rule["nonResourceURLs"] = [u for u in row.non_resource_urls if u in urls]
        else:
            wanted = {r.resource + (f"/{r.subresource}" if r.subresource else "") for r in requests}
            rule["apiGroups"] = [row.api_group]
            rule["resources"] = [res for res in row.resources if res in wanted]
            names = resource_names(row, env)
            if names:
                rule["resourceNames"] = list(names)
        rule["verbs"] = verbs
        rules.append(rule)
    return rules
