"""The README stays true: its rule reference is generated from the rules, its commands exist."""

from __future__ import annotations

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
