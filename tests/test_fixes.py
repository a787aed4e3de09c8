"""`--emit-fixes`: one YAML stream per unsuppressed finding with manifests, and an index."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from meshdoctor.errors import UsageError
from meshdoctor.fixes.emit import apply_commands, emit_fixes, fix_stem, plan_fixes
from meshdoctor.model import (
    Category,
    ClusterInfo,
    Finding,
    ObjectRef,
    Remediation,
    Report,
    RuleResult,
    Severity,
    SourceInfo,
    Status,
    summarize,
)

AGENT = ObjectRef("DaemonSet", "default", "datadog-agent")
ROLE = ObjectRef("ClusterRole", "", "datadog-agent")

SERVICE_ENTRY = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: datadog-intake
  namespace: default
spec:
  hosts: ['*.datadoghq.com']
  ports:
  - {number: 443, name: https, protocol: TLS}
"""

SIDECAR = """---
apiVersion: networking.istio.io/v1beta1
kind: Sidecar
metadata:
  name: datadog-agent
  namespace: default
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}"""  # leading `---`, no final newline: normalised

CLUSTER_ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: datadog-agent
rules:
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
"""


def finding(
    rule: str,
    objects: tuple[ObjectRef, ...],
    *manifests: str,
    safe: bool = True,
    severity: Severity = Severity.ERROR,
    suppressed_by: str | None = None,
) -> Finding:
    remediation = Remediation(summary=f"Fix {rule} | now.", manifests=manifests, safe=safe) if manifests else None
    return Finding(
        rule=rule,
        category=Category.EGRESS if rule.startswith("MD1") else Category.RBAC,
        severity=severity,
        title=f"Title of {rule}",
        message="m",
        objects=objects,
        remediation=remediation,
        suppressed_by=suppressed_by,
    )


def report(*findings: Finding) -> Report:
    return Report(
        version="0.1.0",
        source=SourceInfo("files", "cluster/"),
        cluster=ClusterInfo("1.22.3", "istiod", "datadoghq.com"),
        results=tuple(RuleResult(f.rule, f.category, Status.FAILED) for f in findings),
        findings=findings,
        summary=summarize(findings),
    )


EGRESS = finding("MD101", (AGENT,), SERVICE_ENTRY, SIDECAR)
EGRESS_AGAIN = finding("MD101", (AGENT, ROLE), SERVICE_ENTRY)
EGRESS_THIRD = finding("MD101", (AGENT,), SERVICE_ENTRY, severity=Severity.WARNING)
RBAC = finding("MD402", (ROLE, AGENT), CLUSTER_ROLE, safe=False)
NO_MANIFEST = finding("MD301", (AGENT,))
SUPPRESSED = finding("MD501", (AGENT,), SERVICE_ENTRY, suppressed_by="DaemonSet default/datadog-agent")
REPORT = report(EGRESS, EGRESS_AGAIN, EGRESS_THIRD, RBAC, NO_MANIFEST, SUPPRESSED)

NAMES = [
    "MD101-daemonset-default-datadog-agent.yaml",
    "MD101-daemonset-default-datadog-agent-2.yaml",
    "MD101-daemonset-default-datadog-agent-3.yaml",
    "MD402-clusterrole-_cluster-datadog-agent.yaml",
]


def test_one_file_per_unsuppressed_finding_with_manifests_in_report_order(tmp_path):
    out = tmp_path / "deep" / "fixes"
    written = emit_fixes(REPORT, out)
    assert [p.name for p in written] == NAMES
    assert all(p.parent == out for p in written)
    assert sorted(p.name for p in out.iterdir()) == sorted([*NAMES, "index.md"])


def test_files_are_valid_multi_document_streams_of_kubernetes_objects(tmp_path):
    emit_fixes(REPORT, tmp_path)
    for name in NAMES:
        docs = list(yaml.safe_load_all((tmp_path / name).read_text()))
        assert docs and all(isinstance(d, dict) and {"apiVersion", "kind", "metadata"} <= set(d) for d in docs)
    first = list(yaml.safe_load_all((tmp_path / NAMES[0]).read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in first] == [
        ("ServiceEntry", "datadog-intake"),
        ("Sidecar", "datadog-agent"),
    ]
    role = list(yaml.safe_load_all((tmp_path / NAMES[3]).read_text()))
    assert role == [yaml.safe_load(CLUSTER_ROLE)]


def test_stream_layout_is_exact():
    [first, *_] = plan_fixes(REPORT)
    assert first.content == (
        "# MD101 (error): Title of MD101\n"
        "# objects: DaemonSet default/datadog-agent\n"
        "# safe to apply as is\n" + SERVICE_ENTRY + "---\n" + SIDECAR.removeprefix("---\n") + "\n"
    )


def test_index_lists_each_file_with_rule_severity_objects_summary_and_safety(tmp_path):
    emit_fixes(REPORT, tmp_path)
    index = (tmp_path / "index.md").read_text()
    for name in NAMES:
        assert f"| [{name}]({name}) |" in index
        assert f"## {name}\n" in index
        assert f"```sh\nkubectl apply -f {name}\n```\n" in index
    assert (
        f"| [{NAMES[3]}]({NAMES[3]}) | MD402 | error "
        "| ClusterRole datadog-agent, DaemonSet default/datadog-agent | needs review |"
    ) in index
    assert "| MD101 | warning | DaemonSet default/datadog-agent | safe as is |" in index
    assert "Fix MD402 | now. Needs review before applying." in index
    assert "Fix MD101 | now. Safe to apply as is." in index
    assert "MD501" not in index and "MD301" not in index
    assert "4 files" in index


def test_nothing_to_fix_writes_only_the_index(tmp_path):
    assert emit_fixes(report(NO_MANIFEST, SUPPRESSED), tmp_path / "fixes") == []
    assert [p.name for p in (tmp_path / "fixes").iterdir()] == ["index.md"]
    assert "No unsuppressed finding comes with a manifest to apply." in (tmp_path / "fixes" / "index.md").read_text()


def test_emitting_twice_gives_the_same_files(tmp_path):
    emit_fixes(REPORT, tmp_path / "a")
    emit_fixes(REPORT, tmp_path / "b")
    for name in [*NAMES, "index.md"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_file_names_stay_inside_the_folder():
    odd = dataclasses.replace(EGRESS, objects=(ObjectRef("Weird/Kind", "../..", "a b"),))
    assert fix_stem(odd) == "MD101-weird_kind-_-a_b"
    assert fix_stem(dataclasses.replace(EGRESS, objects=())) == "MD101"


def test_a_name_that_already_ends_in_a_counter_does_not_collide():
    clash = finding("MD101", (ObjectRef("DaemonSet", "default", "datadog-agent-2"),), SERVICE_ENTRY)
    names = [f.name for f in plan_fixes(report(EGRESS, EGRESS_AGAIN, clash))]
    assert names == [
        "MD101-daemonset-default-datadog-agent.yaml",
        "MD101-daemonset-default-datadog-agent-2.yaml",
        "MD101-daemonset-default-datadog-agent-2-2.yaml",
    ]


def test_a_folder_that_cannot_be_written_is_a_usage_error(tmp_path):
    blocker = tmp_path / "fixes"
    blocker.write_text("a file, not a folder")
    with pytest.raises(UsageError, match=f"cannot write remediation files to {blocker}: "):
        emit_fixes(REPORT, blocker)


def test_index_commands_name_the_file_written():
    remediation = Remediation(
        summary="s",
        manifests=(SERVICE_ENTRY,),
        commands=(
            "kubectl -n default create secret generic x",
            "kubectl apply --dry-run=server -f <file>",
            "kubectl apply -f <file>",
        ),
    )
    fix = dataclasses.replace(EGRESS, remediation=remediation)
    [planned] = plan_fixes(report(fix))
    assert apply_commands(planned) == [
        "kubectl -n default create secret generic x",
        f"kubectl apply --dry-run=server -f {NAMES[0]}",
        f"kubectl apply -f {NAMES[0]}",
    ]
