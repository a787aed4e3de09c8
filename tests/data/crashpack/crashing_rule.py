"""A rule that always crashes: proves a crashed rule makes the check exit 3."""

from meshdoctor.model import Category, Severity
from meshdoctor.rule import Rule, RuleDocs, inputs


class AlwaysCrashes(Rule):
    id = "MD299"
    title = "A rule that crashes"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("ConfigMap")
    docs = RuleDocs(what="crashes", why="to test exit 3", fix="none", references=("https://example.invalid",))

    def check(self, ctx):
        raise RuntimeError("boom")


RULES = [AlwaysCrashes]
