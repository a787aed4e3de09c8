"""File names of the fix plan: portable, inside the folder, named by what they hold."""

from __future__ import annotations

import re

from meshdoctor.model import Finding

#: Characters allowed in a file name; anything else in a kind, namespace or name becomes `_`.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

#: Stands in for the namespace of a cluster-scoped object in a file name.
CLUSTER_SCOPE = "_cluster"


def safe_name(part: str) -> str:
    """Keep a name component inside the folder and portable: no `/`, no `..`, no spaces."""
    cleaned = _UNSAFE.sub("_", part).strip(".")
    return cleaned or "_"


def fix_stem(finding: Finding) -> str:
    """Name a finding's file: `<rule>-<kind>-<namespace>-<name>` from its primary object."""
    if not finding.objects:
        return safe_name(finding.rule)
    primary = finding.objects[0]
    namespace = primary.namespace or CLUSTER_SCOPE
    parts = (finding.rule, primary.kind.lower(), namespace, primary.name)
    return "-".join(safe_name(part) for part in parts)
