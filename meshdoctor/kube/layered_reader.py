"""An ObjectReader with extra objects laid over or under it: a fix applied, or defaults filled in.

Rules judge "what if this fix were applied" and "what the API server holds without being told" by
reading the snapshot through a `LayeredReader` instead of copying it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.snapshot import KubeObject, ObjectReader


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(obj.get("kind") or ""), namespace_of(obj), name_of(obj))


class LayeredReader:
    """An ObjectReader: a base reader plus extra objects, the extra winning or the base winning.

    With `extra_wins` (a fix laid over the snapshot) an extra object replaces the base one of the
    same kind/namespace/name; without it (defaults laid under the snapshot) the base one stays.
    """

    def __init__(self, base: ObjectReader, extra: Iterable[KubeObject], *, extra_wins: bool) -> None:
        self._base = base
        self._extra: dict[tuple[str, str, str], KubeObject] = {_key(o): o for o in extra}
        self._extra_wins = extra_wins

    def objects(self, kind: str) -> list[KubeObject]:
        """The base's objects of a kind with the extra ones merged in, by namespace and name."""
        merged = {_key(o): o for o in self._base.objects(kind)}
        for key, obj in self._extra.items():
            if key[0] == kind and (self._extra_wins or key not in merged):
                merged[key] = obj
        return [merged[k] for k in sorted(merged)]

    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One object, or None."""
        extra = self._extra.get((kind, namespace, name))
        if extra is not None and self._extra_wins:
            return extra
        return self._base.get(kind, namespace, name) or extra

    def not_read(self, kind: str, namespace: str) -> str | None:
        """The base's answer: laid objects do not make an unread namespace read."""
        return self._base.not_read(kind, namespace)
