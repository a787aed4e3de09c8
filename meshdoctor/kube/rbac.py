"""An RBAC evaluator with the kube-apiserver's own semantics, run over a snapshot.

Rules ask "may the agent's service account do X?" of manifests and dumps as well as of a live
cluster, so the answer must be the one the API server would give. The matching below follows
kubernetes `pkg/apis/rbac/v1/evaluation_helpers.go` (VerbMatches, APIGroupMatches, ResourceMatches,
ResourceNameMatches, NonResourceURLMatches), `plugin/pkg/auth/authorizer/rbac/rbac.go` (RuleAllows)
and `pkg/registry/rbac/validation/rule.go` (VisitRulesFor, appliesToUser), plus the ClusterRole
aggregation controller (`pkg/controller/clusterroleaggregation`) and the apiserver's privileged
group authorizer for `system:masters`. It is our own code, written to match them.

What the API server does, and this module therefore does too:

- ClusterRoleBindings apply in every namespace and to cluster-scoped and non-resource requests;
  RoleBindings are consulted only for a request in their own namespace (a non-resource request has
  no namespace, so only ClusterRoleBindings can grant a non-resource URL).
- A ServiceAccount subject without a namespace defaults to the binding's namespace in a
  RoleBinding and matches nobody in a ClusterRoleBinding.
- A binding whose role does not exist grants nothing (the server records an error and goes on).
- An aggregated ClusterRole's rules are the union of the rules of the other ClusterRoles its
  selectors match (the controller overwrites whatever rules the object itself lists), except
  that when nothing matches, the rules the object lists stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from meshdoctor.kube.labels import selector_matches
from meshdoctor.kube.meta import metadata
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader

#: The group the apiserver's privileged-group authorizer allows everything
#: (k8s.io/apiserver `user.SystemPrivilegedGroup`, wired in pkg/kubeapiserver/authorizer).
SUPERUSER_GROUP = "system:masters"

#: Username prefix and groups of a service account (k8s.io/apiserver authentication/serviceaccount).
SERVICE_ACCOUNT_USER_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"

#: The rbac/v1 wildcards (`VerbAll`, `APIGroupAll`, `ResourceAll`, `NonResourceAll`).
_ALL = "*"

_BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")

#: Every kind RbacEvaluator and bindings_for_service_account read: a rule using them declares these.
KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


@dataclass(frozen=True)
class Request:
    """One authorization question, as a SubjectAccessReview asks it.

    A request with a `non_resource_url` is a non-resource request (`/healthz`, `/metrics`): its
    namespace, API group and resource are ignored, as the API server never sets them.
    """

    user: str
    """The user name, e.g. `system:serviceaccount:datadog:datadog-agent`."""
    groups: tuple[str, ...] = ()
    """The user's groups, exactly as authenticated (nothing is added)."""
    verb: str = ""
    """`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ... (lower case, as sent)."""
    api_group: str = ""
    """The API group; `""` is the core group."""
    resource: str = ""
    """The resource (plural), e.g. `nodes`."""
    subresource: str = ""
    """The subresource, e.g. `proxy` for `nodes/proxy`."""
    namespace: str = ""
    """The namespace; `""` for cluster-scoped resources and for all-namespace list/watch."""
    name: str = ""
    """The object's name; `""` for list, watch (without a name) and create."""
    non_resource_url: str = ""
    """The path of a non-resource request, e.g. `/version`."""

    def __post_init__(self) -> None:
        # Accept any sequence of groups but keep the record hashable.
        object.__setattr__(self, "groups", tuple(self.groups))

    @property
    def is_resource_request(self) -> bool:
        """True unless the request is for a non-resource URL."""
        return not self.non_resource_url

    @property
    def scope_namespace(self) -> str:
        """The namespace whose RoleBindings apply: none for a non-resource request."""
        return self.namespace if self.is_resource_request else ""

    def access_review(self) -> dict[str, Any]:
        """The SubjectAccessReview that asks the API server this same question."""
        spec: dict[str, Any] = {"user": self.user, "groups": list(self.groups)}
        if self.non_resource_url:
            spec["nonResourceAttributes"] = {"path": self.non_resource_url, "verb": self.verb}
        else:
            spec["resourceAttributes"] = {
                "verb": self.verb,
                "group": self.api_group,
                "resource": self.resource,
                "subresource": self.subresource,
                "namespace": self.namespace,
                "name": self.name,
            }
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}

    def for_subject(self, user: str, groups: Sequence[str]) -> Request:
        """The same request, asked for another user."""
        return Request(
            user,
            tuple(groups),
            self.verb,
            self.api_group,
            self.resource,
            self.subresource,
            self.namespace,
            self.name,
            self.non_resource_url,
        )

    def describe(self) -> str:
        """`get nodes/proxy`, `update configmaps "datadogtoken" in datadog`, `get /version`."""
        if not self.is_resource_request:
            return f"{self.verb} {self.non_resource_url}"
        resource = self.resource + (f".{self.api_group}" if self.api_group else "")
        if self.subresource:
            resource += f"/{self.subresource}"
        text = f"{self.verb} {resource}"
        if self.name:
            text += f' "{self.name}"'
        text += f" in {self.namespace}" if self.namespace else " cluster-wide"
        return text

    def __str__(self) -> str:
        return self.describe()


class Grant(NamedTuple):
    """One rule that allows a request, and how the subject got it."""

    binding: ObjectRef
    """The RoleBinding or ClusterRoleBinding naming the subject."""
    role: ObjectRef
    """The Role or ClusterRole the binding refers to."""
    rule_index: int
    """Index of the rule in the role's effective rules (after aggregation)."""


@dataclass(frozen=True)
class Decision:
    """The API server's answer, with the grants that produce it."""

    allowed: bool
    """True when some rule allows the request, or the user is in `system:masters`."""
    by: list[Grant] = field(default_factory=list)
    """Every binding/role/rule that allows it, ClusterRoleBindings first, each list by name."""
    reason: str = ""
    """One sentence, in the API server's terms."""


class MissingRole(NamedTuple):
    """A binding whose roleRef names a role that is not there: it grants nothing."""

    binding: ObjectRef
    """The binding."""
    role: ObjectRef
    """The role it refers to (kind from roleRef, namespace of the binding for a Role)."""
    reason: str
    """`not found`, or why the reference cannot resolve (a Role from a ClusterRoleBinding)."""


class BindingSubject(NamedTuple):
    """A binding, its role, and the subject in it that names a service account."""

    binding: ObjectRef
    """The RoleBinding or ClusterRoleBinding."""
    role: ObjectRef
    """Its role reference."""
    subject_index: int
    """Index of the subject in `subjects`."""
    subject: Mapping[str, Any]
    """The subject as written."""


@dataclass(frozen=True)
class ServiceAccountBindings:
    """Which bindings concern one service account, split the way mistakes are made."""

    named: list[BindingSubject]
    """Bindings naming this account (namespace defaulted as the server does)."""
    other_namespace: list[BindingSubject]
    """Bindings naming an account of the same name in ANOTHER namespace (or, in a
    ClusterRoleBinding, without a namespace): a typical copy-paste mistake. They grant it nothing.
    """
    via_groups: list[BindingSubject]
    """Bindings that reach it through `system:serviceaccounts[:<ns>]` or `system:authenticated`."""


def service_account_user(namespace: str, name: str) -> tuple[str, tuple[str, ...]]:
    """The user name and groups the API server authenticates a service account token as."""
    return (
        f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}",
        (
            ALL_SERVICE_ACCOUNTS_GROUP,
            f"{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}",
            AUTHENTICATED_GROUP,
        ),
    )


# -- rule matching (evaluation_helpers.go) -----------------------------------------------------


def _strings(value: Any) -> list[str]:
    """A list field of a rule; absent or null is empty."""
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def verb_matches(rule: Mapping[str, Any], verb: str) -> bool:
    """A rule's verbs include the verb or `*`."""
    return any(v == _ALL or v == verb for v in _strings(rule.get("verbs")))


def api_group_matches(rule: Mapping[str, Any], group: str) -> bool:
    """A rule's apiGroups include the group or `*`."""
    return any(g == _ALL or g == group for g in _strings(rule.get("apiGroups")))


def resource_matches(rule: Mapping[str, Any], resource: str, subresource: str) -> bool:
    """`*`, `resource[/subresource]` or `*/subresource`; `pods` never covers `pods/log`."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for ruled in _strings(rule.get("resources")):
        if ruled == _ALL or ruled == combined:
            return True
        if subresource and ruled == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: Mapping[str, Any], name: str) -> bool:
    """No resourceNames means any; else the request's name must be listed (list/create: never)."""
    names = _strings(rule.get("resourceNames"))
    return not names or name in names


def non_resource_url_matches(rule: Mapping[str, Any], url: str) -> bool:
    """`*`, the exact path, or a prefix ending in `*` (trailing stars trimmed)."""
    for ruled in _strings(rule.get("nonResourceURLs")):
        if ruled == _ALL or ruled == url:
            return True
        if ruled.endswith("*") and url.startswith(ruled.rstrip("*")):
            return True
    return False


def rule_allows(request: Request, rule: Mapping[str, Any]) -> bool:
    """Whether one PolicyRule allows a request (rbac.go RuleAllows)."""
    if request.is_resource_request:
        return (
            verb_matches(rule, request.verb)
            and api_group_matches(rule, request.api_group)
            and resource_matches(rule, request.resource, request.subresource)
            and resource_name_matches(rule, request.name)
        )
    return verb_matches(rule, request.verb) and non_resource_url_matches(rule, request.non_resource_url)


# -- subjects (rule.go appliesToUser) ----------------------------------------------------------


def subject_applies(subject: Mapping[str, Any], user: str, groups: Sequence[str], binding_namespace: str) -> bool:
    """If a binding subject is the user; `binding_namespace` is `""` in a ClusterRoleBinding."""
    kind = subject.get("kind")
    name = str(subject.get("name") or "")
    if kind == "User":
        return user == name
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or "") or binding_namespace
        if not namespace:
            return False
        return user == f"{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"
    return False


def _role_ref(binding: KubeObject, binding_namespace: str) -> ObjectRef:
    ref = binding.get("roleRef") or {}
    kind = str(ref.get("kind") or "")
    return ObjectRef(kind, binding_namespace if kind == "Role" else "", str(ref.get("name") or ""))


def _binding_ref(binding: KubeObject, kind: str) -> ObjectRef:
    meta = metadata(binding)
    return ObjectRef(
        kind,
        str(meta.get("namespace") or "") if kind == "RoleBinding" else "",
        str(meta.get("name") or ""),
    )


class RbacEvaluator:
    """Answers authorization questions from the Roles, ClusterRoles and bindings of a snapshot."""

    def __init__(self, reader: ObjectReader) -> None:
        self._reader = reader
        self._cluster_roles: dict[str, KubeObject] = {}
        for role in reader.objects("ClusterRole"):
            self._cluster_roles[str(metadata(role).get("name") or "")] = role
        self._roles: dict[tuple[str, str], KubeObject] = {}
        for role in reader.objects("Role"):
            meta = metadata(role)
            self._roles[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = role
        self._cluster_bindings = sorted(
            reader.objects("ClusterRoleBinding"), key=lambda b: str(metadata(b).get("name") or "")
        )
        self._bindings_by_ns: dict[str, list[KubeObject]] = {}
        for binding in reader.objects("RoleBinding"):
            self._bindings_by_ns.setdefault(str(metadata(binding).get("namespace") or ""), []).append(binding)
        for bindings in self._bindings_by_ns.values():
            bindings.sort(key=lambda b: str(metadata(b).get("name") or ""))
        self._effective: dict[str, list[dict[str, Any]]] = {}

    # -- roles ---------------------------------------------------------------------------

    def cluster_role_rules(self, name: str) -> list[dict[str, Any]] | None:
        """A ClusterRole's effective rules (aggregation applied), or None when it does not exist."""
        if name not in self._cluster_roles:
            return None
        return self._aggregated(name, frozenset())

    def _aggregated(self, name: str, visiting: frozenset[str]) -> list[dict[str, Any]]:
        cached = self._effective.get(name)
        if cached is not None:
            return cached
        role = self._cluster_roles[name]
        aggregation = role.get("aggregationRule")
        if aggregation is None:
            rules = [dict(r) for r in role.get("rules") or []]
        else:
            # The controller: for each selector, the matching ClusterRoles by name, skipping the
            # role itself, their rules appended unless an equal rule is already there.
            rules = []
            visiting = visiting | {name}
            for selector in aggregation.get("clusterRoleSelectors") or []:
                for other in sorted(self._cluster_roles):
                    if other == name:
                        continue
                    labels = metadata(self._cluster_roles[other]).get("labels") or {}
                    if not selector_matches(selector, labels):
                        continue
                    if other in visiting:  # a cycle: use what the object lists, as the controller would
                        source = [dict(r) for r in self._cluster_roles[other].get("rules") or []]
                    else:
                        source = self._aggregated(other, visiting)
                    for rule in source:
                        if not any(_same_rule(rule, kept) for kept in rules):
                            rules.append(rule)
            if not rules:
                # The controller server-side-applies the union; an empty union is applied as no
                # `rules` field at all, which leaves the rules the object lists in place
                # (checked against kube-apiserver/controller-manager 1.34).
                rules = [dict(r) for r in role.get("rules") or []]
        if aggregation is None or len(visiting) == 1:
            # Only a top-level result is final: inside a cycle it depends on where one entered.
            self._effective[name] = rules
        return rules

    def role_rules(self, namespace: str, name: str) -> list[dict[str, Any]] | None:
        """A Role's rules, or None when it does not exist."""
        role = self._roles.get((namespace, name))
        if role is None:
            return None
        return [dict(r) for r in role.get("rules") or []]

    def _referenced_rules(self, binding: KubeObject, binding_namespace: str) -> tuple[list[dict[str, Any]] | None, str]:
        """GetRoleReferenceRules: the rules of a binding's role, or None and why not."""
        ref = binding.get("roleRef") or {}
        kind = ref.get("kind")
        name = str(ref.get("name") or "")
        if kind == "Role":
            if not binding_namespace:
                return None, "a ClusterRoleBinding cannot refer to a Role"
            rules = self.role_rules(binding_namespace, name)
            return rules, "" if rules is not None else "not found"
        if kind == "ClusterRole":
            rules = self.cluster_role_rules(name)
            return rules, "" if rules is not None else "not found"
        return None, f"unsupported role reference kind {kind!r}"

    def missing_roles(self) -> list[MissingRole]:
        """Every binding whose role is not in the snapshot: such a binding grants nothing."""
        missing: list[MissingRole] = []
        for binding in self._cluster_bindings:
            rules, why = self._referenced_rules(binding, "")
            if rules is None:
                missing.append(MissingRole(_binding_ref(binding, "ClusterRoleBinding"), _role_ref(binding, ""), why))
        for namespace in sorted(self._bindings_by_ns):
            for binding in self._bindings_by_ns[namespace]:
                rules, why = self._referenced_rules(binding, namespace)
                if rules is None:
                    missing.append(
                        MissingRole(_binding_ref(binding, "RoleBinding"), _role_ref(binding, namespace), why)
                    )
        return missing

    # -- evaluation ----------------------------------------------------------------------

    def rules_for(self, user: str, groups: Sequence[str], namespace: str) -> list[tuple[Grant, dict[str, Any]]]:
        """Every rule that applies to a user in a namespace (`""`: cluster-wide), with its grant."""
        found: list[tuple[Grant, dict[str, Any]]] = []
        scopes: list[tuple[str, list[KubeObject], str]] = [("", self._cluster_bindings, "ClusterRoleBinding")]
        if namespace:
            scopes.append((namespace, self._bindings_by_ns.get(namespace, []), "RoleBinding"))
        for binding_namespace, bindings, kind in scopes:
            for binding in bindings:
                subjects = binding.get("subjects") or []
                if not any(subject_applies(s, user, groups, binding_namespace) for s in subjects):
                    continue
                rules, _ = self._referenced_rules(binding, binding_namespace)
                if rules is None:
                    continue
                binding_ref = _binding_ref(binding, kind)
                role_ref = _role_ref(binding, binding_namespace)
                for index, rule in enumerate(rules):
                    found.append((Grant(binding_ref, role_ref, index), rule))
        return found

    def allows(self, request: Request) -> Decision:
        """The API server's decision for a request, with every grant that allows it."""
        grants = [
            grant
            for grant, rule in self.rules_for(request.user, request.groups, request.scope_namespace)
            if rule_allows(request, rule)
        ]
        if SUPERUSER_GROUP in request.groups:
            return Decision(True, grants, f"user is in the {SUPERUSER_GROUP} group, which may do anything")
        if grants:
            first = grants[0]
            return Decision(
                True,
                grants,
                f"RBAC: allowed by {first.binding} of {first.role} rule {first.rule_index}",
            )
        return Decision(False, [], f'RBAC: no rule allows user "{request.user}" to {request.describe()}')

    def not_read(self, request: Request) -> str | None:
        """Why the bindings that could allow a namespaced request are not known, or None.

        Its namespace's RoleBindings or Roles were not read (`-n`); cluster-wide requests are
        judged by ClusterRoleBindings alone.
        """
        namespace = request.scope_namespace
        if not namespace:
            return None
        for kind in ("RoleBinding", "Role"):
            why = self._reader.not_read(kind, namespace)
            if why is not None:
                return f"{kind}s in {namespace}: {why}"
        return None

    def explain_missing(self, subject: tuple[str, Sequence[str]] | None, requests: Iterable[Request]) -> list[Request]:
        """The requests the subject may NOT make, in the order given.

        `subject` is `(user, groups)` (see `service_account_user`) and replaces each request's own;
        None keeps the users the requests carry.
        """
        denied: list[Request] = []
        for request in requests:
            asked = request.for_subject(subject[0], subject[1]) if subject is not None else request
            if not self.allows(asked).allowed:
                denied.append(asked)
        return denied


def _same_rule(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Semantic equality of two PolicyRules (empty and absent lists are equal)."""
    keys = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
    return all(_strings(a.get(k)) == _strings(b.get(k)) for k in keys)


def bindings_for_service_account(reader: ObjectReader, namespace: str, name: str) -> ServiceAccountBindings:
    """Bindings that name a service account, those that miss it by namespace, and group grants."""
    named: list[BindingSubject] = []
    other: list[BindingSubject] = []
    via_groups: list[BindingSubject] = []
    user, groups = service_account_user(namespace, name)
    for kind in _BINDING_KINDS:
        for binding in sorted(
            reader.objects(kind),
            key=lambda b: (str(metadata(b).get("namespace") or ""), str(metadata(b).get("name") or "")),
        ):
            binding_namespace = str(metadata(binding).get("namespace") or "") if kind == "RoleBinding" else ""
            binding_ref = _binding_ref(binding, kind)
            role_ref = _role_ref(binding, binding_namespace)
            for index, subject in enumerate(binding.get("subjects") or []):
                entry = BindingSubject(binding_ref, role_ref, index, subject)
                if subject.get("kind") == "ServiceAccount" and subject.get("name") == name:
                    if subject_applies(subject, user, groups, binding_namespace):
                        named.append(entry)
                    else:
                        other.append(entry)
                elif subject.get("kind") == "Group" and subject_applies(subject, user, groups, binding_namespace):
                    via_groups.append(entry)
    return ServiceAccountBindings(named, other, via_groups)


# -- SubjectAccessReview answers -----------------------------------------------------------------

#: Fields of a `meshdoctor.kube.rbac.Request`, in the order `probes["rbac"]["answers"][i]["request"]` keeps.
REQUEST_FIELDS = (
    "user",
    "groups",
    "verb",
    "api_group",
    "resource",
    "subresource",
    "namespace",
    "name",
    "non_resource_url",
)


def request_record(request: Any) -> dict[str, Any]:
    """A `meshdoctor.kube.rbac.Request` as plain data."""
    record = {name: getattr(request, name) for name in REQUEST_FIELDS}
    record["groups"] = list(record["groups"])
    return record


def rbac_answer(probes: Mapping[str, Any], request: Any) -> dict[str, Any] | None:
    """The API server's answer to a request, when the live source asked it; else None.

    The answer: `{"request": {...}, "allowed": bool, "denied": bool, "reason": str,
    "evaluation_error": str}`.
    """
    rbac = probes.get("rbac") or {}
    wanted = request_record(request)
    for answer in rbac.get("answers") or []:
        if answer.get("request") == wanted:
            return dict(answer)
    return None
