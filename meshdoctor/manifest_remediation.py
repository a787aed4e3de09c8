"""Assembling a remediation that applies whole objects: every family's fixes end the same way.

A fix made of manifests is always rendered as YAML and applied the same way (a server-side dry
run, then the apply, on the file `--emit-fixes` writes), so the families build it here instead of
each spelling out the `Remediation` fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshdoctor.model import Remediation
from meshdoctor.remediation import dry_run_then_apply, manifests
from meshdoctor.snapshot import KubeObject


def apply_manifests(
    summary: str,
    objects: Iterable[KubeObject],
    *,
    safe: bool,
    before: Iterable[str] = (),
    alternatives: Iterable[str] = (),
    alternative_objects: Iterable[KubeObject] = (),
) -> Remediation:
    """A remediation applying `objects` (as YAML, in order) after the commands `before`.

    `alternative_objects` are the manifests of another way out, applied instead of `objects`.
    """
    return Remediation(
        summary=summary,
        manifests=manifests(objects),
        commands=(*before, *dry_run_then_apply()),
        safe=safe,
        alternatives=tuple(alternatives),
        alternative_manifests=manifests(alternative_objects),
    )
