"""The README stays true: its rule reference is generated from the rules, its commands exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_rule_reference_is_generated_from_the_rules():
    script = ROOT / "scripts" / "update_readme_rules.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ci_runs_exactly_the_readme_test_command():
    test_block = README.split("## Test", 1)[1]
    command = re.search(r"```sh\n(.+?)\n```", test_block, re.S).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in [line.strip() for line in ci.splitlines()]


def test_every_check_flag_is_documented():
    from meshdoctor.cli.main import check

    for param in check.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert f"`{opt}" in README, f"{opt} is not in the README"


def test_the_readme_rule_pack_example_runs_through_the_public_api(tmp_path):
    """The README's rule-pack example imports the public rule API from where it says, and runs."""
    section = README.split("## Writing a rule pack", 1)[1]
    example = re.search(r"```python\n(.+?)\n```", section, re.S).group(1)
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "example.py").write_text(example + "\n")
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: empty\n  namespace: default\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "meshdoctor", "check", "--from", str(tmp_path / "cm.yaml")]
        + ["--rules", str(tmp_path / "pack"), "--rule", "MD290", "-o", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(f["rule"], f["severity"], f["message"]) for f in report["findings"]] == [
        ("MD290", "warning", "ConfigMap default/empty has no data")
    ]
