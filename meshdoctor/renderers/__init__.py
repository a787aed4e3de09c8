"""Turn a `Report` into text, JSON, YAML, Markdown, HTML, SARIF or JUnit XML.

Renderers know nothing of Kubernetes: they read the report's records and nothing else. Each
format's module is imported only when that format is asked for, so importing this package stays
cheap (rich, in particular, is imported by the text renderer alone).

`report_to_dict` is the one place that defines the machine-readable report (schema 1, see
DESIGN.md and `meshdoctor/schema/report-v1.json`); the JSON and YAML renderers both dump it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from meshdoctor.model import (
    Evidence,
    FieldEvidence,
    Finding,
    LogEvidence,
    ObjectRef,
    ProbeEvidence,
    Remediation,
    Report,
    Status,
    summarize,
)

if TYPE_CHECKING:
    from meshdoctor.rule import Rule

#: The version of the machine-readable report; bumped when a field is renamed or removed.
SCHEMA_VERSION = 1

#: Width of the text report when the caller gives none (the CLI passes the terminal's).
DEFAULT_WIDTH = 100

#: Severity names in the order every summary lists them.
SEVERITY_ORDER = ("error", "warning", "info")


class Format(str, enum.Enum):
    """The report formats `-o` accepts."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"
    MARKDOWN = "markdown"
    HTML = "html"
    SARIF = "sarif"
    JUNIT = "junit"


class Renderer(Protocol):
    """Anything that turns a report into one string; the whole renderer contract."""

    def render(self, report: Report) -> str:
        """Render the report in this renderer's format, ending in a newline."""
        ...


def assert_never(value: NoReturn) -> NoReturn:
    """Make a missing branch a type error (mypy) and, should it ever run, a loud one."""
    raise AssertionError(f"unhandled value: {value!r}")


def renderer_for(
    fmt: Format,
    *,
    width: int | None = None,
    color: bool | None = None,
    brief: bool = False,
    verbose: bool = False,
    rules: Sequence[type[Rule]] = (),
    fail_on: str = "error",
) -> Renderer:
    """Choose the renderer for a format.

    `width`, `color`, `brief` and `verbose` matter only to text; `rules` (the selected rules, which
    SARIF and JUnit describe) and `fail_on` (what fails a JUnit testcase) only to those two.
    """
    match fmt:
        case Format.TEXT:
            from meshdoctor.renderers.text import TextRenderer

            return TextRenderer(width=width or DEFAULT_WIDTH, color=bool(color), brief=brief, verbose=verbose)
        case Format.JSON:
            from meshdoctor.renderers.json_report import JsonRenderer

            return JsonRenderer()
        case Format.YAML:
            from meshdoctor.renderers.yaml_report import YamlRenderer

            return YamlRenderer()
        case Format.MARKDOWN:
            from meshdoctor.renderers.markdown import MarkdownRenderer

            return MarkdownRenderer()
        case Format.HTML:
            from meshdoctor.renderers.html import HtmlRenderer

            return HtmlRenderer()
        case Format.SARIF:
            from meshdoctor.renderers.sarif import SarifRenderer

            return SarifRenderer(rules)
        case Format.JUNIT:
            from meshdoctor.renderers.junit import JunitRenderer

            return JunitRenderer(rules, fail_on)
        case _:
            assert_never(fmt)


def render(
    report: Report,
    fmt: Format,
    *,
    width: int | None = None,
    color: bool | None = None,
    brief: bool = False,
    verbose: bool = False,
    rules: Sequence[type[Rule]] = (),
    fail_on: str = "error",
) -> str:
    """Render the report in a format. The caller decides colour (TTY, NO_COLOR) and width."""
    renderer = renderer_for(fmt, width=width, color=color, brief=brief, verbose=verbose, rules=rules, fail_on=fail_on)
    return renderer.render(report)


# --- the machine-readable report, schema 1 --------------------------------------------------------


def report_to_dict(report: Report) -> dict[str, Any]:
    """Turn the report into plain data in schema 1, keys in a fixed order (DESIGN.md)."""
    return {
        "meshdoctor": report.version,
        "schema": SCHEMA_VERSION,
        "source": {
            "kind": report.source.kind,
            "target": report.source.target,
            "missing": list(report.source.missing),
        },
        "cluster": {
            "istio_version": report.cluster.istio_version,
            "istio_era": report.cluster.istio_era,
            "istio_not_read": report.cluster.istio_not_read,
            "datadog_site": report.cluster.datadog_site,
            "agents": [
                {
                    "workload": object_to_dict(agent.workload),
                    "install": agent.install,
                    "version": agent.version,
                    "version_from": agent.version_from,
                }
                for agent in report.cluster.agents
            ],
        },
        "results": [
            {
                "rule": result.rule,
                "category": result.category.value,
                "status": result.status.value,
                "reason": result.reason,
            }
            for result in report.results
        ],
        "findings": [finding_to_dict(finding) for finding in report.findings],
        "summary": severity_counts(report),
        "baseline": report.baseline,
    }


def severity_counts(report: Report) -> dict[str, int]:
    """Count unsuppressed findings per severity: all three keys, worst first.

    A report built by hand may leave `summary` empty; then it is derived from the findings.
    """
    counts = report.summary or summarize(report.findings)
    return {name: int(counts.get(name, 0)) for name in SEVERITY_ORDER}


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """Turn one finding into plain data (schema 1)."""
    return {
        "rule": finding.rule,
        "category": finding.category.value,
        "severity": finding.severity.value,
        "title": finding.title,
        "message": finding.message,
        "objects": [object_to_dict(ref) for ref in finding.objects],
        "evidence": [evidence_to_dict(item) for item in finding.evidence],
        "remediation": remediation_to_dict(finding.remediation),
        "suppressed": finding.suppressed_by is not None,
        "suppressed_by": finding.suppressed_by,
        "known": finding.known_by is not None,
        "known_by": finding.known_by,
        "fingerprint": finding.fingerprint(),
    }


def object_to_dict(ref: ObjectRef) -> dict[str, str]:
    """Turn an object reference into plain data."""
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def evidence_to_dict(item: Evidence) -> dict[str, Any]:
    """Turn one piece of evidence into plain data, its shape chosen by its `kind`."""
    if isinstance(item, FieldEvidence):
        return {
            "kind": "field",
            "object": object_to_dict(item.object),
            "path": item.path,
            "value": item.value,
            "file": item.origin.file if item.origin else None,
            "line": item.origin.line if item.origin else None,
        }
    if isinstance(item, LogEvidence):
        return {
            "kind": "log",
            "namespace": item.namespace,
            "pod": item.pod,
            "container": item.container,
            "line": item.line,
            "text": item.text,
            "count": item.count,
            "first_seen": item.first_seen,
            "last_seen": item.last_seen,
        }
    if isinstance(item, ProbeEvidence):
        return {"kind": "probe", "target": item.target, "ok": item.ok, "detail": item.detail}
    assert_never(item)


def remediation_to_dict(remediation: Remediation | None) -> dict[str, Any] | None:
    """Turn a remediation into plain data; None when the finding has none."""
    if remediation is None:
        return None
    return {
        "summary": remediation.summary,
        "manifests": list(remediation.manifests),
        "commands": list(remediation.commands),
        "safe": remediation.safe,
        "alternatives": list(remediation.alternatives),
        "alternative_manifests": list(remediation.alternative_manifests),
    }


# --- words every human-readable format uses -------------------------------------------------------


def describe_mesh(report: Report) -> str:
    """Say what is known of the mesh in a few words: `Istio 1.22.3 (istiod era)`."""
    version, era = report.cluster.istio_version, report.cluster.istio_era
    if version is None and era == "unknown":
        if report.cluster.istio_not_read is not None:
            return f"Istio not known ({report.cluster.istio_not_read})"
        return "Istio not found"
    return f"Istio {version or '(version unknown)'} ({era} era)"


def describe_agent(report: Report) -> str:
    """Say which Datadog site the agents send to, in a few words."""
    site = report.cluster.datadog_site
    return f"Datadog site {site}" if site else "no Datadog agent found"


def plural(count: int, noun: str) -> str:
    """`1 error`, `2 errors`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_findings(report: Report) -> str:
    """`1 error, 2 warnings, 0 info` (and how many were suppressed, when any were)."""
    counts = severity_counts(report)
    errors, warnings = plural(counts["error"], "error"), plural(counts["warning"], "warning")
    text = f"{errors}, {warnings}, {counts['info']} info"
    suppressed = sum(1 for f in report.findings if f.suppressed_by is not None)
    known = sum(1 for f in report.findings if f.suppressed_by is None and f.known_by is not None)
    if suppressed:
        text += f", {suppressed} suppressed"
    if known:
        text += f", {known} known (baseline)"
    return text


def finding_state(finding: Finding) -> str:
    """Why a finding does not count, in a few words (`suppressed by ...`, `known`), or ``."""
    if finding.suppressed_by is not None:
        return f"suppressed by {finding.suppressed_by}"
    if finding.known_by is not None:
        return "known: in the baseline"
    return ""


def describe_results(report: Report) -> str:
    """`14 rules: 12 passed, 2 failed, 0 not checked, 0 errors`."""
    statuses = {status: 0 for status in Status}
    for result in report.results:
        statuses[result.status] += 1
    return (
        f"{plural(len(report.results), 'rule')}: {statuses[Status.PASSED]} passed, "
        f"{statuses[Status.FAILED]} failed, {statuses[Status.NOT_CHECKED]} not checked, "
        f"{plural(statuses[Status.ERROR], 'error')}"
    )


def report_schema() -> dict[str, Any]:
    """Load the JSON Schema (draft 2020-12) of `report_to_dict`'s output, shipped in the package."""
    text = resources.files("meshdoctor").joinpath("schema/report-v1.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
