"""The report as SARIF 2.1.0 (`-o sarif`), for code scanning (GitHub's upload-sarif, IDEs).

One `run` whose driver lists one `reportingDescriptor` per selected rule (its title, the fixed doc
sections as help, the first reference as `helpUri`); one `result` per finding, its level from the
severity, its `locations` the file and line of its evidence when the input was files, its objects
as logical locations, and a `partialFingerprints` entry that depends on the rule and the objects
only, so the same fault keeps its identity across runs. Rules that could not run are tool
notifications of the invocation. Field names and meanings follow the OASIS standard
(docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/sarif-v2.1.0-errata01-os-complete.html):
`reportingDescriptor` §3.49, `result.level` §3.27.10 (`error`, `warning`, `note`), `locations`
§3.27.12, `partialFingerprints` §3.27.17, `suppressions` §3.27.23 (`inSource` for an annotation on
the object itself), `baselineState` §3.27.24.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from meshdoctor.model import FieldEvidence, Finding, ObjectRef, Origin, Report, Severity, Status
from meshdoctor.renderers.catalogue import explain_text, rule_help_markdown
from meshdoctor.rule import Rule

#: The `$schema` of a SARIF 2.1.0 log: the `id` of the OASIS errata 01 schema.
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"

#: SARIF's `level` for each severity (§3.27.10: there is no `info` level; `note` is the advice one).
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

#: The key of meshdoctor's fingerprint in `partialFingerprints`; the `/v1` names its recipe.
FINGERPRINT_KEY = "meshdoctorFinding/v1"

#: Where the input came from files, so that an evidence's origin names a file that exists.
_FILE_SOURCES = ("files", "dump", "bundle")


def render_sarif(report: Report, rules: Sequence[type[Rule]] = ()) -> str:
    """Render the report as one SARIF 2.1.0 log (JSON, 2-space indent, ending in a newline)."""
    log = {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [_run(report, rules)]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


class SarifRenderer:
    """`Renderer` for `-o sarif`; it needs the selected rules to describe them."""

    def __init__(self, rules: Sequence[type[Rule]] = ()) -> None:
        self.rules = tuple(rules)

    def render(self, report: Report) -> str:
        """See `render_sarif`."""
        return render_sarif(report, self.rules)


def _run(report: Report, rules: Sequence[type[Rule]]) -> dict[str, Any]:
    by_id = {rule.id: rule for rule in rules}
    ids = sorted({result.rule for result in report.results} | {f.rule for f in report.findings})
    index = {rule_id: position for position, rule_id in enumerate(ids)}
    titles = {f.rule: f.title for f in report.findings}
    descriptors = [_descriptor(rule_id, by_id.get(rule_id), titles.get(rule_id, rule_id)) for rule_id in ids]
    seen: dict[str, int] = {}
    results = []
    for finding in report.findings:
        fingerprint = finding.fingerprint()
        seen[fingerprint] = seen.get(fingerprint, 0) + 1
        if seen[fingerprint] > 1:  # two findings of one rule on the same objects stay two alerts
            fingerprint = f"{fingerprint}:{seen[fingerprint]}"
        results.append(_result(report, finding, index[finding.rule], fingerprint))
    return {
        "tool": {
            "driver": {
                "name": "meshdoctor",
                "version": report.version,
                "semanticVersion": report.version,
                "informationUri": "https://pypi.org/project/meshdoctor/",
                "rules": descriptors,
            }
        },
        "invocations": [_invocation(report, index)],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "source": {"kind": report.source.kind, "target": report.source.target},
            "cluster": {
                "istioVersion": report.cluster.istio_version,
                "istioEra": report.cluster.istio_era,
                "datadogSite": report.cluster.datadog_site,
            },
        },
    }


def _descriptor(rule_id: str, rule: type[Rule] | None, title: str) -> dict[str, Any]:
    if rule is None:  # a finding of a rule not handed over: still a valid, minimal descriptor
        return {"id": rule_id, "shortDescription": {"text": title}}
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "name": rule.__name__,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": " ".join(rule.docs.what.split())},
        "help": {"text": explain_text(rule), "markdown": rule_help_markdown(rule)},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {"category": rule.category.value, "tags": [rule.category.value]},
    }
    if rule.docs.references:
        descriptor["helpUri"] = rule.docs.references[0]
    return descriptor


def _result(report: Report, finding: Finding, rule_index: int, fingerprint: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": finding.message},
    }
    physical = _physical_locations(report, finding)
    logical = [_logical_location(ref) for ref in finding.objects]
    locations: list[dict[str, Any]] = []
    if physical:
        locations.append({"physicalLocation": physical[0], **({"logicalLocations": logical} if logical else {})})
    elif logical:
        locations.append({"logicalLocations": logical})
    if locations:
        result["locations"] = locations
    if len(physical) > 1:
        result["relatedLocations"] = [
            {"id": position, "physicalLocation": location} for position, location in enumerate(physical[1:], 1)
        ]
    result["partialFingerprints"] = {FINGERPRINT_KEY: fingerprint}
    if finding.suppressed_by is not None:
        result["suppressions"] = [
            {"kind": "inSource", "justification": f"meshdoctor.io/ignore on {finding.suppressed_by}"}
        ]
    if finding.known_by is not None:
        result["baselineState"] = "unchanged"
    elif report.baseline is not None:
        result["baselineState"] = "new"
    result["properties"] = {"category": finding.category.value, "title": finding.title}
    return result


def _physical_locations(report: Report, finding: Finding) -> list[dict[str, Any]]:
    """The files and lines of the evidence, the primary object's first; none for a live input."""
    if report.source.kind not in _FILE_SOURCES:
        return []
    primary = finding.objects[0] if finding.objects else None
    origins = [item.origin for item in finding.evidence if isinstance(item, FieldEvidence) and item.origin]
    of_primary = [
        item.origin
        for item in finding.evidence
        if isinstance(item, FieldEvidence) and item.origin and item.object == primary
    ]
    ordered: list[Origin] = list(dict.fromkeys([*of_primary, *origins]))
    return [_physical(origin) for origin in ordered if not origin.file.startswith("<")]


def _physical(origin: Origin) -> dict[str, Any]:
    path = PurePosixPath(origin.file.replace("\\", "/"))
    uri = ("file://" if path.is_absolute() else "") + quote(str(path))
    location: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if origin.line:
        location["region"] = {"startLine": origin.line}
    return location


def _logical_location(ref: ObjectRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "fullyQualifiedName": str(ref),
        "kind": "resource",
        "properties": {"kind": ref.kind, "namespace": ref.namespace},
    }


def _invocation(report: Report, index: dict[str, int]) -> dict[str, Any]:
    notifications = []
    for result in report.results:
        if result.status not in (Status.NOT_CHECKED, Status.ERROR):
            continue
        crashed = result.status is Status.ERROR
        notifications.append(
            {
                "level": "error" if crashed else "note",
                "message": {"text": f"{'rule error' if crashed else 'not checked'}: {result.reason or ''}"},
                "associatedRule": {"id": result.rule, "index": index[result.rule]},
            }
        )
    return {
        "executionSuccessful": not any(r.status is Status.ERROR for r in report.results),
        "toolExecutionNotifications": notifications,
    }
