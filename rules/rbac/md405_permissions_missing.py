"""RBAC: the agent's service account and what it may do.

Ids: MD401 agent runs as `default` while its RBAC binds another account, MD402 the agent's
service account does not exist, MD403 a binding names the agent's account in another namespace,
MD404 a binding of the agent's account refers to a role that does not exist, MD405 the agent's
account lacks permissions the features it uses need.

Each root cause gives one finding: where MD401, MD403 or MD404 explain an agent's denials, MD405
judges the agent as if their fixes were applied (`structural_fixes`) and reports only what would
still be denied, with a fix to apply after theirs.

The API server's built-in discovery grants are not in a folder of manifests: `/version` and
`/healthz` are granted to every authenticated user by the default ClusterRoleBindings
`system:discovery` and `system:public-info-viewer`. The evaluation below adds those defaults
wherever the snapshot does not hold an object of the same name (a live cluster or a full
`kubectl get clusterroles,clusterrolebindings` holds them, possibly modified, and those win).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.datadog.agent import agent_container, agent_workloads, env_value
from meshdoctor.datadog.permissions import (
    ALTERNATIVES,
    APISERVER_URLS,
    COMPONENT_STATUSES,
    EVENTS,
    FEATURES,
    KUBELET,
    LEADER_ELECTION,
    LEADER_ELECTION_LEASE,
    METADATA,
    PERMISSION_ENV,
    Permission,
    clusterrole_manifest,
    clusterrolebinding_manifest,
    permissions_for,
    requests_for,
    required_features,
    resource_names,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.meta import metadata
from meshdoctor.kube.rbac import (
    ALL_SERVICE_ACCOUNTS_GROUP,
    BindingSubject,
    Decision,
    MissingRole,
    RbacEvaluator,
    Request,
    bindings_for_service_account,
    rbac_answer,
)
from meshdoctor.kube.workloads import pod_template, pods_of, template_path
from meshdoctor.model import (
    Category,
    Evidence,
    Finding,
    LogEvidence,
    ObjectRef,
    ProbeEvidence,
    Remediation,
    Severity,
)
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject, ObjectReader

DEFAULT_ACCOUNT = "default"
RBAC_API_GROUP = "rbac.authorization.k8s.io"

#: The kinds `RbacEvaluator` reads (meshdoctor.kube.rbac.KINDS): required by every rule that evaluates.
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
#: Kinds `env_value` reads for `envFrom` / `configMapKeyRef` / `secretRef` (key names only).
ENV_KINDS = ("ConfigMap", "Secret")
#: What the binding rules (MD403, MD404, MD405) read: the agents, RBAC, and their env sources.
_BINDING_INPUTS = inputs("DaemonSet", *RBAC_KINDS, optional=[*ENV_KINDS])

#: How bad a missing permission is, by feature: without metadata and the kubelet the agent has no
#: Kubernetes tags and no container metrics; the others lose one data source each.
FEATURE_SEVERITY: dict[str, Severity] = {
    METADATA: Severity.ERROR,
    KUBELET: Severity.ERROR,
    EVENTS: Severity.WARNING,
    LEADER_ELECTION: Severity.WARNING,
    LEADER_ELECTION_LEASE: Severity.WARNING,
    APISERVER_URLS: Severity.WARNING,
    COMPONENT_STATUSES: Severity.INFO,
}

#: The API server's default discovery grants (kubernetes
#: plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go `ClusterRoles()` and
#: testdata/cluster-role-bindings.yaml): every authenticated user may GET these non-resource URLs.
#: Only the two objects that matter to the agent (`/version`, `/healthz`) are modelled.
_DISCOVERY_URLS = ["/livez", "/readyz", "/healthz", "/version", "/version/"]
_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
BOOTSTRAP_POLICY: tuple[KubeObject, ...] = (
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:discovery", "labels": _BOOTSTRAP_LABELS},
        "rules": [
            {
                "nonResourceURLs": [
                    *_DISCOVERY_URLS,
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
                "verbs": ["get"],
            }
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:public-info-viewer", "labels": _BOOTSTRAP_LABELS},
        "rules": [{"nonResourceURLs": list(_DISCOVERY_URLS), "verbs": ["get"]}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:discovery", "labels": _BOOTSTRAP_LABELS},
        "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": "system:discovery"},
        "subjects": [{"apiGroup": RBAC_API_GROUP, "kind": "Group", "name": "system:authenticated"}],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:public-info-viewer", "labels": _BOOTSTRAP_LABELS},
        "roleRef": {
            "apiGroup": RBAC_API_GROUP,
            "kind": "ClusterRole",
            "name": "system:public-info-viewer",
        },
        "subjects": [
            {"apiGroup": RBAC_API_GROUP, "kind": "Group", "name": "system:authenticated"},
            {"apiGroup": RBAC_API_GROUP, "kind": "Group", "name": "system:unauthenticated"},
        ],
    },
)


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = metadata(obj)
    return (
        str(obj.get("kind") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


# -- readers ------------------------------------------------------------------------------------


class LayeredReader:
    """An ObjectReader: a base reader plus extra objects, the extra winning or the base winning.

    With `extra_wins` (a fix laid over the snapshot) an extra object replaces the base one of the
    same kind/namespace/name; without it (defaults laid under the snapshot) the base one stays.
    """

    def __init__(self, base: ObjectReader, extra: Iterable[KubeObject], *, extra_wins: bool) -> None:
        self._base = base
        self._extra: dict[tuple[str, str, str], KubeObject] = {_key(o): o for o in extra}
        self._extra_wins = extra_wins

    def objects(self, kind: str) -> list[KubeObject]:
        """The base's objects of a kind with the extra ones merged in, by namespace and name."""
        merged = {_key(o): o for o in self._base.objects(kind)}
        for key, obj in self._extra.items():
            if key[0] == kind and (self._extra_wins or key not in merged):
                merged[key] = obj
        return [merged[k] for k in sorted(merged)]

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One object, or None."""
        extra = self._extra.get((kind, namespace, name))
        if extra is not None and self._extra_wins:
            return extra
        return self._base.get(kind, namespace, name) or extra


def with_bootstrap_policy(reader: ObjectReader) -> ObjectReader:
    """The snapshot plus the API server's default discovery grants it does not hold itself."""
    return LayeredReader(reader, BOOTSTRAP_POLICY, extra_wins=False)


# -- the agent's account and its permissions -----------------------------------------------------


@dataclass(frozen=True)
class AgentAccount:
    """An agent DaemonSet, the service account its pods run as, and what its env turns on."""

    workload: KubeObject
    """The DaemonSet."""
    namespace: str
    """Its namespace, also the service account's."""
    name: str
    """The service account (`default` when the template names none)."""
    field_path: str
    """The template field naming it: `serviceAccountName` (or the deprecated `serviceAccount`)."""
    field_value: str | None
    """What that field holds; None when absent."""
    env: Mapping[str, str]
    """The PERMISSION_ENV values the agent container sees (as the live source reads them)."""

    @property
    def features(self) -> list[str]:
        """The features the env turns on (facts.agent_permissions.required_features)."""
        return required_features(self.env)

    @property
    def ref(self) -> ObjectRef:
        """The DaemonSet's reference."""
        return ObjectRef("DaemonSet", self.namespace, str(metadata(self.workload).get("name") or ""))

    def as_account(self, name: str) -> AgentAccount:
        """The same agent, as if it ran as another account of its namespace."""
        return AgentAccount(self.workload, self.namespace, name, self.field_path, self.field_value, self.env)


def agent_accounts(ctx: Context) -> list[AgentAccount]:
    """Every agent DaemonSet with its service account and permission-relevant env."""
    found = []
    for workload in agent_workloads(ctx, kinds=("DaemonSet",)):
        namespace = str(metadata(workload).get("namespace") or "default")
        template = pod_template(workload) or {}
        spec = template.get("spec") or {}
        base = template_path(workload)
        if spec.get("serviceAccountName"):
            path, value = f"{base}.spec.serviceAccountName", str(spec["serviceAccountName"])
        elif spec.get("serviceAccount"):
            path, value = f"{base}.spec.serviceAccount", str(spec["serviceAccount"])
        else:
            path, value = f"{base}.spec.serviceAccountName", None
        container = agent_container(template)
        env: dict[str, str] = {}
        for name in PERMISSION_ENV:
            found_value = env_value(ctx, template, container, name, namespace)
            if found_value is not None:
                env[name] = found_value
        found.append(AgentAccount(workload, namespace, value or DEFAULT_ACCOUNT, path, value, env))
    return found


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
        """The verdicts that deny."""
        return [v for v in self.verdicts if not v.allowed]

    def denied_features(self) -> list[str]:
        """Features with a denied request, in the order judged."""
        seen: list[str] = []
        for verdict in self.denied:
            if verdict.feature not in seen:
                seen.append(verdict.feature)
        return seen


def _leader_resource_pinned(env: Mapping[str, str]) -> bool:
    """Whether the env chooses the leader-election resource (then no alternative counts)."""
    return env.get("DD_LEADER_ELECTION_DEFAULT_RESOURCE", "").strip() != ""


def check_permissions(evaluator: RbacEvaluator, probes: Mapping[str, Any], account: AgentAccount) -> PermissionCheck:
    """Judge each request of the features the agent uses, alternatives (ConfigMap, Lease) applied.

    A feature with ALTERNATIVES is satisfied by either set of permissions unless the env pins the
    resource (`DD_LEADER_ELECTION_DEFAULT_RESOURCE`); when neither set is complete the feature the
    env selects is reported.
    """

    def judge(feature: str) -> list[Verdict]:
        requests = requests_for([feature], account.namespace, account.name, env=account.env)
        return [Verdict(feature, r, evaluator.allows(r), rbac_answer(probes, r)) for r in requests]

    verdicts: list[Verdict] = []
    alternatives: dict[str, str] = {}
    for feature in account.features:
        judged = judge(feature)
        if any(not v.allowed for v in judged) and not _leader_resource_pinned(account.env):
            for other in ALTERNATIVES.get(feature, ()):
                other_judged = judge(other)
                if all(v.allowed for v in other_judged):
                    judged, alternatives[feature] = other_judged, other
                    break
        verdicts.extend(judged)
    return PermissionCheck(account, verdicts, alternatives)


def rbac_evaluator(reader: ObjectReader) -> RbacEvaluator:
    """An evaluator over the snapshot's RBAC objects plus the API server's default grants."""
    return RbacEvaluator(with_bootstrap_policy(reader))


def agent_service_accounts(accounts: Sequence[AgentAccount]) -> set[tuple[str, str]]:
    """(namespace, name) of every account an agent runs as."""
    return {(a.namespace, a.name) for a in accounts}


# -- describing requests -------------------------------------------------------------------------


def _target(request: Request) -> str:
    """What a request is about, without the verb: `nodes/proxy`, `configmaps "x" in datadog`."""
    text = request.describe()[len(request.verb) + 1 :]
    return text.removesuffix(" cluster-wide")


def describe_requests(requests: Iterable[Request]) -> str:
    """`get/list/watch pods, nodes, get nodes/proxy`: verbs grouped over the same targets."""
    verbs_by_target: dict[str, list[str]] = {}
    for request in requests:
        verbs = verbs_by_target.setdefault(_target(request), [])
        if request.verb not in verbs:
            verbs.append(request.verb)
    targets_by_verbs: dict[tuple[str, ...], list[str]] = {}
    for target, verbs in verbs_by_target.items():
        targets_by_verbs.setdefault(tuple(verbs), []).append(target)
    return ", ".join(f"{'/'.join(v)} {', '.join(t)}" for v, t in targets_by_verbs.items())


def describe_denied(check: PermissionCheck) -> str:
    """`what it needs for kubelet: get nodes/proxy; events: get/list/watch events`."""
    parts = []
    for feature in check.denied_features():
        requests = [v.request for v in check.denied if v.feature == feature]
        parts.append(f"{feature}: {describe_requests(requests)}")
    return "what it needs for " + "; ".join(parts)


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


# -- building the rules a fix adds ---------------------------------------------------------------


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


def role_features(account: AgentAccount) -> list[str]:
    """The features a role for this agent grants: those it uses, leader election both ways.

    Both leader-election resources unless the env pins one, so agents before and after 7.47 work.
    """
    features = list(account.features)
    if not _leader_resource_pinned(account.env):
        for feature in list(features):
            for other in ALTERNATIVES.get(feature, ()):
                if other not in features:
                    features.append(other)
    return sorted(features, key=FEATURES.index)


def _free_name(reader: ObjectReader, kind: str, wanted: Sequence[str]) -> str:
    """The first of the names no cluster-scoped object of this kind has."""
    for name in wanted:
        if reader.get(kind, "", name) is None:
            return name
    return wanted[-1]


def still_denied(reader: ObjectReader, account: AgentAccount, added: Sequence[KubeObject]) -> list[Request]:
    """The agent's requests still denied once `added` is applied (offline evaluation)."""
    evaluator = RbacEvaluator(LayeredReader(with_bootstrap_policy(reader), added, extra_wins=True))
    check = check_permissions(evaluator, {}, account)
    return [v.request for v in check.denied]


# -- MD401 --------------------------------------------------------------------------------------


def bound_accounts(ctx: Context, namespace: str) -> dict[str, list[tuple[KubeObject, int]]]:
    """ServiceAccounts of `namespace` that bindings name: name -> [(binding, subject index)].

    A subject without a namespace defaults to a RoleBinding's own namespace, as the API server does
    (and matches nobody in a ClusterRoleBinding).
    """
    found: dict[str, list[tuple[KubeObject, int]]] = {}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in ctx.objects(kind):
            binding_namespace = str(metadata(binding).get("namespace") or "") if kind == "RoleBinding" else ""
            for index, subject in enumerate(binding.get("subjects") or []):
                if not isinstance(subject, Mapping) or subject.get("kind") != "ServiceAccount":
                    continue
                subject_namespace = str(subject.get("namespace") or binding_namespace)
                if subject_namespace == namespace and subject.get("name"):
                    found.setdefault(str(subject["name"]), []).append((binding, index))
    return found


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


class AgentServiceAccountUnset(Rule):
    """MD401."""

    id = "MD401"
    title = "Agent runs as the default service account, not the one its RBAC binds"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs(
        "DaemonSet",
        *RBAC_KINDS,
        optional=["ServiceAccount", "Pod", *ENV_KINDS],
        logs=["agent"],
    )
    docs = RuleDocs(
        what="An agent DaemonSet whose pod template sets no `serviceAccountName` (or sets "
        "`default`), while a ClusterRoleBinding or RoleBinding grants a role to another "
        "ServiceAccount of the agent's namespace (typically `datadog-agent`) and none to "
        "`default`, and `default` lacks permissions the agent needs (a grant to a group such "
        "as `system:serviceaccounts:<namespace>` can cover it).",
        why="The pods run as `default`, which the RBAC objects do not cover: the agent's calls to "
        "the kubelet and the API server (pods, nodes, events, leader election, `/metrics`) are "
        "forbidden, so Kubernetes metadata, events and the kubernetes_state checks are missing "
        "although the RBAC manifests were applied.",
        fix="Set `spec.template.spec.serviceAccountName` to the bound account (meshdoctor writes "
        "the whole corrected DaemonSet, literal secrets redacted, and the ServiceAccount when it "
        "is missing) and apply it; the pods are recreated.",
        references=(
            "https://docs.datadoghq.com/containers/kubernetes/installation/",
            "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/",
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent DaemonSet running as `default` while RBAC names another account."""
        evaluator = rbac_evaluator(ctx)
        for account in agent_accounts(ctx):
            fault = default_account_fault(ctx, evaluator, account)
            if fault is None:
                continue
            workload, namespace, binding = account.workload, account.namespace, fault.binding
            evidence: list[Evidence] = [
                ctx.field(workload, account.field_path, account.field_value),
                ctx.field(binding, f"subjects[{fault.subject_index}].name", fault.chosen),
            ]
            role_ref = binding.get("roleRef") or {}
            evidence.append(ctx.field(binding, "roleRef.name", role_ref.get("name")))
            evidence.extend(_forbidden_lines(ctx, workload, namespace))
            service_account = ctx.get("ServiceAccount", namespace, fault.chosen)
            ref = account.ref
            binding_ref = ctx.ref(binding)
            yield self.finding(
                f"{ref} runs as service account '{DEFAULT_ACCOUNT}', but {binding_ref} grants "
                f"{role_ref.get('kind', 'role')} {role_ref.get('name', '?')} to "
                f"{namespace}/{fault.chosen}: as '{DEFAULT_ACCOUNT}' the agent is denied "
                f"{describe_denied(fault.check)}.",
                objects=[ref, binding_ref],
                evidence=evidence,
                remediation=self._remediation(workload, fault.chosen, namespace, service_account is None),
            )

    @staticmethod
    def _remediation(workload: KubeObject, account: str, namespace: str, create_account: bool) -> Remediation:
        fixed = clean_copy(workload)
        template = pod_template(fixed)
        assert template is not None  # agent_workloads only yields objects with a template
        spec = template.setdefault("spec", {})
        spec.pop("serviceAccount", None)  # deprecated alias; serviceAccountName wins
        spec["serviceAccountName"] = account
        objects = []
        if create_account:
            objects.append(service_account_manifest(namespace, account))
        objects.append(fixed)
        name = metadata(workload).get("name")
        extra = (
            f" and create ServiceAccount {namespace}/{account}, which is bound but missing" if create_account else ""
        )
        return apply_manifests(
            f"Run DaemonSet {namespace}/{name} as {namespace}/{account}, the account the "
            f"RBAC objects bind{extra}. The manifest is the whole DaemonSet with only "
            "serviceAccountName changed (literal secrets are replaced by a placeholder: put the "
            "Secret reference back before applying). Applying it recreates the agent pods.",
            objects,
            safe=False,
        )


def service_account_manifest(namespace: str, name: str) -> KubeObject:
    """A complete ServiceAccount."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }


def _forbidden_lines(ctx: Context, workload: KubeObject, namespace: str) -> list[Evidence]:
    """Per agent pod, the first log line where the API server refused the `default` account."""
    needle = f'User "system:serviceaccount:{namespace}:{DEFAULT_ACCOUNT}"'
    container = agent_container(pod_template(workload))
    if container is None:
        return []
    name = str(container.get("name", ""))
    found: list[Evidence] = []
    for pod in pods_of(ctx, workload):
        pod_name = str(metadata(pod).get("name") or "")
        log = ctx.logs(namespace, pod_name, name)
        if log is None:
            continue
        first: tuple[int, str] | None = None
        count = 0
        for number, line in enumerate(log.lines(), start=1):
            if needle in line and "forbidden" in line:
                count += 1
                if first is None:
                    first = (number, line)
        if first is not None:
            found.append(LogEvidence(namespace, pod_name, name, first[0], first[1], count=count))
    return found


# -- MD402 --------------------------------------------------------------------------------------

#: The DaemonSet controller's event when the pod's service account is missing (kubernetes
#: plugin/pkg/admission/serviceaccount: "error looking up service account %s/%s: %v").
SERVICE_ACCOUNT_LOOKUP_ERROR = "error looking up service account"


def _lookup_events(ctx: Context, account: AgentAccount) -> list[KubeObject]:
    """Events of the DaemonSet saying its pods cannot be created for want of the account."""
    needle = f"{SERVICE_ACCOUNT_LOOKUP_ERROR} {account.namespace}/{account.name}:"
    found = []
    for event in ctx.objects("Event"):
        involved = event.get("involvedObject") or {}
        if (
            involved.get("kind") == "DaemonSet"
            and involved.get("namespace") == account.namespace
            and involved.get("name") == account.ref.name
            and needle in str(event.get("message") or "")
        ):
            found.append(event)
    return found


class AgentServiceAccountMissing(Rule):
    """MD402."""

    id = "MD402"
    title = "Agent DaemonSet names a service account that does not exist"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", optional=["ServiceAccount", "Event", *ENV_KINDS])
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
            events = _lookup_events(ctx, account)
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


# -- MD403 --------------------------------------------------------------------------------------


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


def _binding_object(reader: ObjectReader, ref: ObjectRef) -> KubeObject | None:
    return reader.get(ref.kind, ref.namespace, ref.name)


def corrected_binding(binding: KubeObject, entry: BindingSubject, account: AgentAccount) -> KubeObject:
    """The whole binding with the subject's namespace set to the agent's."""
    fixed = clean_copy(binding)
    fixed["subjects"][entry.subject_index]["namespace"] = account.namespace
    return fixed


class BindingSubjectWrongNamespace(Rule):
    """MD403."""

    id = "MD403"
    title = "RBAC binding names the agent's service account in another namespace"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = _BINDING_INPUTS
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
                binding = _binding_object(ctx, entry.binding)
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


# -- MD404 --------------------------------------------------------------------------------------


def _agent_grants(reader: ObjectReader, account: AgentAccount) -> list[BindingSubject]:
    """Bindings meant for the agent: naming its account, or the service-account groups."""
    found = bindings_for_service_account(reader, account.namespace, account.name)
    groups = {ALL_SERVICE_ACCOUNTS_GROUP, f"{ALL_SERVICE_ACCOUNTS_GROUP}:{account.namespace}"}
    return found.named + [e for e in found.via_groups if e.subject.get("name") in groups]


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


class BoundRoleMissing(Rule):
    """MD404."""

    id = "MD404"
    title = "The agent's RBAC binding refers to a role that does not exist"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = _BINDING_INPUTS
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
            entries = [e for e in _agent_grants(ctx, account) if e.binding in missing]
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
                binding = _binding_object(ctx, entry.binding)
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


# -- MD405 --------------------------------------------------------------------------------------


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
        binding = _binding_object(ctx, entry.binding)
        if binding is not None:
            objects.append(corrected_binding(binding, entry, account))
    if objects:
        rules.append("MD403")
    missing = {m.binding: m for m in evaluator.missing_roles()}
    created = False
    for entry in _agent_grants(ctx, account):
        binding = _binding_object(ctx, entry.binding)
        if entry.binding in missing and binding is not None:
            objects.extend(missing_role_fix(account, binding, missing[entry.binding])[0])
            created = True
    if created:
        rules.append("MD404")
    return StructuralFixes(account, objects, rules)


class AgentPermissionsMissing(Rule):
    """MD405."""

    id = "MD405"
    title = "The agent's service account lacks permissions the agent needs"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = _BINDING_INPUTS
    docs = RuleDocs(
        what="For each agent DaemonSet, the authorization questions the features it uses raise "
        "(Kubernetes metadata, the kubelet, events with `DD_COLLECT_KUBERNETES_EVENTS`, leader "
        "election with `DD_LEADER_ELECTION` as a ConfigMap or a Lease, API server URLs, "
        "componentstatuses) answered for its service account with the API server's RBAC "
        "semantics (aggregated ClusterRoles, RoleBindings only in their namespace, group "
        "subjects). Either leader-election resource suffices unless "
        "`DD_LEADER_ELECTION_DEFAULT_RESOURCE` pins one. `/version` and `/healthz` are granted "
        "to every authenticated user by the default `system:discovery` and "
        "`system:public-info-viewer` bindings, counted unless the input holds them changed. "
        "Where the live source asked the API server (SubjectAccessReviews), its answer counts "
        "and both verdicts are shown. Error for metadata and kubelet, warning for events, leader "
        "election and API server URLs, info for componentstatuses. When MD401, MD403 or MD404 "
        "explains the denials, it judges the agent as if their fixes were applied and reports "
        "only what would still be denied.",
        why="Each denied request silently removes data: without pods/nodes no Kubernetes tags, "
        "without nodes/proxy and nodes/stats no kubelet and container metrics, without events "
        "no Kubernetes events, without the leader-election ConfigMap or Lease no elected agent "
        "collects cluster-level data. The agent logs `forbidden` and keeps running.",
        fix="Add the missing rules to the ClusterRole the agent is bound to (meshdoctor writes the "
        "whole role with the rules added), or, when the agent has no ClusterRole bound "
        "cluster-wide, apply the ClusterRole and ClusterRoleBinding meshdoctor writes.",
        references=(
            "https://github.com/DataDog/datadog-agent/blob/main/Dockerfiles/manifests/rbac/clusterrole.yaml",
            "https://github.com/DataDog/helm-charts/blob/main/charts/datadog/templates/rbac.yaml",
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#default-roles-and-role-bindings",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent DaemonSet whose account is denied a needed request."""
        accounts = agent_accounts(ctx)
        agents = agent_service_accounts(accounts)
        evaluator = rbac_evaluator(ctx)
        for account in accounts:
            check = check_permissions(evaluator, ctx.snapshot.probes, account)
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
            yield self._finding(ctx, view, fixes.account, check, account, fixes.rules)

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
        for entry in _agent_grants(ctx, account):
            binding = _binding_object(ctx, entry.binding)
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
        entries = _agent_grants(ctx, account)
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
            if role is None:
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


RULES = [
    AgentServiceAccountUnset,
    AgentServiceAccountMissing,
    BindingSubjectWrongNamespace,
    BoundRoleMissing,
    AgentPermissionsMissing,
]
