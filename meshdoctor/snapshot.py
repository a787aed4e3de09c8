"""The snapshot: every object and log a run has, indexed, with what could not be collected.

Sources fill it; rules only read it (through `meshdoctor.rule.Context`). Objects are plain dicts as
the API server serves them. Secret data never enters: `add` keeps a Secret's key names only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from meshdoctor.model import ObjectRef, Origin

KubeObject = dict[str, Any]

#: Value that replaces every Secret data value on the way in.
REDACTED = "<redacted>"


@dataclass(frozen=True, order=True)
class LogKey:
    """Which container log: a pod's container, current or previous instance."""

    namespace: str
    pod: str
    container: str
    previous: bool = False


class LogSource(Protocol):
    """A container log that can be read line by line, never whole."""

    origin: str
    """File (and section) the log is read from."""

    def lines(self) -> Iterator[str]:
        """Yield the log's lines without line ends, decoded with replacement."""
        ...


class ObjectReader(Protocol):
    """What domain helpers need: objects by kind, one object by name."""

    def objects(self, kind: str) -> list[KubeObject]:
        """All objects of a kind, ordered by namespace and name."""
        ...

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One object, or None."""
        ...


def object_ref(obj: KubeObject) -> ObjectRef:
    """The kind/namespace/name of an object."""
    meta = obj.get("metadata") or {}
    return ObjectRef(str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", "")))


class Snapshot:
    """Objects by kind/namespace/name, container logs, probe results, and what is missing."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[tuple[str, str], KubeObject]] = {}
        self._sorted: dict[str, list[KubeObject]] = {}
        self._origins: dict[int, Origin] = {}
        self._field_lines: dict[int, Any] = {}
        self.logs: dict[LogKey, LogSource] = {}
        self.probes: dict[str, Any] = {}
        self._all_kinds_collected = False
        self._collected: set[str] = set()
        self._missing: dict[str, str] = {}
        self.default_missing_reason = "not in the input"
        """Why a kind neither collected nor present is unavailable (a dump: 'not in a cluster-info dump')."""

    # -- filling (sources only) -------------------------------------------------------------

    def add(self, obj: KubeObject, origin: Origin | None = None, field_lines: Any = None) -> None:
        """Add an object; a later object with the same kind/namespace/name replaces the earlier.

        `field_lines` is an optional callable `(path) -> line | None` a source can give so that
        evidence names the exact line of a field.
        """
        if obj.get("kind") == "Secret":
            obj = _without_secret_values(obj)
        ref = object_ref(obj)
        of_kind = self._by_kind.setdefault(ref.kind, {})
        previous = of_kind.get((ref.namespace, ref.name))
        if previous is not None:
            self._origins.pop(id(previous), None)
            self._field_lines.pop(id(previous), None)
        of_kind[(ref.namespace, ref.name)] = obj
        self._sorted.pop(ref.kind, None)
        if origin is not None:
            self._origins[id(obj)] = origin
        if field_lines is not None:
            self._field_lines[id(obj)] = field_lines

    def add_log(self, key: LogKey, log: LogSource) -> None:
        """Register a container log."""
        self.logs[key] = log

    def mark_collected(self, kinds: Iterable[str]) -> None:
        """Say that these kinds were collected completely (absence means 'none exist')."""
        self._collected.update(kinds)

    def mark_all_collected(self) -> None:
        """Say that the input describes the whole cluster (a folder of manifests)."""
        self._all_kinds_collected = True

    def mark_missing(self, kind: str, reason: str) -> None:
        """Say that a kind could not be collected, and why ('forbidden', 'not in the dump')."""
        self._missing[kind] = reason

    # -- reading ----------------------------------------------------------------------------

    def objects(self, kind: str) -> list[KubeObject]:
        """All objects of a kind, ordered by namespace and name."""
        cached = self._sorted.get(kind)
        if cached is None:
            of_kind = self._by_kind.get(kind, {})
            cached = [of_kind[key] for key in sorted(of_kind)]
            self._sorted[kind] = cached
        return cached

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One object, or None."""
        of_kind = self._by_kind.get(kind)
        return of_kind.get((namespace, name)) if of_kind else None

    def kinds(self) -> list[str]:
        """Every kind present, sorted."""
        return sorted(kind for kind, objs in self._by_kind.items() if objs)

    def __len__(self) -> int:
        return sum(len(objs) for objs in self._by_kind.values())

    def origin(self, obj: KubeObject) -> Origin | None:
        """Where an object was read from."""
        return self._origins.get(id(obj))

    def field_line(self, obj: KubeObject, path: str) -> int | None:
        """Line of a field of an object, where the source can tell."""
        finder = self._field_lines.get(id(obj))
        return finder(path) if finder is not None else None

    def unavailable(self, kind: str) -> str | None:
        """Why a kind was not collected, or None when its objects (or their absence) are known."""
        if kind in self._missing:
            return self._missing[kind]
        if self._all_kinds_collected or kind in self._collected:
            return None
        if self._by_kind.get(kind):
            return None
        return self.default_missing_reason

    def missing(self) -> dict[str, str]:
        """Kinds explicitly recorded as not collected, with why."""
        return dict(sorted(self._missing.items()))

    def log(self, namespace: str, pod: str, container: str, previous: bool = False) -> LogSource | None:
        """A container log, or None."""
        return self.logs.get(LogKey(namespace, pod, container, previous))


def _without_secret_values(obj: KubeObject) -> KubeObject:
    """A copy of a Secret that keeps its key names, never its values."""
    clean = dict(obj)
    for field_name in ("data", "stringData"):
        values = obj.get(field_name)
        if isinstance(values, dict):
            clean[field_name] = {key: REDACTED for key in values}
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    clean["metadata"] = meta
    return clean
