"""MD204: the istio check's volume is declared but the agent container does not mount it."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_container
from meshdoctor.datadog.istio_check import confd_path
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .istio_volume import MOUNT_PATH, istio_volumes, volume_evidence
from .references import DOCS_AGENT_CONFD, DOCS_CONFIGMAP_VOLUME


class IstioCheckVolumeNotMounted(Rule):
    """MD204."""

    id = "MD204"
    title = "The istio check's volume is not mounted in the agent container"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap")
    docs = RuleDocs(
        what="An agent pod template declares a ConfigMap volume meant for the istio check, but "
        "neither "
        "the agent container nor an init container mounts it (no `volumeMounts` entry with its "
        "name).",
        why="A volume that no container mounts is invisible: the agent never reads the "
        "configuration, "
        "and the istio check does not run.",
        fix=f"Add a volumeMount of the volume to the agent container at `{MOUNT_PATH}`.",
        references=(DOCS_CONFIGMAP_VOLUME, DOCS_AGENT_CONFD),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload, ref, volume in istio_volumes(ctx):
            if not volume.exists:
                continue
            template = pod_template(workload) or {}
            main = agent_container(template)
            main_name = (main or {}).get("name")
            if any(m.init or m.container == main_name for m in volume.mounts):
                continue
            fixed = clean_copy(workload)
            fixed_main = agent_container(pod_template(fixed))
            mount = {
                "name": volume.volume,
                "mountPath": posixpath.join(confd_path(main), "istio.d"),
                "readOnly": True,
            }
            if fixed_main is not None:
                fixed_main.setdefault("volumeMounts", []).append(mount)
            elsewhere = sorted({m.container for m in volume.mounts})
            where = f" (only {', '.join(elsewhere)} mounts it)" if elsewhere else ""
            cindex = ((template.get("spec") or {}).get("containers") or []).index(main) if main else 0
            yield self.finding(
                f"{ref} declares volume {volume.volume} (ConfigMap {volume.configmap}) but "
                "the agent "
                f"container {main_name} does not mount it{where}: the istio check is not "
                "configured.",
                objects=[ref, ObjectRef("ConfigMap", ref.namespace, volume.configmap)],
                evidence=[
                    volume_evidence(ctx, workload, volume),
                    ctx.field(
                        workload,
                        f"{template_path(workload)}.spec.containers[{cindex}].volumeMounts",
                        None,
                    ),
                ],
                remediation=apply_manifests(
                    f"Mount volume {volume.volume} in container {main_name} at {mount['mountPath']}.",
                    [fixed],
                    safe=True,
                ),
            )
