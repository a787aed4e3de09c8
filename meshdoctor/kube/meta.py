"""An object's metadata, read defensively: the one place rules and domain helpers get names and labels.

Objects are plain dicts from files, dumps or the API server; a field may be missing, null or of the
wrong type in hand-written input. These readers never raise: a missing or malformed field reads as
empty, so callers compare strings and never check types themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def metadata(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """`obj.metadata`, or `{}` when the object or its metadata is missing or not a mapping."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def name_of(obj: Mapping[str, Any] | None) -> str:
    """`metadata.name`, or `""`."""
    return str(metadata(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any] | None) -> str:
    """`metadata.namespace`, or `""` (cluster-scoped, or not set in a manifest)."""
    return str(metadata(obj).get("namespace") or "")


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def labels_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    """`metadata.labels` as strings (`{}` when absent), as the API server would store them."""
    return _string_map(metadata(obj).get("labels"))


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    """`metadata.annotations` as strings (`{}` when absent)."""
    return _string_map(metadata(obj).get("annotations"))
