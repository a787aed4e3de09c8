"""The service account an agent DaemonSet runs as, and the env that decides what it must be allowed.

The env is resolved as the kubelet would (`env_value`: literal values, ConfigMaps, and only the key
names of Secrets), for exactly the variables of `PERMISSION_ENV`, so that the rbac rules and the live
source's SubjectAccessReviews ask the same questions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshdoctor.datadog.agent import agent_container, agent_workloads, env_value
from meshdoctor.datadog.permissions import PERMISSION_ENV, required_features
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.service_accounts import DEFAULT_ACCOUNT, service_account_field
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Kinds `env_value` reads for `envFrom` / `configMapKeyRef` / `secretRef` (key names only).
ENV_KINDS = ("ConfigMap", "Secret")


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
        """The features the env turns on (`meshdoctor.datadog.permissions.required_features`)."""
        return required_features(self.env)

    @property
    def ref(self) -> ObjectRef:
        """The DaemonSet's reference."""
        return ObjectRef("DaemonSet", self.namespace, name_of(self.workload))

    def as_account(self, name: str) -> AgentAccount:
        """The same agent, as if it ran as another account of its namespace."""
        return AgentAccount(self.workload, self.namespace, name, self.field_path, self.field_value, self.env)


def agent_accounts(reader: ObjectReader) -> list[AgentAccount]:
    """Every agent DaemonSet with its service account and permission-relevant env."""
    found = []
    for workload in agent_workloads(reader, kinds=("DaemonSet",)):
        namespace = namespace_of(workload) or "default"
        template = pod_template(workload) or {}
        path, value = service_account_field(workload)
        container = agent_container(template)
        env: dict[str, str] = {}
        for name in PERMISSION_ENV:
            found_value = env_value(reader, template, container, name, namespace)
            if found_value is not None:
                env[name] = found_value
        found.append(AgentAccount(workload, namespace, value or DEFAULT_ACCOUNT, path, value, env))
    return found


def agent_service_accounts(accounts: Sequence[AgentAccount]) -> set[tuple[str, str]]:
    """(namespace, name) of every account an agent runs as."""
    return {(a.namespace, a.name) for a in accounts}
