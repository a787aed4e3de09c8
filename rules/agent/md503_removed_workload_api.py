"""MD503: the agent workload uses an API version Kubernetes no longer serves."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.fixes.manifests import apply_manifests, clean_copy, to_served_api
from meshdoctor.kube.nodes import newest_kubelet_version
from meshdoctor.kube.removed_apis import REMOVED_WORKLOAD_APIS
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject


class RemovedWorkloadApi(Rule):
    """MD503."""

    id = "MD503"
    title = "Agent workload uses an API version Kubernetes no longer serves"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", optional=["Node"])
    docs = RuleDocs(
        what="An agent DaemonSet or Deployment written as `extensions/v1beta1`, `apps/v1beta1` or "
        "`apps/v1beta2` (removed in Kubernetes 1.16). Error when the nodes show a Kubernetes version "
        "that no longer serves it; warning otherwise.",
        why="`kubectl apply` of the manifest fails on a cluster that no longer serves the version, so "
        "the fixes for everything else cannot be applied either. `apps/v1` also requires "
        "`spec.selector` and changes the DaemonSet default update strategy.",
        fix="Rewrite the manifest as `apps/v1` with `spec.selector.matchLabels` equal to the pod "
        "template's labels; keep the old `OnDelete` update strategy explicitly or choose RollingUpdate.",
        references=("https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-16",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        cluster = newest_kubelet_version(ctx)
        for workload in agent_workloads(ctx):
            api = (workload.get("apiVersion"), workload.get("kind"))
            if api not in REMOVED_WORKLOAD_APIS:
                continue
            removed_in, replacement = REMOVED_WORKLOAD_APIS[api]
            ref = ctx.ref(workload)
            gone = cluster is not None and cluster >= removed_in
            if cluster is not None and gone:
                where = f"the nodes run Kubernetes {cluster[0]}.{cluster[1]}, which no longer serves it"
            else:
                where = f"Kubernetes {removed_in[0]}.{removed_in[1]} stopped serving it"
            yield self.finding(
                f"{ref} is written as {api[0]} {api[1]}; {where}. Use {replacement}.",
                objects=[ref],
                evidence=[ctx.field(workload, "apiVersion", api[0])],
                remediation=self._remediation(workload, replacement),
                severity=Severity.ERROR if gone else Severity.WARNING,
            )

    def _remediation(self, workload: KubeObject, replacement: str) -> Remediation:
        fixed = clean_copy(workload, served=False)
        notes = to_served_api(fixed)
        return apply_manifests(
            f"The same {fixed['kind']} as {replacement}: " + "; ".join(notes[1:] or ["no other change"]) + ".",
            [fixed],
            safe=False,
        )
