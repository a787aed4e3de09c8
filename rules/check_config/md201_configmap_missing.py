"""MD201: the ConfigMap an agent volume names for the istio check exists in no namespace."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.istio_check import mixer_telemetry_deployed, recommended_conf_yaml
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.istio.mesh import MeshInfo, mesh_info
from meshdoctor.kube.meta import name_of
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .istio_volume import configmap_manifest, failed_mount_evidence, istio_volumes, volume_evidence
from .references import DOCS_CHECK, DOCS_CONFIGMAP_VOLUME


class IstioCheckConfigMapMissing(Rule):
    """MD201."""

    id = "MD201"
    title = "The istio check's ConfigMap does not exist"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=["Event"])
    docs = RuleDocs(
        what="An agent pod template has a ConfigMap volume meant for the istio check (it lands in "
        "`conf.d/istio.d`, or its names say istio) whose ConfigMap exists in no namespace of the "
        "snapshot. (A ConfigMap of that name in another namespace is MD207.)",
        why="The kubelet cannot mount the volume: every agent pod stays in ContainerCreating with "
        "a "
        '`FailedMount` event (`configmap "..." not found`), so no metric, log or trace leaves the '
        "node — not only the istio check's. With `optional: true` the pod starts but the check is "
        "not configured.",
        fix="Create the ConfigMap in the agent's namespace with a `conf.yaml` whose endpoints "
        "match the "
        "mesh's version (the remediation writes it), or correct the volume's ConfigMap name.",
        references=(DOCS_CHECK, DOCS_CONFIGMAP_VOLUME),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info: MeshInfo | None = None
        for workload, ref, volume in istio_volumes(ctx):
            if volume.exists:
                continue
            if any(name_of(c) == volume.configmap for c in ctx.objects("ConfigMap")):
                continue  # elsewhere: MD207
            if info is None:
                info = mesh_info(ctx)
            telemetry = mixer_telemetry_deployed(ctx, info)
            key = volume.items[0][0] if volume.items else "conf.yaml"
            configmap = configmap_manifest(
                ref.namespace, volume.configmap, {key: recommended_conf_yaml(info, telemetry)}
            )
            evidence = [volume_evidence(ctx, workload, volume)]
            evidence += failed_mount_evidence(ctx, workload, f'"{volume.configmap}"')
            consequence = (
                "the volume is optional, so the pods start without the istio check"
                if volume.optional
                else "the agent pods cannot start (the kubelet cannot mount the volume)"
            )
            yield self.finding(
                f"{ref} mounts ConfigMap {ref.namespace}/{volume.configmap} (volume "
                f"{volume.volume}), "
                f"which does not exist; {consequence}.",
                objects=[ref, ObjectRef("ConfigMap", ref.namespace, volume.configmap)],
                evidence=evidence,
                remediation=apply_manifests(
                    f"Create ConfigMap {ref.namespace}/{volume.configmap} with an "
                    "istio check "
                    + (
                        f"configuration for Istio {info.version or info.era} ({info.era} era); "
                        if info.not_read is None
                        else f"configuration; the mesh's version is not known ({info.not_read}), so "
                        "set the endpoints of the running version; "
                    )
                    + "review the "
                    "endpoints before applying.",
                    [configmap],
                    safe=False,
                    alternatives=("or point the volume at the ConfigMap that holds the configuration",),
                ),
                severity=Severity.WARNING if volume.optional else None,
            )
