"""MD211: the istio check's volume hides the image's auto_conf.yaml (the sidecars' metrics)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from meshdoctor.datadog import paths
from meshdoctor.datadog.agent import agent_container, agent_release, agent_workloads
from meshdoctor.datadog.check_mounts import check_folder, mount_of
from meshdoctor.datadog.istio_check import ConfigMapVolume, confd_path, istio_check_configs, runs_cont_init
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .references import DOCS_AGENT_CONFD, DOCS_CHECK


def _file_names(ctx: Context, volume: ConfigMapVolume) -> set[str]:
    """The files the volume puts in its folder: its `items` paths, else the ConfigMap's keys."""
    if volume.items:
        return {path for _, path in volume.items}
    configmap = ctx.get("ConfigMap", volume.workload.namespace, volume.configmap) or {}
    return {str(k) for k in (configmap.get("data") or {})} | {str(k) for k in (configmap.get("binaryData") or {})}


class MountHidesAutoConf(Rule):
    """MD211."""

    id = "MD211"
    title = "The istio check's volume hides the image's auto_conf.yaml"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=["Pod"], logs=["agent"])
    docs = RuleDocs(
        what="An agent (6.20+/7.20+, or an unpinned image) whose istio check ConfigMap is mounted on the "
        "whole `<confd_path>/istio.d` folder, in a ConfigMap that carries no `auto_conf.yaml` of its own.",
        why="The image ships `conf.d/istio.d/auto_conf.yaml` (istio check 3.1.0, Agent 6.20/7.20), which "
        "scrapes every Istio sidecar through Autodiscovery (`proxyv2`, port 15020 `/stats/prometheus`, "
        "15090 before Agent 7.44). A volume on the folder replaces it: the control-plane metrics still "
        "come, the sidecars' (`istio.mesh.*` per workload) silently stop.",
        fix="Mount the ConfigMap at `/conf.d/istio.d`, which the image's entrypoint copies beside "
        "auto_conf.yaml; in a container whose command replaces the entrypoint, mount the file alone "
        "with `subPath`.",
        references=(DOCS_AGENT_CONFD, DOCS_CHECK),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        workloads = {ctx.ref(w): w for w in agent_workloads(ctx)}
        reported: set[tuple[ObjectRef, str, int]] = set()
        for config in istio_check_configs(ctx, annotations=False):
            if config.agent is None or config.volume is None or config.read_path is None:
                continue
            mount = mount_of(config)
            if mount is None or mount.init or mount.sub_path:
                continue
            workload = workloads[config.agent]
            main = agent_container(pod_template(workload)) or {}
            folder = posixpath.join(confd_path(main), "istio.d")
            if mount.mount_path.rstrip("/") != folder or paths.AUTO_CONF_FILE in _file_names(ctx, config.volume):
                continue
            if agent_release(ctx, workload).since(paths.AUTO_CONF_SINCE) is False:
                continue  # an image older than the check's auto_conf.yaml has nothing to hide
            key = (config.agent, mount.container, mount.mount_index)
            if key in reported:
                continue
            reported.add(key)
            field_path = mount.field_path(template_path(workload))
            yield self.finding(
                f"{config.agent} mounts {config.source_ref} on {folder}, which hides the image's "
                f"{paths.AUTO_CONF_FILE}: the sidecars' metrics are not collected.",
                objects=[config.agent, config.source_ref],
                evidence=[ctx.field(workload, f"{field_path}.mountPath", mount.mount_path)],
                remediation=self._remediation(workload, mount.container_index, mount.mount_index, config.file_name),
            )

    @staticmethod
    def _remediation(
        workload: KubeObject, container_index: int, mount_index: int, file_name: str | None
    ) -> Remediation:
        fixed = clean_copy(workload)
        container = ((pod_template(fixed) or {}).get("spec") or {})["containers"][container_index]
        volume_mount = container["volumeMounts"][mount_index]
        if runs_cont_init(container):
            volume_mount["mountPath"] = check_folder(container)
            how = f"at {volume_mount['mountPath']}, which the image's entrypoint copies beside auto_conf.yaml"
        else:
            name = file_name or "conf.yaml"
            volume_mount["mountPath"] = posixpath.join(volume_mount["mountPath"], name)
            volume_mount["subPath"] = name
            how = f"as the single file {volume_mount['mountPath']} (subPath), beside auto_conf.yaml"
        return apply_manifests(f"Mount the istio check's ConfigMap {how}.", [fixed], safe=True)
