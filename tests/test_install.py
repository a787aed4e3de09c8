"""The install model: who renders an agent workload, and what the node agent leaves to the Cluster Agent."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from meshdoctor.datadog import permissions as ap
from meshdoctor.datadog.agent_account import agent_accounts
from meshdoctor.datadog.install import (
    HELM,
    MANIFESTS,
    OPERATOR,
    cluster_agent_use,
    install_of,
    is_cluster_agent_workload,
    owner_of,
)
from meshdoctor.datadog.permission_check import check_permissions
from meshdoctor.kube.bootstrap_policy import rbac_evaluator
from meshdoctor.model import ObjectRef
from meshdoctor.rule import Context
from meshdoctor.snapshot import Snapshot


def daemonset(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    env: list[dict[str, Any]] | None = None,
    account: str = "datadog",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "datadog", "namespace": "datadog"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owners:
        meta["ownerReferences"] = owners
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta,
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": account,
                    "containers": [{"name": "agent", "image": "gcr.io/datadoghq/agent:7.60.0", "env": env or []}],
                }
            }
        },
    }


def cluster_agent(name: str = "datadog-cluster-agent", account: str = "datadog-cluster-agent") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "datadog"},
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": account,
                    "containers": [
                        {
                            "name": "cluster-agent",
                            "image": "gcr.io/datadoghq/cluster-agent:7.60.0",
                            "env": [
                                {"name": "DD_LEADER_ELECTION", "value": "true"},
                                {"name": "DD_COLLECT_KUBERNETES_EVENTS", "value": "true"},
                            ],
                        }
                    ],
                }
            }
        },
    }


def snapshot(*objects: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for obj in objects:
        snap.add(obj)
    return snap


def test_helm_install_names_release_and_chart_from_what_helm_writes() -> None:
    owner = owner_of(
        daemonset(
            labels={"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "datadog-3.69.0"},
            annotations={"meta.helm.sh/release-name": "dd", "meta.helm.sh/release-namespace": "monitoring"},
        )
    )
    assert (owner.manager, owner.release, owner.release_namespace) == (HELM, "dd", "monitoring")
    assert (owner.chart, owner.chart_version, owner.is_datadog_chart) == ("datadog", "3.69.0", True)
    assert owner.describe() == "Helm release dd (chart datadog-3.69.0)"
    assert owner.evidence == (
        "label app.kubernetes.io/managed-by=Helm, annotation meta.helm.sh/release-name=dd, "
        "label helm.sh/chart=datadog-3.69.0"
    )


def test_helm_template_output_keeps_the_chart_labels_only() -> None:
    """`helm template | kubectl apply`: no release annotations; the instance label names it."""
    owner = owner_of(daemonset(labels={"heritage": "Helm", "release": "datadog", "chart": "datadog-2.30.5"}))
    assert (owner.manager, owner.release, owner.release_namespace, owner.chart_version) == (
        HELM,
        "datadog",
        "datadog",
        "2.30.5",
    )


def test_a_chart_label_without_managed_by_is_not_helm() -> None:
    assert owner_of(daemonset(labels={"helm.sh/chart": "datadog-3.69.0"})).manager == MANIFESTS


def test_operator_owner_wins_over_helm_labels_and_names_the_datadogagent() -> None:
    owner = owner_of(
        daemonset(
            labels={"app.kubernetes.io/managed-by": "datadog-operator", "agent.datadoghq.com/name": "datadog"},
            owners=[{"apiVersion": "datadoghq.com/v2alpha1", "kind": "DatadogAgent", "name": "datadog"}],
        )
    )
    assert owner.manager == OPERATOR
    assert owner.resource == ObjectRef("DatadogAgent", "datadog", "datadog")
    assert owner.describe() == "DatadogAgent datadog/datadog"


def test_plain_manifests() -> None:
    owner = owner_of(daemonset())
    assert (owner.manager, owner.describe()) == (MANIFESTS, "plain manifests")


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("true", True), ("1", True), ("True", True), ("yes", False), ("false", False), (None, False)],
)
def test_cluster_agent_enabled_parses_as_the_agent_does(value: str | None, enabled: bool) -> None:
    env = [] if value is None else [{"name": "DD_CLUSTER_AGENT_ENABLED", "value": value}]
    snap = snapshot(daemonset(env=env), cluster_agent())
    use = cluster_agent_use(snap, daemonset(env=env))
    assert use.enabled is enabled
    assert use.service_name == "datadog-cluster-agent"
    assert [d["metadata"]["name"] for d in use.deployments] == ["datadog-cluster-agent"]


def test_install_of_combines_owner_and_cluster_agent() -> None:
    ds = daemonset(env=[{"name": "DD_CLUSTER_AGENT_ENABLED", "value": "true"}])
    install = install_of(snapshot(ds), ds)
    assert (install.owner.manager, install.cluster_agent.enabled, str(install.ref)) == (
        MANIFESTS,
        True,
        "DaemonSet datadog/datadog",
    )


def test_cluster_agent_is_recognised_by_image() -> None:
    assert is_cluster_agent_workload(cluster_agent())
    assert not is_cluster_agent_workload(daemonset())


def test_node_agent_with_cluster_agent_needs_no_metadata_nor_componentstatuses() -> None:
    assert ap.required_features({"DD_CLUSTER_AGENT_ENABLED": "true"}) == [ap.KUBELET, ap.APISERVER_URLS]
    assert ap.required_features({"DD_CLUSTER_AGENT_ENABLED": "yes"}) == [
        ap.METADATA,
        ap.KUBELET,
        ap.APISERVER_URLS,
        ap.COMPONENT_STATUSES,
    ]


def test_cluster_agent_needs_metadata_events_leader_election_but_no_kubelet() -> None:
    env = {"DD_LEADER_ELECTION": "true", "DD_COLLECT_KUBERNETES_EVENTS": "true"}
    assert ap.required_features(env, cluster_agent=True) == [
        ap.METADATA,
        ap.NAMESPACES,
        ap.EVENTS,
        ap.LEADER_ELECTION,
        ap.COMPONENT_STATUSES,
    ]


def test_cluster_agent_needs_endpointslices_and_its_webhook_when_its_env_turns_them_on() -> None:
    env = {"DD_KUBERNETES_USE_ENDPOINT_SLICES": "true", "DD_ADMISSION_CONTROLLER_ENABLED": "true"}
    assert ap.required_features(env, cluster_agent=True) == [
        ap.METADATA,
        ap.NAMESPACES,
        ap.ENDPOINT_SLICES,
        ap.COMPONENT_STATUSES,
        ap.ADMISSION_CONTROLLER,
    ]
    # The node agent asks for none of them, whatever its env.
    assert ap.NAMESPACES not in ap.required_features(env)
    assert ap.ADMISSION_CONTROLLER not in ap.required_features(env)


def test_admission_webhook_requests_name_the_configured_webhook() -> None:
    env = {"DD_ADMISSION_CONTROLLER_WEBHOOK_NAME": "dd-webhook"}
    requests = ap.requests_for([ap.ADMISSION_CONTROLLER], "datadog", "datadog-cluster-agent", env=env)
    assert [(r.verb, r.resource, r.name) for r in requests] == [
        ("get", "mutatingwebhookconfigurations", "dd-webhook"),
        ("list", "mutatingwebhookconfigurations", "dd-webhook"),
        ("watch", "mutatingwebhookconfigurations", "dd-webhook"),
        ("update", "mutatingwebhookconfigurations", "dd-webhook"),
        ("create", "mutatingwebhookconfigurations", ""),
    ]


def _role(name: str, *resources: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": [""], "resources": list(resources), "verbs": ["get"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        ],
    }


def _binding(name: str, account: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "datadog"}],
    }


def _node(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n"},
        "status": {"nodeInfo": {"kubeletVersion": version}},
    }


FINE_GRAINED = (
    "nodes/metrics",
    "nodes/spec",
    "nodes/pods",
    "nodes/healthz",
    "nodes/configz",
    "nodes/logs",
    "nodes/stats",
)


@pytest.mark.parametrize(("kubelet", "denied"), [("v1.33.1", []), ("v1.32.4", ["kubelet"]), (None, [])])
def test_fine_grained_kubelet_rules_count_from_kubelet_1_33(kubelet: str | None, denied: list[str]) -> None:
    ds = daemonset(env=[{"name": "DD_CLUSTER_AGENT_ENABLED", "value": "true"}])
    objects = [ds, _role("datadog", *FINE_GRAINED), _binding("datadog", "datadog")]
    if kubelet:
        objects.append(_node(kubelet))
    ctx = Context(snapshot(*objects))
    (account,) = agent_accounts(ctx)
    check = check_permissions(rbac_evaluator(ctx), {}, account)
    assert check.denied_features() == denied


def test_cluster_agent_account_is_judged_on_cluster_metadata() -> None:
    objects = [daemonset(), cluster_agent(), _role("dca", "pods"), _binding("dca", "datadog-cluster-agent")]
    ctx = Context(snapshot(*objects))
    accounts = agent_accounts(ctx, with_cluster_agents=True)
    assert [(str(a.ref), a.what) for a in accounts] == [
        ("DaemonSet datadog/datadog", "agent"),
        ("Deployment datadog/datadog-cluster-agent", "Cluster Agent"),
    ]
    check = check_permissions(rbac_evaluator(ctx), {}, accounts[1])
    assert check.denied_features() == [
        ap.METADATA,
        ap.NAMESPACES,
        ap.EVENTS,
        ap.LEADER_ELECTION,
        ap.COMPONENT_STATUSES,
    ]
    assert agent_accounts(ctx) == accounts[:1]


# -- fixes aimed at the owner ---------------------------------------------------------------------

from meshdoctor.datadog.owner_fixes import aim_remediation  # noqa: E402
from meshdoctor.fixes.manifests import apply_manifests, clean_copy  # noqa: E402

HELM_LABELS = {"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "datadog-3.69.0"}
HELM_ANNOTATIONS = {"meta.helm.sh/release-name": "datadog", "meta.helm.sh/release-namespace": "datadog"}
OPERATOR_LABELS = {"app.kubernetes.io/managed-by": "datadog-operator", "agent.datadoghq.com/name": "datadog"}


def _with_site(ds: dict[str, Any], site: str) -> dict[str, Any]:
    fixed = clean_copy(ds)
    fixed["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DD_SITE", "value": site}]
    return fixed


def test_helm_owned_daemonset_fix_becomes_values_and_helm_upgrade() -> None:
    ds = daemonset(
        labels=HELM_LABELS, annotations=HELM_ANNOTATIONS, env=[{"name": "DD_SITE", "value": "app.datadoghq.eu"}]
    )
    fixed = _with_site(ds, "datadoghq.eu")
    aimed = aim_remediation(snapshot(ds), apply_manifests("Set DD_SITE.", [fixed], safe=True))
    assert aimed.manifests == ()
    assert aimed.commands == (
        "cat > meshdoctor-values.yaml <<'EOF'\ndatadog:\n  site: datadoghq.eu\nEOF",
        "helm upgrade datadog datadog/datadog --namespace datadog --version 3.69.0 --reuse-values "
        "-f meshdoctor-values.yaml --dry-run",
        "helm upgrade datadog datadog/datadog --namespace datadog --version 3.69.0 --reuse-values "
        "-f meshdoctor-values.yaml",
    )
    assert "rendered by Helm release datadog (chart datadog-3.69.0)" in aimed.summary
    assert len(aimed.alternative_manifests) == 1 and aimed.safe


def test_operator_owned_annotation_fix_becomes_a_datadogagent_merge_patch() -> None:
    ds = daemonset(labels=OPERATOR_LABELS)
    fixed = clean_copy(ds)
    fixed["spec"]["template"]["metadata"] = {"annotations": {"sidecar.istio.io/inject": "false"}}
    aimed = aim_remediation(snapshot(ds), apply_manifests("Out of the mesh.", [fixed], safe=True))
    patch = '{"spec":{"override":{"nodeAgent":{"annotations":{"sidecar.istio.io/inject":"false"}}}}}'
    assert aimed.commands == (
        f"kubectl patch datadogagent datadog -n datadog --type merge -p '{patch}' --dry-run=server",
        f"kubectl patch datadogagent datadog -n datadog --type merge -p '{patch}'",
    )
    assert "DatadogAgent datadog/datadog" in aimed.summary


def test_operator_fix_carries_the_corrected_datadogagent_when_it_is_in_the_snapshot() -> None:
    ds = daemonset(labels=OPERATOR_LABELS, env=[{"name": "DD_SITE", "value": "api.datadoghq.com"}])
    dda = {
        "apiVersion": "datadoghq.com/v2alpha1",
        "kind": "DatadogAgent",
        "metadata": {"name": "datadog", "namespace": "datadog", "uid": "u1"},
        "spec": {"global": {"site": "api.datadoghq.com", "credentials": {"apiSecret": {"secretName": "dd"}}}},
        "status": {"agent": {}},
    }
    aimed = aim_remediation(
        snapshot(ds, dda), apply_manifests("Set DD_SITE.", [_with_site(ds, "datadoghq.com")], safe=True)
    )
    (manifest,) = aimed.manifests
    assert yaml.safe_load(manifest) == {
        "apiVersion": "datadoghq.com/v2alpha1",
        "kind": "DatadogAgent",
        "metadata": {"name": "datadog", "namespace": "datadog"},
        "spec": {"global": {"site": "datadoghq.com", "credentials": {"apiSecret": {"secretName": "dd"}}}},
    }


def test_a_change_the_owner_has_no_setting_for_keeps_the_object_and_says_so() -> None:
    ds = daemonset(labels=HELM_LABELS, annotations=HELM_ANNOTATIONS)
    fixed = clean_copy(ds)
    fixed["spec"]["template"]["spec"]["hostNetwork"] = True
    original = apply_manifests("Use the host network.", [fixed], safe=True)
    aimed = aim_remediation(snapshot(ds), original)
    assert aimed.manifests == original.manifests and not aimed.safe
    assert aimed.summary.endswith(
        "which has no setting for spec.template.spec.hostNetwork: the next render reverts it."
    )


def test_plain_manifests_keep_their_fix() -> None:
    ds = daemonset()
    original = apply_manifests("Set DD_SITE.", [_with_site(ds, "datadoghq.eu")], safe=True)
    assert aim_remediation(snapshot(ds), original) == original
