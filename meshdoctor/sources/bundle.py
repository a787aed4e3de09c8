"""Read a meshdoctor bundle (`meshdoctor bundle -o FILE.tar.gz`) back into the snapshot it captured.

`check --from FILE.tar.gz` replays a bundle: the objects and logs of its `snapshot/` folder (as
scrubbed when the bundle was written), and, from `manifest.json`, what the first run knew beyond
the objects themselves: which kinds were collected, which were not and why, the namespaces read,
the probe results, and where each object came from (file and line), so that the report is the
first run's again with source kind `bundle`.

A bundle comes from someone else: its members are read into memory, never extracted; only regular
files with relative names inside the archive are accepted, and sizes are bounded.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from meshdoctor.errors import InputError
from meshdoctor.model import Origin, SourceInfo
from meshdoctor.snapshot import LogKey, Snapshot

#: The bundle layout's version, written in its manifest.
BUNDLE_VERSION = 1

MANIFEST = "manifest.json"
SNAPSHOT_DIR = "snapshot"
REPORT_DIR = "report"
FIXES_DIR = "fixes"

#: Bounds on what a bundle may hold, so a hostile archive cannot exhaust memory.
MAX_MEMBERS = 100_000
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024

#: Suffixes that name a bundle given to `--from`.
BUNDLE_SUFFIXES = (".tar.gz", ".tgz")


def object_key(kind: str, namespace: str, name: str) -> str:
    """`Kind/namespace/name` (namespace empty for a cluster-scoped object): the manifest's keys."""
    return f"{kind}/{namespace}/{name}"


def is_bundle(path: str) -> bool:
    """Whether `--from PATH` names a bundle: a gzip file named `.tar.gz` or `.tgz`."""
    if not path.endswith(BUNDLE_SUFFIXES):
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def read_members(path: str) -> dict[str, bytes]:
    """Every regular file of the archive by name, read in memory; an `InputError` for anything unsafe."""
    members: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, "r:gz") as archive:
            for count, member in enumerate(_members(archive), start=1):
                if count > MAX_MEMBERS:
                    raise InputError(path, f"not a meshdoctor bundle: more than {MAX_MEMBERS} members")
                if member.isdir():
                    continue
                name = _safe_name(path, member)
                if member.size > MAX_MEMBER_BYTES:
                    raise InputError(path, f"bundle member {name} is larger than {MAX_MEMBER_BYTES} bytes")
                total += member.size
                if total > MAX_TOTAL_BYTES:
                    raise InputError(path, f"bundle holds more than {MAX_TOTAL_BYTES} bytes")
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - regular files always have data
                    raise InputError(path, f"bundle member {name} cannot be read")
                data = handle.read(MAX_MEMBER_BYTES + 1)
                if len(data) != member.size:
                    raise InputError(path, f"bundle member {name} is truncated")
                members[name] = data
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(path, f"not a readable .tar.gz bundle: {exc}") from None
    return members


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    member = archive.next()
    while member is not None:
        yield member
        member = archive.next()


def _safe_name(path: str, member: tarfile.TarInfo) -> str:
    """The member's name, if it is a regular file with a relative name that stays inside."""
    if not member.isreg():
        raise InputError(path, f"bundle member {member.name!r} is not a regular file (links are refused)")
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or "\\" in name or ":" in (parts[0] if parts else "") or ".." in parts:
        raise InputError(path, f"bundle member {name!r} has a name outside the bundle")
    if not parts:
        raise InputError(path, "bundle member with an empty name")
    return str(PurePosixPath(*parts))


class MemoryLog:
    """A container log held in memory (a bundle member)."""

    def __init__(self, data: bytes, origin: str) -> None:
        self._data = data
        self.origin = origin

    def lines(self) -> Iterator[str]:
        """Yield the log's lines as `--logs` files yield theirs."""
        from meshdoctor.sources.logs import stream_lines

        yield from stream_lines(io.BytesIO(self._data))


def load_bundle(path: str) -> tuple[Snapshot, SourceInfo]:
    """The snapshot a bundle captured, and its source (kind `bundle`, the first run's `missing`)."""
    from meshdoctor.sources.files import read_text
    from meshdoctor.sources.snapshot_writer import INFO_FILE, LOGS_DIR

    members = read_members(path)
    manifest = _manifest(path, members)
    replay = manifest.get("replay") or {}
    origins: dict[str, list[Any]] = replay.get("origins") or {}
    field_lines: dict[str, dict[str, int | None]] = replay.get("field_lines") or {}
    snapshot = Snapshot()
    prefix = f"{SNAPSHOT_DIR}/"
    logs_prefix = f"{prefix}{LOGS_DIR}/"
    for name in sorted(members):
        if not name.startswith(prefix) or name == prefix + INFO_FILE:
            continue
        where = f"{path}:{name}"
        if name.startswith(logs_prefix):
            snapshot.add_log(_log_key(path, name[len(logs_prefix) :]), MemoryLog(members[name], where))
            continue
        try:
            text = members[name].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(where, "not UTF-8 text") from None
        for loaded in read_text(text, where):
            meta = loaded.obj.get("metadata") or {}
            key = object_key(str(loaded.obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
            first = origins.get(key)
            origin = Origin(str(first[0]), first[1]) if isinstance(first, list) and len(first) == 2 else None
            lines = field_lines.get(key)
            snapshot.add(loaded.obj, origin, (lambda p, t=lines: t.get(p)) if lines else None)
    _restore_coverage(snapshot, replay)
    source = manifest.get("source") or {}
    missing = tuple(str(line) for line in source.get("missing") or ())
    return snapshot, SourceInfo("bundle", path, missing)


def _manifest(path: str, members: dict[str, bytes]) -> dict[str, Any]:
    raw = members.get(MANIFEST)
    if raw is None:
        raise InputError(path, f"not a meshdoctor bundle: no {MANIFEST}")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}:{MANIFEST}", f"not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("bundle") != BUNDLE_VERSION:
        raise InputError(f"{path}:{MANIFEST}", f"not a meshdoctor bundle of layout {BUNDLE_VERSION}")
    return manifest


def _log_key(path: str, relative: str) -> LogKey:
    """`<ns>/<pod>/<container>.log` or `.previous.log` (the snapshot writer's `log_path`)."""
    parts = relative.split("/")
    if len(parts) != 3 or not parts[2].endswith(".log"):
        raise InputError(f"{path}:{SNAPSHOT_DIR}/logs/{relative}", "not a log of <namespace>/<pod>/<container>.log")
    file = parts[2]
    previous = file.endswith(".previous.log")
    container = file[: -len(".previous.log")] if previous else file[: -len(".log")]
    return LogKey(parts[0], parts[1], container, previous)


def _restore_coverage(snapshot: Snapshot, replay: dict[str, Any]) -> None:
    """What the first run knew of the kinds and namespaces it did not see objects of."""
    if replay.get("all_kinds_collected"):
        snapshot.mark_all_collected()
    snapshot.mark_collected(str(kind) for kind in replay.get("collected") or ())
    for kind, reason in (replay.get("missing") or {}).items():
        snapshot.mark_missing(str(kind), str(reason))
    if isinstance(replay.get("default_missing_reason"), str):
        snapshot.default_missing_reason = replay["default_missing_reason"]
    for kind, scope in sorted((replay.get("scopes") or {}).items()):
        namespaces = [str(ns) for ns in scope.get("namespaces") or ()]
        snapshot.limit_namespaces(namespaces, str(scope.get("how", "")), [kind] if kind else None)
    probes = replay.get("probes")
    if isinstance(probes, dict):
        snapshot.probes.update(probes)
