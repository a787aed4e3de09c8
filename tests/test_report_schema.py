"""Every scenario's JSON report validates against meshdoctor/schema/report-v1.json."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from meshdoctor.cli.main import main
from meshdoctor.renderers import report_schema

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p for p in (ROOT / "fixtures" / "scenarios").iterdir() if p.is_dir())


def _report(folder: Path) -> dict[str, object]:
    runner = CliRunner()
    with runner.isolation() as streams:
        code = main(["check", "--from", str(folder), "-o", "json", "--fail-on", "never"])
        out = streams[0].getvalue()
    assert code == 0, streams[1].getvalue()
    return json.loads(out)


@pytest.mark.parametrize("folder", SCENARIOS, ids=lambda p: p.name)
def test_report_is_schema_valid(folder):
    jsonschema.validate(_report(folder), report_schema(), cls=jsonschema.Draft202012Validator)
