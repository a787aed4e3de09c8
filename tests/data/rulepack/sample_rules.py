"""A local rule pack used by the tests: loaded with `--rules tests/data/rulepack`."""

from __future__ import annotations

from meshdoctor.model import Category, Severity
from meshdoctor.rule import Rule, RuleDocs, inputs


class ConfigMapWithoutData(Rule):
    """Flags ConfigMaps that carry no data at all."""

    id = "MD290"
    title = "ConfigMap has no data"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("ConfigMap")
    docs = RuleDocs(
        what="ConfigMaps without data.",
        why="An empty ConfigMap configures nothing.",
        fix="Add the data or delete the ConfigMap.",
    )

    def check(self, ctx):
        for cm in ctx.objects("ConfigMap"):
            if not cm.get("data"):
                yield self.finding(
                    f"{ctx.ref(cm)} has no data", objects=[ctx.ref(cm)], evidence=[ctx.field(cm, "data", None)]
                )


RULES = [ConfigMapWithoutData]
