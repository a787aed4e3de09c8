"""Logs alone (issue 12 point 3): every log rule runs, lines are attributed by file, the rest says how to collect it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from meshdoctor.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
API_KEY_403 = ROOT / "fixtures" / "scenarios" / "logs-api-key-403"
AGENT_LOG = API_KEY_403 / "logs" / "datadog" / "datadog-agent-7xk2p" / "agent.log"
LOG_RULES = ["MD601", "MD602", "MD603", "MD604", "MD605"]


def invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as streams:
        code = main(list(args))
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return code, out.decode(), err.decode()


def results(report: dict) -> dict[str, tuple[str, str | None]]:
    return {r["rule"]: (r["status"], r["reason"]) for r in report["results"]}


def test_a_plain_agent_log_is_read_as_the_log_of_a_pod_named_after_the_file():
    code, out, err = invoke("check", "--from", str(AGENT_LOG), "-o", "json")
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert report["source"] == {
        "kind": "files",
        "target": str(AGENT_LOG),
        "missing": [
            "objects: none in the input (logs only): every rule but the log rules is not checked, and its "
            "reason names the `kubectl get` that exports each kind it needs"
        ],
    }
    [finding] = report["findings"]
    assert finding["rule"] == "MD602"
    assert finding["objects"] == [{"kind": "Pod", "namespace": "", "name": "agent.log"}]
    assert [(e["pod"], e["container"], e["line"]) for e in finding["evidence"]] == [
        ("agent.log", "agent", 4),
        ("agent.log", "agent", 9),
        ("agent.log", "agent", 5),
    ]
    # a file names no object to restart: no command rather than a made-up one
    assert finding["remediation"]["commands"] == []
    by_rule = results(report)
    assert [rule for rule, (status, _) in by_rule.items() if status != "not_checked"] == LOG_RULES
    assert by_rule["MD402"] == (
        "not_checked",
        "input missing: DaemonSet: not in the input (logs only); "
        "`kubectl get daemonsets.apps --all-namespaces -o yaml` exports it",
    )
    assert by_rule["MD401"][1] == (
        "input missing: ClusterRole: not in the input (logs only); `kubectl get "
        "clusterroles.rbac.authorization.k8s.io -o yaml` exports it; ClusterRoleBinding: not in the input "
        "(logs only); `kubectl get clusterrolebindings.rbac.authorization.k8s.io -o yaml` exports it; "
        "DaemonSet: not in the input (logs only); `kubectl get daemonsets.apps --all-namespaces -o yaml` "
        "exports it; Role: not in the input (logs only); `kubectl get roles.rbac.authorization.k8s.io "
        "--all-namespaces -o yaml` exports it; RoleBinding: not in the input (logs only); `kubectl get "
        "rolebindings.rbac.authorization.k8s.io --all-namespaces -o yaml` exports it"
    )


def test_logs_dir_alone_attributes_lines_to_the_folders_pod_and_restarts_it():
    code, out, err = invoke("check", "--logs", str(API_KEY_403 / "logs"), "-o", "json")
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert report["source"]["kind"] == "files"
    assert report["source"]["target"] == str(API_KEY_403 / "logs")
    [finding] = report["findings"]
    assert finding["rule"] == "MD602"
    assert finding["objects"] == [{"kind": "Pod", "namespace": "datadog", "name": "datadog-agent-7xk2p"}]
    assert finding["remediation"]["commands"] == ["kubectl -n datadog delete pod datadog-agent-7xk2p"]
    assert finding["message"].startswith("Pod datadog/datadog-agent-7xk2p (DD_SITE datadoghq.com): ")


def test_logs_whose_pod_matches_no_object_are_attributed_by_folder(tmp_path):
    """Next to manifests, a log of a pod the input does not hold (nor its workload generates) still counts."""
    folder = tmp_path / "cluster"
    shutil.copytree(API_KEY_403, folder)
    (folder / "logs" / "datadog" / "datadog-agent-7xk2p").rename(folder / "logs" / "datadog" / "agent-on-old-node")
    code, out, err = invoke("check", "--from", str(folder), "-o", "json")
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert report["source"]["kind"] == "files"
    assert [(f["rule"], f["objects"][0]) for f in report["findings"]] == [
        ("MD602", {"kind": "Pod", "namespace": "datadog", "name": "agent-on-old-node"})
    ]
    # the structural rules ran on the manifests as before
    assert results(report)["MD101"] == ("passed", None)


def test_no_logs_and_no_workloads_keeps_the_engines_reason(tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: d\n")
    code, out, _ = invoke("check", "--from", str(tmp_path / "cm.yaml"), "-o", "json")
    by_rule = results(json.loads(out))
    assert by_rule["MD602"] == (
        "not_checked",
        "no agent log lines in the input (a live check reads them; offline, give --logs DIR or a dump with logs.txt)",
    )
