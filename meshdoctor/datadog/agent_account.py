"""The service account an agent runs as, and the env that decides what it must be allowed.

Node agents (DaemonSets) and Cluster Agents (Deployments) each have an account: the node agent
needs the kubelet and, unless it uses the Cluster Agent, the cluster metadata; the Cluster Agent
needs the cluster metadata and no kubelet (`meshdoctor.datadog.permissions.required_features`).

The env is resolved as the kubelet would (`env_value`: literal values, ConfigMaps, and only the key
names of Secrets), for exactly the variables of `PERMISSION_ENV`, so that the rbac rules and the live
source's SubjectAccessReviews ask the same questions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshdoctor.datadog.agent import agent_container, agent_workloads, cluster_agent_container, env_value
from meshdoctor.datadog.install import cluster_agent_workloads
from meshdoctor.datadog.permissions import FINE_GRAINED_KUBELET_SINCE, PERMISSION_ENV, required_features
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.nodes import oldest_kubelet_version
from meshdoctor.kube.service_accounts import DEFAULT_ACCOUNT, service_account_field
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Kinds `env_value` reads for `envFrom` / `configMapKeyRef` / `secretRef` (key names only).
ENV_KINDS = ("ConfigMap", "Secret")

#: Kinds that tell whether the kubelet authorizes fine-grained subresources (their versions).
KUBELET_KINDS = ("Node",)


@dataclass(frozen=True)
class AgentAccount:
    """An agent workload, the service account its pods run as, and what its env turns on."""

    workload: KubeObject
    """The node agent DaemonSet or the Cluster Agent Deployment."""
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
    cluster_agent: bool = False
    """True for a Cluster Agent Deployment."""
    fine_grained_kubelet: bool = True
    """Whether every kubelet authorizes nodes/pods and nodes/healthz on their own (1.33+); True
    when no Node says otherwise (then the chart's fine-grained ClusterRole is taken as working)."""

    @property
    def features(self) -> list[str]:
        """The features the env turns on (`meshdoctor.datadog.permissions.required_features`)."""
        return required_features(self.env, cluster_agent=self.cluster_agent)

    @property
    def ref(self) -> ObjectRef:
        """The workload's reference."""
        return ObjectRef(str(self.workload.get("kind") or "DaemonSet"), self.namespace, name_of(self.workload))

    @property
    def what(self) -> str:
        """`agent` or `Cluster Agent`, for messages."""
        return "Cluster Agent" if self.cluster_agent else "agent"

    def as_account(self, name: str) -> AgentAccount:
        """The same agent, as if it ran as another account of its namespace."""
        return dataclasses.replace(self, name=name)


def agent_accounts(reader: ObjectReader, with_cluster_agents: bool = False) -> list[AgentAccount]:
    """Every agent DaemonSet (then, if asked, every Cluster Agent Deployment), account and env."""
    oldest = oldest_kubelet_version(reader)
    fine_grained = oldest is None or oldest >= FINE_GRAINED_KUBELET_SINCE
    found = []
    workloads = [(w, False) for w in agent_workloads(reader, kinds=("DaemonSet",))]
    if with_cluster_agents:
        workloads += [(w, True) for w in cluster_agent_workloads(reader)]
    for workload, is_cluster_agent in workloads:
        namespace = namespace_of(workload) or "default"
        template = pod_template(workload) or {}
        path, value = service_account_field(workload)
        container = cluster_agent_container(template) if is_cluster_agent else agent_container(template)
        env: dict[str, str] = {}
        for name in PERMISSION_ENV:
            found_value = env_value(reader, template, container, name, namespace)
            if found_value is not None:
                env[name] = found_value
        found.append(
            AgentAccount(
                workload, namespace, value or DEFAULT_ACCOUNT, path, value, env, is_cluster_agent, fine_grained
            )
        )
    return found


def agent_service_accounts(accounts: Sequence[AgentAccount]) -> set[tuple[str, str]]:
    """(namespace, name) of every account an agent runs as."""
    return {(a.namespace, a.name) for a in accounts}
