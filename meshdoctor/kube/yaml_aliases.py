"""kubectl's limit on YAML aliases, applied to every YAML meshdoctor reads from outside.

A few hundred bytes of anchors and aliases can stand for billions of nodes (the "billion laughs");
libyaml composes them as shared nodes, cheaply, but everything that walks the result (checks,
secret redaction, rendering) would expand them. The same documents are refused by kubectl and by
the agent, which decode YAML with gopkg.in/yaml.v2 (through sigs.k8s.io/yaml for kubectl).
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml

from meshdoctor.errors import InputError

# -- YAML aliasing --------------------------------------------------------------------------------

#: kubectl's YAML decoder (sigs.k8s.io/yaml over gopkg.in/yaml.v2 since v2.2.8, the CVE-2019-11254
#: fix, decode.go `allowedAliasRatio`) counts every node decoded, aliases expanded, and fails with
#: "document contains excessive aliasing" when more than 100 decodes came through aliases, more
#: than 1,000 in all, and the share through aliases exceeds 99% up to 400,000 decodes, falling
#: linearly to 10% at 4,000,000. The same rule is applied to each composed document here.
ALIAS_RATIO_LOW, ALIAS_RATIO_HIGH = 400_000, 4_000_000


def allowed_alias_ratio(decodes: int) -> float:
    """The share of decodes that may come from aliases (gopkg.in/yaml.v2 `allowedAliasRatio`)."""
    if decodes <= ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * ((decodes - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW))


def _excessive(aliased: int, decodes: int) -> bool:
    return aliased > 100 and decodes > 1000 and aliased / decodes > allowed_alias_ratio(decodes)


def check_aliasing(node: yaml.Node, name: str, line: int) -> None:
    """Raise InputError if expanding the aliases of a composed document is excessive (see above).

    A node met a second time is reached through an alias; the walk stops at the first count that
    breaks the rule, so a bomb costs no more than the limit.
    """
    seen: set[int] = set()
    decodes = aliased = 0
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, through_alias = stack.pop()
        decodes += 1
        if not through_alias and id(current) in seen:
            through_alias = True
        seen.add(id(current))
        if through_alias:
            aliased += 1
            if _excessive(aliased, decodes):
                raise InputError(name, "YAML document contains excessive aliasing (as kubectl refuses it)", line)
        stack.extend((child, through_alias) for child in _children(current))
    if _excessive(aliased, decodes):
        raise InputError(name, "YAML document contains excessive aliasing (as kubectl refuses it)", line)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
