"""Merging several fixes of one object into one corrected object: a three-way merge per field.

Every rule writes the whole corrected object, starting from the same object in the cluster. Two
such copies applied one after the other undo each other: the second carries the first's field
as it was. The plan therefore takes each fix as its difference from the original and applies
every difference to one copy, the way `git merge` does for text and the API server's strategic
merge does for lists:

- maps merge per key;
- lists of maps merge per item, keyed the way Kubernetes keys them (containers, env, volumes and
  ports by `name`, volume mounts by `mountPath`, unnamed ports by their number): k8s.io/api
  `core/v1/types.go` `patchMergeKey` tags (`Container.Env`: name, `Container.VolumeMounts`:
  mountPath, `PodSpec.Volumes`: name, `Container.Ports`: containerPort);
- other lists (hosts, RBAC rules, args) merge as sets: what a fix removes goes, what it adds is
  appended once;
- a field two fixes set to different values is a conflict: the first fix (the worst finding,
  the report's order) keeps it, and the conflict is named so a person can decide.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

#: Item keys of keyed lists, in the order they are tried; the first that every item carries and
#: that is unique within each side is the list's key.
_MERGE_KEYS = ("mountPath", "name", "containerPort", "port", "number", "ip", "devicePath")


class _Missing:
    """A field or item that one side does not have."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Conflict:
    """A field two fixes set to different values; the first one's value was kept."""

    path: str
    """Dotted path of the field, with list items by their key: `spec.template.spec.containers[agent].image`."""
    kept: str
    """The value kept, as text."""
    dropped: str
    """The other fix's value, as text."""


def merge_fixes(base: Any, fixes: list[Any]) -> tuple[Any, list[Conflict]]:
    """Apply each fix's difference from `base` to one copy of `base`, in order."""
    merged = copy.deepcopy(base)
    conflicts: list[Conflict] = []
    for fix in fixes:
        merged = merge3(base, merged, fix, "", conflicts)
    return merged, conflicts


def merge3(base: Any, current: Any, new: Any, path: str, conflicts: list[Conflict]) -> Any:
    """`current` (base plus earlier fixes) with `new`'s change from `base` applied too."""
    if _same(new, base):
        return current
    if _same(current, base) or _same(current, new):
        return copy.deepcopy(new)
    if isinstance(base if base is not MISSING else new, dict) and isinstance(current, dict) and isinstance(new, dict):
        return _merge_maps(base if isinstance(base, dict) else {}, current, new, path, conflicts)
    if isinstance(current, list) and isinstance(new, list):
        return _merge_lists(base if isinstance(base, list) else [], current, new, path, conflicts)
    conflicts.append(Conflict(path or "<object>", _text(current), _text(new)))
    return current


def _merge_maps(base: dict, current: dict, new: dict, path: str, conflicts: list[Conflict]) -> Any:
    merged: dict[str, Any] = {}
    for key in [*current, *(k for k in new if k not in current)]:
        sides = (base.get(key, MISSING), current.get(key, MISSING), new.get(key, MISSING))
        value = merge3(*sides, _join(path, key), conflicts)
        if value is not MISSING:
            merged[key] = value
    return merged


def _merge_lists(base: list, current: list, new: list, path: str, conflicts: list[Conflict]) -> list:
    key = _list_key(base, current, new)
    if key is None:
        return _merge_sets(base, current, new)
    base_items = {item[key]: item for item in base}
    current_items = {item[key]: item for item in current}
    new_items = {item[key]: item for item in new}
    merged = []
    for item_key in [*current_items, *(k for k in new_items if k not in current_items)]:
        value = merge3(
            base_items.get(item_key, MISSING),
            current_items.get(item_key, MISSING),
            new_items.get(item_key, MISSING),
            f"{path}[{item_key}]",
            conflicts,
        )
        if value is not MISSING:
            merged.append(value)
    return merged


def _merge_sets(base: list, current: list, new: list) -> list:
    removed = [item for item in base if item not in new]
    merged = [item for item in current if item not in removed]
    merged += [copy.deepcopy(item) for item in new if item not in base and item not in merged]
    return merged


def _list_key(*sides: list) -> str | None:
    items = [item for side in sides for item in side]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in _MERGE_KEYS:
        if all(key in item and isinstance(item[key], (str, int)) for item in items) and all(
            len({item[key] for item in side}) == len(side) for side in sides
        ):
            return key
    return None


def _same(left: Any, right: Any) -> bool:
    if left is MISSING or right is MISSING:
        return left is right
    return bool(left == right)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _text(value: Any) -> str:
    if value is MISSING:
        return "<absent>"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
