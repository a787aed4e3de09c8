"""MD207: the istio check's ConfigMap exists, but in another namespace than the agent."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.istio_check import istio_configmap_keys
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.meta import name_of
from meshdoctor.model import Category, Finding, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .istio_volume import failed_mount_evidence, istio_volumes, volume_evidence
from .references import DOCS_CONFIGMAP_VOLUME


class IstioCheckConfigMapInOtherNamespace(Rule):
    """MD207."""

    id = "MD207"
    title = "The istio check's ConfigMap is in another namespace than the agent"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=["Event"])
    docs = RuleDocs(
        what="An agent pod template mounts a ConfigMap for the istio check that does not exist in "
        "the "
        "agent's namespace, while a ConfigMap of that name exists in another one (typically "
        "created "
        "in `istio-system` or `default` while the agent runs in `datadog`).",
        why="A ConfigMap volume can only reference a ConfigMap of the pod's own namespace. The "
        "kubelet "
        'reports `configmap "..." not found` and the agent pods stay in ContainerCreating.',
        fix="Create the ConfigMap in the agent's namespace (the remediation copies it there).",
        references=(DOCS_CONFIGMAP_VOLUME,),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload, ref, volume in istio_volumes(ctx):
            if volume.exists:
                continue
            elsewhere = [c for c in ctx.objects("ConfigMap") if name_of(c) == volume.configmap]
            if not elsewhere:
                continue
            chosen = next((c for c in elsewhere if istio_configmap_keys(c)), elsewhere[0])
            chosen_ref = ctx.ref(chosen)
            copy = clean_copy(chosen)
            copy["metadata"]["namespace"] = ref.namespace
            evidence = [
                volume_evidence(ctx, workload, volume),
                ctx.field(chosen, "metadata.namespace", chosen_ref.namespace),
            ]
            evidence += failed_mount_evidence(ctx, workload, f'"{volume.configmap}"')
            yield self.finding(
                f"{ref} (namespace {ref.namespace}) mounts ConfigMap {volume.configmap}, "
                "which exists "
                f"only in {', '.join(sorted(ctx.ref(c).namespace for c in elsewhere))}; a "
                "volume can only "
                "use a ConfigMap of its own namespace.",
                objects=[ref, chosen_ref],
                evidence=evidence,
                remediation=apply_manifests(
                    f"Create {volume.configmap} in {ref.namespace}, a copy of {chosen_ref}.",
                    [copy],
                    safe=True,
                    alternatives=(f"and delete {chosen_ref} if nothing else uses it",),
                ),
                severity=Severity.WARNING if volume.optional else None,
            )
