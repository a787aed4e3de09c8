"""Renderers: JSON/YAML data (schema 1), text and Markdown goldens, format dispatch.

The reports are built by hand from meshdoctor.model: no cluster and no rule is involved.
Regenerate the goldens after an intended change with MESHDOCTOR_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from meshdoctor.model import (
    Category,
    ClusterInfo,
    FieldEvidence,
    Finding,
    LogEvidence,
    ObjectRef,
    Origin,
    ProbeEvidence,
    Remediation,
    Report,
    RuleResult,
    Severity,
    SourceInfo,
    Status,
    summarize,
)
from meshdoctor.renderers import (
    Format,
    assert_never,
    render,
    renderer_for,
    report_schema,
    report_to_dict,
)
from meshdoctor.renderers.markdown import code_span, fence, inline, table_cell

GOLDEN = Path(__file__).resolve().parent / "golden"

AGENT = ObjectRef("DaemonSet", "datadog", "datadog-agent")

SERVICE_ENTRY = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: datadog-intake
  namespace: datadog
spec:
  hosts:
  - '*.datadoghq.com'
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: https
    protocol: TLS
  resolution: NONE
"""

EGRESS = Finding(
    rule="MD101",
    category=Category.EGRESS,
    severity=Severity.ERROR,
    title="No ServiceEntry covers the Datadog intake",
    message="The agent pods run an istio-proxy sidecar, outbound traffic is REGISTRY_ONLY and no "
    "ServiceEntry covers *.datadoghq.com:443, so every payload to the intake is dropped.",
    objects=(AGENT,),
    evidence=(
        FieldEvidence(
            ObjectRef("ConfigMap", "istio-system", "istio"),
            "data.mesh.outboundTrafficPolicy.mode",
            "REGISTRY_ONLY",
            Origin("cluster/istio.yaml", 14),
        ),
        LogEvidence(
            namespace="datadog",
            pod="datadog-agent-x7k2p",
            container="agent",
            line=212,
            text="Error while sending transaction [id|7]: connection reset by peer",
            count=3,
            first_seen="2024-05-01T10:00:01Z",
            last_seen="2024-05-01T10:02:41Z",
        ),
    ),
    remediation=Remediation(
        summary="Add a ServiceEntry for the intake hosts of datadoghq.com on port 443.",
        manifests=(SERVICE_ENTRY,),
        commands=("kubectl apply -f MD101-daemonset-datadog-datadog-agent.yaml",),
        safe=True,
        alternatives=('Take the agent out of the mesh with sidecar.istio.io/inject: "false".',),
    ),
)

TELEMETRY = Finding(
    rule="MD302",
    category=Category.TELEMETRY,
    severity=Severity.WARNING,
    title="istiod monitoring port is not reachable",
    message="The istio check scrapes http://istiod.istio-system:15014/metrics; it did not answer.",
    objects=(ObjectRef("Service", "istio-system", "istiod"),),
    evidence=(ProbeEvidence("http://istiod.istio-system:15014/metrics", False, "timed out after 5s — no answer"),),
)

SUPPRESSED = Finding(
    rule="MD503",
    category=Category.AGENT,
    severity=Severity.WARNING,
    title="Agent image is not pinned",
    message="The agent container uses the image tag `latest`.",
    objects=(AGENT,),
    evidence=(FieldEvidence(AGENT, "spec.template.spec.containers[0].image", "gcr.io/datadoghq/agent:latest"),),
    remediation=Remediation(summary="Pin the image to a version.", manifests=("kind: X\n",)),
    suppressed_by="DaemonSet datadog/datadog-agent",
)

FINDINGS = (EGRESS, TELEMETRY, SUPPRESSED)

RESULTS = (
    RuleResult("MD101", Category.EGRESS, Status.FAILED),
    RuleResult("MD201", Category.CHECK_CONFIG, Status.PASSED),
    RuleResult("MD301", Category.TELEMETRY, Status.NOT_CHECKED, "input missing: Endpoints: not in the dump"),
    RuleResult("MD302", Category.TELEMETRY, Status.FAILED),
    RuleResult("MD401", Category.RBAC, Status.ERROR, "KeyError: 'rules'"),
    RuleResult("MD503", Category.AGENT, Status.FAILED),
)

SOURCE = SourceInfo("dump", "./cluster-dump", missing=("Endpoints: not in the dump",))
CLUSTER = ClusterInfo(istio_version="1.22.3", istio_era="istiod", datadog_site="datadoghq.com")


def sample_report() -> Report:
    """Two findings in different categories, one suppressed; one not_checked, one error result."""
    return Report(
        version="0.1.0",
        source=SOURCE,
        cluster=CLUSTER,
        results=RESULTS,
        findings=FINDINGS,
        summary=summarize(FINDINGS),
    )


def clean_report() -> Report:
    """Every rule passed; nothing found."""
    results = (
        RuleResult("MD101", Category.EGRESS, Status.PASSED),
        RuleResult("MD201", Category.CHECK_CONFIG, Status.PASSED),
        RuleResult("MD401", Category.RBAC, Status.PASSED),
    )
    return Report(
        version="0.1.0",
        source=SourceInfo("files", "manifests/"),
        cluster=ClusterInfo(istio_version=None, istio_era="unknown", datadog_site=None),
        results=results,
        findings=(),
        summary=summarize(()),
    )


# --- helpers --------------------------------------------------------------------------------------


def assert_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MESHDOCTOR_UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def with_findings(*findings: Finding) -> Report:
    return Report(
        version="0.1.0",
        source=SourceInfo("files", "x.yaml"),
        cluster=CLUSTER,
        results=tuple(RuleResult(f.rule, f.category, Status.FAILED) for f in findings),
        findings=findings,
        summary=summarize(findings),
    )


# --- dispatch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_renders_both_reports(fmt):
    for report in (sample_report(), clean_report()):
        out = render(report, fmt, width=100, color=False)
        assert out.endswith("\n") and not out.endswith("\n\n")
        assert "0.1.0" in out


def test_format_values_are_the_cli_choices():
    assert [f.value for f in Format] == ["text", "json", "yaml", "markdown", "html", "sarif", "junit"]
    assert Format("markdown") is Format.MARKDOWN


def test_assert_never_raises():
    with pytest.raises(AssertionError, match="unhandled value: 'xml'"):
        assert_never("xml")  # type: ignore[arg-type]


def test_renderer_for_text_defaults_to_width_100_without_colour():
    renderer = renderer_for(Format.TEXT)
    assert (renderer.width, renderer.color) == (100, False)  # type: ignore[attr-defined]
    assert render(sample_report(), Format.TEXT) == render(sample_report(), Format.TEXT, width=100, color=False)


def test_importing_renderers_does_not_import_rich():
    modules = ", ".join(f"meshdoctor.renderers.{name}" for name in ("json_report", "yaml_report", "markdown", "text"))
    probe = (
        f"import sys, meshdoctor.fixes.emit, {modules}; "
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if 'rich' in m)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


# --- JSON -----------------------------------------------------------------------------------------

EXPECTED_JSON = {
    "meshdoctor": "0.1.0",
    "schema": 1,
    "source": {
        "kind": "dump",
        "target": "./cluster-dump",
        "missing": ["Endpoints: not in the dump"],
    },
    "cluster": {
        "istio_version": "1.22.3",
        "istio_era": "istiod",
        "istio_not_read": None,
        "datadog_site": "datadoghq.com",
        "agents": [],
    },
    "results": [
        {"rule": "MD101", "category": "egress", "status": "failed", "reason": None},
        {"rule": "MD201", "category": "check-config", "status": "passed", "reason": None},
        {
            "rule": "MD301",
            "category": "telemetry",
            "status": "not_checked",
            "reason": "input missing: Endpoints: not in the dump",
        },
        {"rule": "MD302", "category": "telemetry", "status": "failed", "reason": None},
        {"rule": "MD401", "category": "rbac", "status": "error", "reason": "KeyError: 'rules'"},
        {"rule": "MD503", "category": "agent", "status": "failed", "reason": None},
    ],
    "findings": [
        {
            "rule": "MD101",
            "category": "egress",
            "severity": "error",
            "title": "No ServiceEntry covers the Datadog intake",
            "message": EGRESS.message,
            "objects": [{"kind": "DaemonSet", "namespace": "datadog", "name": "datadog-agent"}],
            "evidence": [
                {
                    "kind": "field",
                    "object": {"kind": "ConfigMap", "namespace": "istio-system", "name": "istio"},
                    "path": "data.mesh.outboundTrafficPolicy.mode",
                    "value": "REGISTRY_ONLY",
                    "file": "cluster/istio.yaml",
                    "line": 14,
                },
                {
                    "kind": "log",
                    "namespace": "datadog",
                    "pod": "datadog-agent-x7k2p",
                    "container": "agent",
                    "line": 212,
                    "text": "Error while sending transaction [id|7]: connection reset by peer",
                    "count": 3,
                    "first_seen": "2024-05-01T10:00:01Z",
                    "last_seen": "2024-05-01T10:02:41Z",
                },
            ],
            "remediation": {
                "summary": "Add a ServiceEntry for the intake hosts of datadoghq.com on port 443.",
                "manifests": [SERVICE_ENTRY],
                "commands": ["kubectl apply -f MD101-daemonset-datadog-datadog-agent.yaml"],
                "safe": True,
                "alternatives": ['Take the agent out of the mesh with sidecar.istio.io/inject: "false".'],
                "alternative_manifests": [],
            },
            "suppressed": False,
            "suppressed_by": None,
            "known": False,
            "known_by": None,
            # sha256 of the rule and the objects (Finding.fingerprint), cut to 32 hex digits
            "fingerprint": "201befacf6534e7121cc951f767288c4",
        },
        {
            "rule": "MD302",
            "category": "telemetry",
            "severity": "warning",
            "title": "istiod monitoring port is not reachable",
            "message": TELEMETRY.message,
            "objects": [{"kind": "Service", "namespace": "istio-system", "name": "istiod"}],
            "evidence": [
                {
                    "kind": "probe",
                    "target": "http://istiod.istio-system:15014/metrics",
                    "ok": False,
                    "detail": "timed out after 5s — no answer",
                }
            ],
            "remediation": None,
            "suppressed": False,
            "suppressed_by": None,
            "known": False,
            "known_by": None,
            "fingerprint": "46c4bf574c33035ece9981d258b75fd2",
        },
        {
            "rule": "MD503",
            "category": "agent",
            "severity": "warning",
            "title": "Agent image is not pinned",
            "message": "The agent container uses the image tag `latest`.",
            "objects": [{"kind": "DaemonSet", "namespace": "datadog", "name": "datadog-agent"}],
            "evidence": [
                {
                    "kind": "field",
                    "object": {
                        "kind": "DaemonSet",
                        "namespace": "datadog",
                        "name": "datadog-agent",
                    },
                    "path": "spec.template.spec.containers[0].image",
                    "value": "gcr.io/datadoghq/agent:latest",
                    "file": None,
                    "line": None,
                }
            ],
            "remediation": {
                "summary": "Pin the image to a version.",
                "manifests": ["kind: X\n"],
                "commands": [],
                "safe": False,
                "alternatives": [],
                "alternative_manifests": [],
            },
            "suppressed": True,
            "suppressed_by": "DaemonSet datadog/datadog-agent",
            "known": False,
            "known_by": None,
            "fingerprint": "a3886e4ceb73fff83c1fd700f55ddfb2",
        },
    ],
    "summary": {"error": 1, "warning": 1, "info": 0},
    "baseline": None,
}


def test_json_carries_exactly_the_expected_data():
    assert json.loads(render(sample_report(), Format.JSON)) == EXPECTED_JSON


def test_json_key_order_is_fixed_and_unicode_is_kept():
    out = render(sample_report(), Format.JSON)
    data = json.loads(out)
    assert list(data) == [
        "meshdoctor",
        "schema",
        "source",
        "cluster",
        "results",
        "findings",
        "summary",
        "baseline",
    ]
    assert list(data["findings"][0]) == [
        "rule",
        "category",
        "severity",
        "title",
        "message",
        "objects",
        "evidence",
        "remediation",
        "suppressed",
        "suppressed_by",
        "known",
        "known_by",
        "fingerprint",
    ]
    assert list(data["findings"][0]["evidence"][1]) == [
        "kind",
        "namespace",
        "pod",
        "container",
        "line",
        "text",
        "count",
        "first_seen",
        "last_seen",
    ]
    assert list(data["summary"]) == ["error", "warning", "info"]
    assert "5s — no answer" in out and "\\u2014" not in out
    assert out.startswith('{\n  "meshdoctor": "0.1.0",\n  "schema": 1,\n')
    assert out.endswith("}\n")


def test_json_is_byte_identical_across_renders():
    first = render(sample_report(), Format.JSON)
    assert render(sample_report(), Format.JSON) == first
    assert render(sample_report(), Format.YAML) == render(sample_report(), Format.YAML)


def test_empty_summary_is_derived_from_the_findings():
    report = sample_report()
    bare = Report(report.version, report.source, report.cluster, report.results, report.findings)
    assert report_to_dict(bare)["summary"] == {"error": 1, "warning": 1, "info": 0}


@pytest.mark.parametrize("build", [sample_report, clean_report])
def test_json_validates_against_the_shipped_schema(build):
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.validate(json.loads(render(build(), Format.JSON)), schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["findings"][0].pop("suppressed"),
        lambda d: d["findings"][0]["evidence"][0].update(kind="probe"),
        lambda d: d["findings"][2].update(suppressed_by=None),
        lambda d: d["results"][0].update(status="skipped"),
        lambda d: d.update(schema=2),
        lambda d: d["cluster"].update(istio_era="ambient"),
        lambda d: d["findings"][1].update(extra=1),
        lambda d: d["results"][1].update(rule="XX201"),
        lambda d: d["findings"][0]["evidence"][1].update(line=0),
        lambda d: d["findings"][0]["remediation"].pop("safe"),
        lambda d: d["summary"].pop("info"),
    ],
)
def test_schema_rejects_reports_that_break_it(breakage):
    data = json.loads(render(sample_report(), Format.JSON))
    breakage(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, report_schema(), cls=jsonschema.Draft202012Validator)


# --- YAML -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [sample_report, clean_report])
def test_yaml_has_the_same_content_as_json(build):
    assert yaml.safe_load(render(build(), Format.YAML)) == json.loads(render(build(), Format.JSON))


def test_yaml_writes_manifests_as_literal_blocks_and_keeps_key_order():
    out = render(sample_report(), Format.YAML)
    assert out.startswith("meshdoctor: 0.1.0\nschema: 1\nsource:\n  kind: dump\n")
    assert "    manifests:\n    - |\n      apiVersion: networking.istio.io/v1beta1\n      kind: ServiceEntry\n" in out
    assert "timed out after 5s — no answer" in out
    # A long line is never folded.
    assert f"  message: {EGRESS.message}\n" in out


def test_yaml_keeps_strings_a_block_scalar_cannot_hold():
    awkward = ("a: 1 \nb: 2\n", "no final newline\nx", "\tindented\n", "x\n\n\n")
    remediation = Remediation(summary="s", manifests=awkward)
    report = with_findings(dataclasses_replace(TELEMETRY, remediation=remediation))
    data = yaml.safe_load(render(report, Format.YAML))
    assert data["findings"][0]["remediation"]["manifests"] == list(awkward)


def test_yaml_leaves_the_global_safe_dumper_alone():
    render(sample_report(), Format.YAML)
    assert yaml.safe_dump({"k": "a\nb\n"}) == "k: 'a\n\n  b\n\n  '\n"


# --- text -----------------------------------------------------------------------------------------


def test_text_golden_sample():
    out = render(sample_report(), Format.TEXT, width=100, color=False)
    assert "\x1b" not in out
    assert_golden("report.txt", out)


def test_text_golden_all_passed():
    assert_golden("report-clean.txt", render(clean_report(), Format.TEXT, width=100, color=False))


def test_text_colours_severities_when_asked():
    out = render(sample_report(), Format.TEXT, width=100, color=True)
    assert "\x1b[1;31merror  \x1b[0m" in out
    assert "\x1b[1;33mwarning\x1b[0m" in out
    # Manifests go through rich's YAML highlighting.
    assert "\x1b[94;49mapiVersion\x1b[0m" in out


def test_text_colour_survives_no_color_in_the_environment(monkeypatch):
    # The CLI decides about NO_COLOR; the renderer does what it is told.
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[1;31m" in render(sample_report(), Format.TEXT, width=100, color=True)


def test_text_keeps_to_the_width():
    for width in (60, 80, 120):
        out = render(sample_report(), Format.TEXT, width=width, color=False)
        assert max(len(line) for line in out.splitlines()) <= width
        assert "connection" in out and "[id|7]" in out


def test_text_wraps_under_a_hanging_indent():
    out = render(sample_report(), Format.TEXT, width=60, color=False)
    assert (
        "    fix: Add a ServiceEntry for the intake hosts of\n"
        "         datadoghq.com on port 443. (safe to apply)\n" in out
    )


def test_text_prints_brackets_literally():
    finding = dataclasses_replace(TELEMETRY, message="[bold]not markup[/bold] :smile:")
    out = render(with_findings(finding), Format.TEXT, width=100, color=False)
    assert "    [bold]not markup[/bold] :smile:\n" in out


def dataclasses_replace(finding: Finding, **changes: object) -> Finding:
    import dataclasses

    return dataclasses.replace(finding, **changes)  # type: ignore[arg-type]


# --- Markdown -------------------------------------------------------------------------------------


def test_markdown_golden_sample():
    assert_golden("report.md", render(sample_report(), Format.MARKDOWN))


def test_markdown_golden_all_passed():
    assert_golden("report-clean.md", render(clean_report(), Format.MARKDOWN))


def test_markdown_escapes_pipes_in_table_cells():
    finding = dataclasses_replace(TELEMETRY, title="a | b", objects=(ObjectRef("Service", "n", "x|y"),))
    out = render(with_findings(finding), Format.MARKDOWN)
    assert "| warning | [MD302](#md302-a--b) | a \\| b | Service n/x\\|y |" in out


def test_markdown_anchors_of_repeated_headings_are_numbered_like_github():
    second = dataclasses_replace(TELEMETRY, objects=(ObjectRef("Service", "istio-system", "istiod-2"),))
    out = render(with_findings(TELEMETRY, second), Format.MARKDOWN)
    assert "[MD302](#md302-istiod-monitoring-port-is-not-reachable) |" in out
    assert "[MD302](#md302-istiod-monitoring-port-is-not-reachable-1) |" in out


def test_code_span_and_fence_survive_backticks():
    assert code_span("plain") == "`plain`"
    assert code_span("a `b` c") == "`` a `b` c ``"
    assert fence("x: 1\n", "yaml") == ["```yaml", "x: 1", "```"]
    assert fence("a\n```\nb", "sh") == ["````sh", "a", "```", "b", "````"]
    assert table_cell("a|b\nc <absent>") == "a\\|b c \\<absent>"


def test_schema_rule_id_pattern_is_the_registry_pattern():
    from meshdoctor.rule import RULE_ID

    assert report_schema()["$defs"]["rule_id"]["pattern"] == RULE_ID.pattern.replace("\\d", "[0-9]")


def test_markdown_prose_is_escaped_outside_the_rules_own_code_spans():
    assert inline("hosts *.a.com and `*.b.com`, DD_SITE, _x_, <absent>, C:\\dir") == (
        "hosts \\*.a.com and `*.b.com`, DD_SITE, \\_x\\_, \\<absent>, C:\\\\dir"
    )
    assert inline("two\nlines ``a`b`` *") == "two lines ``a`b`` \\*"


SCENARIOS = sorted(
    p for p in (Path(__file__).resolve().parent.parent / "fixtures" / "scenarios").iterdir() if p.is_dir()
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_real_reports_of_every_scenario_fit_the_schema_and_render(scenario):
    from meshdoctor.engine import run
    from meshdoctor.registry import load_rules
    from meshdoctor.sources import load_offline

    snapshot, source = load_offline([str(scenario)])
    report = run(load_rules(), snapshot, source)
    data = json.loads(render(report, Format.JSON))
    jsonschema.validate(data, report_schema(), cls=jsonschema.Draft202012Validator)
    assert yaml.safe_load(render(report, Format.YAML)) == data
    text = render(report, Format.TEXT, width=100, color=False)
    assert max(len(line) for line in text.splitlines()) <= 100
    for finding in data["findings"]:
        assert f"{finding['rule']}  " in text
