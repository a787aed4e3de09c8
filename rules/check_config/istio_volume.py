"""The istio check's ConfigMap volume in an agent pod template: finding it, showing it, adding it.

Shared by the rules about the volume (MD201-MD204, MD206, MD207): which volumes are meant for
the check, the evidence that names one, the kubelet's FailedMount events about it, and the whole
corrected workload (or new ConfigMap) that the remediations write when none is mounted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.agent import agent_container, agent_workloads
from meshdoctor.datadog.check_mounts import check_folder
from meshdoctor.datadog.istio_check import ConfigMapVolume, configmap_volumes
from meshdoctor.fixes.manifests import clean_copy
from meshdoctor.kube.pod_events import failed_mount_events
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Evidence, ObjectRef
from meshdoctor.rule import Context
from meshdoctor.snapshot import KubeObject

#: Name and mount of the ConfigMap the remediations write when none exists.
CONFIGMAP_NAME = "datadog-istio-check"
VOLUME_NAME = "istio-check"
#: Where a fix mounts the check's ConfigMap, in words (`datadog.check_mounts.check_folder` decides).
MOUNT_PATH = "/conf.d/istio.d (or <confd_path>/istio.d when the container does not run the image entrypoint)"


def istio_volumes(ctx: Context) -> Iterator[tuple[KubeObject, ObjectRef, ConfigMapVolume]]:
    """(agent workload, its reference, volume) for each ConfigMap volume meant for the istio check."""
    for workload in agent_workloads(ctx):
        ref = ctx.ref(workload)
        for volume in configmap_volumes(ctx, workload):
            if volume.istio:
                yield workload, ref, volume


def configmap_manifest(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """A new ConfigMap holding `data`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def failed_mount_evidence(ctx: Context, workload: KubeObject, needle: str) -> list[Evidence]:
    """The messages of FailedMount Events of the workload's pods that name `needle`."""
    return [ctx.field(event, "message", event.get("message")) for event in failed_mount_events(ctx, workload, needle)]


def volume_evidence(ctx: Context, workload: KubeObject, volume: ConfigMapVolume) -> Evidence:
    """The volume's ConfigMap name in the workload."""
    return ctx.field(workload, f"{volume.field_path(template_path(workload))}.name", volume.configmap)


def with_istio_volume(workload: KubeObject, configmap: str) -> KubeObject:
    """The whole workload with a ConfigMap volume and its mount added.

    The mount goes where the agent reads the check without hiding the image's auto_conf.yaml
    (`datadog.check_mounts.check_folder`).
    """
    fixed = clean_copy(workload)
    template = pod_template(fixed) or {}
    spec = template.setdefault("spec", {})
    container = agent_container(template)
    volumes = spec.setdefault("volumes", [])
    names = {v.get("name") for v in volumes}
    name = VOLUME_NAME if VOLUME_NAME not in names else f"{VOLUME_NAME}-conf"
    volumes.append({"name": name, "configMap": {"name": configmap}})
    if container is not None:
        container.setdefault("volumeMounts", []).append(
            {
                "name": name,
                "mountPath": check_folder(container),
                "readOnly": True,
            }
        )
    return fixed
