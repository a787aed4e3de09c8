"""MD205: the istio check's configuration is mounted where the agent does not read it."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

from meshdoctor.datadog import paths
from meshdoctor.datadog.agent import agent_container, agent_workloads
from meshdoctor.datadog.check_mounts import mount_of, right_mount_path
from meshdoctor.datadog.istio_check import (
    IstioCheckConfig,
    VolumeMount,
    confd_path,
    istio_check_configs,
    runs_cont_init,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .istio_volume import volume_evidence
from .references import DOCS_AGENT_CONFD, DOCS_CHECK


def _workloads_by_ref(ctx: Context) -> dict[ObjectRef, KubeObject]:
    return {ctx.ref(w): w for w in agent_workloads(ctx)}


class IstioCheckMountPathNotRead(Rule):
    """MD205."""

    id = "MD205"
    title = "The istio check's configuration is mounted where the agent does not read it"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap")
    docs = RuleDocs(
        what="An istio check configuration from a ConfigMap is mounted in the agent pod at a path "
        "the "
        "agent does not read as the istio check: `/conf.d/istio` or `conf.d/istio` (the folder "
        "must "
        "be named `istio.d`), `/etc/datadog-agent/istio.d` (outside conf.d), a subfolder of "
        "istio.d, "
        "`/conf.d/...` in a container whose `command` replaces the image entrypoint that copies "
        "/conf.d (e.g. `agent run`), or a name that is not `*.yaml`.",
        why="The agent reads `<confd_path>/<check>.d/*.yaml` one level deep and "
        "`/conf.d/**/*.yaml` is "
        "copied there only by the image's entrypoint; anything else is ignored without an error, "
        "so "
        "the istio check silently does not run.",
        fix="Mount the ConfigMap at `/etc/datadog-agent/conf.d/istio.d` (or at `/conf.d/istio.d` "
        "when "
        "the container keeps the image entrypoint).",
        references=(DOCS_AGENT_CONFD, DOCS_CHECK),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        workloads = _workloads_by_ref(ctx)
        reported: set[tuple[ObjectRef, str, int]] = set()
        for config in istio_check_configs(ctx, annotations=False):
            if config.read_path is not None or config.agent is None or config.volume is None:
                continue
            workload = workloads[config.agent]
            template = pod_template(workload) or {}
            main = agent_container(template) or {}
            mount = mount_of(config)
            if mount is None:
                continue
            key = (config.agent, mount.container, mount.mount_index)
            if key in reported:
                continue
            reported.add(key)
            if self._copy_skips_key(config, mount.mount_path, main, mount.init):
                yield self._key_not_copied(ctx, workload, config, mount)
                continue
            right = right_mount_path(config, main)
            fixed = clean_copy(workload)
            fixed_template = pod_template(fixed) or {}
            group = "initContainers" if mount.init else "containers"
            target = (fixed_template.get("spec") or {})[group][mount.container_index]
            target["volumeMounts"][mount.mount_index]["mountPath"] = right
            reason = ""
            if mount.mount_path.startswith(paths.COPIED_CONFD + "/") and not runs_cont_init(main) and not mount.init:
                reason = (
                    " (the container's command replaces the image entrypoint, which is what copies /conf.d into conf.d)"
                )
            field_path = mount.field_path(template_path(workload))
            yield self.finding(
                f"{config.agent} mounts {config.source_ref} at {mount.mount_path}{reason}; the "
                "agent reads "
                f"the istio check's configuration from "
                f"{posixpath.join(confd_path(main), 'istio.d')} "
                "(where the image's entrypoint also copies /conf.d/istio.d), so the check does "
                "not run.",
                objects=[config.agent, config.source_ref],
                evidence=[ctx.field(workload, f"{field_path}.mountPath", mount.mount_path)],
                remediation=apply_manifests(
                    f"Mount {config.source_ref} at {right} in container {mount.container}.",
                    [fixed],
                    safe=True,
                ),
            )

    @staticmethod
    def _copy_skips_key(config: IstioCheckConfig, mount_path: str, main: Mapping[str, Any], init: bool) -> bool:
        """The ConfigMap sits at the copied `/conf.d` (or below) but its key is not `*.yaml`.

        The entrypoint copies only `*.yaml` files (paths.COPIED_CONFD's `find ... -name
        '*.yaml'`): a key `istio` or `istio.yml` is never copied, the folder is right.
        """
        name = config.file_name or ""
        copied = mount_path.rstrip("/") == paths.COPIED_CONFD or mount_path.startswith(paths.COPIED_CONFD + "/")
        return copied and (init or runs_cont_init(main)) and not name.endswith(".yaml")

    def _key_not_copied(
        self, ctx: Context, workload: KubeObject, config: IstioCheckConfig, mount: VolumeMount
    ) -> Finding:
        name = config.file_name or ""
        stem = name.rsplit(".", 1)[0] if name.endswith((".yml", ".json")) else name
        # At /conf.d itself the file names the check (`istio.yaml`); inside `istio.d` any name does.
        at_root = mount.mount_path.rstrip("/") == paths.COPIED_CONFD
        wanted = "istio.yaml" if at_root else f"{stem or 'conf'}.yaml"
        evidence = [volume_evidence(ctx, workload, config.volume)] if config.volume is not None else []
        configmap = ctx.get("ConfigMap", config.source_ref.namespace, config.source_ref.name)
        remediation = None
        if configmap is not None:
            fixed = clean_copy(configmap)
            data = dict(fixed.get("data") or {})
            data[wanted] = data.pop(name, config.text or "")
            fixed["data"] = data
            remediation = apply_manifests(
                f"Rename key {name} of {config.source_ref} to {wanted}; the pods read it at their next start.",
                [fixed],
                safe=True,
            )
        return self.finding(
            f"{config.agent} mounts {config.source_ref} at {mount.mount_path}, but its key {name} is not "
            f"a `*.yaml` file: the image's entrypoint copies only `*.yaml` from /conf.d, so the istio "
            "check does not run.",
            objects=[config.agent, config.source_ref] if config.agent else [config.source_ref],
            evidence=evidence,
            remediation=remediation,
        )
