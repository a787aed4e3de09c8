"""Check configuration: the `istio` check's ConfigMap, its wiring into the agent, its endpoints.

Ids: MD201 ConfigMap missing, MD202 check not configured anywhere, MD203 ConfigMap not referenced,
MD204 volume not mounted, MD205 mounted where the agent does not read, MD206 `items` key absent,
MD207 ConfigMap in another namespace, MD208 not valid YAML / no instances, MD209 endpoint names no
Service, MD210 endpoint of the wrong mesh era.

Split with the telemetry family (MD3xx): here, whether the configuration names endpoints that can
exist at all (a Service of that name; the keys and ports of the mesh's version). Whether that
Service has the port, ready endpoints, and whether NetworkPolicy or mTLS let the agent in, is
telemetry's, built on the same `meshdoctor.datadog.istio_check.configured_endpoints`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from meshdoctor.datadog import paths
from meshdoctor.datadog.agent import agent_container, agent_workloads
from meshdoctor.datadog.istio_check import (
    CheckEndpoint,
    ConfigMapVolume,
    IstioCheckConfig,
    agent_has_auto_conf,
    confd_path,
    configmap_volumes,
    configured_endpoints,
    istio_check_configs,
    istio_configmap_keys,
    mixer_telemetry_deployed,
    recommended_conf_yaml,
    recommended_instance,
    runs_cont_init,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.mesh import ISTIOD, MIXER, MeshInfo, mesh_info
from meshdoctor.istio.versions import (
    MIXER_REMOVED_IN,
    TELEMETRY_ENDPOINTS,
    telemetry_endpoints,
)
from meshdoctor.kube.workloads import WORKLOAD_KINDS, pod_template, template_path
from meshdoctor.model import Category, Evidence, Finding, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

#: Name and mount of the ConfigMap the remediations write when none exists.
CONFIGMAP_NAME = "datadog-istio-check"
VOLUME_NAME = "istio-check"
MOUNT_PATH = posixpath.join(paths.CONFD_PATH, "istio.d")

DOCS_CHECK = "https://docs.datadoghq.com/integrations/istio/"
DOCS_CONFIGMAP_VOLUME = "https://kubernetes.io/docs/concepts/storage/volumes/#configmap"
DOCS_AGENT_CONFD = "https://github.com/DataDog/datadog-agent/tree/main/Dockerfiles/agent#optional-volumes"

#: Workload kinds whose pod templates can carry Autodiscovery annotations (read when present).
_AD_KINDS = [k for k in WORKLOAD_KINDS if k not in ("DaemonSet", "Deployment")]


def _workloads_by_ref(ctx: Context) -> dict[ObjectRef, KubeObject]:
    return {ctx.ref(w): w for w in agent_workloads(ctx)}


def _istio_volumes(ctx: Context) -> Iterator[tuple[KubeObject, ObjectRef, ConfigMapVolume]]:
    """(agent workload, its reference, volume) for each ConfigMap volume meant for the istio check."""
    for workload in agent_workloads(ctx):
        ref = ctx.ref(workload)
        for volume in configmap_volumes(ctx, workload):
            if volume.istio:
                yield workload, ref, volume


def _configmap(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def _mesh(ctx: Context) -> tuple[MeshInfo, bool]:
    info = mesh_info(ctx)
    return info, mixer_telemetry_deployed(ctx, info)


def _failed_mount_events(ctx: Context, workload: KubeObject, needle: str) -> list[Evidence]:
    """FailedMount Events of the workload's pods whose message names `needle`."""
    ref = ctx.ref(workload)
    found: list[Evidence] = []
    for event in ctx.objects("Event"):
        involved = event.get("involvedObject") or {}
        if (
            event.get("reason") == "FailedMount"
            and involved.get("kind") == "Pod"
            and involved.get("namespace", (event.get("metadata") or {}).get("namespace")) == ref.namespace
            and str(involved.get("name", "")).startswith(f"{ref.name}-")
            and needle in str(event.get("message", ""))
        ):
            found.append(ctx.field(event, "message", event.get("message")))
    return found


def _volume_evidence(ctx: Context, workload: KubeObject, volume: ConfigMapVolume) -> Evidence:
    return ctx.field(workload, f"{volume.field_path(template_path(workload))}.name", volume.configmap)


def _with_istio_volume(workload: KubeObject, configmap: str) -> KubeObject:
    """The whole workload with a ConfigMap volume and its mount at `<confd>/istio.d` added."""
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
                "mountPath": posixpath.join(confd_path(container), "istio.d"),
                "readOnly": True,
            }
        )
    return fixed


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
        for workload, ref, volume in _istio_volumes(ctx):
            if volume.exists:
                continue
            if any(c["metadata"]["name"] == volume.configmap for c in ctx.objects("ConfigMap")):
                continue  # elsewhere: MD207
            if info is None:
                info = mesh_info(ctx)
            telemetry = mixer_telemetry_deployed(ctx, info)
            key = volume.items[0][0] if volume.items else "conf.yaml"
            configmap = _configmap(ref.namespace, volume.configmap, {key: recommended_conf_yaml(info, telemetry)})
            evidence = [_volume_evidence(ctx, workload, volume)]
            evidence += _failed_mount_events(ctx, workload, f'"{volume.configmap}"')
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
                    f"configuration for Istio {info.version or info.era} ({info.era} era); "
                    "review the "
                    "endpoints before applying.",
                    [configmap],
                    safe=False,
                    alternatives=("or point the volume at the ConfigMap that holds the configuration",),
                ),
                severity=Severity.WARNING if volume.optional else None,
            )


class IstioCheckNotConfigured(Rule):
    """MD202."""

    id = "MD202"
    title = "Istio is installed but the agent's istio check is not configured"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=_AD_KINDS)
    docs = RuleDocs(
        what="The cluster runs an Istio control plane and a Datadog agent, but no istio check "
        "configuration exists anywhere: no ConfigMap file the agent reads as `istio.d/*.yaml` or "
        "`istio.yaml`, no file meant for it (mounted elsewhere, or a volume whose ConfigMap is "
        "missing: other rules report those), no Autodiscovery annotation naming `istio`, and no "
        "auto-configuration from the image (Agent 6.20/7.20+ ships an `auto_conf.yaml` that "
        "scrapes "
        "every istio-proxy sidecar, which only helps istiod-era meshes).",
        why="Without it the agent collects no Istio metric: mesh request rates, latencies and the "
        "control plane's health are missing from Datadog, silently.",
        fix="Create a ConfigMap with a `conf.yaml` for the mesh's version and mount it at "
        "`/etc/datadog-agent/conf.d/istio.d` (the remediation gives both), or annotate the "
        "control-plane pods for Autodiscovery.",
        references=(DOCS_CHECK, DOCS_AGENT_CONFD),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info = mesh_info(ctx)
        agents = agent_workloads(ctx)
        if info.namespace is None:
            raise NotChecked("no Istio control plane in the input")
        if not agents:
            raise NotChecked("no Datadog agent workload in the input")
        configs = istio_check_configs(ctx)
        meant = {c.agent for c in configs}
        for workload in agents:
            ref = ctx.ref(workload)
            if ref in meant or None in meant:
                continue
            if any(v.istio for v in configmap_volumes(ctx, workload)):
                continue  # wired to something meant for the check: MD201/MD204-MD207 say what
            if any(
                istio_configmap_keys(c)
                for c in ctx.objects("ConfigMap")
                if (c.get("metadata") or {}).get("namespace") == ref.namespace
            ):
                continue  # the configuration exists but is not mounted: MD203
            if info.era == ISTIOD and agent_has_auto_conf(workload):
                continue
            if workload.get("kind") != "DaemonSet":
                continue
            telemetry = mixer_telemetry_deployed(ctx, info)
            name = CONFIGMAP_NAME
            if ctx.get("ConfigMap", ref.namespace, name) is not None:
                name = f"{CONFIGMAP_NAME}-conf"
            configmap = _configmap(ref.namespace, name, {"conf.yaml": recommended_conf_yaml(info, telemetry)})
            fixed = _with_istio_volume(workload, name)
            version = info.version or info.era
            yield self.finding(
                f"Istio {version} runs in {info.namespace}, but {ref} has no istio check "
                "configuration "
                "(no ConfigMap in conf.d/istio.d, no Autodiscovery annotation"
                + (", and the agent image predates the istio auto_conf.yaml" if info.era == ISTIOD else "")
                + "): no Istio metric reaches Datadog.",
                objects=[ref],
                evidence=[ctx.field(workload, f"{template_path(workload)}.spec.volumes", None)],
                remediation=apply_manifests(
                    f"Create ConfigMap {ref.namespace}/{name} with a conf.yaml for Istio "
                    f"{version} "
                    f"and mount it at {MOUNT_PATH} in {ref}.",
                    [configmap, fixed],
                    safe=False,
                ),
            )


class IstioCheckConfigMapNotReferenced(Rule):
    """MD203."""

    id = "MD203"
    title = "An istio check ConfigMap is not used by any agent"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap")
    docs = RuleDocs(
        what="A ConfigMap whose content is an istio check configuration (`instances` with "
        "`istio_mesh_endpoint`, `mixer_endpoint`, `istiod_endpoint`...) that no agent (nor Cluster "
        "Agent) pod template references as a volume in its own namespace. (A volume naming it "
        "from another namespace "
        "is "
        "MD207.)",
        why="Someone wrote the check's configuration and believes it is in effect, but the agent "
        "never "
        "sees it: the Istio metrics are missing and nothing fails loudly.",
        fix="Add a ConfigMap volume for it to the agent DaemonSet and mount it at "
        "`/etc/datadog-agent/conf.d/istio.d`, or delete the ConfigMap if it is stale.",
        references=(DOCS_CHECK, DOCS_AGENT_CONFD),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        agents = agent_workloads(ctx)
        if not agents:
            raise NotChecked("no Datadog agent workload in the input")
        referenced: set[tuple[str, str]] = set()
        wanted_elsewhere: set[str] = set()
        for workload in agents:
            ref = ctx.ref(workload)
            for volume in configmap_volumes(ctx, workload):
                referenced.add((ref.namespace, volume.configmap))
                if not volume.exists:
                    wanted_elsewhere.add(volume.configmap)
        # The Cluster Agent runs cluster checks (`cluster_check: true`) from its own mounts.
        for kind in ("DaemonSet", "Deployment"):
            for other in ctx.objects(kind):
                other_ns = ctx.ref(other).namespace
                spec = (pod_template(other) or {}).get("spec") or {}
                for volume in spec.get("volumes") or []:
                    sources = [volume.get("configMap")] + [
                        s.get("configMap") for s in (volume.get("projected") or {}).get("sources") or []
                    ]
                    for source in sources:
                        if isinstance(source, Mapping) and source.get("name"):
                            referenced.add((other_ns, str(source["name"])))
        for configmap in ctx.objects("ConfigMap"):
            meta = configmap.get("metadata") or {}
            namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
            keys = istio_configmap_keys(configmap)
            if not keys or (namespace, name) in referenced or name in wanted_elsewhere:
                continue
            cm_ref = ctx.ref(configmap)
            target = next(
                (w for w in agents if ctx.ref(w).namespace == namespace and w.get("kind") == "DaemonSet"),
                None,
            )
            objects: list[KubeObject] = []
            if target is not None:
                objects.append(_with_istio_volume(target, name))
                summary = f"Mount {cm_ref} into {ctx.ref(target)} at {MOUNT_PATH}."
            else:
                target = next((w for w in agents if w.get("kind") == "DaemonSet"), agents[0])
                tns = ctx.ref(target).namespace
                copy = clean_copy(configmap)
                copy["metadata"]["namespace"] = tns
                objects += [copy, _with_istio_volume(target, name)]
                summary = (
                    f"A ConfigMap volume can only use its own namespace: copy {cm_ref} to {tns} "
                    "and "
                    f"mount it into {ctx.ref(target)} at {MOUNT_PATH}."
                )
            yield self.finding(
                f"{cm_ref} holds an istio check configuration ({', '.join(keys)}) that no agent mounts.",
                objects=[cm_ref],
                evidence=[ctx.field(configmap, f"data.{keys[0]}", "istio check instances")],
                remediation=apply_manifests(
                    summary,
                    objects,
                    safe=False,
                    alternatives=("or delete the ConfigMap if it is stale",),
                ),
            )


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
        for workload, ref, volume in _istio_volumes(ctx):
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
                    _volume_evidence(ctx, workload, volume),
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


def _right_mount_path(config: IstioCheckConfig, main: Mapping[str, Any]) -> str:
    """Where the mount should be: `/conf.d/istio.d` when the entrypoint copies, else confd."""
    volume_mount = _mount_of(config)
    if (
        volume_mount is not None
        and volume_mount.mount_path.startswith(paths.COPIED_CONFD + "/")
        and runs_cont_init(main)
        and not volume_mount.init
    ):
        folder = posixpath.join(paths.COPIED_CONFD, "istio.d")
    else:
        folder = posixpath.join(confd_path(main), "istio.d")
    if volume_mount is not None and volume_mount.sub_path:
        name = posixpath.basename(volume_mount.mount_path)
        if not name.endswith(paths.CONFIG_SUFFIXES):
            name = "conf.yaml"
        return posixpath.join(folder, name)
    return folder


def _mount_of(config: IstioCheckConfig) -> Any:
    if config.volume is None:
        return None
    for mount in config.volume.mounts:
        if (
            mount.container == config.container
            and config.mount_path
            and (
                config.mount_path == mount.mount_path
                or config.mount_path.startswith(mount.mount_path.rstrip("/") + "/")
            )
        ):
            return mount
    return None


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
            mount = _mount_of(config)
            if mount is None:
                continue
            key = (config.agent, mount.container, mount.mount_index)
            if key in reported:
                continue
            reported.add(key)
            right = _right_mount_path(config, main)
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
        for workload, ref, volume in _istio_volumes(ctx):
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
            evidence += _failed_mount_events(ctx, workload, "non-existent config key")
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
                info, telemetry = _mesh(ctx)
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
        for workload, ref, volume in _istio_volumes(ctx):
            if volume.exists:
                continue
            elsewhere = [c for c in ctx.objects("ConfigMap") if c["metadata"]["name"] == volume.configmap]
            if not elsewhere:
                continue
            chosen = next((c for c in elsewhere if istio_configmap_keys(c)), elsewhere[0])
            chosen_ref = ctx.ref(chosen)
            copy = clean_copy(chosen)
            copy["metadata"]["namespace"] = ref.namespace
            evidence = [
                _volume_evidence(ctx, workload, volume),
                ctx.field(chosen, "metadata.namespace", chosen_ref.namespace),
            ]
            evidence += _failed_mount_events(ctx, workload, f'"{volume.configmap}"')
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


class IstioCheckConfigInvalid(Rule):
    """MD208."""

    id = "MD208"
    title = "The istio check's configuration is not valid YAML or has no instances"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap")
    docs = RuleDocs(
        what="A file the agent reads as the istio check's configuration does not parse as YAML (a "
        "tab, "
        "a bad indent, an unquoted `%%host%%`...), or parses but has no `instances` list.",
        why="The agent logs `... is not a valid config file` once at start and skips the file: "
        "the check "
        "does not run, and nothing else tells you.",
        fix="Correct the YAML at the reported line (or replace the file with the configuration the "
        "remediation gives for the mesh's version).",
        references=(DOCS_CHECK,),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        seen: set[tuple[ObjectRef, str]] = set()
        info: tuple[MeshInfo, bool] | None = None
        for config in istio_check_configs(ctx, annotations=False):
            if config.read_path is None or config.effective or (config.source_ref, config.file_name or "") in seen:
                continue
            if config.parsed is not None and config.instances:
                continue  # a shadowed .default, not invalid
            seen.add((config.source_ref, config.file_name or ""))
            configmap = ctx.get("ConfigMap", config.source_ref.namespace, config.source_ref.name) or {}
            key = config.file_name or "conf.yaml"
            lines = (config.text or "").splitlines()
            if config.yaml_error_line is not None and 0 < config.yaml_error_line <= len(lines):
                value: Any = f"line {config.yaml_error_line}: {lines[config.yaml_error_line - 1].strip()}"
            else:
                value = "no instances"
            if info is None:
                info = _mesh(ctx)
            fixed = clean_copy(configmap)
            fixed.setdefault("data", {})[key] = recommended_conf_yaml(*info)
            yield self.finding(
                f"{config.source_ref} key {key}, read by {config.agent} as {config.read_path}, "
                f"{config.problems[0]}; the agent skips it.",
                objects=[config.source_ref, *([config.agent] if config.agent else [])],
                evidence=[ctx.field(configmap, f"data.{key}", value)],
                remediation=apply_manifests(
                    f"Replace {key} with a valid istio check configuration for the mesh's "
                    "version "
                    "(or correct the reported line); review it, your other options are not kept.",
                    [fixed],
                    safe=False,
                ),
            )


# -- endpoints ------------------------------------------------------------------------------------


def era_problem(endpoint: CheckEndpoint, info: MeshInfo, telemetry: bool) -> tuple[str, str | None] | None:
    """(why the endpoint belongs to another era or version, the right URL or None) or None."""
    minor = info.minor
    if info.era not in (MIXER, ISTIOD):
        return None
    key, port = endpoint.key, endpoint.port
    version = info.version or info.era
    if key == "istiod_endpoint" and info.era == MIXER:
        return (f"istiod exists from Istio 1.5, this mesh runs {version} (Mixer era)", None)
    mixer_alive = telemetry and (minor is None or minor < MIXER_REMOVED_IN)
    if info.era == ISTIOD:
        if key in ("galley_endpoint", "pilot_endpoint", "citadel_endpoint"):
            return (
                f"a Mixer-era option: from Istio 1.5 pilot, galley and citadel run inside istiod "
                f"(use istiod_endpoint), this mesh runs {version}",
                None,
            )
        if (
            key == "mixer_endpoint" or (key == "istio_mesh_endpoint" and endpoint.era_hint == MIXER)
        ) and not mixer_alive:
            return (
                f"Mixer telemetry (istio-telemetry), which this mesh ({version}) does not run "
                "(no istio-telemetry Deployment; Mixer was removed in 1.8)",
                None,
            )
    component = endpoint.service if endpoint.service in ("istio-telemetry", "istio-pilot", "istio-galley") else None
    if component is None or minor is None or not isinstance(port, int) or key == "istio_mesh_endpoint":
        return None
    served = {e.port: e for e in telemetry_endpoints(minor, component)}
    known = {e.port for e in TELEMETRY_ENDPOINTS if e.component == component}
    if port in known and port not in served:
        names = {e.port_name for e in TELEMETRY_ENDPOINTS if e.component == component and e.port == port}
        right = next((p for p, e in served.items() if e.port_name in names), None)
        if right is None:
            return None
        fixed = endpoint.url.replace(f":{port}", f":{right}", 1)
        return (
            f"{component} serves its monitoring on {right} in Istio {version}, not on {port}",
            fixed,
        )
    return None


class IstioCheckEndpointNoService(Rule):
    """MD209."""

    id = "MD209"
    title = "An istio check endpoint names a Service that does not exist"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", "Service", optional=_AD_KINDS)
    docs = RuleDocs(
        what="An endpoint of an istio check instance in effect (`istio_mesh_endpoint`, "
        "`mixer_endpoint`, "
        "`istiod_endpoint`...) whose host is a Service name "
        "(`name.namespace[.svc[.cluster.local]]`) "
        "with no such Service in the snapshot: a typo, the wrong namespace (`istio-system` when "
        "the "
        "control plane runs elsewhere). An endpoint of the wrong mesh era is MD210 instead; a "
        "Service "
        "that exists but lacks the port, has no ready endpoint, or is walled off by NetworkPolicy "
        "or "
        "mTLS is the telemetry family's (MD3xx).",
        why="The name does not resolve: every check run fails with a connection error, the "
        "`istio.*.can_connect`/prometheus health service check is critical, and no metric arrives.",
        fix="Correct the host (the Service's name and namespace) in the check's configuration.",
        references=(
            DOCS_CHECK,
            "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info, telemetry = _mesh(ctx)
        services = ctx.objects("Service")
        for endpoint in configured_endpoints(ctx):
            if endpoint.service is None or endpoint.namespace is None:
                continue
            if ctx.get("Service", endpoint.namespace, endpoint.service) is not None:
                continue
            if era_problem(endpoint, info, telemetry) is not None:
                continue  # MD210 says why
            same_name = sorted(ctx.ref(s).namespace for s in services if s["metadata"]["name"] == endpoint.service)
            right = None
            if len(same_name) == 1:
                right = endpoint.url.replace(
                    endpoint.host,
                    endpoint.host.replace(
                        f"{endpoint.service}.{endpoint.namespace}",
                        f"{endpoint.service}.{same_name[0]}",
                        1,
                    ),
                    1,
                )
            hint = f" (a Service {endpoint.service} exists in {', '.join(same_name)})" if same_name else ""
            yield self.finding(
                f"{endpoint.key} {endpoint.url} in {endpoint.config_source} names Service "
                f"{endpoint.namespace}/{endpoint.service}, which does not exist{hint}.",
                objects=[
                    endpoint.config_source,
                    *([endpoint.agent_ref] if endpoint.agent_ref else []),
                ],
                evidence=_endpoint_evidence(ctx, endpoint),
                remediation=_endpoint_remediation(
                    ctx, endpoint, {endpoint.url: right} if right else {}, info, telemetry
                ),
            )


def _endpoint_evidence(ctx: Context, endpoint: CheckEndpoint) -> list[Evidence]:
    source = ctx.get(endpoint.config_source.kind, endpoint.config_source.namespace, endpoint.config_source.name)
    if source is None:
        return []
    if endpoint.config_source.kind == "ConfigMap":
        return [ctx.field(source, f"data.{endpoint.file_name}", f"{endpoint.key}: {endpoint.url}")]
    annotations_path = (
        f"{template_path(source)}.metadata.annotations" if template_path(source) else "metadata.annotations"
    )
    return [ctx.field(source, annotations_path, f"{endpoint.key}: {endpoint.url}")]


def _endpoint_remediation(
    ctx: Context,
    endpoint: CheckEndpoint,
    replace: dict[str, str],
    info: MeshInfo,
    telemetry: bool,
    drop: tuple[str, ...] = (),
) -> Remediation:
    """The ConfigMap with URLs replaced in place (comments kept) or, when keys must go, rebuilt."""
    if endpoint.config_source.kind != "ConfigMap":
        return Remediation(
            summary=f"Correct {endpoint.key} in the Autodiscovery annotation {endpoint.file_name} "
            "of "
            f"{endpoint.config_source}: "
            + (f"use {next(iter(replace.values()))}." if replace else "name a Service that exists."),
        )
    configmap = ctx.get("ConfigMap", endpoint.config_source.namespace, endpoint.config_source.name) or {}
    fixed = clean_copy(configmap)
    data = fixed.setdefault("data", {})
    key = endpoint.file_name or "conf.yaml"
    text = str(data.get(key, ""))
    if drop:
        parsed = yaml.safe_load(text) or {}
        right = recommended_instance(info, telemetry)
        new_instances = []
        for instance in parsed.get("instances") or []:
            if not isinstance(instance, dict):
                new_instances.append(instance)
                continue
            kept = {k: v for k, v in instance.items() if k not in drop and k not in right}
            new_instances.append({**right, **kept})
        parsed["instances"] = new_instances
        body = yaml.safe_dump({"instances": parsed["instances"]}, sort_keys=False, default_flow_style=False)
        data[key] = "init_config:\n\n" + body
        summary = (
            f"Use the endpoints of Istio {info.version or info.era} in {endpoint.config_source} "
            f"({', '.join(sorted(set(drop)))} removed); other options are kept, comments are not."
        )
        return apply_manifests(summary, [fixed], safe=False)
    if not replace:
        return Remediation(
            summary=f"Correct {endpoint.key} in {endpoint.config_source} key {key}: name a "
            "Service that "
            "exists (`<service>.<namespace>:<port>`).",
        )
    for old, new in replace.items():
        text = text.replace(old, new)
    data[key] = text
    return apply_manifests(
        "; ".join(f"use {new} instead of {old}" for old, new in replace.items()) + ".",
        [fixed],
        safe=True,
    )


class IstioCheckEndpointWrongEra(Rule):
    """MD210."""

    id = "MD210"
    title = "An istio check endpoint belongs to another Istio version"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=_AD_KINDS)
    docs = RuleDocs(
        what="An istio check option or port that the mesh's Istio version does not serve: Mixer "
        "options "
        "(`mixer_endpoint`, `istio_mesh_endpoint` on istio-telemetry:42422) on an istiod mesh "
        "that runs "
        "no istio-telemetry (1.5-1.7 may still run Mixer telemetry v1: then they are right); "
        "`galley_endpoint` / `pilot_endpoint` / `citadel_endpoint` from 1.5 (merged into istiod); "
        "`istiod_endpoint` before 1.5; monitoring ports of the wrong version (9093 on 1.1-1.4, "
        "which "
        "serve 15014; 15014 on 1.0, which serves 9093).",
        why="The configuration was copied from documentation of another Istio version, or "
        "survived an "
        "upgrade: the endpoint does not exist, the check fails on every run and the metrics of the "
        "component are missing.",
        fix="Use the endpoints of the running version: 1.0 `istio_mesh_endpoint` "
        "istio-telemetry:42422 and "
        "`mixer_endpoint` istio-telemetry:9093; 1.1-1.4 the same with 15014; 1.5+ "
        "`istiod_endpoint` "
        "istiod:15014 with `use_openmetrics: true` (sidecar metrics come from the agent's "
        "auto_conf).",
        references=(
            DOCS_CHECK,
            "https://istio.io/latest/news/releases/1.5.x/announcing-1.5/upgrade-notes/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info, telemetry = _mesh(ctx)
        if info.era not in (MIXER, ISTIOD):
            raise NotChecked("the mesh's Istio version and era are unknown")
        problems: dict[tuple[ObjectRef, str | None], list[tuple[CheckEndpoint, str, str | None]]] = {}
        for endpoint in configured_endpoints(ctx):
            problem = era_problem(endpoint, info, telemetry)
            if problem is not None:
                problems.setdefault((endpoint.config_source, endpoint.file_name), []).append((endpoint, *problem))
        for (_source, _file), found in problems.items():
            first = found[0][0]
            replace = {e.url: right for e, _, right in found if right is not None}
            drop = tuple(e.key for e, _, right in found if right is None)
            by_reason: dict[str, list[str]] = {}
            for e, why, _ in found:
                by_reason.setdefault(why, []).append(f"{e.key} {e.url}")
            yield self.finding(
                f"{first.config_source}: "
                + "; ".join(f"{' and '.join(urls)}: {why}" for why, urls in by_reason.items())
                + ".",
                objects=[first.config_source, *([first.agent_ref] if first.agent_ref else [])],
                evidence=[ev for e, _, _ in found for ev in _endpoint_evidence(ctx, e)],
                remediation=_endpoint_remediation(ctx, first, replace, info, telemetry, drop),
            )


RULES: list[type[Rule]] = [
    IstioCheckConfigMapMissing,
    IstioCheckNotConfigured,
    IstioCheckConfigMapNotReferenced,
    IstioCheckVolumeNotMounted,
    IstioCheckMountPathNotRead,
    IstioCheckItemsKeyMissing,
    IstioCheckConfigMapInOtherNamespace,
    IstioCheckConfigInvalid,
    IstioCheckEndpointNoService,
    IstioCheckEndpointWrongEra,
]
