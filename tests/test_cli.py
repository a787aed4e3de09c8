from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from meshdoctor import __version__
from meshdoctor.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
BROKEN = str(ROOT / "fixtures" / "scenarios" / "seed-broken")
FIXED = str(ROOT / "fixtures" / "scenarios" / "seed-fixed")


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run the CLI the way the console script does, through click's runner isolation."""
    runner = CliRunner()
    with runner.isolation(input=stdin) as streams:
        code = main(list(args))
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return code, out.decode(), err.decode()


def test_seed_broken_reports_both_findings_and_exits_1():
    code, out, err = invoke("check", "--from", BROKEN)
    assert code == 1, err
    assert "MD101" in out and "MD401" in out
    assert "ServiceEntry" in out and "serviceAccountName" in out
    assert err == ""


def test_seed_fixed_exits_0():
    code, out, err = invoke("check", "--from", FIXED)
    assert code == 0, out + err


def test_json_is_schema_1_and_byte_identical_across_runs():
    code1, first, _ = invoke("check", "--from", BROKEN, "-o", "json")
    code2, second, _ = invoke("check", "--from", BROKEN, "-o", "json")
    assert code1 == code2 == 1
    assert first == second
    report = json.loads(first)
    assert report["schema"] == 1
    assert report["meshdoctor"] == __version__
    assert [f["rule"] for f in report["findings"]] == ["MD101", "MD103", "MD401", "MD501", "MD503", "MD504"]
    assert report["summary"] == {"error": 3, "warning": 3, "info": 0}


def test_yaml_carries_the_same_content_as_json():
    _, as_json, _ = invoke("check", "--from", BROKEN, "-o", "json")
    _, as_yaml, _ = invoke("check", "--from", BROKEN, "-o", "yaml")
    assert yaml.safe_load(as_yaml) == json.loads(as_json)


def test_markdown_has_a_summary_table_and_fenced_manifests():
    code, out, _ = invoke("check", "--from", BROKEN, "-o", "markdown")
    assert code == 1
    assert "| Severity | Rule |" in out
    assert "```yaml" in out and "kind: ServiceEntry" in out


def test_fail_on_threshold():
    assert invoke("check", "--from", BROKEN, "--fail-on", "never")[0] == 0
    assert invoke("check", "--from", BROKEN, "--fail-on", "warning")[0] == 1
    assert invoke("check", "--from", BROKEN, "--category", "agent")[0] == 0
    assert invoke("check", "--from", BROKEN, "--category", "agent", "--fail-on", "warning")[0] == 1
    assert invoke("check", "--from", BROKEN, "--rule", "MD401", "--fail-on", "error")[0] == 1
    assert (
        invoke(
            "check",
            "--from",
            BROKEN,
            *("--skip", "MD101", "--skip", "MD103", "--skip", "MD401"),
            *("--skip", "MD601", "--skip", "MD604"),
        )[0]
        == 0
    )
    assert invoke("check", "--from", FIXED, "--fail-on", "info")[0] == 0


def test_log_lines_explain_what_skipped_structural_rules_would_have():
    _, out, _ = invoke("check", "--from", BROKEN, "-o", "json", "--skip", "MD101", "--skip", "MD103", "--skip", "MD401")
    assert [(f["rule"], f["severity"]) for f in json.loads(out)["findings"]][:2] == [
        ("MD601", "error"),
        ("MD604", "error"),
    ]


def test_rule_and_category_selection_reach_the_report():
    _, out, _ = invoke("check", "--from", BROKEN, "-o", "json", "--category", "rbac")
    report = json.loads(out)
    assert {r["category"] for r in report["results"]} == {"rbac"}
    assert [f["rule"] for f in report["findings"]] == ["MD401"]


def test_emit_fixes_writes_the_plan_numbered_with_apply_sh_index_and_plan_json(tmp_path):
    code, _, err = invoke("check", "--from", BROKEN, "--emit-fixes", str(tmp_path / "fixes"))
    assert code == 1
    written = sorted(str(p.relative_to(tmp_path / "fixes")) for p in (tmp_path / "fixes").rglob("*") if p.is_file())
    assert written == [
        "01-secret-default-datadog-secret.sh",
        "02-serviceentry-default-datadog-intake.yaml",
        "03-daemonset-default-datadog-agent.yaml",
        "alternatives/MD101-daemonset-default-datadog-agent.yaml",
        "apply.sh",
        "index.md",
        "plan.json",
    ]
    for name in ("02-serviceentry-default-datadog-intake.yaml", "03-daemonset-default-datadog-agent.yaml"):
        docs = list(yaml.safe_load_all((tmp_path / "fixes" / name).read_text()))
        assert len(docs) == 1 and {"apiVersion", "kind", "metadata"} <= set(docs[0])
    plan = json.loads((tmp_path / "fixes" / "plan.json").read_text())
    assert [s["file"] for s in plan["steps"]] == written[:3]
    assert (tmp_path / "fixes" / "apply.sh").stat().st_mode & 0o111
    assert "fix plan: 3 steps, applied in order" in err
    assert err.endswith(f"wrote the fix plan (3 step file(s), apply.sh, index.md) to {tmp_path / 'fixes'}\n")


def test_stdin_is_read_with_dash():
    manifest = (
        (Path(BROKEN) / "datadog-agent.yaml").read_text() if (Path(BROKEN) / "datadog-agent.yaml").exists() else ""
    )
    code, _, err = invoke(
        "check",
        "--from",
        "-",
        "--rule",
        "MD401",
        stdin=manifest or "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
    )
    assert code in (0, 1), err


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return err.strip()


def test_yaml_syntax_error_is_one_line_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a, b\n")
    err = one_line_error(*invoke("check", "--from", str(bad)))
    assert err.startswith(f"meshdoctor: error: {bad}:")
    assert f"{bad}:5" in err or f"{bad}:6" in err


def test_missing_path_is_one_line(tmp_path):
    err = one_line_error(*invoke("check", "--from", str(tmp_path / "nope")))
    assert str(tmp_path / "nope") in err


def test_document_that_is_not_a_kubernetes_object_is_one_line(tmp_path):
    bad = tmp_path / "values.yaml"
    bad.write_text("replicaCount: 1\nimage: nginx\n")
    err = one_line_error(*invoke("check", "--from", str(bad)))
    assert f"{bad}:1" in err


def test_check_without_from_and_without_kubeconfig_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    err = one_line_error(*invoke("check"))
    assert "no kubeconfig" in err and "--from" in err


def test_live_flags_are_refused_with_from():
    err = one_line_error(*invoke("check", "--from", BROKEN, "--context", "prod"))
    assert err == "meshdoctor: error: --context: only for a live cluster, not with --from"


def test_unknown_rule_and_bad_option_are_usage_errors():
    assert "unknown rule 'MD999'" in one_line_error(*invoke("check", "--from", BROKEN, "--rule", "MD999"))
    assert "Invalid value" in one_line_error(*invoke("check", "--from", BROKEN, "-o", "xml"))


def test_broken_rule_pack_is_one_line_naming_it():
    err = one_line_error(*invoke("rules", "--rules", str(ROOT / "tests" / "data" / "badpack")))
    assert "broken_rules.py" in err


def test_rules_lists_every_rule_in_each_format():
    code, text, _ = invoke("rules")
    assert code == 0 and "MD101" in text and "MD401" in text
    code, as_json, _ = invoke("rules", "-o", "json")
    ids = [r["id"] for r in json.loads(as_json)["rules"]]
    assert ids == sorted(ids) and {"MD101", "MD401"} <= set(ids)
    code, md, _ = invoke("rules", "-o", "markdown")
    assert "| [MD101](#md101) | egress |" in md


def test_local_rule_folder_adds_rules():
    code, out, _ = invoke("rules", "--rules", str(ROOT / "tests" / "data" / "rulepack"))
    assert code == 0 and "MD290" in out


def test_explain_shows_the_fixed_sections():
    code, out, _ = invoke("explain", "md101")
    assert code == 0
    for section in ("What it checks:", "Why it matters:", "How to fix:"):
        assert section in out
    assert "unknown rule 'MD999'" in one_line_error(*invoke("explain", "MD999"))


def test_version_names_meshdoctor_python_and_the_client_libraries():
    from importlib.metadata import version

    code, out, _ = invoke("--version")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"meshdoctor {__version__}"
    assert lines[1].startswith(f"Python {sys.version_info.major}.{sys.version_info.minor}.")
    assert f"kubernetes {version('kubernetes')}" in lines
    assert f"click {version('click')}" in lines and f"PyYAML {version('PyYAML')}" in lines


def test_version_does_not_import_the_kubernetes_client():
    probe = (
        "import sys, meshdoctor.cli.main as m; code = m.main(['--version']);"
        "assert code == 0 and 'kubernetes' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)


def test_an_empty_input_is_no_diagnosis_exit_3(tmp_path):
    code, out, err = invoke("check", "--from", str(tmp_path), "-o", "json")
    report = json.loads(out)
    assert code == 3, err
    reasons = {(r["status"], r["reason"]) for r in report["results"]}
    assert reasons == {("not_checked", "nothing to check: the input holds no Kubernetes object and no container log")}
    # --fail-on never does not make a check that checked nothing green
    assert invoke("check", "--from", str(tmp_path), "--fail-on", "never")[0] == 3


def test_a_rule_that_crashed_is_exit_3_whatever_fail_on_says():
    pack = str(ROOT / "tests" / "data" / "crashpack")
    code, out, err = invoke("check", "--from", FIXED, "--rules", pack, "--rule", "MD299", "-o", "json")
    assert code == 3, err
    assert json.loads(out)["results"] == [
        {"rule": "MD299", "category": "check-config", "status": "error", "reason": "RuntimeError: boom"}
    ]
    assert invoke("check", "--from", FIXED, "--rules", pack, "--fail-on", "never")[0] == 3


def test_a_crash_outside_a_rule_is_one_line_naming_the_exception_exit_3(monkeypatch):
    import meshdoctor.engine

    def explode(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(meshdoctor.engine, "run", explode)
    monkeypatch.delenv("MESHDOCTOR_DEBUG", raising=False)
    code, out, err = invoke("check", "--from", FIXED)
    assert (code, out) == (3, "")
    assert err == (
        "meshdoctor: internal error: ZeroDivisionError: division by zero "
        "(a bug: run again with --debug for the traceback)\n"
    )
    code, _, err = invoke("--debug", "check", "--from", FIXED)
    assert code == 3 and err.startswith("Traceback (most recent call last):") and "explode" in err
    monkeypatch.setenv("MESHDOCTOR_DEBUG", "1")
    code, _, err = invoke("check", "--from", FIXED)
    assert code == 3 and err.startswith("Traceback (most recent call last):")


def test_color_flag_beats_no_color_and_auto_follows_it(monkeypatch):
    from meshdoctor.cli.main import use_color

    assert use_color("auto", is_tty=True, environ={}) is True
    assert use_color("auto", is_tty=True, environ={"NO_COLOR": "1"}) is False
    assert use_color("auto", is_tty=True, environ={"NO_COLOR": ""}) is True
    assert use_color("auto", is_tty=False, environ={}) is False
    assert use_color("always", is_tty=False, environ={"NO_COLOR": "1"}) is True
    assert use_color("never", is_tty=True, environ={}) is False
    monkeypatch.setenv("NO_COLOR", "1")
    _, coloured, _ = invoke("check", "--from", BROKEN, "--color", "always")
    _, plain, _ = invoke("check", "--from", BROKEN, "--color", "never")
    assert "\x1b[" in coloured and "\x1b[" not in plain


def test_importing_the_cli_does_not_import_the_kubernetes_client_or_rich():
    probe = "import meshdoctor.cli.main, sys; assert 'kubernetes' not in sys.modules; assert 'rich' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_shell_completion_comes_from_click(tmp_path):
    import os

    env = {
        **os.environ,
        "_MESHDOCTOR_COMPLETE": "bash_complete",
        "COMP_WORDS": "meshdoctor check --color ",
        "COMP_CWORD": "3",
    }
    done = subprocess.run([sys.executable, "-m", "meshdoctor"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.splitlines() == ["plain,auto", "plain,always", "plain,never"], done.stderr
    env["_MESHDOCTOR_COMPLETE"] = "bash_source"
    done = subprocess.run([sys.executable, "-m", "meshdoctor"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert "_meshdoctor_completion()" in done.stdout
