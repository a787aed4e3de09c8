"""Every remediation manifest meshdoctor emits, over every scenario and rule fixture, is a complete
Kubernetes object; one that replaces an existing object keeps every field of it that the fix is
not about (only literal secrets may disappear)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshdoctor.engine import run
from meshdoctor.fixes.manifests import SECRET_ENV_NAME, clean_copy
from meshdoctor.registry import load_rules
from meshdoctor.sources import load_offline

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RULES = load_rules()
CASES = sorted(p for p in (FIXTURES / "scenarios").iterdir() if p.is_dir()) + sorted(
    p for p in (FIXTURES / "rules").glob("*/*") if p.is_dir()
)


def leaves(node: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a document by its path (`a.b[0].c`)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(leaves(value, f"{path}.{key}" if path else str(key)))
        return out or {path: {}}
    if isinstance(node, list):
        out = {}
        for index, value in enumerate(node):
            out.update(leaves(value, f"{path}[{index}]"))
        return out or {path: []}
    return {path: node}


def manifests_of(case: Path) -> list[tuple[str, str, dict[str, Any], Any]]:
    logs = case / "logs"
    snapshot, source = load_offline([str(case)], str(logs) if logs.is_dir() else None)
    report = run(RULES, snapshot, source)
    found = []
    for finding in report.findings:
        if finding.remediation is None:
            continue
        for text in (*finding.remediation.manifests, *finding.remediation.alternative_manifests):
            for doc in yaml.safe_load_all(text):
                found.append((finding.rule, text, doc, snapshot))
    return found


@pytest.mark.parametrize("case", CASES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_manifests_are_complete_objects_that_keep_what_they_replace(case):
    for rule, _text, doc, snapshot in manifests_of(case):
        assert isinstance(doc, dict), f"{rule}: a manifest document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{rule}: manifest without apiVersion/kind"
        meta = doc.get("metadata") or {}
        assert meta.get("name"), f"{rule}: {doc['kind']} without metadata.name"
        assert "status" not in doc, f"{rule}: {doc['kind']} {meta['name']} carries status"
        for field_name in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
            assert field_name not in meta, f"{rule}: {doc['kind']} {meta['name']} carries metadata.{field_name}"
        original = snapshot.get(doc["kind"], meta.get("namespace") or "", meta["name"])
        if original is None and meta.get("namespace") is None:
            original = snapshot.get(doc["kind"], "default", meta["name"])
        if original is None:
            continue
        before, after = leaves(clean_copy(original)), leaves(doc)
        lost = {path for path in before if path not in after and not _fixed_away(rule, path, before)}
        assert not lost, f"{rule}: the corrected {doc['kind']} {meta['name']} drops {sorted(lost)}"


#: What a rule's fix is about, and so may remove: MD302 corrects a selector that matches no pod,
#: MD205 renames a ConfigMap key the entrypoint does not copy.
FIXED_FIELDS = {"MD302": ("spec.selector.",), "MD205": ("data.",)}


def _fixed_away(rule: str, path: str, before: dict[str, Any]) -> bool:
    """Paths a fix may remove: the field it corrects, a literal secret env value (now a secretKeyRef)."""
    if path.startswith(FIXED_FIELDS.get(rule, ())):
        return True
    if path.endswith(".value") and ".env[" in path:
        name_path = path[: -len(".value")] + ".name"
        return bool(SECRET_ENV_NAME.search(str(before.get(name_path, ""))))
    return False
