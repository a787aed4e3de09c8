"""Runs the selected rules over a snapshot and builds the report.

Each rule runs in isolation: one that raises becomes an `error` result and the rest still run.
A rule whose required inputs were not collected is `not_checked` with the reason, never passed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshdoctor import __version__
from meshdoctor.datadog.owner_fixes import aim_at_owners
from meshdoctor.errors import UsageError
from meshdoctor.logs.join import join_log_evidence, settle_results
from meshdoctor.model import (
    AgentInfo,
    Category,
    ClusterInfo,
    FieldEvidence,
    Finding,
    LogEvidence,
    ProbeEvidence,
    Remediation,
    Report,
    RuleResult,
    SourceInfo,
    Status,
    summarize,
)
from meshdoctor.rule import Context, Inputs, NotChecked, Rule
from meshdoctor.secrets_mask import mask_secrets, mask_yaml
from meshdoctor.snapshot import Snapshot, object_ref

#: The annotation that suppresses rules on an object: `meshdoctor.io/ignore: "MD101,MD203"`.
IGNORE_ANNOTATION = "meshdoctor.io/ignore"


@dataclass(frozen=True)
class Selection:
    """Which rules to run: `--rule`, `--category`, `--skip`."""

    rules: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()


def select_rules(available: Sequence[type[Rule]], selection: Selection) -> list[type[Rule]]:
    """The rules a selection names, in id order; an unknown id or category is a usage error."""
    known = {rule.id for rule in available}
    for rule_id in (*selection.rules, *selection.skip):
        if rule_id.upper() not in known:
            raise UsageError(f"unknown rule {rule_id!r} (see `meshdoctor rules`)")
    categories = {c.value for c in Category}
    for category in selection.categories:
        if category not in categories:
            raise UsageError(f"unknown category {category!r}; one of: {', '.join(sorted(categories))}")
    wanted = {r.upper() for r in selection.rules}
    skipped = {r.upper() for r in selection.skip}
    chosen = []
    for rule in available:
        if wanted and rule.id not in wanted:
            continue
        if selection.categories and rule.category.value not in selection.categories:
            continue
        if rule.id in skipped:
            continue
        chosen.append(rule)
    return sorted(chosen, key=lambda r: r.id)


def required_inputs(rules: Iterable[type[Rule]]) -> Inputs:
    """The union of what the rules declare: what a live source must collect."""
    kinds: set[str] = set()
    optional: set[str] = set()
    logs: set[str] = set()
    probes = False
    for rule in rules:
        kinds |= rule.inputs.kinds
        optional |= rule.inputs.optional_kinds
        logs |= rule.inputs.logs
        probes = probes or rule.inputs.probes
    return Inputs(frozenset(kinds), frozenset(optional - kinds), frozenset(logs), probes)


def missing_inputs(rule: type[Rule], ctx: Context) -> str | None:
    """Why a rule's required kinds were not collected (`input missing: ...`), or None."""
    missing = [(kind, ctx.unavailable(kind)) for kind in sorted(rule.inputs.kinds)]
    missing = [(kind, why) for kind, why in missing if why is not None]
    if not missing:
        return None
    return "input missing: " + "; ".join(f"{kind}: {why}" for kind, why in missing)


def run_rule(rule: type[Rule], ctx: Context) -> tuple[RuleResult, list[Finding]]:
    """Run one rule in isolation."""
    missing = missing_inputs(rule, ctx)
    if missing is not None:
        return RuleResult(rule.id, rule.category, Status.NOT_CHECKED, missing), []
    try:
        findings = list(rule().check(ctx))
    except NotChecked as skipped:
        return RuleResult(rule.id, rule.category, Status.NOT_CHECKED, skipped.reason), []
    except Exception as exc:  # noqa: BLE001 - isolation: a crashing rule must not stop the run
        message = mask_secrets(f"{type(exc).__name__}: {exc}")
        return RuleResult(rule.id, rule.category, Status.ERROR, message), []
    status = Status.FAILED if findings else Status.PASSED
    return RuleResult(rule.id, rule.category, status), findings


def run(
    rules: Sequence[type[Rule]],
    snapshot: Snapshot,
    source: SourceInfo,
) -> Report:
    """Run the rules over the snapshot; findings suppressed, masked and sorted."""
    cache: dict[object, object] = {}
    results: list[RuleResult] = []
    findings: list[Finding] = []
    nothing = nothing_to_check(snapshot)
    for rule in sorted(rules, key=lambda r: r.id):
        ctx = Context(snapshot, cache=cache)
        if nothing is not None:  # the rule's own missing inputs say more, where it has some
            reason = missing_inputs(rule, ctx) or nothing
            results.append(RuleResult(rule.id, rule.category, Status.NOT_CHECKED, reason))
            continue
        result, found = run_rule(rule, ctx)
        results.append(result)
        # each fix aimed at what owns its objects (Helm values, DatadogAgent patch) before masking
        aimed = aim_at_owners(snapshot, found)
        findings.extend(
            _suppress(snapshot, dataclasses.replace(_masked(f), object_fix=raw.remediation))
            for f, raw in zip(aimed, found, strict=True)
        )
    # log lines go to the structural finding they prove
    findings = join_log_evidence(findings, explainers={r.id for r in rules if r.explains_logs})
    results = [_masked_result(r) for r in settle_results(results, findings)]
    ordered = tuple(sorted(findings, key=Finding.sort_key))
    return Report(
        version=__version__,
        source=SourceInfo(source.kind, mask_secrets(source.target), tuple(mask_secrets(m) for m in source.missing)),
        cluster=describe_cluster(snapshot, Context(snapshot, cache=cache)),
        results=tuple(results),
        findings=ordered,
        summary=summarize(ordered),
    )


def nothing_to_check(snapshot: Snapshot) -> str | None:
    """Why no rule can run on this snapshot at all, or None when there is something to read.

    A snapshot with no object and no log line (an empty folder, a cluster where every read was
    forbidden) would let every rule that looks for a fault "pass": that is no diagnosis, so every
    rule is `not_checked` instead and the exit code says the diagnosis could not be made.
    """
    if len(snapshot) or snapshot.logs:
        return None
    missing = snapshot.missing()
    if missing:
        return f"nothing was read: none of the {len(missing)} inputs the rules need could be collected (listed above)"
    return "nothing to check: the input holds no Kubernetes object and no container log"


def describe_cluster(snapshot: Snapshot, reader: Context | None = None) -> ClusterInfo:
    """Istio version and era, the agents' Datadog site, and each agent's install and version.

    `reader` serves the agents' logs (their start-up line may name the version) and the run's
    cache, where the rules already resolved it; without one only objects are read.
    """
    from meshdoctor.datadog.agent import agent_release, agent_workloads, datadog_site
    from meshdoctor.datadog.install import owner_of
    from meshdoctor.istio.mesh import mesh_info

    info = mesh_info(snapshot)
    agents = agent_workloads(snapshot)
    sites = sorted({datadog_site(snapshot, agent) for agent in agents})
    described = []
    for agent in agents:
        release = agent_release(reader if reader is not None else snapshot, agent)
        described.append(
            AgentInfo(
                workload=object_ref(agent),
                install=owner_of(agent).describe(),
                version=release.version,
                version_from=release.evidence_words,
            )
        )
    return ClusterInfo(
        istio_version=info.version,
        istio_era=info.era,
        datadog_site=", ".join(sites) if sites else None,
        istio_not_read=info.not_read,
        agents=tuple(described),
    )


def ignored_rules(obj: dict) -> set[str]:
    """Rule ids an object's `meshdoctor.io/ignore` annotation names."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(IGNORE_ANNOTATION)
    if not isinstance(value, str):
        return set()
    return {part.strip().upper() for part in value.split(",") if part.strip()}


def _suppress(snapshot: Snapshot, finding: Finding) -> Finding:
    for ref in finding.objects:
        obj = snapshot.get(ref.kind, ref.namespace, ref.name)
        if obj is not None and finding.rule in ignored_rules(obj):
            return dataclasses.replace(finding, suppressed_by=str(object_ref(obj)))
    return finding


def _masked_result(result: RuleResult) -> RuleResult:
    """A rule's result with its reason masked (a reason may quote an object or a log)."""
    if result.reason is None:
        return result
    return dataclasses.replace(result, reason=mask_secrets(result.reason))


def _masked(finding: Finding) -> Finding:
    """The finding with every secret masked, whatever the rule put in it."""
    evidence = []
    for item in finding.evidence:
        if isinstance(item, FieldEvidence):
            item = dataclasses.replace(item, value=mask_secrets(item.value))
        elif isinstance(item, LogEvidence):
            item = dataclasses.replace(item, text=mask_secrets(item.text))
        elif isinstance(item, ProbeEvidence):
            item = dataclasses.replace(item, detail=mask_secrets(item.detail))
        evidence.append(item)
    remediation = finding.remediation
    if remediation is not None:
        remediation = Remediation(
            summary=mask_secrets(remediation.summary),
            manifests=tuple(mask_yaml(m) for m in remediation.manifests),
            commands=tuple(mask_yaml(c) for c in remediation.commands),
            safe=remediation.safe,
            alternatives=tuple(mask_secrets(a) for a in remediation.alternatives),
            alternative_manifests=tuple(mask_yaml(m) for m in remediation.alternative_manifests),
        )
    return dataclasses.replace(
        finding,
        message=mask_secrets(finding.message),
        evidence=tuple(evidence),
        remediation=remediation,
    )
