"""The Kubernetes permissions the Datadog node agent needs, feature by feature.

A fact table, not logic: rules ask `required_features(env)` which features an agent has turned on,
turn them into authorization questions with `requests_for`, and answer them with
`meshdoctor.kube.rbac.RbacEvaluator`. The fix is `clusterrole_manifest`.

Sources (each row names its own):
- OFFICIAL: DataDog/datadog-agent `Dockerfiles/manifests/rbac/clusterrole.yaml` @08f71877 — the
  ClusterRole `datadog-agent` for an agent without the Cluster Agent.
- HELM_2020: DataDog/helm-charts `charts/datadog/templates/rbac.yaml` @c88ada62 (chart 2.3.35):
  event token and leader-election rules only when `collectEvents` / `leaderElection` are set.
- HELM_2026: the same template @79f7c74f (chart 3.240.0): adds `coordination.k8s.io` leases for
  leader election, `/metrics/slis`, namespaces and endpointslices, and keeps `datadogtoken` /
  `datadog-leader-election` "for backward compatibility with agent <7.37.0".
- AGENT_CONFIG: DataDog/datadog-agent `pkg/config` defaults: `leader_lease_name`
  (`DD_LEADER_LEASE_NAME`, default `datadog-leader-election`), `leader_election_default_resource`
  (`DD_LEADER_ELECTION_DEFAULT_RESOURCE`: `configmap`, `lease`, or empty = detect leases, since
  7.47.0), `cluster_agent.token_name` (`DD_CLUSTER_AGENT_TOKEN_NAME`, default `datadogtoken`),
  `kube_resources_namespace` (`DD_KUBE_RESOURCES_NAMESPACE`, default the agent's namespace).

- HELM_DCA: DataDog/helm-charts `charts/datadog/templates/cluster-agent-rbac.yaml` @79f7c74f (chart
  3.240.0), the Cluster Agent's ClusterRole: besides the metadata, events and leader-election rules
  above, `namespaces` (the namespace metadata it serves the node agents), `discovery.k8s.io`
  `endpointslices` (read instead of `endpoints` with `kubernetes_use_endpoint_slices`), and, with
  `clusterAgent.admissionController.enabled`, the webhook configuration named
  `admission_controller.webhook_name` (default `datadog-webhook`, DataDog/datadog-agent
  `pkg/config/setup/config.go`) with get/list/watch/update and create. The webhook's certificate
  Secret (`admission_controller.certificate.secret_name`, default `webhook-certificate`) is granted by
  the namespaced Role `<release>-cluster-agent-main`; it is not asked here, since the fix MD405
  writes is a ClusterRole and would grant every Secret of the cluster.

Not listed, on purpose: OpenShift-only rules (`quota.openshift.io`, SCC `use`), PodSecurityPolicy
`use`, secret reading for the secret backend and the EKS control-plane metrics; none of them is part
of the Datadog <-> Istio integration this tool diagnoses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshdoctor.kube.rbac import Request, service_account_user

OFFICIAL = "DataDog/datadog-agent Dockerfiles/manifests/rbac/clusterrole.yaml@08f71877"
HELM_2020 = "DataDog/helm-charts charts/datadog/templates/rbac.yaml@c88ada62"
HELM_2026 = "DataDog/helm-charts charts/datadog/templates/rbac.yaml@79f7c74f"
HELM_FINE_GRAINED = (
    "DataDog/helm-charts charts/datadog/templates/rbac.yaml@03ac0297 (datadog.kubelet.fineGrainedAuthorization)"
)
HELM_DCA = "DataDog/helm-charts charts/datadog/templates/cluster-agent-rbac.yaml@79f7c74f"
DCA_MANIFEST = "DataDog/datadog-agent Dockerfiles/manifests/cluster-agent/rbac/rbac-agent.yaml@063cde12"

#: Feature names.
METADATA = "kubernetes-metadata"
EVENTS = "events"
LEADER_ELECTION = "leader-election"
LEADER_ELECTION_LEASE = "leader-election-lease"
KUBELET = "kubelet"
KUBELET_FINE_GRAINED = "kubelet-fine-grained"
APISERVER_URLS = "apiserver-urls"
COMPONENT_STATUSES = "componentstatuses"
#: Cluster Agent only (HELM_DCA).
NAMESPACES = "namespaces"
ENDPOINT_SLICES = "endpointslices"
ADMISSION_CONTROLLER = "admission-controller"

FEATURES = (
    METADATA,
    NAMESPACES,
    ENDPOINT_SLICES,
    EVENTS,
    LEADER_ELECTION,
    LEADER_ELECTION_LEASE,
    KUBELET,
    KUBELET_FINE_GRAINED,
    APISERVER_URLS,
    COMPONENT_STATUSES,
    ADMISSION_CONTROLLER,
)

#: Features only the Cluster Agent needs (HELM_DCA): never asked of a node agent.
CLUSTER_AGENT_ONLY = (NAMESPACES, ENDPOINT_SLICES, ADMISSION_CONTROLLER)

#: Features that can stand in for one another: the agent elects its leader with a ConfigMap or a
#: Lease (`leader_election_default_resource`), so either set of rights is enough.
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    LEADER_ELECTION: (LEADER_ELECTION_LEASE,),
    LEADER_ELECTION_LEASE: (LEADER_ELECTION,),
    KUBELET: (KUBELET_FINE_GRAINED,),
}

#: Leader election: the features whose alternative `DD_LEADER_ELECTION_DEFAULT_RESOURCE` can pin.
LEADER_FEATURES = (LEADER_ELECTION, LEADER_ELECTION_LEASE)

#: Kubelet version from which the fine-grained subresources (nodes/pods, nodes/healthz...) are
#: authorized on their own: KEP-2862 "Fine-grained Kubelet API authorization", feature gate
#: `KubeletFineGrainedAuthz` alpha 1.32, beta (on by default) 1.33, stable 1.36. The kubelet asks
#: for the fine-grained subresource first and falls back to `nodes/proxy`, so `nodes/proxy` works
#: on every version and the fine-grained set alone only from here.
FINE_GRAINED_KUBELET_SINCE = (1, 33)

#: Features the node agent leaves to the Cluster Agent when `DD_CLUSTER_AGENT_ENABLED` is true:
#: cluster metadata (pod-to-service mapping, node and namespace labels) comes from the Cluster
#: Agent's API (DataDog/datadog-agent pkg/util/clusteragent `GetPodsMetadataForNode`,
#: `GetNodeLabels`, `GetNamespaceLabels`), and the chart drops these rules from the node agent's
#: ClusterRole when it deploys the Cluster Agent (HELM_FINE_GRAINED: `if eq (include
#: "should-deploy-cluster-agent" .) "false"` around services/events/endpoints/pods/nodes/
#: namespaces/componentstatuses, `/version` and `/healthz`); the datadog-agent manifests for the
#: Cluster Agent setup grant the node agent only the kubelet and API server URLs (DCA_MANIFEST).
LEFT_TO_CLUSTER_AGENT = (METADATA, COMPONENT_STATUSES)

#: AGENT_CONFIG defaults of the names the agent uses for its ConfigMaps and Lease.
DEFAULT_TOKEN_NAME = "datadogtoken"
DEFAULT_LEADER_LEASE_NAME = "datadog-leader-election"
DEFAULT_WEBHOOK_NAME = "datadog-webhook"

#: Placeholders in `resource_names`, replaced by the names the agent's env configures.
TOKEN_NAME = "<token-name>"
LEADER_LEASE_NAME = "<leader-lease-name>"
WEBHOOK_NAME = "<webhook-name>"


@dataclass(frozen=True)
class Permission:
    """One rule the agent needs, for one feature, with where the fact comes from."""

    feature: str
    """Which agent feature needs it (one of FEATURES)."""
    verbs: tuple[str, ...]
    """The verbs."""
    api_group: str = ""
    """The API group; `""` is core. Unused for non-resource URLs."""
    resources: tuple[str, ...] = ()
    """Resources, `resource/subresource` for subresources."""
    non_resource_urls: tuple[str, ...] = ()
    """Non-resource paths (then `resources` is empty)."""
    resource_names: tuple[str, ...] = ()
    """Object names the rule is limited to (placeholders TOKEN_NAME, LEADER_LEASE_NAME)."""
    source: str = ""
    """The upstream file the row is taken from."""
    in_agent_namespace: bool = False
    """True for objects kept in the agent's namespace (ConfigMaps, Leases); else cluster-wide."""


PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        METADATA,
        ("get", "list", "watch"),
        "",
        ("pods", "nodes", "services", "endpoints"),
        source=OFFICIAL,
    ),
    Permission(NAMESPACES, ("get", "list", "watch"), "", ("namespaces",), source=HELM_DCA),
    Permission(ENDPOINT_SLICES, ("get", "list", "watch"), "discovery.k8s.io", ("endpointslices",), source=HELM_DCA),
    Permission(EVENTS, ("get", "list", "watch"), "", ("events",), source=OFFICIAL),
    # "Kubernetes event collection state"
    Permission(
        EVENTS,
        ("get", "update"),
        "",
        ("configmaps",),
        resource_names=(TOKEN_NAME,),
        source=HELM_2020,
        in_agent_namespace=True,
    ),
    # "Leader election token" and "To create the leader election token"
    Permission(
        LEADER_ELECTION,
        ("get", "update"),
        "",
        ("configmaps",),
        resource_names=(LEADER_LEASE_NAME,),
        source=HELM_2020,
        in_agent_namespace=True,
    ),
    Permission(LEADER_ELECTION, ("create",), "", ("configmaps",), source=OFFICIAL, in_agent_namespace=True),
    Permission(
        LEADER_ELECTION_LEASE,
        ("get", "update"),
        "coordination.k8s.io",
        ("leases",),
        resource_names=(LEADER_LEASE_NAME,),
        source=HELM_2026,
        in_agent_namespace=True,
    ),
    Permission(
        LEADER_ELECTION_LEASE,
        ("create",),
        "coordination.k8s.io",
        ("leases",),
        source=HELM_2026,
        in_agent_namespace=True,
    ),
    # "Kubelet connectivity": the kubelet authorizes the agent's calls with a SubjectAccessReview.
    Permission(
        KUBELET,
        ("get",),
        "",
        ("nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"),
        source=OFFICIAL,
    ),
    # The same with `datadog.kubelet.fineGrainedAuthorization`: nodes/pods and nodes/healthz in
    # place of nodes/proxy (the agent calls the kubelet's /pods and /healthz).
    Permission(
        KUBELET_FINE_GRAINED,
        ("get",),
        "",
        ("nodes/metrics", "nodes/spec", "nodes/pods", "nodes/healthz", "nodes/stats"),
        source=HELM_FINE_GRAINED,
    ),
    Permission(
        APISERVER_URLS,
        ("get",),
        non_resource_urls=("/version", "/healthz", "/metrics"),
        source=OFFICIAL,
    ),
    Permission(COMPONENT_STATUSES, ("get", "list", "watch"), "", ("componentstatuses",), source=OFFICIAL),
    # The admission controller's webhook (the informer lists it by `metadata.name`, which RBAC
    # authorizes against resourceNames), and its creation.
    Permission(
        ADMISSION_CONTROLLER,
        ("get", "list", "watch", "update"),
        "admissionregistration.k8s.io",
        ("mutatingwebhookconfigurations",),
        resource_names=(WEBHOOK_NAME,),
        source=HELM_DCA,
    ),
    Permission(
        ADMISSION_CONTROLLER,
        ("create",),
        "admissionregistration.k8s.io",
        ("mutatingwebhookconfigurations",),
        source=HELM_DCA,
    ),
)


#: strconv.ParseBool's true values: how the agent (viper/cast) reads a boolean env var.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def _enabled(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").strip() in _TRUE


def required_features(env: Mapping[str, str], cluster_agent: bool = False) -> list[str]:
    """The features an agent with this environment uses, in FEATURES order.

    A node agent that uses the Cluster Agent (`DD_CLUSTER_AGENT_ENABLED`) needs none of
    LEFT_TO_CLUSTER_AGENT; a Cluster Agent (`cluster_agent=True`) needs neither the kubelet nor
    the API server's `/metrics`, and needs namespaces always, endpointslices with
    `DD_KUBERNETES_USE_ENDPOINT_SLICES` and its webhook with `DD_ADMISSION_CONTROLLER_ENABLED` (HELM_DCA). Events
    only with `DD_COLLECT_KUBERNETES_EVENTS=true`; leader election only with
    `DD_LEADER_ELECTION=true`, as a Lease when `DD_LEADER_ELECTION_DEFAULT_RESOURCE` says
    `lease(s)` and as a ConfigMap otherwise (an empty value detects leases on agents >= 7.47:
    see ALTERNATIVES).
    """
    uses_cluster_agent = not cluster_agent and _enabled(env, "DD_CLUSTER_AGENT_ENABLED")
    features = [] if uses_cluster_agent else [METADATA]
    if _enabled(env, "DD_COLLECT_KUBERNETES_EVENTS"):
        features.append(EVENTS)
    if _enabled(env, "DD_LEADER_ELECTION"):
        resource = env.get("DD_LEADER_ELECTION_DEFAULT_RESOURCE", "").strip()
        features.append(LEADER_ELECTION_LEASE if resource in ("lease", "leases") else LEADER_ELECTION)
    if not cluster_agent:
        # The Cluster Agent's role in every chart version grants no `/metrics` (HELM_2020,
        # HELM_2026 `cluster-agent-rbac.yaml`): the node agents' kube_apiserver_metrics reads it.
        features += [KUBELET, APISERVER_URLS]
    if not uses_cluster_agent:
        features.append(COMPONENT_STATUSES)
    if cluster_agent:
        features.append(NAMESPACES)
        if _enabled(env, "DD_KUBERNETES_USE_ENDPOINT_SLICES"):
            features.append(ENDPOINT_SLICES)
        if _enabled(env, "DD_ADMISSION_CONTROLLER_ENABLED"):
            features.append(ADMISSION_CONTROLLER)
    return sorted(features, key=FEATURES.index)


def permissions_for(features: Iterable[str]) -> list[Permission]:
    """The table rows of these features, in table order."""
    wanted = set(features)
    unknown = wanted - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown agent feature(s): {', '.join(sorted(unknown))}")
    return [p for p in PERMISSIONS if p.feature in wanted]


def resource_names(permission: Permission, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """A row's resource names with the placeholders replaced by the agent's configured names."""
    env = env or {}
    names = {
        TOKEN_NAME: env.get("DD_CLUSTER_AGENT_TOKEN_NAME") or DEFAULT_TOKEN_NAME,
        LEADER_LEASE_NAME: env.get("DD_LEADER_LEASE_NAME") or DEFAULT_LEADER_LEASE_NAME,
        WEBHOOK_NAME: env.get("DD_ADMISSION_CONTROLLER_WEBHOOK_NAME") or DEFAULT_WEBHOOK_NAME,
    }
    return tuple(names.get(n, n) for n in permission.resource_names)


def requests_for(
    features: Iterable[str],
    sa_ns: str,
    sa_name: str,
    *,
    env: Mapping[str, str] | None = None,
    node_name: str = "",
) -> list[Request]:
    """Every authorization question these features raise for the agent's service account.

    Cluster-wide rows are asked with no namespace (the agent watches all namespaces), rows kept in
    the agent's namespace in `DD_KUBE_RESOURCES_NAMESPACE` or the service account's namespace.
    Kubelet subresources are asked for `node_name` (the kubelet sends its node's name).
    """
    env = env or {}
    user, groups = service_account_user(sa_ns, sa_name)
    own_namespace = env.get("DD_KUBE_RESOURCES_NAMESPACE") or sa_ns
    requests: list[Request] = []
    for permission in permissions_for(features):
        for path in permission.non_resource_urls:
            requests += [Request(user, groups, verb, non_resource_url=path) for verb in permission.verbs]
        names = resource_names(permission, env) or ("",)
        namespace = own_namespace if permission.in_agent_namespace else ""
        for resource in permission.resources:
            base, _, sub = resource.partition("/")
            name_default = node_name if base == "nodes" and sub else ""
            for verb in permission.verbs:
                for name in names:
                    requests.append(
                        Request(
                            user,
                            groups,
                            verb,
                            permission.api_group,
                            base,
                            sub,
                            namespace,
                            name or name_default,
                        )
                    )
    return requests


def clusterrole_manifest(
    name: str,
    features: Iterable[str],
    *,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete ClusterRole granting exactly these features' permissions, one rule per row."""
    rules: list[dict[str, Any]] = []
    for permission in permissions_for(features):
        rule: dict[str, Any] = {}
        if permission.non_resource_urls:
            rule["nonResourceURLs"] = list(permission.non_resource_urls)
        else:
            rule["apiGroups"] = [permission.api_group]
            rule["resources"] = list(permission.resources)
            names = resource_names(permission, env)
            if names:
                rule["resourceNames"] = list(names)
        rule["verbs"] = list(permission.verbs)
        rules.append(rule)
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata,
        "rules": rules,
    }


def clusterrolebinding_manifest(name: str, role_name: str, sa_ns: str, sa_name: str) -> dict[str, Any]:
    """A complete ClusterRoleBinding of a ClusterRole to the agent's service account."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role_name,
        },
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns}],
    }


#: The agent env vars that change which permissions it needs (the features above read them); the
#: rbac rules and the live source's SubjectAccessReviews both resolve exactly these, so that the
#: questions asked live are the ones the rules look up.
PERMISSION_ENV = (
    "DD_CLUSTER_AGENT_ENABLED",
    "DD_COLLECT_KUBERNETES_EVENTS",
    "DD_LEADER_ELECTION",
    "DD_LEADER_ELECTION_DEFAULT_RESOURCE",
    "DD_LEADER_LEASE_NAME",
    "DD_CLUSTER_AGENT_TOKEN_NAME",
    "DD_KUBE_RESOURCES_NAMESPACE",
    "DD_KUBERNETES_USE_ENDPOINT_SLICES",
    "DD_ADMISSION_CONTROLLER_ENABLED",
    "DD_ADMISSION_CONTROLLER_WEBHOOK_NAME",
)
