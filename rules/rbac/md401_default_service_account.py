"""MD401: the agent runs as the `default` service account while its RBAC binds another one."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_container
from meshdoctor.datadog.agent_account import ENV_KINDS, KUBELET_KINDS, agent_accounts
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.bootstrap_policy import rbac_evaluator
from meshdoctor.kube.meta import metadata, name_of
from meshdoctor.kube.rbac import KINDS as RBAC_KINDS
from meshdoctor.kube.service_accounts import DEFAULT_ACCOUNT, service_account_manifest
from meshdoctor.kube.workloads import pod_template, pods_of
from meshdoctor.logs.literal_lines import lines_holding
from meshdoctor.model import Category, Evidence, Finding, LogEvidence, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .denied_requests import describe_denied
from .structural_fixes import default_account_fault


class AgentServiceAccountUnset(Rule):
    """MD401."""

    id = "MD401"
    title = "Agent runs as the default service account, not the one its RBAC binds"
    category = Category.RBAC
    severity = Severity.ERROR
    inputs = inputs(
        "DaemonSet",
        *RBAC_KINDS,
        optional=["ServiceAccount", "Pod", *ENV_KINDS, *KUBELET_KINDS],
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


def _forbidden_lines(ctx: Context, workload: KubeObject, namespace: str) -> list[Evidence]:
    """Per agent pod, the first log line where the API server refused the `default` account."""
    needle = f'User "system:serviceaccount:{namespace}:{DEFAULT_ACCOUNT}"'
    container = agent_container(pod_template(workload))
    if container is None:
        return []
    name = str(container.get("name", ""))
    found: list[Evidence] = []
    for pod in pods_of(ctx, workload):
        pod_name = name_of(pod)
        log = ctx.logs(namespace, pod_name, name)
        if log is None:
            continue
        first: tuple[int, str] | None = None
        count = 0
        for number, line in lines_holding(log, (needle,)):
            if "forbidden" in line:
                count += 1
                if first is None:
                    first = (number, line)
        if first is not None:
            found.append(LogEvidence(namespace, pod_name, name, first[0], first[1], count=count))
    return found
