"""Suppressions from the command line and `.meshdoctor.yaml`, baselines, and the config file."""

from __future__ import annotations

import json

import pytest

from meshdoctor.errors import UsageError
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.suppressions import apply_suppressions, parse_suppression
from tests.test_cli import BROKEN, invoke

AGENT = ObjectRef("DaemonSet", "default", "datadog-agent")


def finding(rule: str, *objects: ObjectRef) -> Finding:
    return Finding(rule, Category.EGRESS, Severity.ERROR, "t", "m", objects=objects)


def states(out: str) -> list[tuple[str, bool, str | None, bool]]:
    return [(f["rule"], f["suppressed"], f["suppressed_by"], f["known"]) for f in json.loads(out)["findings"]]


# --- --suppress -----------------------------------------------------------------------------------


def test_suppression_patterns_match_rule_globs_and_namespace_name_globs():
    cases = [
        ("MD102=default/datadog", finding("MD102", ObjectRef("ServiceEntry", "default", "datadog")), True),
        ("md102=default/datadog", finding("MD102", ObjectRef("ServiceEntry", "default", "datadog")), True),
        ("MD102=default/datadog", finding("MD102", ObjectRef("ServiceEntry", "default", "datadog-2")), False),
        ("MD102=default/datadog", finding("MD101", ObjectRef("ServiceEntry", "default", "datadog")), False),
        ("MD1*=default/*", finding("MD103", AGENT), True),
        ("MD1*", finding("MD103"), True),
        ("MD5??=*/datadog-*", finding("MD501", AGENT), True),
        ("MD401=kube-system/*", finding("MD401", AGENT), False),
        # any object of the finding, as the annotation reads it; cluster-scoped objects by name
        ("MD401=datadog-agent", finding("MD401", AGENT, ObjectRef("ClusterRole", "", "datadog-agent")), True),
    ]
    for text, item, expected in cases:
        assert parse_suppression(text).matches(item) is expected, text


def test_malformed_suppressions_are_usage_errors():
    for text in ("", "=default/x", "MD101=", "MD 101"):
        with pytest.raises(UsageError):
            parse_suppression(text)


def test_annotation_suppression_is_kept_before_a_pattern():
    annotated = Finding("MD101", Category.EGRESS, Severity.ERROR, "t", "m", objects=(AGENT,), suppressed_by="X")
    plain = finding("MD103", AGENT)
    out = apply_suppressions([annotated, plain], [parse_suppression("MD1*")])
    assert [f.suppressed_by for f in out] == ["X", "--suppress MD1*"]


def test_suppress_on_the_command_line_reports_and_does_not_fail():
    code, out, _ = invoke(
        "check", "--from", BROKEN, "-o", "json", "--suppress", "MD1*=default/datadog-agent", "--suppress", "MD401"
    )
    assert code == 0
    assert states(out) == [
        ("MD101", True, "--suppress MD1*=default/datadog-agent", False),
        ("MD103", True, "--suppress MD1*=default/datadog-agent", False),
        ("MD401", True, "--suppress MD401", False),
        ("MD501", False, None, False),
        ("MD503", False, None, False),
        ("MD504", False, None, False),
    ]
    assert json.loads(out)["summary"] == {"error": 0, "warning": 3, "info": 0}
    assert invoke("check", "--from", BROKEN, "--suppress", "MD1*")[0] == 1  # MD401 still fails
    assert invoke("check", "--from", BROKEN, "--suppress", "MD101=")[0] == 2


# --- baselines ------------------------------------------------------------------------------------


def test_a_baseline_written_from_seed_broken_makes_the_next_run_exit_0_with_the_findings_known(tmp_path):
    baseline = tmp_path / "baseline.json"
    code, _, err = invoke("check", "--from", BROKEN, "--write-baseline", str(baseline))
    assert code == 1
    assert err == f"wrote a baseline of 6 finding(s) to {baseline}\n"
    written = json.loads(baseline.read_text())
    assert written["meshdoctor_baseline"] == 1
    assert [(e["rule"], e["objects"]) for e in written["findings"]] == [
        (rule, ["DaemonSet default/datadog-agent", *(["ClusterRoleBinding datadog-agent"] if rule == "MD401" else [])])
        for rule in ("MD101", "MD103", "MD401", "MD501", "MD503", "MD504")
    ]
    code, out, _ = invoke("check", "--from", BROKEN, "--baseline", str(baseline), "-o", "json")
    assert code == 0
    report = json.loads(out)
    assert [f["known"] for f in report["findings"]] == [True] * 6
    assert {f["known_by"] for f in report["findings"]} == {str(baseline)}
    assert report["summary"] == {"error": 0, "warning": 0, "info": 0}
    assert report["baseline"] == str(baseline)
    code, text, _ = invoke("check", "--from", BROKEN, "--baseline", str(baseline))
    assert code == 0
    assert next(line for line in text.splitlines() if line.startswith("  error   MD101")) == (
        "  error   MD101  DaemonSet default/datadog-agent  [known] The mesh blocks the agent's traffic to th…"
    )
    wide = invoke("check", "--from", BROKEN, "--baseline", str(baseline), "--width", "400")[1]
    assert wide.count(f"[known: in the baseline {baseline}]") == 6  # each finding's details say it too
    assert "0 errors, 0 warnings, 0 info, 6 known (baseline)" in text
    # writing it again from the same input gives the same bytes
    again = tmp_path / "again.json"
    invoke("check", "--from", BROKEN, "--write-baseline", str(again))
    assert again.read_bytes() == baseline.read_bytes()


def test_a_finding_not_in_the_baseline_still_fails(tmp_path):
    baseline = tmp_path / "baseline.json"
    invoke("check", "--from", BROKEN, "--skip", "MD401", "--write-baseline", str(baseline))
    code, out, _ = invoke("check", "--from", BROKEN, "--baseline", str(baseline), "-o", "json")
    assert code == 1
    assert [(f["rule"], f["known"]) for f in json.loads(out)["findings"]] == [
        ("MD101", True),
        ("MD103", True),
        ("MD401", False),
        ("MD501", True),
        ("MD503", True),
        ("MD504", True),
    ]
    _, sarif, _ = invoke("check", "--from", BROKEN, "--baseline", str(baseline), "-o", "sarif")
    states = [r["baselineState"] for r in json.loads(sarif)["runs"][0]["results"]]
    assert states == ["unchanged", "unchanged", "new", "unchanged", "unchanged", "unchanged"]


def test_a_bad_baseline_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"meshdoctor_baseline": 1,\n "findings": [}\n')
    code, out, err = invoke("check", "--from", BROKEN, "--baseline", str(bad))
    assert (code, out) == (2, "")
    assert err.startswith(f"meshdoctor: error: {bad}:2: not a meshdoctor baseline") and err.count("\n") == 1
    other = tmp_path / "other.json"
    other.write_text('{"findings": []}')
    assert invoke("check", "--from", BROKEN, "--baseline", str(other))[2] == (
        f'meshdoctor: error: {other}: not a meshdoctor baseline (no "meshdoctor_baseline": 1)\n'
    )
    assert invoke("check", "--from", BROKEN, "--baseline", str(tmp_path / "none.json"))[0] == 2


# --- .meshdoctor.yaml -----------------------------------------------------------------------------


def test_config_file_is_discovered_from_the_working_directory(tmp_path, monkeypatch):
    project = tmp_path / "repo"
    (project / ".git").mkdir(parents=True)
    (project / "sub").mkdir()
    (project / ".meshdoctor.yaml").write_text(
        "fail-on: warning\nskip: [MD401]\nsuppress:\n  - MD1*=default/*\n  - MD604\noutput: json\n"
    )
    monkeypatch.chdir(project / "sub")
    code, out, _ = invoke("check", "--from", BROKEN)
    report = json.loads(out)  # output: json
    assert "MD401" not in [r["rule"] for r in report["results"]]  # skip
    # suppress (MD604: the RBAC log lines MD401 would have explained, now that it is skipped)
    assert [f["rule"] for f in report["findings"] if f["suppressed"]] == ["MD101", "MD103", "MD604"]
    assert code == 1  # fail-on: warning (three warnings left)
    # a flag beats the file
    assert invoke("check", "--from", BROKEN, "--fail-on", "error")[0] == 0
    assert invoke("check", "--from", BROKEN, "-o", "text")[1].startswith("meshdoctor ")


def test_config_baseline_is_relative_to_the_file_and_config_flag_names_the_file(tmp_path, monkeypatch):
    baseline = tmp_path / "conf" / "accepted.json"
    baseline.parent.mkdir()
    invoke("check", "--from", BROKEN, "--write-baseline", str(baseline))
    config = tmp_path / "conf" / "meshdoctor.yaml"
    config.write_text("baseline: accepted.json\nbrief: true\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = invoke("check", "--from", BROKEN, "--config", str(config))
    assert code == 0
    assert "\ndetails\n" not in out  # brief: true


def test_bad_config_is_one_line_with_file_and_line_exit_2(tmp_path):
    config = tmp_path / "c.yaml"
    cases = {
        "fail-on: sometimes\n": f"{config}:1: fail-on: 'sometimes' is not one of error, warning, info, never",
        "skip: [MD401]\nsupress: [MD101]\n": f"{config}:2: unknown setting 'supress'",
        "output: json\nskip: [MD401\n": f"{config}:3:",
        "- a\n- b\n": f"{config}:1: the config must be a mapping of settings",
        "fail-on: error\nsuppress: ['MD101=']\n": f"{config}:2: suppress: 'MD101=' is not RULE or RULE=NAMESPACE/NAME",
        "output: json\n\nskip:\n  - MD999\n": f"{config}:3: skip: unknown rule 'MD999' (see `meshdoctor rules`)",
    }
    for text, expected in cases.items():
        config.write_text(text)
        code, out, err = invoke("check", "--from", BROKEN, "--config", str(config))
        assert (code, out) == (2, ""), text
        assert err.startswith(f"meshdoctor: error: {expected}"), (text, err)
        assert err.count("\n") == 1 and "Traceback" not in err
