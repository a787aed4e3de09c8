from __future__ import annotations

import pytest

from meshdoctor.engine import Selection, ignored_rules, required_inputs, run, select_rules
from meshdoctor.errors import UsageError
from meshdoctor.model import Category, ObjectRef, Severity, SourceInfo, Status
from meshdoctor.rule import NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import Snapshot

DOCS = RuleDocs(what="w", why="y", fix="f")
SOURCE = SourceInfo("files", "test")


class EmptyConfigMap(Rule):
    id = "MD201"
    title = "ConfigMap is empty"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("ConfigMap")
    docs = DOCS

    def check(self, ctx):
        for cm in ctx.objects("ConfigMap"):
            if not cm.get("data"):
                yield self.finding(f"{ctx.ref(cm)} is empty", objects=[ctx.ref(cm)])


class Crashes(Rule):
    id = "MD501"
    title = "crashes"
    category = Category.AGENT
    severity = Severity.WARNING
    inputs = inputs("Pod")
    docs = DOCS

    def check(self, ctx):
        ctx.objects("Pod")
        raise KeyError("spec")


class NeedsServiceEntry(Rule):
    id = "MD102"
    title = "needs service entries"
    category = Category.EGRESS
    severity = Severity.ERROR
    inputs = inputs("ServiceEntry", optional=["Sidecar"], logs=["agent"])
    docs = DOCS

    def check(self, ctx):
        yield from ()


class SaysNotApplicable(Rule):
    id = "MD301"
    title = "mixer only"
    category = Category.TELEMETRY
    severity = Severity.INFO
    inputs = inputs("Deployment")
    docs = DOCS

    def check(self, ctx):
        raise NotChecked("not applicable to an istiod-era mesh")
        yield  # pragma: no cover


class WarnsOnNamespaces(Rule):
    id = "MD502"
    title = "namespace"
    category = Category.AGENT
    severity = Severity.WARNING
    inputs = inputs("Namespace")
    docs = DOCS

    def check(self, ctx):
        for ns in ctx.objects("Namespace"):
            yield self.finding(f"namespace {ctx.ref(ns).name}", objects=[ctx.ref(ns)])


ALL = [WarnsOnNamespaces, EmptyConfigMap, Crashes, NeedsServiceEntry, SaysNotApplicable]


def snapshot(*objs, all_collected=True):
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    if all_collected:
        snap.mark_all_collected()
    return snap


def cm(name, data=None, annotations=None, namespace="default"):
    meta = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **({"data": data} if data else {})}


def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_selection_by_rule_category_and_skip():
    ids = lambda rules: [r.id for r in rules]  # noqa: E731
    assert ids(select_rules(ALL, Selection())) == ["MD102", "MD201", "MD301", "MD501", "MD502"]
    assert ids(select_rules(ALL, Selection(rules=("md201", "MD501")))) == ["MD201", "MD501"]
    assert ids(select_rules(ALL, Selection(categories=("agent",)))) == ["MD501", "MD502"]
    assert ids(select_rules(ALL, Selection(categories=("agent",), skip=("MD501",)))) == ["MD502"]


def test_selection_rejects_unknown_ids_and_categories():
    with pytest.raises(UsageError, match="unknown rule 'MD999'"):
        select_rules(ALL, Selection(rules=("MD999",)))
    with pytest.raises(UsageError, match="unknown category 'network'"):
        select_rules(ALL, Selection(categories=("network",)))


def test_a_crashing_rule_becomes_an_error_and_the_rest_still_run():
    report = run(ALL, snapshot(cm("a"), ns("default")), SOURCE)
    statuses = {r.rule: (r.status, r.reason) for r in report.results}
    assert statuses == {
        "MD102": (Status.PASSED, None),
        "MD201": (Status.FAILED, None),
        "MD301": (Status.NOT_CHECKED, "not applicable to an istiod-era mesh"),
        "MD501": (Status.ERROR, "KeyError: 'spec'"),
        "MD502": (Status.FAILED, None),
    }
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("MD201", Severity.ERROR),
        ("MD502", Severity.WARNING),
    ]
    assert report.summary == {"error": 1, "warning": 1, "info": 0}


def test_missing_required_input_is_not_checked_with_the_reason():
    snap = snapshot(cm("a", {"k": "v"}), all_collected=False)
    snap.mark_missing("ServiceEntry", "not in a cluster-info dump")
    report = run([NeedsServiceEntry, EmptyConfigMap], snap, SOURCE)
    assert [(r.rule, r.status, r.reason) for r in report.results] == [
        ("MD102", Status.NOT_CHECKED, "input missing: ServiceEntry: not in a cluster-info dump"),
        ("MD201", Status.PASSED, None),
    ]


def test_suppression_by_annotation_reports_but_does_not_count():
    snap = snapshot(
        cm("quiet", annotations={"meshdoctor.io/ignore": "MD101, md201"}),
        cm("loud"),
    )
    report = run([EmptyConfigMap], snap, SOURCE)
    assert [(f.objects[0].name, f.suppressed_by) for f in report.findings] == [
        ("loud", None),
        ("quiet", "ConfigMap default/quiet"),
    ]
    assert report.summary == {"error": 1, "warning": 0, "info": 0}
    quiet_only = run([EmptyConfigMap], snapshot(cm("quiet", annotations={"meshdoctor.io/ignore": "MD201"})), SOURCE)
    assert quiet_only.worst() is None
    assert quiet_only.summary == {"error": 0, "warning": 0, "info": 0}


def test_ignored_rules_parses_the_annotation():
    assert ignored_rules(cm("x", annotations={"meshdoctor.io/ignore": " md101 ,MD203,, "})) == {"MD101", "MD203"}
    assert ignored_rules(cm("x")) == set()


def test_findings_are_ordered_deterministically():
    objs = [ns("zeta"), ns("alpha"), cm("b"), cm("a")]
    first = run(ALL, snapshot(*objs), SOURCE)
    second = run(ALL, snapshot(*reversed(objs)), SOURCE)
    assert first == second
    assert [f.objects[0] for f in first.findings] == [
        ObjectRef("ConfigMap", "default", "a"),
        ObjectRef("ConfigMap", "default", "b"),
        ObjectRef("Namespace", "", "alpha"),
        ObjectRef("Namespace", "", "zeta"),
    ]


def test_secrets_are_masked_in_findings_whatever_the_rule_wrote():
    class Leaky(EmptyConfigMap):
        id = "MD202"

        def check(self, ctx):
            yield self.finding("key 0123456789abcdef0123456789abcdef leaked", objects=[])

    report = run([Leaky], snapshot(ns("default")), SOURCE)
    assert "0123456789abcdef0123456789abcdef" not in report.findings[0].message


def test_required_inputs_is_the_union_of_declared_inputs():
    union = required_inputs([NeedsServiceEntry, EmptyConfigMap])
    assert union.kinds == {"ServiceEntry", "ConfigMap"}
    assert union.optional_kinds == {"Sidecar"}
    assert union.logs == {"agent"}


def test_an_empty_snapshot_leaves_every_rule_not_checked():
    report = run([EmptyConfigMap, NeedsServiceEntry], snapshot(), SOURCE)
    reason = "nothing to check: the input holds no Kubernetes object and no container log"
    assert [(r.rule, r.status, r.reason) for r in report.results] == [
        ("MD102", Status.NOT_CHECKED, reason),
        ("MD201", Status.NOT_CHECKED, reason),
    ]
    forbidden = snapshot(all_collected=False)
    forbidden.mark_missing("ConfigMap", "forbidden: cannot list configmaps")
    forbidden.mark_missing("ServiceEntry", "forbidden: cannot list serviceentries")

    class NoInputs(EmptyConfigMap):
        id = "MD202"
        inputs = inputs(optional=["ConfigMap"])

    assert [(r.rule, r.reason) for r in run([NeedsServiceEntry, NoInputs], forbidden, SOURCE).results] == [
        ("MD102", "input missing: ServiceEntry: forbidden: cannot list serviceentries"),
        ("MD202", "nothing was read: none of the 2 inputs the rules need could be collected (listed above)"),
    ]
