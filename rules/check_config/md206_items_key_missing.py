"""MD206: the istio check's volume projects a key its ConfigMap does not have."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.endpoint_eras import mesh_and_mixer_telemetry
from meshdoctor.datadog.istio_check import istio_configmap_keys, recommended_conf_yaml
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Evidence, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .istio_volume import failed_mount_evidence, istio_volumes
from .references import DOCS_CONFIGMAP_VOLUME


class IstioCheckItemsKeyMissing(Rule):
    """MD206."""

    id = "MD206"
    title = "The istio check's volume projects a key its ConfigMap does not have"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=["Event"])
    docs = RuleDocs(
        what="A ConfigMap volume meant for the istio check lists `items` whose `key` the "
        "ConfigMap does "
        "not have (a renamed key, `conf.yaml` vs `istio.yaml`...).",
        why="The kubelet refuses to set up the volume (`MountVolume.SetUp failed ... configmap "
        "references "
        "non-existent config key`): every agent pod stays in ContainerCreating, and the node sends "
        "nothing at all. With `optional: true` the key is skipped and the check is not configured.",
        fix="Make `items[].key` name a key the ConfigMap has, or add that key to the ConfigMap.",
        references=(DOCS_CONFIGMAP_VOLUME,),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload, ref, volume in istio_volumes(ctx):
            if not volume.missing_keys:
                continue
            base = template_path(workload)
            configmap = ctx.get("ConfigMap", ref.namespace, volume.configmap) or {}
            cm_ref = ObjectRef("ConfigMap", ref.namespace, volume.configmap)
            present = sorted(configmap.get("data") or {})
            istio_keys = istio_configmap_keys(configmap)
            evidence: list[Evidence] = []
            for index, (key, _) in enumerate(volume.items):
                if key in volume.missing_keys:
                    evidence.append(ctx.field(workload, f"{volume.field_path(base)}.items[{index}].key", key))
            evidence.append(ctx.field(configmap, "data", ",".join(present) or None))
            evidence += failed_mount_evidence(ctx, workload, "non-existent config key")
            missing = ", ".join(volume.missing_keys)
            if len(istio_keys) == 1 and len(volume.missing_keys) == 1:
                fixed = clean_copy(workload)
                spec = (pod_template(fixed) or {}).get("spec") or {}
                fixed_volume = spec["volumes"][volume.volume_index]
                source = (
                    fixed_volume["configMap"]
                    if volume.source_index is None
                    else fixed_volume["projected"]["sources"][volume.source_index]["configMap"]
                )
                for item in source.get("items") or []:
                    if item.get("key") == volume.missing_keys[0]:
                        item["key"] = istio_keys[0]
                remediation = apply_manifests(
                    f"Project key {istio_keys[0]} (the one holding the istio configuration) instead of {missing}.",
                    [fixed],
                    safe=True,
                    alternatives=(f"or rename the ConfigMap's key to {missing}",),
                )
            else:
                info, telemetry = mesh_and_mixer_telemetry(ctx)
                fixed_cm = clean_copy(configmap)
                data = fixed_cm.setdefault("data", {})
                for key in volume.missing_keys:
                    data[key] = recommended_conf_yaml(info, telemetry)
                remediation = apply_manifests(
                    f"Add key {missing} to {cm_ref} with an istio check configuration "
                    "for the "
                    "mesh's version; review it.",
                    [fixed_cm],
                    safe=False,
                )
            consequence = (
                "the key is skipped (optional volume) and the check is not configured"
                if volume.optional
                else "the agent pods cannot start"
            )
            yield self.finding(
                f"{ref} projects key {missing} of {cm_ref} (volume {volume.volume}), which "
                "has only "
                f"{', '.join(present) or 'no key'}: {consequence}.",
                objects=[ref, cm_ref],
                evidence=evidence,
                remediation=remediation,
                severity=Severity.WARNING if volume.optional else None,
            )
