"""Write meshdoctor/builtin_rules.json, the built-in pack's metadata that `rules` and `explain` read.

Run after changing a rule's id, title, category, severity, inputs or docs;
tests/test_rule_catalogue.py fails until the file matches the rule classes.

    python scripts/update_rule_catalogue.py
"""

from __future__ import annotations

from pathlib import Path

from meshdoctor_rules import RULES

from meshdoctor.registry import BUILTIN_CATALOGUE
from meshdoctor.renderers.catalogue import rules_json

TARGET = Path(__file__).resolve().parent.parent / "meshdoctor" / BUILTIN_CATALOGUE


def catalogue_text() -> str:
    """The catalogue as it must read."""
    return rules_json(RULES)


if __name__ == "__main__":
    TARGET.write_text(catalogue_text(), encoding="utf-8")
    print(f"wrote {TARGET} ({len(RULES)} rules)")
