"""An object as a manifest to apply again: without what the API server owns, as readable YAML.

Shared by the fixes (`meshdoctor.fixes.manifests`) and by the fixes aimed at an object's owner
(`meshdoctor.datadog.owner_fixes`, which writes a corrected DatadogAgent and Helm values).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from meshdoctor.snapshot import KubeObject

#: metadata fields the API server sets; a manifest to apply must not carry them.
SERVER_OWNED_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def without_server_fields(obj: KubeObject) -> KubeObject:
    """A deep copy without status, server-owned metadata and kubectl's last-applied annotation."""
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    meta = clean.get("metadata") or {}
    for field_name in SERVER_OWNED_METADATA:
        meta.pop(field_name, None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            meta.pop("annotations", None)
    return clean


_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _ManifestDumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """The safe dumper (libyaml's emitter where available) writing multi-line strings as `|` blocks.

    libyaml emits in time linear in the text; the pure-Python emitter analyses every scalar
    character by character (a 20 MB ConfigMap value took 16-23 s, issue 14).
    """


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(ch in value for ch in "\t\r") and value == value.rstrip(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_ManifestDumper.add_representer(str, _str_representer)


def to_yaml(obj: Any) -> str:
    """One YAML document, fields in their given order, multi-line strings as blocks."""
    return yaml.dump(
        obj, Dumper=_ManifestDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
