"""The folder `kubectl cluster-info dump --output-directory DIR` writes.

What kubectl writes (kubernetes/kubectl, pkg/cmd/clusterinfo/clusterinfo_dump.go): `nodes.json` at
the top, then for each namespace dumped (kube-system and the current one, or all with
`--all-namespaces`) `<ns>/events.json`, `replication-controllers.json`, `services.json`,
`daemonsets.json`, `deployments.json`, `replicasets.json` and `pods.json`, each a typed list
(`PodList`...) whose items carry no `kind` or `apiVersion`; `.yaml` instead of `.json` with
`-o yaml`. Each pod's logs go to `<ns>/<pod>/logs.txt`: for every init container then container,
a line `==== START logs for container C of pod NS/POD ====`, the log as the API returned it (or a
one-line error from kubectl), and `==== END logs for container C of pod NS/POD ====`. kubectl
writes the log bytes as they are, so a log without a final newline runs into its END marker.

Nothing else is in a dump: no ConfigMaps, RBAC, Endpoints, NetworkPolicies, Namespaces or custom
resources. Other manifests found in the folder are read as ordinary files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from meshdoctor.errors import InputError
from meshdoctor.snapshot import LogKey
from meshdoctor.sources.bounds import entry_is_dir, entry_is_file, list_folder
from meshdoctor.sources.files import Loaded, manifest_files, read_file
from meshdoctor.sources.logs import SectionLog, check_readable, open_log

#: Dump file name (without extension) -> the kind and apiVersion of its items.
DUMP_LISTS: dict[str, tuple[str, str]] = {
    "nodes": ("Node", "v1"),
    "events": ("Event", "v1"),
    "replication-controllers": ("ReplicationController", "v1"),
    "services": ("Service", "v1"),
    "daemonsets": ("DaemonSet", "apps/v1"),
    "deployments": ("Deployment", "apps/v1"),
    "replicasets": ("ReplicaSet", "apps/v1"),
    "pods": ("Pod", "v1"),
}

#: The kinds a dump collects completely (for the namespaces it covers).
DUMP_KINDS: frozenset[str] = frozenset(kind for kind, _ in DUMP_LISTS.values())

#: Extensions kubectl gives the lists: `-o json` (the default) and `-o yaml`.
DUMP_EXTENSIONS = (".json", ".yaml")

#: Each container's log in `logs.txt` is named by the file of the pod it lives in.
LOGS_FILE = "logs.txt"

#: Why a kind is unavailable when the input is a dump.
NOT_IN_DUMP = "not in a cluster-info dump"

_NAMESPACE_LISTS = frozenset(f"{name}{ext}" for name in DUMP_LISTS if name != "nodes" for ext in DUMP_EXTENSIONS)
_NODE_LISTS = frozenset(f"nodes{ext}" for ext in DUMP_EXTENSIONS)


def _list_name(file_name: str) -> str | None:
    for ext in DUMP_EXTENSIONS:
        if file_name.endswith(ext) and file_name[: -len(ext)] in DUMP_LISTS:
            return file_name[: -len(ext)]
    return None


def _namespace_dirs(root: Path) -> list[Path]:
    """Top-level folders that hold at least one namespace list file (`pods.json`...)."""
    found = []
    for entry in list_folder(root):
        if entry.name.startswith(".") or not entry_is_dir(entry):
            continue
        if any(os.path.isfile(os.path.join(entry.path, name)) for name in _NAMESPACE_LISTS):
            found.append(Path(entry.path))
    return found


def is_dump_dir(path: str | os.PathLike[str]) -> bool:
    """True for a cluster-info dump folder: `nodes.json` at the top, or `<ns>/pods.json` and others.

    A folder of manifests that merely has a `<ns>/services.json` is not a dump: without
    `nodes.json`, a sub-folder must hold two of the dump's list files.
    """
    root = Path(path)
    if not root.is_dir():
        return False
    if any((root / name).is_file() for name in _NODE_LISTS):
        return True
    for entry in list_folder(root):
        if entry.name.startswith(".") or not entry_is_dir(entry):
            continue
        present = sum(os.path.isfile(os.path.join(entry.path, name)) for name in _NAMESPACE_LISTS)
        if present >= 2:
            return True
    return False


@dataclass
class Dump:
    """What a dump folder holds, read."""

    objects: list[Loaded] = field(default_factory=list)
    """Items of the dump's lists, with `kind` and `apiVersion` set."""
    other: list[Loaded] = field(default_factory=list)
    """Objects from other manifest files found in the folder."""
    logs: dict[LogKey, ContainerSection] = field(default_factory=dict)
    """One log per (namespace, pod, container) that has a `logs.txt`."""
    namespaces: list[str] = field(default_factory=list)
    """The namespaces dumped: the folders holding the dump's list files. kubectl dumps kube-system
    and the current namespace unless given `--namespaces` or `--all-namespaces`, so the dump's
    kinds are known in these namespaces only."""


def load_dump(path: str | os.PathLike[str], skip: tuple[str, ...] = ()) -> Dump:
    """Read a dump folder: its lists, its pods' `logs.txt` sections, and any other manifests.

    The sections of a `logs.txt` are indexed the first time one of its logs is read (one pass);
    the containers come from the pod's spec (kubectl writes a section for each), or, for a pod
    not in `pods.json`, from the file itself.
    """
    root = Path(path)
    dump = Dump()
    for name in sorted(_NODE_LISTS):
        if (root / name).is_file():
            dump.objects.extend(read_file(root / name, DUMP_LISTS["nodes"]))
    namespace_dirs = _namespace_dirs(root)
    taken = {d.name for d in namespace_dirs} | set(_NODE_LISTS)
    dump.namespaces = [d.name for d in namespace_dirs]
    for ns_dir in namespace_dirs:
        pods: list[Loaded] = []
        for entry in list_folder(ns_dir):
            if entry.name.startswith(".") or not entry_is_file(entry):
                continue
            list_name = _list_name(entry.name)
            if list_name is not None:
                loaded = read_file(entry.path, DUMP_LISTS[list_name])
                dump.objects.extend(loaded)
                if list_name == "pods":
                    pods.extend(loaded)
            elif entry.name.endswith((".yaml", ".yml", ".json")):
                dump.other.extend(read_file(entry.path))
        _register_logs(dump, ns_dir, pods)
    for entry in list_folder(root):
        if entry.name.startswith(".") or entry.name in taken or entry.name in skip:
            continue
        if entry_is_dir(entry):
            for file in manifest_files(entry.path):
                dump.other.extend(read_file(file))
        elif entry.name.endswith((".yaml", ".yml", ".json")) and entry_is_file(entry):
            dump.other.extend(read_file(entry.path))
    return dump


def _register_logs(dump: Dump, ns_dir: Path, pods: list[Loaded]) -> None:
    namespace = ns_dir.name
    by_name = {}
    for loaded in pods:
        meta = loaded.obj.get("metadata") or {}
        if meta.get("name"):
            by_name[str(meta["name"])] = loaded.obj
    for entry in list_folder(ns_dir):
        if entry.name.startswith(".") or not entry_is_dir(entry):
            continue
        logs_path = os.path.join(entry.path, LOGS_FILE)
        if not os.path.isfile(logs_path):
            continue
        check_readable(logs_path)  # now, not when a rule reads it: an unreadable log is bad input
        logs_txt = LogsTxt(logs_path)
        pod = by_name.get(entry.name)
        containers = _container_names(pod) if pod is not None else list(logs_txt.sections())
        for container in containers:
            key = LogKey(namespace, entry.name, container)
            dump.logs[key] = ContainerSection(logs_txt, container)


def _container_names(pod: dict[str, object]) -> list[str]:
    spec = pod.get("spec")
    names: list[str] = []
    if isinstance(spec, dict):
        for field_name in ("initContainers", "containers"):
            for container in spec.get(field_name) or []:
                if isinstance(container, dict) and container.get("name"):
                    names.append(str(container["name"]))
    return names


# -- logs.txt -------------------------------------------------------------------------------------

_MARKER = re.compile(
    rb"==== (START|END) logs for container ([^ \r\n]+) of pod ([^ /\r\n]+)/([^ \r\n]+) ===="
    rb"(?:\r?\n|\Z)"
)

#: Bytes read at a time when indexing a logs.txt.
INDEX_CHUNK = 1024 * 1024

#: A marker is shorter than this (names are DNS labels and subdomains: 63 + 253 + 253 bytes).
_MARKER_MAX = 1024


def index_logs_txt(path: str) -> dict[str, tuple[int, int]]:
    """Container name -> byte range of its log in a logs.txt, in one streaming pass.

    A START marker counts only at the start of a line; an END marker may follow log bytes on the
    same line (a log without a final newline). A section without its END runs to the next START
    or to the end of the file.
    """
    sections: dict[str, tuple[int, int]] = {}
    open_container: str | None = None
    open_at = 0
    base = 0  # file offset of buf[0]
    line_start = True  # buf[0] starts a line
    buf = b""
    with open_log(path) as handle:
        while True:
            chunk = handle.read(INDEX_CHUNK)
            eof = not chunk
            buf += chunk
            limit = len(buf) if eof else buf.rfind(b"\n") + 1
            for match in _MARKER.finditer(buf, 0, limit):
                at = match.start()
                container = match.group(2).decode("utf-8", errors="replace")
                if match.group(1) == b"START":
                    if not (buf[at - 1 : at] == b"\n" if at else line_start):
                        continue
                    if open_container is not None:
                        sections[open_container] = (open_at, base + at)
                    open_container, open_at = container, base + match.end()
                elif open_container == container:
                    sections[container] = (open_at, base + at)
                    open_container = None
            if eof:
                break
            if limit:
                base += limit
                buf = buf[limit:]
                line_start = True
            elif len(buf) > INDEX_CHUNK:
                # A very long line: only its tail can hold a marker.
                base += len(buf) - _MARKER_MAX
                buf = buf[-_MARKER_MAX:]
                line_start = False
        if open_container is not None:
            sections[open_container] = (open_at, base + len(buf))
    return sections


class LogsTxt:
    """One pod's `logs.txt`, its sections indexed on first use."""

    __slots__ = ("path", "_sections")

    def __init__(self, path: str) -> None:
        self.path = path
        self._sections: dict[str, tuple[int, int]] | None = None

    def sections(self) -> dict[str, tuple[int, int]]:
        """Container name -> byte range of its log."""
        if self._sections is None:
            try:
                self._sections = index_logs_txt(self.path)
            except OSError as exc:
                raise InputError(self.path, f"cannot read: {exc.strerror}") from None
        return self._sections


class ContainerSection:
    """One container's log inside a `logs.txt` (a LogSource); empty if kubectl wrote no section."""

    __slots__ = ("logs_txt", "container", "origin")

    def __init__(self, logs_txt: LogsTxt, container: str) -> None:
        self.logs_txt = logs_txt
        self.container = container
        self.origin = f"{logs_txt.path} (container {container})"

    def section(self) -> SectionLog | None:
        """The byte range of this container's log, or None."""
        span = self.logs_txt.sections().get(self.container)
        if span is None:
            return None
        return SectionLog(self.logs_txt.path, span[0], span[1], self.origin)

    def lines(self) -> Iterator[str]:
        """Yield the section's lines, streamed."""
        section = self.section()
        if section is not None:
            yield from section.lines()

    def open(self) -> BinaryIO:
        """The raw bytes of the section, for scanners that read large chunks themselves."""
        section = self.section()
        if section is None:
            import io

            return io.BytesIO(b"")
        return section.open()

    def __repr__(self) -> str:
        return f"ContainerSection({self.logs_txt.path!r}, {self.container!r})"
