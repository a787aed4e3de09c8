"""The rbac family MD401-MD405: exact messages, fixes that fix, offline honesty, live answers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshdoctor_rules import rbac
from meshdoctor_rules.rbac.denied_requests import describe_requests
from meshdoctor_rules.rbac.md401_default_service_account import AgentServiceAccountUnset
from meshdoctor_rules.rbac.md402_service_account_missing import AgentServiceAccountMissing
from meshdoctor_rules.rbac.md403_subject_wrong_namespace import BindingSubjectWrongNamespace
from meshdoctor_rules.rbac.md404_bound_role_missing import BoundRoleMissing
from meshdoctor_rules.rbac.md405_permissions_missing import FEATURE_SEVERITY, AgentPermissionsMissing

from meshdoctor.datadog.agent_account import agent_accounts
from meshdoctor.datadog.permission_check import check_permissions, rules_for_denied
from meshdoctor.datadog.permissions import EVENTS, KUBELET, LEADER_ELECTION, METADATA
from meshdoctor.engine import run
from meshdoctor.kube.bootstrap_policy import rbac_evaluator, with_bootstrap_policy
from meshdoctor.kube.layered_reader import LayeredReader
from meshdoctor.kube.rbac import RbacEvaluator, Request, request_record, service_account_user
from meshdoctor.model import ProbeEvidence, Severity, Status
from meshdoctor.rule import Context
from meshdoctor.snapshot import Snapshot
from meshdoctor.sources import load_offline

ROOT = Path(__file__).resolve().parent.parent
RULE_FIXTURES = ROOT / "fixtures" / "rules"
SCENARIOS = ROOT / "fixtures" / "scenarios"
FAMILY = rbac.RULES
USER, GROUPS = service_account_user("datadog", "datadog-agent")


def load(*folders: Path) -> Snapshot:
    snapshot, _ = load_offline([str(f) for f in folders])
    return snapshot


def findings(rule: type, snapshot: Snapshot) -> list[Any]:
    return list(rule().check(Context(snapshot)))


def fixture(rule_id: str, case: str) -> Path:
    return RULE_FIXTURES / rule_id / case


# -- the family --------------------------------------------------------------------------------


def test_family_ids_titles_and_order():
    assert [(r.id, r.title) for r in FAMILY] == [
        ("MD401", "Agent runs as the default service account, not the one its RBAC binds"),
        ("MD402", "Agent DaemonSet names a service account that does not exist"),
        ("MD403", "RBAC binding names the agent's service account in another namespace"),
        ("MD404", "The agent's RBAC binding refers to a role that does not exist"),
        ("MD405", "The agent's service account lacks permissions the agent needs"),
    ]
    for rule in FAMILY:
        assert rule.category.value == "rbac"
        assert rule.docs.what and rule.docs.why and rule.docs.fix and rule.docs.references


def test_rules_that_evaluate_rbac_require_every_rbac_kind():
    for rule in (
        AgentServiceAccountUnset,
        BindingSubjectWrongNamespace,
        BoundRoleMissing,
        AgentPermissionsMissing,
    ):
        assert {
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "DaemonSet",
        } <= rule.inputs.kinds
    assert AgentServiceAccountMissing.inputs.kinds == frozenset({"DaemonSet"})


# -- exact messages ----------------------------------------------------------------------------


def test_md402_message_and_service_account_manifest():
    (finding,) = findings(AgentServiceAccountMissing, load(fixture("MD402", "failing")))
    assert finding.message == (
        "DaemonSet datadog/datadog-agent runs its pods as service account datadog/datadog-agent, "
        "which is not in the namespace: the API server refuses to create the agent pods (error "
        "looking up service account)."
    )
    assert [str(o) for o in finding.objects] == [
        "DaemonSet datadog/datadog-agent",
        "ServiceAccount datadog/datadog-agent",
    ]
    assert [yaml.safe_load(m) for m in finding.remediation.manifests] == [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "datadog-agent", "namespace": "datadog"},
        },
    ]
    assert finding.remediation.safe is True


def test_md402_quotes_the_failed_create_event_in_the_scenario():
    snapshot = load(SCENARIOS / "rbac-serviceaccount-missing")
    (finding,) = findings(AgentServiceAccountMissing, snapshot)
    paths = [(str(e.object), e.path, e.value) for e in finding.evidence]
    assert paths == [
        (
            "DaemonSet datadog/datadog-agent",
            "spec.template.spec.serviceAccountName",
            "datadog-agent",
        ),
        ("DaemonSet datadog/datadog-agent", "status.currentNumberScheduled", "0"),
        (
            "Event datadog/datadog-agent.17f2c3a9d0b1e4c5",
            "message",
            'Error creating: pods "datadog-agent-" is forbidden: error looking up service account '
            'datadog/datadog-agent: serviceaccount "datadog-agent" not found',
        ),
    ]


def test_md403_message_and_corrected_binding():
    (finding,) = findings(BindingSubjectWrongNamespace, load(fixture("MD403", "failing")))
    assert finding.message == (
        "ClusterRoleBinding datadog-agent grants ClusterRole datadog-agent to service account "
        "default/datadog-agent, but DaemonSet datadog/datadog-agent runs as datadog/datadog-agent: "
        "the agent is denied what it needs for kubernetes-metadata: get/list/watch pods, nodes, "
        "services, endpoints; events: get/list/watch events, get/update configmaps "
        '"datadogtoken" in datadog; kubelet: get nodes/metrics, nodes/spec, nodes/proxy, '
        "nodes/stats; apiserver-urls: get /metrics; componentstatuses: get/list/watch "
        "componentstatuses."
    )
    (manifest,) = finding.remediation.manifests
    assert yaml.safe_load(manifest) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "datadog-agent"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "datadog-agent",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"}],
    }


def test_md404_message_names_the_group_and_writes_the_role_for_the_features_used():
    (finding,) = findings(BoundRoleMissing, load(fixture("MD404", "failing-group-subject")))
    assert finding.message.startswith(
        "ClusterRoleBinding datadog-accounts binds group system:serviceaccounts:datadog (which "
        "holds datadog/datadog-agent) to ClusterRole datadog-reader, which does not exist: the "
        "binding grants nothing and the agent is denied what it needs for kubernetes-metadata:"
    )
    (manifest,) = finding.remediation.manifests
    role = yaml.safe_load(manifest)
    assert role["kind"] == "ClusterRole" and role["metadata"] == {"name": "datadog-reader"}
    assert [r.get("resources") or r.get("nonResourceURLs") for r in role["rules"]] == [
        ["pods", "nodes", "services", "endpoints"],
        ["nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"],
        ["/version", "/healthz", "/metrics"],
        ["componentstatuses"],
    ]


def test_md404_role_covers_both_leader_election_resources_unless_pinned():
    snapshot = load(fixture("MD404", "failing"))
    ds = snapshot.get("DaemonSet", "datadog", "datadog-agent")
    ds["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DD_LEADER_ELECTION", "value": "true"}]
    (finding,) = findings(BoundRoleMissing, snapshot)
    role = yaml.safe_load(finding.remediation.manifests[0])
    groups = [(tuple(r.get("apiGroups", [])), tuple(r.get("resources", []))) for r in role["rules"]]
    assert (("",), ("configmaps",)) in groups
    assert (("coordination.k8s.io",), ("leases",)) in groups


def test_md405_message_severity_and_whole_role_with_the_rule_added():
    snapshot = load(fixture("MD405", "failing"))
    (finding,) = findings(AgentPermissionsMissing, snapshot)
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        "DaemonSet datadog/datadog-agent runs as datadog/datadog-agent, which is denied what it "
        "needs for kubelet: get nodes/metrics, nodes/spec, nodes/proxy, nodes/stats."
    )
    (evidence,) = [e for e in finding.evidence if isinstance(e, ProbeEvidence)]
    assert evidence == ProbeEvidence(
        "kubelet: get nodes/metrics, nodes/spec, nodes/proxy, nodes/stats",
        False,
        "offline evaluation of the snapshot's RBAC: denied (no rule bound to datadog/datadog-agent allows it)",
    )
    (manifest,) = finding.remediation.manifests
    fixed = yaml.safe_load(manifest)
    original = snapshot.get("ClusterRole", "", "datadog-agent")
    assert fixed["rules"][:-1] == original["rules"]
    assert fixed["rules"][-1] == {
        "apiGroups": [""],
        "resources": ["nodes/metrics", "nodes/spec", "nodes/proxy", "nodes/stats"],
        "verbs": ["get"],
    }


@pytest.mark.parametrize(
    "case,severity,features",
    [
        ("failing", Severity.ERROR, ["kubelet"]),
        ("failing-aggregation", Severity.ERROR, ["kubelet"]),
        ("failing-discovery-bindings-changed", Severity.WARNING, ["apiserver-urls"]),
        ("failing-events-from-configmap", Severity.WARNING, ["events"]),
        ("failing-lease-leader-election", Severity.WARNING, ["leader-election-lease"]),
        (
            "failing-rolebinding-namespace-only",
            Severity.ERROR,
            ["kubernetes-metadata", "kubelet", "apiserver-urls", "componentstatuses"],
        ),
    ],
)
def test_md405_severity_follows_the_worst_denied_feature(case, severity, features):
    snapshot = load(fixture("MD405", case))
    (finding,) = findings(AgentPermissionsMissing, snapshot)
    assert finding.severity is severity
    (account,) = agent_accounts(Context(snapshot))
    check = check_permissions(rbac_evaluator(Context(snapshot)), {}, account)
    assert check.denied_features() == features


def test_md405_namespace_only_binding_is_fixed_with_a_clusterrolebinding_to_the_same_role():
    (finding,) = findings(AgentPermissionsMissing, load(fixture("MD405", "failing-rolebinding-namespace-only")))
    assert [yaml.safe_load(m) for m in finding.remediation.manifests] == [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "datadog-agent"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "datadog-agent",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"}],
        }
    ]


def test_md405_aggregated_role_gets_a_labelled_piece_not_an_edit():
    (finding,) = findings(AgentPermissionsMissing, load(fixture("MD405", "failing-aggregation")))
    (manifest,) = finding.remediation.manifests
    assert yaml.safe_load(manifest)["metadata"] == {
        "name": "datadog-agent-extra",
        "labels": {"rbac.datadoghq.com/aggregate-to-agent": "true"},
    }


def test_md405_without_any_binding_adds_a_clusterrole_and_its_binding():
    snapshot = load(fixture("MD405", "failing"))
    snapshot._by_kind["ClusterRoleBinding"].clear()  # noqa: SLF001 - the agent bound to nothing
    snapshot._sorted.pop("ClusterRoleBinding", None)  # noqa: SLF001
    (finding,) = findings(AgentPermissionsMissing, snapshot)
    role, binding = (yaml.safe_load(m) for m in finding.remediation.manifests)
    # ClusterRole datadog-agent exists (unbound): the new role takes a free name.
    assert role["metadata"] == {"name": "datadog-agent-datadog"}
    assert binding["roleRef"]["name"] == "datadog-agent-datadog"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "datadog-agent", "namespace": "datadog"}]


# -- every fix fixes ---------------------------------------------------------------------------

FAILING_CASES = sorted(
    (rule, case.name)
    for rule in ("MD401", "MD402", "MD403", "MD404", "MD405")
    for case in (RULE_FIXTURES / rule).iterdir()
    if case.is_dir() and case.name.startswith("failing")
) + [
    ("scenario", name)
    for name in (
        "rbac-binding-wrong-namespace",
        "rbac-clusterrole-missing",
        "rbac-missing-kubelet-permissions",
        "rbac-serviceaccount-missing",
    )
]


@pytest.mark.parametrize("rule_id,case", FAILING_CASES, ids=lambda v: str(v))
def test_applying_the_remediation_leaves_no_rbac_finding(rule_id, case, tmp_path):
    folder = SCENARIOS / case if rule_id == "scenario" else fixture(rule_id, case)
    snapshot, source = load_offline([str(folder)])
    report = run(FAMILY, snapshot, source)
    found = [f for f in report.findings if f.rule.startswith("MD4")]
    assert found, "the case must fail"
    for index, finding in enumerate(found):
        for number, manifest in enumerate(finding.remediation.manifests):
            text = manifest.replace("<redacted: was a literal secret; use a secretKeyRef>", "x")
            (tmp_path / f"fix-{index}-{number}.yaml").write_text(text)
    fixed, fixed_source = load_offline([str(folder), str(tmp_path)])
    after = run(FAMILY, fixed, fixed_source)
    assert [f.rule for f in after.findings] == []
    assert {r.status for r in after.results} == {Status.PASSED}


# -- offline honesty ---------------------------------------------------------------------------


def write_dump(root: Path, events: list[dict[str, Any]]) -> Path:
    """A `kubectl cluster-info dump` of the agent DaemonSet: no RBAC objects, no ServiceAccounts."""
    ds = yaml.safe_load((fixture("MD402", "failing") / "cluster.yaml").read_text().split("---\n")[-1])
    ds.pop("kind")
    ds.pop("apiVersion")
    (root / "datadog").mkdir(parents=True)
    (root / "nodes.json").write_text(json.dumps({"kind": "NodeList", "apiVersion": "v1", "items": []}))
    (root / "datadog" / "daemonsets.json").write_text(
        json.dumps({"kind": "DaemonSetList", "apiVersion": "apps/v1", "items": [ds]})
    )
    (root / "datadog" / "events.json").write_text(
        json.dumps({"kind": "EventList", "apiVersion": "v1", "items": events})
    )
    (root / "datadog" / "pods.json").write_text(json.dumps({"kind": "PodList", "apiVersion": "v1", "items": []}))
    return root


FAILED_CREATE = {
    "metadata": {"name": "datadog-agent.1", "namespace": "datadog"},
    "involvedObject": {"kind": "DaemonSet", "namespace": "datadog", "name": "datadog-agent"},
    "reason": "FailedCreate",
    "type": "Warning",
    "message": 'Error creating: pods "datadog-agent-" is forbidden: error looking up service '
    'account datadog/datadog-agent: serviceaccount "datadog-agent" not found',
}


def test_a_dump_has_no_rbac_objects_so_the_rules_are_not_checked(tmp_path):
    snapshot, source = load_offline([str(write_dump(tmp_path / "dump", []))])
    report = run(FAMILY, snapshot, source)
    results = {r.rule: (r.status, r.reason) for r in report.results}
    for rule in ("MD401", "MD403", "MD404", "MD405"):
        status, reason = results[rule]
        assert status is Status.NOT_CHECKED
        assert reason is not None and reason.startswith("input missing: ClusterRole: ")
    status, reason = results["MD402"]
    assert status is Status.NOT_CHECKED
    assert reason is not None and reason.endswith(
        "and no event of the agent DaemonSet tells whether datadog/datadog-agent exists"
    )
    assert report.findings == ()


def test_a_dump_with_the_failed_create_event_proves_the_account_missing(tmp_path):
    snapshot, source = load_offline([str(write_dump(tmp_path / "dump", [FAILED_CREATE]))])
    report = run([AgentServiceAccountMissing], snapshot, source)
    (finding,) = report.findings
    assert "the DaemonSet's events say so; the input has no ServiceAccounts" in finding.message


# -- built-in discovery grants -----------------------------------------------------------------


def test_bootstrap_policy_is_added_only_where_the_snapshot_has_no_object_of_that_name():
    snapshot = Snapshot()
    changed = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:discovery"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:discovery",
        },
        "subjects": [],
    }
    snapshot.add(changed)
    snapshot.mark_all_collected()
    reader = with_bootstrap_policy(snapshot)
    names = [o["metadata"]["name"] for o in reader.objects("ClusterRoleBinding")]
    assert names == ["system:discovery", "system:public-info-viewer"]
    assert reader.get("ClusterRoleBinding", "", "system:discovery") is changed
    evaluator = RbacEvaluator(reader)
    version = Request(USER, GROUPS, "get", non_resource_url="/version")
    metrics = Request(USER, GROUPS, "get", non_resource_url="/metrics")
    assert evaluator.allows(version).allowed  # through system:public-info-viewer, untouched
    assert not evaluator.allows(metrics).allowed  # never a default grant


def test_layered_reader_extra_wins_or_yields():
    snapshot = Snapshot()
    base = {"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": []}
    extra = {"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]}
    snapshot.add(base)
    assert LayeredReader(snapshot, [extra], extra_wins=True).objects("ClusterRole") == [extra]
    assert LayeredReader(snapshot, [extra], extra_wins=False).objects("ClusterRole") == [base]
    assert LayeredReader(snapshot, [extra], extra_wins=False).get("ClusterRole", "", "r") is base


# -- describing and building rules ------------------------------------------------------------


def test_describe_requests_groups_verbs_over_targets():
    requests = [
        Request(USER, GROUPS, verb, "", resource, "", "", "")
        for resource in ("pods", "nodes")
        for verb in ("get", "list", "watch")
    ] + [
        Request(USER, GROUPS, "get", "", "nodes", "proxy"),
        Request(USER, GROUPS, "update", "", "configmaps", "", "datadog", "datadogtoken"),
        Request(USER, GROUPS, "get", non_resource_url="/metrics"),
    ]
    assert describe_requests(requests) == (
        'get/list/watch pods, nodes, get nodes/proxy, /metrics, update configmaps "datadogtoken" in datadog'
    )


def test_rules_for_denied_grant_exactly_the_denied_requests_per_row():
    snapshot = load(fixture("MD405", "failing-lease-leader-election"))
    ctx = Context(snapshot)
    (account,) = agent_accounts(ctx)
    check = check_permissions(rbac_evaluator(ctx), {}, account)
    assert rules_for_denied(check.denied, account.env) == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["datadog-leader-election"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]


def test_leader_election_alternative_counts_only_when_the_resource_is_not_pinned():
    snapshot = load(fixture("MD405", "passing-lease-alternative"))
    assert findings(AgentPermissionsMissing, snapshot) == []
    ds = snapshot.get("DaemonSet", "datadog", "datadog-agent")
    ds["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "DD_LEADER_ELECTION_DEFAULT_RESOURCE", "value": "configmap"}
    )
    (finding,) = findings(AgentPermissionsMissing, snapshot)
    assert finding.severity is Severity.WARNING
    assert 'leader-election: get/update configmaps "datadog-leader-election" in datadog' in finding.message


def test_feature_severities():
    assert FEATURE_SEVERITY[METADATA] is Severity.ERROR
    assert FEATURE_SEVERITY[KUBELET] is Severity.ERROR
    assert FEATURE_SEVERITY[EVENTS] is Severity.WARNING
    assert FEATURE_SEVERITY[LEADER_ELECTION] is Severity.WARNING


# -- one finding per root cause ----------------------------------------------------------------


@pytest.mark.parametrize(
    "folder,expected",
    [
        (SCENARIOS / "seed-broken", ["MD401"]),
        (SCENARIOS / "rbac-binding-wrong-namespace", ["MD403"]),
        (SCENARIOS / "rbac-clusterrole-missing", ["MD404"]),
        (SCENARIOS / "rbac-missing-kubelet-permissions", ["MD405"]),
        (SCENARIOS / "rbac-serviceaccount-missing", ["MD402"]),
        (SCENARIOS / "istiod-clean", []),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_md405_leaves_denials_to_the_rule_that_explains_them(folder, expected):
    snapshot, source = load_offline([str(folder)])
    report = run(FAMILY, snapshot, source)
    assert [f.rule for f in report.findings] == expected


# -- live SubjectAccessReview answers ---------------------------------------------------------


def with_live_answers(snapshot: Snapshot, allowed: dict[str, bool]) -> None:
    """Record SubjectAccessReview answers the way the live source does, for every agent request."""
    from meshdoctor.sources.live import agent_requests

    answers = []
    for request in agent_requests(snapshot):
        verdict = allowed.get(request.describe())
        if verdict is None:
            verdict = RbacEvaluator(with_bootstrap_policy(snapshot)).allows(request).allowed
        answers.append(
            {
                "request": request_record(request),
                "allowed": verdict,
                "denied": False,
                "reason": "RBAC: allowed by ClusterRoleBinding" if verdict else "",
                "evaluation_error": "",
            }
        )
    snapshot.probes["rbac"] = {"available": True, "reason": None, "answers": answers}


def test_live_allowed_wins_over_an_offline_denial():
    snapshot = load(fixture("MD405", "failing"))
    with_live_answers(
        snapshot,
        {f"get nodes/{sub} cluster-wide": True for sub in ("metrics", "spec", "proxy", "stats")},
    )
    assert findings(AgentPermissionsMissing, snapshot) == []


def test_live_denial_is_reported_with_both_verdicts_and_the_disagreement():
    snapshot = load(fixture("MD405", "passing"))
    with_live_answers(snapshot, {"get nodes/proxy cluster-wide": False})
    (finding,) = findings(AgentPermissionsMissing, snapshot)
    assert finding.message == (
        "DaemonSet datadog/datadog-agent runs as datadog/datadog-agent, which is denied what it "
        "needs for kubelet: get nodes/proxy. The API server and the snapshot's RBAC disagree on 1 "
        "request(s); the API server's answers count."
    )
    probes = [e for e in finding.evidence if isinstance(e, ProbeEvidence)]
    assert probes == [
        ProbeEvidence(
            "get nodes/proxy cluster-wide",
            False,
            "SubjectAccessReview: denied; offline evaluation of the snapshot's RBAC: allowed by "
            "ClusterRoleBinding datadog-agent of ClusterRole datadog-agent; the two disagree: the "
            "API server's answer counts (another authorizer, or RBAC objects changed since the "
            "snapshot)",
        )
    ]


def test_requests_match_the_live_source_exactly():
    """The rule asks the same questions the live source recorded answers for."""
    from meshdoctor.sources.live import agent_requests

    snapshot = load(fixture("MD405", "failing-events-from-configmap"))
    ctx = Context(snapshot)
    (account,) = agent_accounts(ctx)
    asked = set(agent_requests(snapshot))
    check = check_permissions(rbac_evaluator(ctx), {}, account)
    assert check.verdicts and all(v.request in asked for v in check.verdicts)


def test_md401_is_silent_when_default_holds_the_permissions_through_a_group():
    assert findings(AgentServiceAccountUnset, load(fixture("MD401", "passing-group-binding"))) == []
    snapshot = load(fixture("MD401", "passing-group-binding"))
    group_binding = snapshot.get("ClusterRoleBinding", "", "datadog-namespace-accounts")
    removed = copy.deepcopy(group_binding)
    removed["subjects"] = []
    snapshot.add(removed)
    (finding,) = findings(AgentServiceAccountUnset, snapshot)
    assert finding.message.startswith(
        "DaemonSet datadog/datadog-agent runs as service account 'default', but "
        "ClusterRoleBinding datadog-agent grants ClusterRole datadog-agent to "
        "datadog/datadog-agent: as 'default' the agent is denied what it needs for "
        "kubernetes-metadata: get/list/watch pods, nodes, services, endpoints; events:"
    )


def test_md405_reports_what_remains_once_md403_is_fixed():
    snapshot, source = load_offline([str(fixture("MD405", "failing-after-md403"))])
    report = run(FAMILY, snapshot, source)
    assert [f.rule for f in report.findings] == ["MD403", "MD405"]
    md405 = report.findings[1]
    assert md405.message == (
        "DaemonSet datadog/datadog-agent, even once the fix of MD403 is applied (running as "
        "datadog/datadog-agent), is denied what it needs for kubelet: get nodes/metrics, "
        "nodes/spec, nodes/proxy, nodes/stats."
    )
    assert md405.remediation.summary.endswith("Apply it after the fix of MD403.")
    (manifest,) = md405.remediation.manifests
    assert yaml.safe_load(manifest)["metadata"] == {"name": "datadog-agent"}


def test_md405_judges_the_bound_account_once_md401_is_fixed():
    snapshot, source = load_offline([str(fixture("MD405", "failing-after-md401"))])
    report = run(FAMILY, snapshot, source)
    assert [f.rule for f in report.findings] == ["MD401", "MD405"]
    assert "(running as datadog/datadog-agent)" in report.findings[1].message


def role_binding_snapshot(binding_kind: str) -> Snapshot:
    """The MD404 failing fixture with its binding turned into one referring to a Role."""
    snapshot = load(fixture("MD404", "failing"))
    old = snapshot.get("ClusterRoleBinding", "", "datadog-agent")
    binding = copy.deepcopy(old)
    binding["roleRef"]["kind"] = "Role"
    binding["kind"] = binding_kind
    if binding_kind == "RoleBinding":
        binding["metadata"]["namespace"] = "datadog"
        snapshot._by_kind["ClusterRoleBinding"].clear()  # noqa: SLF001
        snapshot._sorted.pop("ClusterRoleBinding", None)  # noqa: SLF001
    snapshot.add(binding)
    return snapshot


def test_md404_missing_role_of_a_rolebinding_is_a_role_without_non_resource_urls():
    (finding,) = findings(BoundRoleMissing, role_binding_snapshot("RoleBinding"))
    assert finding.message.startswith(
        "RoleBinding datadog/datadog-agent binds datadog/datadog-agent to Role datadog-agent, which does not exist:"
    )
    (manifest,) = finding.remediation.manifests
    role = yaml.safe_load(manifest)
    assert role["kind"] == "Role"
    assert role["metadata"] == {"name": "datadog-agent", "namespace": "datadog"}
    assert all("nonResourceURLs" not in r for r in role["rules"])
    assert "need a ClusterRole and a ClusterRoleBinding (see MD405)" in finding.remediation.summary


def test_md404_clusterrolebinding_to_a_role_is_pointed_at_a_new_clusterrole():
    (finding,) = findings(BoundRoleMissing, role_binding_snapshot("ClusterRoleBinding"))
    assert "which it cannot use (a ClusterRoleBinding cannot refer to a Role)" in finding.message
    role, binding = (yaml.safe_load(m) for m in finding.remediation.manifests)
    assert (role["kind"], role["metadata"]["name"]) == ("ClusterRole", "datadog-agent")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "datadog-agent",
    }
