"""The generated built-in catalogue matches the rule classes, and `rules`/`explain` show the same from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meshdoctor.registry import BUILTIN_CATALOGUE, builtin_catalogue, describe_rules, load_rules
from meshdoctor.renderers.catalogue import explain_text, rules_json, rules_markdown, rules_text

ROOT = Path(__file__).resolve().parent.parent


def test_catalogue_file_is_up_to_date() -> None:
    written = (ROOT / "meshdoctor" / BUILTIN_CATALOGUE).read_text(encoding="utf-8")
    from meshdoctor_rules import RULES

    assert written == rules_json(RULES), "run: python scripts/update_rule_catalogue.py"


def test_listing_from_the_catalogue_equals_the_listing_from_the_classes() -> None:
    loaded, described = load_rules(), describe_rules()
    assert [r.id for r in described] == [r.id for r in loaded]
    for render in (rules_text, rules_json, rules_markdown):
        assert render(described) == render(loaded)
    for a, b in zip(loaded, described, strict=True):
        assert explain_text(b) == explain_text(a)


def test_catalogue_entries_are_the_builtin_pack() -> None:
    from meshdoctor_rules import RULES

    entries = builtin_catalogue()
    assert entries is not None
    assert [e.id for e in entries] == [r.id for r in RULES]
    assert json.loads(rules_json(entries)) == json.loads(rules_json(RULES))


def test_rules_and_explain_do_not_import_rule_code() -> None:
    probe = (
        "import sys, meshdoctor.cli.main as c; c.main(['rules']); c.main(['explain', 'MD101']);"
        "print(sorted(m for m in sys.modules if m.startswith('meshdoctor_rules')), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "[]"
    assert "MD101 ·" in done.stdout
