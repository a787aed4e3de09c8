"""Baselines: the findings a team has accepted for now, so that only new ones fail CI.

`--write-baseline FILE` writes the run's findings (those not suppressed) as JSON; `--baseline FILE`
marks each finding whose fingerprint (`Finding.fingerprint`: the rule and the objects, not the
message, which carries counts and versions) is in the file as `known_by` the file. Known findings
are still reported, and count towards neither the summary nor the exit code. The file is sorted
and written byte-identically for the same findings, so it diffs cleanly under version control.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meshdoctor.errors import UsageError
from meshdoctor.model import Finding

#: The version of the baseline file's layout.
BASELINE_VERSION = 1


def baseline_document(findings: Iterable[Finding]) -> str:
    """The baseline file for these findings: one entry per fingerprint, suppressed ones left out."""
    entries: dict[str, dict[str, Any]] = {}
    for finding in findings:
        if finding.suppressed_by is not None:
            continue
        entries.setdefault(
            finding.fingerprint(),
            {
                "fingerprint": finding.fingerprint(),
                "rule": finding.rule,
                "severity": finding.severity.value,
                "objects": [str(ref) for ref in finding.objects],
                "title": finding.title,
            },
        )
    ordered = sorted(entries.values(), key=lambda e: (e["rule"], e["objects"], e["fingerprint"]))
    document = {"meshdoctor_baseline": BASELINE_VERSION, "findings": ordered}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_baseline(findings: Iterable[Finding], path: Path) -> int:
    """Write the baseline file; return how many entries it holds. An unwritable path is exit 2."""
    text = baseline_document(findings)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the baseline: {exc.strerror or exc}") from exc
    return len(json.loads(text)["findings"])


def read_baseline(path: Path) -> frozenset[str]:
    """The fingerprints a baseline file holds; a missing or malformed file is one line, exit 2."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the baseline: {exc.strerror or exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not a meshdoctor baseline (invalid JSON: {exc.msg})") from exc
    if not isinstance(document, dict) or document.get("meshdoctor_baseline") != BASELINE_VERSION:
        raise UsageError(f'{path}: not a meshdoctor baseline (no "meshdoctor_baseline": {BASELINE_VERSION})')
    entries = document.get("findings")
    if not isinstance(entries, list):
        raise UsageError(f'{path}: "findings" must be a list')
    fingerprints = set()
    for position, entry in enumerate(entries):
        fingerprint = entry.get("fingerprint") if isinstance(entry, dict) else None
        if not isinstance(fingerprint, str) or not fingerprint:
            raise UsageError(f'{path}: findings[{position}] has no "fingerprint"')
        fingerprints.add(fingerprint)
    return frozenset(fingerprints)


def mark_known(findings: Iterable[Finding], fingerprints: frozenset[str], source: str) -> tuple[Finding, ...]:
    """The findings, those in the baseline marked `known_by` it (suppressed ones stay suppressed)."""
    return tuple(
        dataclasses.replace(finding, known_by=source)
        if finding.suppressed_by is None and finding.fingerprint() in fingerprints
        else finding
        for finding in findings
    )
