"""The built-in rule pack, installed as `meshdoctor_rules` and registered under `meshdoctor.rules`.

One explicit list, sorted by id, built from each family module's `RULES` (as istioctl analyze keeps
its analyzers): adding a rule means adding it to its module's `RULES`, nothing is discovered by
import side effects. Retired ids stay as comments in their family module.
"""

from __future__ import annotations

from meshdoctor.rule import Rule

from . import agent, check_config, egress, logs, rbac, telemetry

RULES: list[type[Rule]] = sorted(
    [
        *agent.RULES,
        *check_config.RULES,
        *egress.RULES,
        *logs.RULES,
        *rbac.RULES,
        *telemetry.RULES,
    ],
    key=lambda r: r.id,
)
