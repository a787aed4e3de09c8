from __future__ import annotations

from pathlib import Path

import pytest

from meshdoctor.errors import RulePackError
from meshdoctor.model import Category, Severity
from meshdoctor.registry import entry_point_packs, folder_pack, load_rules, validate_rule
from meshdoctor.rule import Rule, RuleDocs, inputs

DATA = Path(__file__).parent / "data"


def test_builtin_pack_is_loaded_through_the_entry_point_group():
    packs = {pack.name: pack for pack in entry_point_packs()}
    import meshdoctor_rules

    assert packs["builtin"].rules == tuple(meshdoctor_rules.RULES)


def test_folder_pack_loads_and_merges_in_id_order():
    rules = load_rules([str(DATA / "rulepack")])
    assert "MD290" in [r.id for r in rules]
    assert [r.id for r in rules] == sorted(r.id for r in rules)


def test_folder_pack_that_fails_to_import_names_the_module():
    with pytest.raises(RulePackError, match=r"broken_rules\.py: rule module failed to load: No module named"):
        folder_pack(str(DATA / "badpack"))


def test_missing_folder_is_a_clear_error():
    with pytest.raises(RulePackError, match="nowhere: rule folder not found"):
        folder_pack("nowhere")


def make_rule(**overrides):
    attrs = dict(
        id="MD101",
        title="t",
        category=Category.EGRESS,
        severity=Severity.ERROR,
        inputs=inputs("Pod"),
        docs=RuleDocs("w", "y", "f"),
        check=lambda self, ctx: iter(()),
    )
    attrs.update(overrides)
    return type("Sample", (Rule,), attrs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": "X101"}, "id 'X101' is not of the form MDnnn"),
        ({"id": "MD1011"}, "id 'MD1011' is not of the form MDnnn"),
        ({"title": ""}, "has no title"),
        ({"category": "egress"}, "category 'egress' is not one of"),
        ({"id": "MD201"}, "id MD201 is outside the egress block MD100-MD199"),
        ({"severity": "error"}, "severity is not a Severity"),
        ({"inputs": ["Pod"]}, "inputs are not declared"),
        ({"docs": RuleDocs("w", "", "f")}, "docs must be a RuleDocs"),
        ({"check": Rule.check}, "does not implement check"),
    ],
)
def test_validation_names_the_pack_the_rule_and_the_problem(overrides, message):
    with pytest.raises(RulePackError, match="rule pack 'p': rule Sample: " + message.replace("(", r"\(")):
        validate_rule("p", make_rule(**overrides))


def test_every_builtin_rule_is_valid():
    for rule in load_rules():
        validate_rule("builtin", rule)
