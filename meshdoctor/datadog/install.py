"""How an agent workload was installed: Helm chart, Datadog Operator or plain manifests.

The owner decides where a fix must go: an object a Helm release or the Operator renders is
rewritten by the next `helm upgrade` or reconcile, so a fix applied to the object itself does not
last. The owner is read from what the installer writes on the objects it renders:

- Helm (helm/helm `pkg/action/validate.go` `setMetadataVisitor`, since Helm 3.2): label
  `app.kubernetes.io/managed-by: Helm` and annotations `meta.helm.sh/release-name` /
  `meta.helm.sh/release-namespace` on every object of a release. The datadog chart itself
  (DataDog/helm-charts `charts/datadog/templates/_helpers.tpl` `datadog.labels`) adds
  `helm.sh/chart: datadog-<version>`, `app.kubernetes.io/instance: <release>` and, in chart 1.x/2.x
  templates, `chart:`/`release:`/`heritage: Helm`. `helm template | kubectl apply` keeps the chart's
  labels but not the release annotations: the release is then the `instance` label's.
- The Datadog Operator (DataDog/datadog-operator `pkg/kubernetes` object labels and the
  DatadogAgent reconciler): label `app.kubernetes.io/managed-by: datadog-operator`, label
  `agent.datadoghq.com/name: <DatadogAgent name>`, and an ownerReference to the `DatadogAgent`
  (or, from Operator 1.14, to the `DatadogAgentInternal` it creates for it; `ExtendedDaemonSet`
  when that is used).
- Otherwise: plain manifests (the tutorial's, the datadog-agent repository's `Dockerfiles/manifests`).

The Cluster Agent is read from the node agent's env (DataDog/datadog-agent
`pkg/config/setup/config.go`: `cluster_agent.enabled` default false,
`cluster_agent.kubernetes_service_name` default `datadog-cluster-agent`, `cluster_agent.url`,
`cluster_agent.cmd_port` default 5005) and from the Deployments that run the `cluster-agent` image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.datadog.agent import (
    FROM_SECRET,
    agent_container,
    env_flag,
    env_value,
    is_cluster_agent_workload,
)
from meshdoctor.kube.meta import annotations_of, labels_of, metadata, name_of, namespace_of
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader

HELM = "helm"
OPERATOR = "operator"
MANIFESTS = "manifests"

#: Labels and annotations that name a Helm release (helm/helm pkg/action/validate.go).
HELM_MANAGED_BY = "Helm"
HELM_RELEASE_NAME = "meta.helm.sh/release-name"
HELM_RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
#: The chart label of Helm's best practices (`helm.sh/chart`) and of old charts (`chart`).
HELM_CHART_LABELS = ("helm.sh/chart", "chart")
HELM_INSTANCE_LABELS = ("app.kubernetes.io/instance", "release")

#: The datadog chart's name (DataDog/helm-charts charts/datadog/Chart.yaml `name: datadog`).
DATADOG_CHART = "datadog"
#: The repository a user adds for it (DataDog/helm-charts README: `helm repo add datadog
#: https://helm.datadoghq.com`), as `helm upgrade` names it.
DATADOG_CHART_REF = "datadog/datadog"

#: What the Operator puts on the objects it renders (DataDog/datadog-operator).
OPERATOR_MANAGED_BY = "datadog-operator"
OPERATOR_NAME_LABEL = "agent.datadoghq.com/name"
OPERATOR_OWNER_KINDS = ("DatadogAgent", "DatadogAgentInternal", "ExtendedDaemonSet")

#: Cluster Agent defaults (DataDog/datadog-agent pkg/config/setup/config.go).
CLUSTER_AGENT_ENABLED_ENV = "DD_CLUSTER_AGENT_ENABLED"
CLUSTER_AGENT_SERVICE_ENV = "DD_CLUSTER_AGENT_KUBERNETES_SERVICE_NAME"
CLUSTER_AGENT_URL_ENV = "DD_CLUSTER_AGENT_URL"
DEFAULT_CLUSTER_AGENT_SERVICE = "datadog-cluster-agent"
CLUSTER_AGENT_CMD_PORT = 5005

_CHART_LABEL = re.compile(r"^(?P<name>.+?)-(?P<version>\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$")


@dataclass(frozen=True)
class Owner:
    """What renders an object, and how that was told."""

    manager: str
    """HELM, OPERATOR or MANIFESTS."""
    evidence: str
    """The labels, annotations or ownerReference that decided, in words."""
    release: str = ""
    """Helm: the release name."""
    release_namespace: str = ""
    """Helm: the release's namespace."""
    chart: str = ""
    """Helm: the chart's name (`datadog`), when a chart label says it."""
    chart_version: str = ""
    """Helm: the chart's version (`3.69.0`)."""
    resource: ObjectRef | None = None
    """Operator: the DatadogAgent (namespace and name) whose spec renders the object."""

    @property
    def is_datadog_chart(self) -> bool:
        """Whether the Helm chart is the datadog chart, whose values meshdoctor can name."""
        return self.manager == HELM and self.chart == DATADOG_CHART

    def describe(self) -> str:
        """One phrase: `Helm release datadog (chart datadog-3.69.0)`, `DatadogAgent datadog/datadog`."""
        if self.manager == HELM:
            chart = f" (chart {self.chart}-{self.chart_version})" if self.chart else ""
            return f"Helm release {self.release or '<unknown>'}{chart}"
        if self.manager == OPERATOR and self.resource is not None:
            return f"DatadogAgent {self.resource.namespace}/{self.resource.name}"
        if self.manager == OPERATOR:
            return "the Datadog Operator"
        return "plain manifests"


PLAIN = Owner(MANIFESTS, "no Helm or Operator labels, annotations or owner")


def _split_chart(value: str) -> tuple[str, str]:
    match = _CHART_LABEL.match(value)
    return (match["name"], match["version"]) if match else (value, "")


def _helm_owner(obj: Mapping[str, Any]) -> Owner | None:
    labels, annotations = labels_of(obj), annotations_of(obj)
    said: list[str] = []
    if labels.get("app.kubernetes.io/managed-by") == HELM_MANAGED_BY:
        said.append("label app.kubernetes.io/managed-by=Helm")
    if labels.get("heritage") == HELM_MANAGED_BY:
        said.append("label heritage=Helm")
    release = annotations.get(HELM_RELEASE_NAME, "")
    if release:
        said.append(f"annotation {HELM_RELEASE_NAME}={release}")
    if not said:
        return None
    if not release:
        release = next((labels[k] for k in HELM_INSTANCE_LABELS if labels.get(k)), "")
        # Chart 3.140+ labels workloads `instance: <fullname>-<component>` (_helpers.tpl
        # `datadog.pod-template-labels`); the release is the fullname for a release named datadog*.
        component = labels.get("app.kubernetes.io/component", "")
        if component and release.endswith(f"-{component}"):
            release = release.removesuffix(f"-{component}")
    chart, version = "", ""
    for key in HELM_CHART_LABELS:
        if labels.get(key):
            chart, version = _split_chart(labels[key])
            said.append(f"label {key}={labels[key]}")
            break
    return Owner(
        HELM,
        ", ".join(said),
        release=release,
        release_namespace=annotations.get(HELM_RELEASE_NAMESPACE) or namespace_of(obj),
        chart=chart,
        chart_version=version,
    )


def _operator_owner(obj: Mapping[str, Any]) -> Owner | None:
    labels = labels_of(obj)
    refs = [r for r in metadata(obj).get("ownerReferences") or [] if isinstance(r, Mapping)]
    owner_ref = next((r for r in refs if r.get("kind") in OPERATOR_OWNER_KINDS), None)
    managed = labels.get("app.kubernetes.io/managed-by") == OPERATOR_MANAGED_BY
    if owner_ref is None and not managed:
        return None
    said: list[str] = []
    if owner_ref is not None:
        said.append(f"ownerReference {owner_ref.get('kind')}/{owner_ref.get('name')}")
    if managed:
        said.append(f"label app.kubernetes.io/managed-by={OPERATOR_MANAGED_BY}")
    name = labels.get(OPERATOR_NAME_LABEL, "")
    if name:
        said.append(f"label {OPERATOR_NAME_LABEL}={name}")
    elif owner_ref is not None and owner_ref.get("kind") == "DatadogAgent":
        name = str(owner_ref.get("name") or "")
    resource = ObjectRef("DatadogAgent", namespace_of(obj), name) if name else None
    return Owner(OPERATOR, ", ".join(said), resource=resource)


def owner_of(obj: Mapping[str, Any]) -> Owner:
    """Who renders an object: the Operator, a Helm release, or nobody (plain manifests).

    The Operator is asked first: it labels its objects itself and may be installed by Helm, whose
    labels then sit on the Operator's own Deployment, not on what it renders.
    """
    return _operator_owner(obj) or _helm_owner(obj) or PLAIN


@dataclass(frozen=True)
class ClusterAgentUse:
    """Whether a node agent gets its cluster metadata from the Cluster Agent, and from where."""

    enabled: bool
    """`DD_CLUSTER_AGENT_ENABLED` as the agent reads it (strconv.ParseBool)."""
    service_name: str
    """The Service the agent resolves (`<NAME>_SERVICE_HOST`), unless `url` is set."""
    url: str = ""
    """`DD_CLUSTER_AGENT_URL`, which wins over the Service."""
    deployments: tuple[KubeObject, ...] = field(default=(), compare=False)
    """Cluster Agent Deployments of the agent's namespace."""
    service: KubeObject | None = field(default=None, compare=False)
    """The Service named by `service_name` in the agent's namespace, if in the snapshot."""


def cluster_agent_workloads(reader: ObjectReader, namespace: str | None = None) -> list[KubeObject]:
    """Every Cluster Agent Deployment (of one namespace when given)."""
    return [
        d
        for d in reader.objects("Deployment")
        if is_cluster_agent_workload(d) and (namespace is None or namespace_of(d) == namespace)
    ]


def cluster_agent_use(reader: ObjectReader, workload: KubeObject) -> ClusterAgentUse:
    """How a node agent reaches the Cluster Agent, as its env says."""
    template = pod_template(workload) or {}
    namespace = namespace_of(workload) or None
    container = agent_container(template)

    def env(name: str) -> str:
        value = env_value(reader, template, container, name, namespace)
        return "" if value in (None, FROM_SECRET) else str(value)

    service_name = env(CLUSTER_AGENT_SERVICE_ENV) or DEFAULT_CLUSTER_AGENT_SERVICE
    service = reader.get("Service", namespace or "", service_name) if namespace else None
    return ClusterAgentUse(
        enabled=env_flag(env(CLUSTER_AGENT_ENABLED_ENV)),
        service_name=service_name,
        url=env(CLUSTER_AGENT_URL_ENV),
        deployments=tuple(cluster_agent_workloads(reader, namespace)),
        service=service,
    )


@dataclass(frozen=True)
class Install:
    """An agent workload as installed: who owns it and what it leans on."""

    workload: KubeObject = field(compare=False)
    """The DaemonSet (or cluster-checks Deployment)."""
    owner: Owner
    """Helm release, DatadogAgent or plain manifests."""
    cluster_agent: ClusterAgentUse
    """Whether cluster metadata comes from the Cluster Agent."""

    @property
    def ref(self) -> ObjectRef:
        """The workload's reference."""
        return ObjectRef(str(self.workload.get("kind", "")), namespace_of(self.workload), name_of(self.workload))


def install_of(reader: ObjectReader, workload: KubeObject) -> Install:
    """The install model of one agent workload."""
    return Install(workload, owner_of(workload), cluster_agent_use(reader, workload))
