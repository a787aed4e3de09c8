"""RBAC: the agent's service account and what it may do.

Ids: MD401 agent runs as `default` while its RBAC was made for another account.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from meshdoctor.datadog_agent import agent_container, agent_workloads
from meshdoctor.model import Category, Evidence, Finding, LogEvidence, Remediation, Severity
from meshdoctor.remediation import clean_copy, dry_run_then_apply, to_yaml
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject
from meshdoctor.workloads import pod_template, pods_of, template_path

DEFAULT_ACCOUNT = "default"


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def bound_accounts(ctx: Context, namespace: str) -> dict[str, list[tuple[KubeObject, int]]]:
    """ServiceAccounts of `namespace` that bindings name: name -> [(binding, subject index)].

    A subject without a namespace defaults to a RoleBinding's own namespace, as the API server does
    (and matches nobody in a ClusterRoleBinding).
    """
    found: dict[str, list[tuple[KubeObject, int]]] = {}
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in ctx.objects(kind):
            binding_namespace = (
                str(_meta(binding).get("namespace") or "") if kind == "RoleBinding" else ""
            )
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


class AgentServiceAccountUnset(Rule):
    """MD401."""

    id = "MD401"
    title = "Agent runs as the default service account; its RBAC was granted to another"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs(
        "DaemonSet",
        "ClusterRoleBinding",
        "RoleBinding",
        optional=["ServiceAccount", "Pod"],
        logs=["agent"],
    )
    docs = RuleDocs(
        what="An agent DaemonSet whose pod template sets no `serviceAccountName` (or sets "
        "`default`), while a ClusterRoleBinding or RoleBinding grants a role to another "
        "ServiceAccount of the agent's namespace (typically `datadog-agent`), and none to "
        "`default`.",
        why="The pods run as `default`, which the RBAC objects do not cover: the agent's calls to "
        "the kubelet and the API server (pods, nodes, events, leader election, `/metrics`) are "
        "forbidden, so Kubernetes metadata, events and the kubernetes_state checks are missing "
        "although the RBAC manifests were applied.",
        fix="Set `spec.template.spec.serviceAccountName` to the bound account (meshdoctor writes "
        "the whole corrected DaemonSet, literal secrets redacted) and apply it; the pods are "
        "recreated.",
        references=(
            "https://docs.datadoghq.com/containers/kubernetes/installation/",
            "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/",
            "https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-subjects",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent DaemonSet running as `default` while RBAC names another account."""
        for workload in agent_workloads(ctx, kinds=("DaemonSet",)):
            namespace = str(_meta(workload).get("namespace") or "")
            spec = (pod_template(workload) or {}).get("spec") or {}
            account = spec.get("serviceAccountName") or spec.get("serviceAccount")
            if account not in (None, "", DEFAULT_ACCOUNT):
                continue
            bound = bound_accounts(ctx, namespace)
            if DEFAULT_ACCOUNT in bound:
                continue
            candidates = sorted(bound)
            if not candidates:
                continue
            chosen = _preferred(candidates, str(_meta(workload).get("name") or ""))
            binding, index = bound[chosen][0]
            base = template_path(workload)
            evidence: list[Evidence] = [
                ctx.field(workload, f"{base}.spec.serviceAccountName", account),
                ctx.field(binding, f"subjects[{index}].name", chosen),
            ]
            role_ref = binding.get("roleRef") or {}
            evidence.append(ctx.field(binding, "roleRef.name", role_ref.get("name")))
            evidence.extend(_forbidden_lines(ctx, workload, namespace))
            service_account = ctx.get("ServiceAccount", namespace, chosen)
            ref = ctx.ref(workload)
            binding_ref = ctx.ref(binding)
            yield self.finding(
                f"{ref.kind} {namespace}/{ref.name} runs as service account "
                f"'{DEFAULT_ACCOUNT}', but {binding_ref.kind} {binding_ref.name} grants "
                f"{role_ref.get('kind', 'role')} {role_ref.get('name', '?')} to "
                f"{namespace}/{chosen}: the agent has none of those permissions.",
                objects=[ref, binding_ref],
                evidence=evidence,
                remediation=self._remediation(workload, chosen, namespace, service_account is None),
            )

    @staticmethod
    def _remediation(
        workload: KubeObject, account: str, namespace: str, create_account: bool
    ) -> Remediation:
        fixed = clean_copy(workload)
        template = pod_template(fixed)
        assert template is not None  # agent_workloads only yields objects with a template
        spec = template.setdefault("spec", {})
        spec.pop("serviceAccount", None)  # deprecated alias; serviceAccountName wins
        spec["serviceAccountName"] = account
        manifests = []
        if create_account:
            manifests.append(
                to_yaml(
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": account, "namespace": namespace},
                    }
                )
            )
        manifests.append(to_yaml(fixed))
        name = _meta(workload).get("name")
        extra = (
            f" and create ServiceAccount {namespace}/{account}, which is bound but missing"
            if create_account
            else ""
        )
        return Remediation(
            summary=f"Run DaemonSet {namespace}/{name} as {namespace}/{account}, the account the "
            f"RBAC objects bind{extra}. The manifest is the whole DaemonSet with only "
            "serviceAccountName changed (literal secrets are replaced by a placeholder: put the "
            "Secret reference back "
            "before applying). Applying it recreates the agent pods.",
            manifests=tuple(manifests),
            commands=dry_run_then_apply("<file>"),
            safe=False,
        )


def _forbidden_lines(ctx: Context, workload: KubeObject, namespace: str) -> list[Evidence]:
    """Per agent pod, the first log line where the API server refused the `default` account."""
    needle = f'User "system:serviceaccount:{namespace}:{DEFAULT_ACCOUNT}"'
    container = agent_container(pod_template(workload))
    if container is None:
        return []
    name = str(container.get("name", ""))
    found: list[Evidence] = []
    for pod in pods_of(ctx, workload):
        pod_name = str(_meta(pod).get("name") or "")
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


RULES = [AgentServiceAccountUnset]
