"""The public rule API: what a rule declares, what it reads, what it yields.

A rule is a small class with metadata and a `check(ctx)` generator. It reads the snapshot only
through the `Context`, which records what it read so tests can prove declared inputs are the
inputs used. Rule packs import from this module, `meshdoctor.model` and the domain helpers only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from meshdoctor.model import (
    Category,
    Evidence,
    FieldEvidence,
    Finding,
    ObjectRef,
    Origin,
    Remediation,
    Severity,
)
from meshdoctor.snapshot import KubeObject, LogKey, LogSource, Snapshot, object_ref

RULE_ID = re.compile(r"^MD\d{3}$")

#: Groups of pod logs a rule may ask for; the live source fetches only these.
LOG_GROUPS = frozenset({"agent", "istio-proxy", "telemetry"})


@dataclass(frozen=True)
class Inputs:
    """What a rule reads. The live source collects the union over the selected rules."""

    kinds: frozenset[str] = frozenset()
    """Kinds the rule cannot work without: if one was not collected, the rule is `not_checked`."""
    optional_kinds: frozenset[str] = frozenset()
    """Kinds the rule reads when they are there (absent means none exist or not collected)."""
    logs: frozenset[str] = frozenset()
    """Pod log groups (`agent`, `istio-proxy`, `telemetry`) used as evidence when present."""
    probes: bool = False
    """Whether the rule uses active probe results (`--probe`)."""

    def all_kinds(self) -> frozenset[str]:
        """Required and optional kinds together."""
        return self.kinds | self.optional_kinds


def inputs(*kinds: str, optional: Iterable[str] = (), logs: Iterable[str] = (), probes: bool = False) -> Inputs:
    """Shorthand: `inputs("DaemonSet", "ServiceEntry", optional=["Sidecar"], logs=["agent"])`."""
    return Inputs(frozenset(kinds), frozenset(optional), frozenset(logs), probes)


@dataclass(frozen=True)
class RuleDocs:
    """The fixed sections every rule documents; `explain` and the README are generated from them."""

    what: str
    """What it checks."""
    why: str
    """Why it matters."""
    fix: str
    """How to fix."""
    references: tuple[str, ...] = ()
    """Links to upstream documentation."""


class NotChecked(Exception):
    """Raised inside `check` when the rule cannot run: the reason becomes a `not_checked` result."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement `check`."""

    id: ClassVar[str]
    title: ClassVar[str]
    category: ClassVar[Category]
    severity: ClassVar[Severity]
    inputs: ClassVar[Inputs]
    docs: ClassVar[RuleDocs]
    #: Whether this rule's findings explain log findings of their category (the engine joins those
    #: lines onto them, `meshdoctor.logs.join`); False for a rule whose fault logs other lines (MD103:
    #: the kubelet, not the intake).
    explains_logs: ClassVar[bool] = True

    def check(self, ctx: Context) -> Iterator[Finding]:
        """Yield findings; raise `NotChecked` when the rule cannot tell."""
        raise NotImplementedError

    def finding(
        self,
        message: str,
        objects: Iterable[ObjectRef] = (),
        evidence: Iterable[Evidence] = (),
        remediation: Remediation | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        """A finding carrying this rule's id, category, title and (default) severity."""
        return Finding(
            rule=self.id,
            category=self.category,
            severity=severity or self.severity,
            title=self.title,
            message=message,
            objects=tuple(objects),
            evidence=tuple(evidence),
            remediation=remediation,
        )


@dataclass
class Context:
    """A rule's read-only view of the snapshot; records every kind and log the rule reads."""

    snapshot: Snapshot
    kinds_read: set[str] = field(default_factory=set)
    logs_read: set[tuple[str, str, str]] = field(default_factory=set)
    cache: dict[Any, Any] = field(default_factory=dict)
    """Per-run memo shared by domain helpers (keyed by helper); rules must not write to it."""

    def objects(self, kind: str) -> list[KubeObject]:
        """All objects of a kind, ordered by namespace and name."""
        self.kinds_read.add(kind)
        return self.snapshot.objects(kind)

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One object, or None."""
        self.kinds_read.add(kind)
        return self.snapshot.get(kind, namespace, name)

    def unavailable(self, kind: str) -> str | None:
        """Why a kind was not collected, or None."""
        return self.snapshot.unavailable(kind)

    def not_read(self, kind: str, namespace: str) -> str | None:
        """Why the objects of a kind in a namespace were not read (`-n`, a partial dump), or None."""
        self.kinds_read.add(kind)
        return self.snapshot.not_read(kind, namespace)

    def logs(self, namespace: str, pod: str, container: str, previous: bool = False) -> LogSource | None:
        """A container log, or None."""
        self.logs_read.add((namespace, pod, container))
        return self.snapshot.log(namespace, pod, container, previous)

    def log_keys(self) -> list[LogKey]:
        """Every container log the input holds (current and previous instances), sorted."""
        return sorted(self.snapshot.logs)

    def origin(self, obj: KubeObject) -> Origin | None:
        """Where an object was read from."""
        return self.snapshot.origin(obj)

    def ref(self, obj: KubeObject) -> ObjectRef:
        """kind/namespace/name of an object."""
        return object_ref(obj)

    def field(self, obj: KubeObject, path: str, value: Any = None) -> FieldEvidence:
        """Evidence for a field of an object; `value` None means the field is absent."""
        origin = self.snapshot.origin(obj)
        line = self.snapshot.field_line(obj, path)
        if origin is not None and line is not None:
            origin = Origin(origin.file, line)
        return FieldEvidence(object_ref(obj), path, _render_value(value), origin)


def _render_value(value: Any) -> str:
    if value is None:
        return "<absent>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
