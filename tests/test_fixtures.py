"""Every rule fails on its failing fixture and passes on its passing one; every scenario gives
exactly the findings its expected.txt lists; declared inputs are the inputs rules read."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshdoctor.engine import run
from meshdoctor.model import Status
from meshdoctor.registry import load_rules
from meshdoctor.rule import Context
from meshdoctor.sources import load_offline
from tests.expectations import expected_lines, report_lines

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RULES = load_rules()
SCENARIOS = sorted(p for p in (FIXTURES / "scenarios").iterdir() if p.is_dir())


def load(folder: Path):
    logs = folder / "logs"
    return load_offline([str(folder)], str(logs) if logs.is_dir() else None)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_scenario_gives_exactly_the_expected_findings(scenario):
    snapshot, source = load(scenario)
    report = run(RULES, snapshot, source)
    assert report_lines(report) == expected_lines(scenario)


def rule_cases(rule) -> list[Path]:
    """`failing/`, `passing/` and any further case folders of a rule."""
    return sorted(p for p in (FIXTURES / "rules" / rule.id).iterdir() if p.is_dir())


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_has_a_failing_and_a_passing_fixture(rule):
    cases = rule_cases(rule)
    assert {"failing", "passing"} <= {case.name for case in cases}
    for case in cases:
        expected = expected_lines(case)
        snapshot, source = load(case)
        report = run([rule], snapshot, source)
        if any(line.startswith("not_checked") for line in expected):
            status = Status.NOT_CHECKED
        elif any(line.startswith(("finding", "suppressed")) for line in expected):
            status = Status.FAILED
        else:
            status = Status.PASSED
        if case.name == "failing":
            assert status is Status.FAILED, f"{rule.id}: the failing fixture expects no finding"
        if case.name == "passing":
            assert status is Status.PASSED, f"{rule.id}: the passing fixture expects findings"
        assert [r.status for r in report.results] == [status], f"{rule.id} {case.name}: {report.results}"
        assert report_lines(report) == expected, f"{rule.id} {case.name}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_declared_inputs_equal_the_inputs_read(rule):
    folders = rule_cases(rule) + SCENARIOS
    read: set[str] = set()
    for folder in folders:
        snapshot, _ = load(folder)
        ctx = Context(snapshot)
        try:
            list(rule().check(ctx))
        except Exception:  # noqa: BLE001 - not_checked and errors still read inputs
            pass
        read |= ctx.kinds_read
    assert read == set(rule.inputs.all_kinds())


def test_composed_scenarios_match_their_recipes():
    import subprocess
    import sys

    script = FIXTURES.parent / "scripts" / "compose_scenarios.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
