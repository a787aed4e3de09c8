"""Where each agent's `istio` check configuration comes from, and which endpoints it scrapes.

The check is configured three ways, and all count:

- a ConfigMap volume (direct, `subPath`, `items`, or a `projected` source) whose files land where
  the agent reads check configurations: `<confd>/istio.d/*.yaml` or `<confd>/istio.yaml`, either
  mounted there, or mounted under `/conf.d` and copied there by the image's entrypoint (or by the
  Helm chart's `init-config` container, whose copy reaches the agent through the shared
  `/etc/datadog-agent` volume) — the paths and the copy rules are `facts.datadog_paths`;
- Autodiscovery annotations on any pod or pod template (`ad.datadoghq.com/<container>.check_names`
  / `init_configs` / `instances`, or v2 `.checks`) naming `istio`;
- the Helm / Operator `confd` ConfigMap (key `istio.yaml` mounted at `/conf.d`), a case of the
  first.

Everything reads through an `ObjectReader`, so the kinds a rule reads are recorded: ConfigMap,
DaemonSet and Deployment always; every workload kind when annotations are included.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import yaml

from meshdoctor.datadog import paths
from meshdoctor.datadog.agent import agent_container, agent_release, agent_version, agent_workloads
from meshdoctor.datadog.sites import at_least
from meshdoctor.errors import InputError
from meshdoctor.istio.mesh import ISTIOD, MIXER, UNKNOWN, MeshInfo
from meshdoctor.istio.versions import SIDECAR_CONTAINER
from meshdoctor.kube.meta import metadata
from meshdoctor.kube.service_endpoints import parse_endpoint_url
from meshdoctor.kube.workloads import WORKLOAD_KINDS, iter_pod_templates, owner_chain, pod_template
from meshdoctor.kube.yaml_aliases import check_aliasing
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader, object_ref

#: How a configuration reaches the agent.
CONFIGMAP = "configmap"
HELM_CONFD = "helm-confd"
AD_ANNOTATIONS = "ad-annotations"
AD_ANNOTATIONS_V2 = "ad-annotations-v2"


@dataclass(frozen=True)
class VolumeMount:
    """One volumeMount of a ConfigMap-backed volume in one container of an agent pod template."""

    container: str
    """The container's name."""
    init: bool
    """Whether it is an init container."""
    container_index: int
    """Index in `initContainers` or `containers`."""
    mount_index: int
    """Index in that container's `volumeMounts`."""
    mount_path: str
    """`mountPath`."""
    sub_path: str
    """`subPath`, `""` when none."""

    def field_path(self, template_path: str) -> str:
        """Dotted path of this mount in the workload (`spec.template.spec.containers[0]...`)."""
        key = "initContainers" if self.init else "containers"
        prefix = f"{template_path}." if template_path else ""
        return f"{prefix}spec.{key}[{self.container_index}].volumeMounts[{self.mount_index}]"


@dataclass(frozen=True)
class ConfigMapVolume:
    """A ConfigMap an agent pod template references, as a volume or a projected volume source."""

    workload: ObjectRef
    """The agent workload."""
    volume: str
    """The volume's name."""
    volume_index: int
    """Index in `spec.volumes`."""
    source_index: int | None
    """Index in `projected.sources`, None for a `configMap` volume."""
    configmap: str
    """The ConfigMap's name (always in the workload's namespace)."""
    items: tuple[tuple[str, str], ...]
    """`items` as (key, path); empty when every key is projected."""
    optional: bool
    """`optional: true`: a missing ConfigMap or key leaves the volume empty instead of failing."""
    exists: bool
    """Whether the ConfigMap is in the snapshot, in the workload's namespace."""
    missing_keys: tuple[str, ...]
    """`items` keys the ConfigMap does not have (only when it exists)."""
    mounts: tuple[VolumeMount, ...]
    """Where the pod template's containers mount the volume."""
    istio: bool
    """Whether it is meant for the istio check: it lands in an istio read path, or its volume,
    ConfigMap, key or mount path names istio, or its content is an istio check configuration."""

    def field_path(self, template_path: str) -> str:
        """Dotted path of the volume (or projected source) in the workload."""
        prefix = f"{template_path}." if template_path else ""
        path = f"{prefix}spec.volumes[{self.volume_index}]"
        if self.source_index is None:
            return f"{path}.configMap"
        return f"{path}.projected.sources[{self.source_index}].configMap"


@dataclass(frozen=True)
class MountedFile:
    """One ConfigMap key as a file inside a container of an agent pod."""

    volume: ConfigMapVolume
    """The volume it comes from."""
    mount: VolumeMount
    """The mount that makes it visible."""
    key: str
    """The ConfigMap key."""
    container_path: str
    """Where the file is in that container."""
    read_path: str | None
    """Where the agent process reads it (after the `/conf.d` copy); None when it never does."""
    check: str | None
    """The check the agent configures with it (`istio`), None when not a check configuration."""
    default: bool = False
    """A `*.yaml.default` file: used only when nothing else configures the check."""


@dataclass(frozen=True)
class IstioCheckConfig:
    """One source of `istio` check instances, or a file meant for it that the agent never reads."""

    agent: ObjectRef | None
    """The agent workload that runs it; None for Autodiscovery annotations (any node agent)."""
    source_kind: str
    """`configmap`, `helm-confd`, `ad-annotations` or `ad-annotations-v2`."""
    source_ref: ObjectRef
    """The ConfigMap, or the annotated workload or pod."""
    mount_path: str | None
    """Where the file is in the agent's container (ConfigMap sources)."""
    file_name: str | None
    """ConfigMap key, or the annotation name."""
    text: str | None
    """The raw configuration text (YAML for files, JSON for annotations)."""
    parsed: Any
    """The parsed document; None when it does not parse."""
    instances: tuple[Mapping[str, Any], ...]
    """The instances the check runs (mappings only)."""
    problems: tuple[str, ...] = ()
    """What is wrong with it, in words (invalid YAML with its line, no instances, not read...)."""
    read_path: str | None = None
    """Where the agent reads it; None when it is not read (wrong path) or for annotations."""
    effective: bool = True
    """Whether the agent runs it: read, parsed, not a `.default` shadowed by another file."""
    container: str | None = None
    """The container that mounts the file, or that the annotation names."""
    volume: ConfigMapVolume | None = None
    """The volume, for ConfigMap sources."""
    yaml_error_line: int | None = None
    """1-based line of the YAML error within the key, when it does not parse."""


@dataclass(frozen=True)
class CheckEndpoint:
    """One endpoint URL an `istio` check instance scrapes."""

    agent_ref: ObjectRef | None
    """The agent workload; None for Autodiscovery annotations."""
    config_source: ObjectRef
    """The ConfigMap or annotated object the URL is written in."""
    key: str
    """The instance option: `istio_mesh_endpoint`, `mixer_endpoint`, `istiod_endpoint`..."""
    url: str
    """The URL as written."""
    host: str
    """Its host."""
    namespace: str | None
    """The Service's namespace (the agent's for a one-label host); None when not a Service."""
    service: str | None
    """The Service's name; None for IPs, template variables (`%%host%%`) and external names."""
    port: int | str | None
    """The port: a number, a name, a template variable, or None."""
    path: str
    """The URL path."""
    era_hint: str
    """`mixer`, `istiod` or `unknown`: the mesh era the key (and port) belongs to."""
    instance_index: int = 0
    """Index of the instance in its configuration."""
    source_kind: str = CONFIGMAP
    """How the configuration reaches the agent."""
    file_name: str | None = None
    """ConfigMap key or annotation name."""


# -- parsing ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def parse_check_yaml(text: str) -> tuple[Any, str | None, int | None]:
    """(document, error message, 1-based error line) of a check configuration file.

    Every rule reading the check's configuration asks for the same texts, so each is parsed once
    (the result is shared: callers only read it). Parsed by libyaml where available, with the
    aliasing limit of the agent's own YAML decoder (gopkg.in/yaml.v2, `yaml_aliases`), so a large
    or hostile conf.yaml costs one bounded parse. A text libyaml refuses is parsed again by
    PyYAML's Python parser, whose messages are the ones reports have always quoted.
    """
    try:
        return _load_one(_FastLoader, text), None, None
    except yaml.YAMLError:
        pass  # refused: the Python parser below says why, in the words reports have quoted
    except InputError:
        return None, "YAML document contains excessive aliasing", None
    except RecursionError:
        return None, "YAML nested too deeply", None
    try:
        return _load_one(yaml.SafeLoader, text), None, None
    except InputError:
        return None, "YAML document contains excessive aliasing", None
    except RecursionError:
        return None, "YAML nested too deeply", None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        message = f"{context}, {problem}" if context else str(problem)
        return None, message, line


def _load_one(loader_class: Any, text: str) -> Any:
    """The single document of `text` (None if empty), its aliasing checked before it is built."""
    loader = loader_class(text)
    try:
        if not loader.check_node():
            return None
        node = loader.get_node()
        check_aliasing(node, "conf.yaml", node.start_mark.line + 1)
        document = loader.construct_document(node)
        if loader.check_node():
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                node.start_mark,
                "but found another document",
                loader.get_node().start_mark,
            )
        return document
    finally:
        loader.dispose()


_FastLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_instances(parsed: Any) -> tuple[Mapping[str, Any], ...]:
    """The mapping instances of a parsed check configuration."""
    if not isinstance(parsed, Mapping):
        return ()
    instances = parsed.get("instances")
    if not isinstance(instances, list):
        return ()
    return tuple(i for i in instances if isinstance(i, Mapping))


_ENDPOINT_KEY_TEXT = re.compile(r"\b(" + "|".join(paths.ENDPOINT_KEYS) + r")\s*:")


def looks_like_istio_check(text: str) -> bool:
    """Whether a file's content is an istio check configuration (by its endpoint keys).

    Parsed: `instances` with an istio endpoint option. Not parsable: the option names appear.
    A text where no option name appears is neither, and is not parsed at all (every value of
    every ConfigMap is asked about).
    """
    if not _ENDPOINT_KEY_TEXT.search(text):
        return False
    parsed, error, _ = parse_check_yaml(text)
    if error is not None:
        return bool(_ENDPOINT_KEY_TEXT.search(text))
    return any(any(k in i for k in paths.ENDPOINT_KEYS) for i in check_instances(parsed))


def istio_configmap_keys(configmap: Mapping[str, Any]) -> list[str]:
    """Keys of a ConfigMap whose content is an istio check configuration, in key order."""
    data = configmap.get("data") or {}
    return sorted(k for k, v in data.items() if isinstance(v, str) and looks_like_istio_check(v))


# -- where the agent reads -------------------------------------------------------------------


def confd_path(container: Mapping[str, Any] | None) -> str:
    """The container's `confd_path`: a literal `DD_CONFD_PATH`, else the image default."""
    for var in (container or {}).get("env") or []:
        if var.get("name") == paths.CONFD_PATH_ENV and isinstance(var.get("value"), str):
            return posixpath.normpath(var["value"])
    return paths.CONFD_PATH


def runs_cont_init(container: Mapping[str, Any]) -> bool:
    """Whether a container runs the image's cont-init.d scripts (and so copies `/conf.d`).

    True without a `command` (the image's entrypoint runs), or when the command or args invoke
    the entrypoint (`/init`, `entrypoint.sh`) or the scripts (`cont-init.d`, as the Helm chart's
    init-config container does).
    """
    command = [str(c) for c in container.get("command") or []]
    if not command:
        return True
    words = command + [str(a) for a in container.get("args") or []]
    text = " ".join(words)
    return "/init" in words or any(w in text for w in paths.RUNS_CONT_INIT[1:])


def _under(path: str, root: str) -> str | None:
    """`path` relative to `root`, or None when it is not below it."""
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    if path == root:
        return ""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def confd_check(relative: str) -> tuple[str, bool] | None:
    """(check name, is .default) for a path relative to confd, or None when the agent skips it.

    `istio.d/conf.yaml` -> (`istio`, False); `istio.yaml` -> (`istio`, False);
    `istio.d/conf.yaml.default` -> (`istio`, True); `istio/conf.yaml`, `istio.d/sub/x.yaml`,
    `istio.d/metrics.yaml`, `istio.d/conf.txt` -> None.
    """
    parts = [p for p in relative.split("/") if p]
    if not parts or len(parts) > 2:
        return None
    name = parts[-1]
    default = name.endswith(paths.DEFAULT_SUFFIX)
    base = name[: -len(paths.DEFAULT_SUFFIX)] if default else name
    ext = posixpath.splitext(base)[1]
    if ext not in paths.CONFIG_SUFFIXES:
        return None
    if len(parts) == 2:
        folder = parts[0]
        if not folder.endswith(".d") or len(folder) <= 2 or name in paths.NOT_INSTANCE_FILES:
            return None
        return folder[:-2], default
    return posixpath.splitext(base)[0], default


def _copied(path: str) -> str | None:
    """Where the `/conf.d` copy puts a file (same container), or None when it is not copied."""
    rest = _under(path, paths.COPIED_CONFD)
    if not rest or not path.endswith(paths.COPIED_SUFFIXES):
        return None
    return posixpath.join(paths.COPY_TARGET_ROOT, posixpath.relpath(path, "/"))


# -- volumes and files ------------------------------------------------------------------------


def _containers(template: Mapping[str, Any]) -> Iterator[tuple[bool, int, dict[str, Any]]]:
    spec = template.get("spec") or {}
    for init, key in ((True, "initContainers"), (False, "containers")):
        for index, container in enumerate(spec.get(key) or []):
            if isinstance(container, dict):
                yield init, index, container


def _configmap_sources(volume: Mapping[str, Any]) -> Iterator[tuple[int | None, Mapping[str, Any]]]:
    if isinstance(volume.get("configMap"), Mapping):
        yield None, volume["configMap"]
    projected = volume.get("projected")
    if isinstance(projected, Mapping):
        for index, source in enumerate(projected.get("sources") or []):
            if isinstance(source, Mapping) and isinstance(source.get("configMap"), Mapping):
                yield index, source["configMap"]


def _file_map(source: Mapping[str, Any], configmap: Mapping[str, Any] | None) -> dict[str, str]:
    """ConfigMap key -> path inside the volume, as the kubelet projects it."""
    items = [i for i in source.get("items") or [] if isinstance(i, Mapping)]
    if items:
        return {str(i.get("key", "")): str(i.get("path") or i.get("key", "")) for i in items}
    if configmap is None:
        return {}
    keys = list(configmap.get("data") or {}) + list(configmap.get("binaryData") or {})
    return {str(k): str(k) for k in keys}


def _in_container(mount: VolumeMount, volume_path: str) -> str | None:
    """Where a file at `volume_path` inside the volume appears in the container, or None."""
    if not mount.sub_path:
        return posixpath.join(mount.mount_path, volume_path)
    sub = posixpath.normpath(mount.sub_path)
    if volume_path == sub:
        return posixpath.normpath(mount.mount_path)
    rest = _under(volume_path, sub)
    return posixpath.join(mount.mount_path, rest) if rest else None


def _agent_read_path(template: Mapping[str, Any], mount: VolumeMount, path: str) -> str | None:
    """Where the main agent container reads a file a container sees at `path`, or None."""
    main = agent_container(template)
    if main is None:
        return None
    root = confd_path(main)
    by_name = {(init, c.get("name")): c for init, _, c in _containers(template)}
    container = by_name.get((mount.init, mount.container)) or {}
    if not mount.init:
        if container is not main:
            return None
        if _under(path, root) is not None:
            return path
        copied = _copied(path) if runs_cont_init(main) else None
        return copied if copied and _under(copied, root) is not None else None
    # An init container: its copy reaches the agent through a volume both mount.
    copied = _copied(path) if runs_cont_init(container) else None
    if copied is None:
        return None
    best: tuple[int, Mapping[str, Any]] | None = None
    for m in container.get("volumeMounts") or []:
        rest = _under(copied, str(m.get("mountPath", "")))
        if rest is not None and not m.get("subPath") and (best is None or len(str(m["mountPath"])) > best[0]):
            best = (len(str(m["mountPath"])), m)
    if best is None:
        return None
    shared = best[1]
    rest = _under(copied, str(shared["mountPath"])) or ""
    for m in main.get("volumeMounts") or []:
        if m.get("name") == shared.get("name") and not m.get("subPath"):
            seen = posixpath.join(str(m.get("mountPath", "")), rest)
            return seen if _under(seen, root) is not None else None
    return None


def _mentions_istio(*words: str) -> bool:
    return any("istio" in w.lower() for w in words)


def configmap_volumes(reader: ObjectReader, workload: KubeObject) -> list[ConfigMapVolume]:
    """Every ConfigMap an agent pod template references, with its mounts and whether it is there."""
    return [v for v, _ in _volumes_and_files(reader, workload)]


def mounted_files(reader: ObjectReader, workload: KubeObject) -> list[MountedFile]:
    """Every ConfigMap key visible as a file in a container of an agent pod template."""
    return [f for _, files in _volumes_and_files(reader, workload) for f in files]


def _volumes_and_files(reader: ObjectReader, workload: KubeObject) -> list[tuple[ConfigMapVolume, list[MountedFile]]]:
    template = pod_template(workload) or {}
    spec = template.get("spec") or {}
    namespace = str(metadata(workload).get("namespace") or "")
    ref = object_ref(workload)
    found: list[tuple[ConfigMapVolume, list[MountedFile]]] = []
    for volume_index, volume in enumerate(spec.get("volumes") or []):
        if not isinstance(volume, Mapping):
            continue
        name = str(volume.get("name", ""))
        mounts = tuple(
            VolumeMount(
                str(c.get("name", "")),
                init,
                index,
                mount_index,
                str(m.get("mountPath", "")),
                str(m.get("subPath") or ""),
            )
            for init, index, c in _containers(template)
            for mount_index, m in enumerate(c.get("volumeMounts") or [])
            if isinstance(m, Mapping) and m.get("name") == name
        )
        for source_index, source in _configmap_sources(volume):
            cm_name = str(source.get("name", ""))
            configmap = reader.get("ConfigMap", namespace, cm_name)
            items = tuple(
                (str(i.get("key", "")), str(i.get("path") or i.get("key", "")))
                for i in source.get("items") or []
                if isinstance(i, Mapping)
            )
            data = (configmap or {}).get("data") or {}
            present = set(data) | set((configmap or {}).get("binaryData") or {})
            missing = tuple(k for k, _ in items if configmap is not None and k not in present)
            # Whether it is meant for the istio check depends on its files: `istio` is set after them.
            staged = ConfigMapVolume(
                ref,
                name,
                volume_index,
                source_index,
                cm_name,
                items,
                bool(source.get("optional")),
                configmap is not None,
                missing,
                mounts,
                False,
            )
            files: list[MountedFile] = []
            for key, volume_path in _file_map(source, configmap).items():
                if configmap is not None and key not in present:
                    continue
                for mount in mounts:
                    path = _in_container(mount, posixpath.normpath(volume_path))
                    if path is None:
                        continue
                    read = _agent_read_path(template, mount, path)
                    main = agent_container(template)
                    check = None
                    default = False
                    if read is not None:
                        rel = _under(read, confd_path(main))
                        decided = confd_check(rel or "")
                        if decided is not None:
                            check, default = decided
                    files.append(MountedFile(staged, mount, key, path, read, check, default))
            istio = (
                any(f.check == paths.ISTIO_CHECK for f in files)
                or _mentions_istio(name, cm_name, *(k for k, _ in items), *(m.mount_path for m in mounts))
                or any(isinstance(v, str) and looks_like_istio_check(v) for v in data.values())
            )
            final = replace(staged, istio=istio)
            found.append((final, [replace(f, volume=final) for f in files]))
    return found


# -- istio check configurations ---------------------------------------------------------------


def _file_config(reader: ObjectReader, workload: KubeObject, mounted: MountedFile, effective: bool) -> IstioCheckConfig:
    volume = mounted.volume
    namespace = volume.workload.namespace
    configmap = reader.get("ConfigMap", namespace, volume.configmap) or {}
    text = str((configmap.get("data") or {}).get(mounted.key, ""))
    parsed, error, line = parse_check_yaml(text)
    instances = check_instances(parsed)
    problems: list[str] = []
    if error is not None:
        where = f" (line {line} of key {mounted.key})" if line else ""
        problems.append(f"not valid YAML{where}: {error}")
    elif mounted.check == paths.ISTIO_CHECK and not instances:
        problems.append("has no `instances` list")
    if mounted.read_path is None or mounted.check != paths.ISTIO_CHECK:
        problems.append(
            f"mounted at {mounted.container_path}, which the agent does not read as the istio check's configuration"
        )
    kind = CONFIGMAP
    if mounted.read_path is not None and _under(mounted.container_path, paths.COPIED_CONFD) == (
        posixpath.basename(mounted.container_path)
    ):
        kind = HELM_CONFD
    return IstioCheckConfig(
        agent=volume.workload,
        source_kind=kind,
        source_ref=ObjectRef("ConfigMap", namespace, volume.configmap),
        mount_path=mounted.container_path,
        file_name=mounted.key,
        text=text,
        parsed=parsed,
        instances=instances,
        problems=tuple(problems),
        read_path=mounted.read_path if mounted.check == paths.ISTIO_CHECK else None,
        effective=effective and error is None and bool(instances),
        container=mounted.mount.container,
        volume=volume,
        yaml_error_line=line,
    )


def _workload_configs(reader: ObjectReader, workload: KubeObject) -> list[IstioCheckConfig]:
    files = mounted_files(reader, workload)
    read = [f for f in files if f.check == paths.ISTIO_CHECK]
    has_regular = any(not f.default for f in read)
    configs = [_file_config(reader, workload, f, not (f.default and has_regular)) for f in read]
    seen = {(f.volume.configmap, f.key) for f in read}
    namespace = str(metadata(workload).get("namespace") or "")
    for f in files:
        if f.check == paths.ISTIO_CHECK or (f.volume.configmap, f.key) in seen:
            continue
        configmap = reader.get("ConfigMap", namespace, f.volume.configmap) or {}
        text = (configmap.get("data") or {}).get(f.key)
        if isinstance(text, str) and looks_like_istio_check(text):
            seen.add((f.volume.configmap, f.key))
            configs.append(_file_config(reader, workload, f, False))
    return configs


def _json(text: Any) -> tuple[Any, str | None]:
    try:
        return json.loads(str(text)), None
    except ValueError as error:
        return None, str(error)


def _annotation_config(
    source_kind: str,
    ref: ObjectRef,
    name: str,
    text: str | None,
    parsed: Any,
    instances: tuple[Mapping[str, Any], ...],
    problems: list[str],
    container: str,
) -> IstioCheckConfig:
    """An annotation's configuration: no agent or mount of its own, run when nothing is wrong."""
    return IstioCheckConfig(
        None,
        source_kind,
        ref,
        None,
        name,
        text,
        parsed,
        instances,
        tuple(problems),
        effective=not problems,
        container=container,
    )


def _mentions_istio_check(value: Any) -> bool:
    """Whether an annotation value that does not parse names the istio check (`"istio"`)."""
    return f'"{paths.ISTIO_CHECK}"' in str(value)


def _annotation_configs(
    obj: KubeObject, template: Mapping[str, Any], v2_unread: str | None = None
) -> list[IstioCheckConfig]:
    """The istio configurations in one pod's (or pod template's) Autodiscovery annotations.

    As the agent reads them (`paths.AD_PREFIX`): a container with a v2 `.checks` annotation has its
    v1 annotations ignored; `v2_unread` says why no agent reads v2 annotations, when none does.
    """
    annotations = metadata(template).get("annotations") or {}
    names = {str(c.get("name", "")) for _, _, c in _containers(template)}
    ref = object_ref(obj)
    found: list[IstioCheckConfig] = []
    for key, value in sorted(annotations.items()):
        if not str(key).startswith(paths.AD_PREFIX):
            continue
        container, _, option = str(key)[len(paths.AD_PREFIX) :].rpartition(".")
        problems: list[str] = []
        # The injected sidecar is not in a workload's template: an annotation naming it is meant for it.
        if container not in names and container != SIDECAR_CONTAINER:
            problems.append(f"names container {container!r}, which the pod does not have")
        if option == paths.AD_V2_KEY:
            parsed, error = _json(value)
            if v2_unread is not None:
                problems.append(v2_unread)
            if error is not None:
                if _mentions_istio_check(value):
                    found.append(
                        _annotation_config(
                            AD_ANNOTATIONS_V2,
                            ref,
                            str(key),
                            str(value),
                            None,
                            (),
                            [f"is not valid JSON ({error})", *problems],
                            container,
                        )
                    )
                continue
            check = parsed.get(paths.ISTIO_CHECK) if isinstance(parsed, Mapping) else None
            if not isinstance(check, Mapping):
                continue
            raw = check.get("instances")
            instances = tuple(i for i in raw if isinstance(i, Mapping)) if isinstance(raw, list) else ()
            if not instances:
                problems.append("has no `instances` for istio")
            found.append(
                _annotation_config(AD_ANNOTATIONS_V2, ref, str(key), str(value), check, instances, problems, container)
            )
        elif option == "check_names":
            if f"{paths.AD_PREFIX}{container}.{paths.AD_V2_KEY}" in annotations and v2_unread is None:
                continue  # the agent reads the v2 `.checks` annotation instead
            names_parsed, error = _json(value)
            if error is not None or not isinstance(names_parsed, list):
                if _mentions_istio_check(value):
                    reason = f"is not valid JSON ({error})" if error is not None else "is not a JSON list"
                    found.append(
                        _annotation_config(
                            AD_ANNOTATIONS, ref, str(key), str(value), None, (), [reason, *problems], container
                        )
                    )
                continue
            if paths.ISTIO_CHECK not in names_parsed:
                continue
            index = names_parsed.index(paths.ISTIO_CHECK)
            instances_key = f"{paths.AD_PREFIX}{container}.instances"
            raw_instances = annotations.get(instances_key)
            parsed_instances, error = _json(raw_instances) if raw_instances is not None else (None, "absent")
            instance: Any = None
            if error is not None:
                problems.append(
                    f"{instances_key} is absent"
                    if raw_instances is None
                    else f"{instances_key} is not valid JSON ({error})"
                )
            elif not isinstance(parsed_instances, list) or len(parsed_instances) != len(names_parsed):
                problems.append(f"{instances_key} does not list one instance per check name")
            else:
                instance = parsed_instances[index]
            instances = (instance,) if isinstance(instance, Mapping) else ()
            if instance is not None and not instances:
                problems.append("the istio instance is not a JSON object")
            found.append(
                _annotation_config(
                    AD_ANNOTATIONS,
                    ref,
                    instances_key,
                    None if raw_instances is None else str(raw_instances),
                    parsed_instances,
                    instances,
                    problems,
                    container,
                )
            )
    return found


def _workload_metadata_configs(obj: KubeObject) -> list[IstioCheckConfig]:
    """Autodiscovery annotations naming istio on a workload's own metadata, which no agent reads."""
    annotations = metadata(obj).get("annotations") or {}
    found: list[IstioCheckConfig] = []
    for key, value in sorted(annotations.items()):
        if not str(key).startswith(paths.AD_PREFIX) or not str(key).endswith((".checks", ".check_names")):
            continue
        if not _mentions_istio_check(value):
            continue
        container = str(key)[len(paths.AD_PREFIX) :].rpartition(".")[0]
        problem = (
            f"is on the {obj.get('kind')}'s own metadata; the agent reads Autodiscovery annotations "
            "from pods only (spec.template.metadata.annotations)"
        )
        kind = AD_ANNOTATIONS_V2 if str(key).endswith(".checks") else AD_ANNOTATIONS
        found.append(_annotation_config(kind, object_ref(obj), str(key), str(value), None, (), [problem], container))
    return found


def v2_annotations_unread(reader: ObjectReader) -> str | None:
    """Why no node agent reads v2 `.checks` annotations (every one pinned before 6.36/7.36), or None."""
    versions = []
    for workload in agent_workloads(reader):
        if workload.get("kind") != "DaemonSet":
            continue
        container = agent_container(pod_template(workload))
        versions.append(agent_version(container) if container is not None else None)
    if not versions or any(at_least(v, paths.AD_V2_SINCE) is not False for v in versions):
        return None
    return (
        f"needs Agent 7.36 or later (v2 annotations); the node agents run {', '.join(sorted(set(map(str, versions))))}"
    )


def annotation_configs(reader: ObjectReader) -> list[IstioCheckConfig]:
    """Return the istio check configurations in Autodiscovery annotations of pods and templates.

    An object owned by another one in the snapshot (a Deployment's ReplicaSet, a DaemonSet's
    pods) is left out: its owner's template already says the same. Annotations on a workload's own
    metadata are included with a problem: the agent never reads them.
    """
    found: list[IstioCheckConfig] = []
    v2_unread: str | None = None
    for obj, template in iter_pod_templates(reader, WORKLOAD_KINDS):
        owned = bool(metadata(obj).get("ownerReferences")) and bool(owner_chain(reader, obj))
        if obj.get("kind") != "Pod" and not owned:
            found.extend(_workload_metadata_configs(obj))
        annotations = metadata(template).get("annotations") or {}
        if not any(str(k).startswith(paths.AD_PREFIX) for k in annotations):
            continue
        if owned:
            continue
        if v2_unread is None and any(str(k).endswith(f".{paths.AD_V2_KEY}") for k in annotations):
            v2_unread = v2_annotations_unread(reader) or ""
        found.extend(_annotation_configs(obj, template, v2_unread or None))
    return found


def istio_check_configs(reader: ObjectReader, annotations: bool = True) -> list[IstioCheckConfig]:
    """Every istio check configuration: per agent workload, then Autodiscovery annotations.

    Per workload: ConfigMap files and the Helm confd. Files meant for the check that the agent
    does not read are included with `effective=False` and a problem saying so.
    """
    found: list[IstioCheckConfig] = []
    for workload in agent_workloads(reader):
        found.extend(_workload_configs(reader, workload))
    if annotations:
        found.extend(annotation_configs(reader))
    return found


# -- endpoints ---------------------------------------------------------------------------------


def era_hint(key: str, port: int | str | None, path: str, host: str) -> str:
    """The mesh era an endpoint option belongs to (`mixer`, `istiod`, `unknown`)."""
    if key in paths.MIXER_ERA_KEYS:
        return MIXER
    if key in paths.ISTIOD_ERA_KEYS:
        return ISTIOD
    if key == "istio_mesh_endpoint":
        if port == paths.MESH_PORT_MIXER or host.split(".")[0] == "istio-telemetry":
            return MIXER
        if port in paths.MESH_PORTS_SIDECAR and path.startswith("/stats/prometheus"):
            return ISTIOD
    return UNKNOWN


def endpoints_of(config: IstioCheckConfig) -> list[CheckEndpoint]:
    """The endpoint URLs of one configuration's instances, in instance and key order."""
    found: list[CheckEndpoint] = []
    for index, instance in enumerate(config.instances):
        for key in paths.ENDPOINT_KEYS:
            url = instance.get(key)
            if not isinstance(url, str) or not url.strip():
                continue
            parsed = parse_endpoint_url(url)
            namespace = parsed.namespace
            if parsed.service is not None and namespace is None and config.agent is not None:
                namespace = config.agent.namespace
            found.append(
                CheckEndpoint(
                    config.agent,
                    config.source_ref,
                    key,
                    url,
                    parsed.host,
                    namespace,
                    parsed.service,
                    parsed.port,
                    parsed.path,
                    era_hint(key, parsed.port, parsed.path, parsed.host),
                    index,
                    config.source_kind,
                    config.file_name,
                )
            )
    return found


def configured_endpoints(reader: ObjectReader, include_unread: bool = False) -> list[CheckEndpoint]:
    """Every endpoint the agents' istio check scrapes: ConfigMap files, then annotations.

    Only configurations in effect, unless `include_unread`.
    """
    return [
        e for config in istio_check_configs(reader) if config.effective or include_unread for e in endpoints_of(config)
    ]


# -- what a right configuration looks like ------------------------------------------------------


def recommended_instance(info: MeshInfo, mixer_telemetry: bool) -> dict[str, Any]:
    """The instance right for a mesh (integrations-core istio conf.yaml.example, per era).

    Istio 1.0: mesh metrics on istio-telemetry 42422, Mixer monitoring on 9093; 1.1-1.4: the same
    with monitoring on 15014; 1.5+: `use_openmetrics` with `istiod_endpoint` on 15014, plus the
    Mixer mesh endpoint while a 1.5-1.7 mesh still runs istio-telemetry (telemetry v1). Sidecar
    metrics (15020) come from the agent's own auto_conf.yaml on each istio-proxy container.
    """
    ns = info.namespace or "istio-system"
    minor = info.minor
    if info.era == ISTIOD:
        instance: dict[str, Any] = {
            "use_openmetrics": True,
            "istiod_endpoint": f"http://istiod.{ns}:15014/metrics",
        }
        if mixer_telemetry:
            instance["istio_mesh_endpoint"] = f"http://istio-telemetry.{ns}:42422/metrics"
        instance["send_histograms_buckets"] = True
        return instance
    monitoring = 9093 if minor is not None and minor < (1, 1) else 15014
    return {
        "istio_mesh_endpoint": f"http://istio-telemetry.{ns}:42422/metrics",
        "mixer_endpoint": f"http://istio-telemetry.{ns}:{monitoring}/metrics",
        "send_histograms_buckets": True,
    }


def recommended_conf_yaml(info: MeshInfo, mixer_telemetry: bool) -> str:
    """A complete `conf.yaml` for the istio check, right for the mesh's version."""
    instance = recommended_instance(info, mixer_telemetry)
    body = yaml.safe_dump({"instances": [instance]}, sort_keys=False, default_flow_style=False)
    return "init_config:\n\n" + body


def mixer_telemetry_deployed(reader: ObjectReader, info: MeshInfo) -> bool:
    """Whether the mesh runs Mixer telemetry: an `istio-telemetry` Deployment, any namespace.

    Istio 1.5-1.7 can still run it as telemetry v1.
    """
    return any(
        metadata(d).get("name") == "istio-telemetry"
        or (metadata(d).get("labels") or {}).get("istio-mixer-type") == "telemetry"
        for d in reader.objects("Deployment")
    )


def agent_has_auto_conf(reader: ObjectReader, workload: KubeObject) -> bool:
    """Whether the agent image ships the istio auto_conf.yaml (sidecars configure themselves).

    A 6.20+/7.20+ release (`agent_release`: the pods' runtime evidence, else the tag), an unpinned
    image (latest is newer) or one whose version cannot be told, unless `DD_IGNORE_AUTOCONF` names
    istio.
    """
    container = agent_container(pod_template(workload))
    if container is None:
        return False
    for var in container.get("env") or []:
        if var.get("name") == paths.IGNORE_AUTOCONF_ENV and paths.ISTIO_CHECK in str(var.get("value", "")).split():
            return False
    return agent_release(reader, workload).since(paths.AUTO_CONF_SINCE) is not False


__all__ = [
    "AD_ANNOTATIONS",
    "AD_ANNOTATIONS_V2",
    "CONFIGMAP",
    "HELM_CONFD",
    "CheckEndpoint",
    "ConfigMapVolume",
    "IstioCheckConfig",
    "MountedFile",
    "VolumeMount",
    "agent_has_auto_conf",
    "annotation_configs",
    "v2_annotations_unread",
    "check_instances",
    "configmap_volumes",
    "configured_endpoints",
    "confd_check",
    "endpoints_of",
    "era_hint",
    "istio_check_configs",
    "istio_configmap_keys",
    "looks_like_istio_check",
    "mixer_telemetry_deployed",
    "mounted_files",
    "parse_check_yaml",
    "recommended_conf_yaml",
    "recommended_instance",
    "runs_cont_init",
]
