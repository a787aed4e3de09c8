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

#: The namespace to ask `not_read` about for "every namespace" (no namespace is named `*`).
EVERY_NAMESPACE = "*"

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

    def not_read(self, kind: str, namespace: str) -> str | None:
        """Why the objects of a kind in a namespace were not read (`-n`, a partial dump), or None.

        `namespace` `""` asks about a cluster-scoped kind; `EVERY_NAMESPACE` whether every
        namespace was read. Whether the kind was collected at all is `Snapshot.unavailable`.
        """
        ...


@dataclass(frozen=True)
class NamespaceScope:
    """The namespaces a namespaced kind was read in, when not all of them."""

    namespaces: frozenset[str]
    """The namespaces read; every other one was not."""
    how: str
    """What limited the reading, for messages: `-n datadog`, `the cluster-info dump holds default, kube-system`."""

    def reason(self, namespace: str) -> str:
        """Why a namespace outside the scope is not known (`EVERY_NAMESPACE`: why not all are)."""
        if namespace == EVERY_NAMESPACE:
            read = ", ".join(sorted(self.namespaces)) or "none"
            return f"only namespace{'s' if len(self.namespaces) > 1 else ''} {read} read ({self.how})"
        return f"namespace {namespace} was not read ({self.how})"


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
        self._scopes: dict[str, NamespaceScope] = {}
        self._default_scope: NamespaceScope | None = None

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

    def limit_namespaces(self, namespaces: Iterable[str], how: str, kinds: Iterable[str] | None = None) -> None:
        """Say that namespaced objects were read in these namespaces only (`-n`, a partial dump).

        With `kinds`, for those kinds; without, for every kind not given its own scope. A kind read
        in all namespaces needs no call. Cluster-scoped kinds are looked up with namespace `""`,
        which no scope limits. A second call for a kind narrows its scope (intersection).
        """
        scope = NamespaceScope(frozenset(namespaces), how)
        if kinds is None:
            if self._default_scope is not None:
                scope = _narrowed(self._default_scope, scope)
            self._default_scope = scope
            return
        for kind in kinds:
            earlier = self._scopes.get(kind)
            self._scopes[kind] = _narrowed(earlier, scope) if earlier is not None else scope

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

    def namespace_scope(self, kind: str) -> NamespaceScope | None:
        """The namespaces a kind was read in, or None for all of them."""
        own = self._scopes.get(kind)
        if own is None or self._default_scope is None:
            return own or self._default_scope
        return _narrowed(self._default_scope, own)

    def namespace_scopes(self) -> dict[str, NamespaceScope]:
        """Every kind given its own scope, by kind; `""` for the default scope when there is one."""
        found = dict(sorted(self._scopes.items()))
        if self._default_scope is not None:
            found[""] = self._default_scope
        return found

    def scope_lines(self) -> list[str]:
        """What was read in some namespaces only, one line per limit, for the report's `missing` list."""
        lines = []
        if self._default_scope is not None:
            lines.append(f"namespaced objects: {self._default_scope.reason(EVERY_NAMESPACE)}")
        by_scope: dict[NamespaceScope, list[str]] = {}
        for kind, scope in sorted(self._scopes.items()):
            by_scope.setdefault(scope, []).append(kind)
        for scope, kinds in by_scope.items():
            lines.append(f"{', '.join(kinds)}: {scope.reason(EVERY_NAMESPACE)}")
        return lines

    def not_read(self, kind: str, namespace: str) -> str | None:
        """Why the objects of a kind in a namespace were not read, or None when the namespace was.

        Only the namespace is judged (`-n`, a partial dump); whether the kind was collected at all
        is `unavailable` (rules declare the kinds they need, and the engine reports them
        `not_checked` when one is missing). `namespace` `""` (a cluster-scoped kind) is always
        read; `EVERY_NAMESPACE` asks whether every namespace was.
        """
        scope = self.namespace_scope(kind)
        if namespace and scope is not None and namespace not in scope.namespaces:
            return scope.reason(namespace)
        return None

    def missing(self) -> dict[str, str]:
        """Kinds explicitly recorded as not collected, with why."""
        return dict(sorted(self._missing.items()))

    def log(self, namespace: str, pod: str, container: str, previous: bool = False) -> LogSource | None:
        """A container log, or None."""
        return self.logs.get(LogKey(namespace, pod, container, previous))


def _narrowed(earlier: NamespaceScope, later: NamespaceScope) -> NamespaceScope:
    """Both limits at once: the namespaces read under both, said by both."""
    if earlier == later:
        return later
    return NamespaceScope(earlier.namespaces & later.namespaces, f"{earlier.how}; {later.how}")


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
