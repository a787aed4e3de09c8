"""Suppressions given on the command line or in `.meshdoctor.yaml`: `--suppress 'MD102=default/datadog'`.

A pattern is `RULE` or `RULE=OBJECT`. `RULE` is a glob over rule ids (`MD1*`, case-insensitive);
`OBJECT` is a glob over `namespace/name` of the finding's objects (`name` alone for a
cluster-scoped object), matched with `fnmatch` rules (`*` also crosses `/`). A finding matches when
its rule matches and, if an object glob is given, any of its objects matches — the same "any object"
reading as the `meshdoctor.io/ignore` annotation. A matched finding is still reported, marked
`suppressed_by` the pattern, and counts towards neither the summary nor the exit code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from meshdoctor.errors import UsageError
from meshdoctor.model import Finding, ObjectRef


@dataclass(frozen=True)
class Suppression:
    """One `--suppress` pattern, parsed."""

    rule: str
    """Glob over rule ids, upper case (`MD102`, `MD1*`, `*`)."""
    object: str | None
    """Glob over `namespace/name` (or `name`), or None for every object."""
    text: str
    """The pattern as written, which the report shows as `suppressed_by`."""

    def matches(self, finding: Finding) -> bool:
        """Whether this pattern silences the finding."""
        if not fnmatchcase(finding.rule.upper(), self.rule):
            return False
        if self.object is None:
            return True
        return any(fnmatchcase(object_path(ref), self.object) for ref in finding.objects)


def object_path(ref: ObjectRef) -> str:
    """What an object glob is matched against: `namespace/name`, or `name` when cluster-scoped."""
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name


def parse_suppression(text: str, where: str = "--suppress") -> Suppression:
    """Parse `RULE[=OBJECT]`; a malformed pattern is a one-line UsageError naming `where`."""
    rule, sep, obj = text.strip().partition("=")
    rule = rule.strip().upper()
    if not rule or (sep and not obj.strip()):
        raise UsageError(f"{where}: {text!r} is not RULE or RULE=NAMESPACE/NAME (globs allowed, e.g. MD102=default/*)")
    if not all(ch.isalnum() or ch in "*?[]!-" for ch in rule):
        raise UsageError(f"{where}: {text!r}: the rule part {rule!r} is not a rule id or a glob of one")
    return Suppression(rule=rule, object=obj.strip() if sep else None, text=text.strip())


def apply_suppressions(findings: Iterable[Finding], patterns: Iterable[Suppression]) -> tuple[Finding, ...]:
    """The findings with those that a pattern matches marked `suppressed_by` it (first match).

    A finding already suppressed by an annotation keeps that: the object's own word comes first.
    """
    patterns = tuple(patterns)
    out = []
    for finding in findings:
        if finding.suppressed_by is None:
            match = next((p for p in patterns if p.matches(finding)), None)
            if match is not None:
                finding = dataclasses.replace(finding, suppressed_by=f"--suppress {match.text}")
        out.append(finding)
    return tuple(out)
