"""The fix plan: one merged object per step, prerequisites first, secrets moved, nothing left to fill in.

Every scenario fixture with findings is planned; the plan must resolve each finding that has a fix,
carry no placeholder, be byte-identical across runs, and hold every ServiceEntry it writes to
Istio's own analyzer rules. seed-broken's plan is asserted step by step.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshdoctor.engine import run
from meshdoctor.fixes.emit import plan_files
from meshdoctor.fixes.plan import PLACEHOLDER_MARKS, build_plan, finding_label, with_plan
from meshdoctor.registry import load_rules
from meshdoctor.sources import load_offline

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p for p in (ROOT / "fixtures" / "scenarios").iterdir() if p.is_dir())
RULES = load_rules(())


@functools.cache
def planned(case: Path, *skip: str):
    state, source = load_offline([str(case)], None, stdin=sys.stdin)
    rules = [r for r in RULES if r.id not in skip]
    report = run(rules, state, source)
    return with_plan(report, state)


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


@pytest.fixture(scope="module")
def seed():
    return planned(ROOT / "fixtures" / "scenarios" / "seed-broken")


def test_seed_broken_plan_is_three_steps_in_prerequisite_order(seed):
    plan = seed.plan
    assert [(s.name, s.title, s.safe) for s in plan.steps] == [
        ("01-secret-default-datadog-secret.sh", "Secret default/datadog-secret", True),
        ("02-serviceentry-default-datadog-intake.yaml", "ServiceEntry default/datadog-intake", False),
        ("03-daemonset-default-datadog-agent.yaml", "DaemonSet default/datadog-agent", False),
    ]
    assert plan.steps[0].resolves == ("MD501 DaemonSet default/datadog-agent",)
    assert plan.steps[1].resolves == ("MD101 DaemonSet default/datadog-agent",)
    assert plan.steps[2].resolves == (
        "MD103 DaemonSet default/datadog-agent",
        "MD401 DaemonSet default/datadog-agent, ClusterRoleBinding datadog-agent",
        "MD501 DaemonSet default/datadog-agent",
        "MD503 DaemonSet default/datadog-agent",
        "MD504 DaemonSet default/datadog-agent",
    )


def test_seed_broken_daemonset_step_carries_every_fix_at_once(seed):
    [daemonset] = docs(seed.plan.steps[2].content)
    template = daemonset["spec"]["template"]
    [agent] = template["spec"]["containers"]
    env = {v["name"]: v for v in agent["env"]}
    assert daemonset["apiVersion"] == "apps/v1"  # MD503
    assert template["spec"]["serviceAccountName"] == "datadog-agent"  # MD401
    assert agent["image"] == "datadog/agent:6.10.2"  # MD504, the release its pod runs
    assert env["DD_API_KEY"] == {  # MD501: the real key, from the Secret step 1 fills
        "name": "DD_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "datadog-secret", "key": "api-key"}},
    }
    assert "traffic.sidecar.istio.io/excludeOutboundIPRanges" in template["metadata"]["annotations"]  # MD103
    # OnDelete (the legacy default kept by MD503): the step deletes the pods so they take the template
    assert seed.plan.steps[2].apply == (
        "kubectl replace -f 03-daemonset-default-datadog-agent.yaml",
        "kubectl -n default delete pod -l app=datadog-agent",
    )


def test_existing_objects_are_replaced_whole_and_new_ones_applied(seed):
    service_entry, daemonset = seed.plan.steps[1], seed.plan.steps[2]
    assert service_entry.dry_run == ("kubectl apply --dry-run=server -f 02-serviceentry-default-datadog-intake.yaml",)
    assert daemonset.dry_run == ("kubectl replace --dry-run=server -f 03-daemonset-default-datadog-agent.yaml",)


def test_the_secret_is_copied_inside_the_cluster_and_never_overwritten(seed):
    step = seed.plan.steps[0]
    read = (
        "kubectl -n default get daemonset datadog-agent -o jsonpath="
        '\'{.spec.template.spec.containers[?(@.name=="datadog-agent")].env[?(@.name=="DD_API_KEY")].value}\''
    )
    assert step.apply == (
        "kubectl -n default get secret datadog-secret >/dev/null 2>&1 || "
        f"{read} | kubectl -n default create secret generic datadog-secret --from-file=api-key=/dev/stdin",
    )
    assert step.dry_run[0].endswith("--dry-run=server")


def test_the_out_of_mesh_alternative_replaces_the_daemonset_and_skips_the_service_entry(seed):
    [alternative] = seed.plan.alternatives
    assert alternative.finding == "MD101 DaemonSet default/datadog-agent, MD103 DaemonSet default/datadog-agent"
    assert (alternative.replaces, alternative.unnecessary) == ((3,), (2,))
    [daemonset] = docs(alternative.content)
    template = daemonset["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    # the plan's other changes are kept in the alternative
    assert template["spec"]["serviceAccountName"] == "datadog-agent"


def test_a_literal_key_is_moved_even_when_md501_is_not_run():
    report = planned(ROOT / "fixtures" / "scenarios" / "seed-broken", "MD501")
    assert [s.title for s in report.plan.steps][0] == "Secret default/datadog-secret"
    assert report.plan.steps[0].resolves == ()
    [daemonset] = docs(report.plan.steps[-1].content)
    [agent] = daemonset["spec"]["template"]["spec"]["containers"]
    assert {v["name"]: v for v in agent["env"]}["DD_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "datadog-secret"


def test_helm_owned_fix_is_one_values_step(tmp_path):
    report = planned(ROOT / "fixtures" / "scenarios" / "helm-3.240-confd-key-wrong")
    [step] = report.plan.steps
    assert step.title == "Helm release datadog/datadog"
    assert step.name == "01-helm-datadog-datadog.sh"
    assert any(c.startswith("helm upgrade datadog ") and "--reuse-values" in c for c in step.apply)
    assert any("--dry-run" in c for c in step.dry_run)


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda p: p.name)
def test_every_scenario_plan_resolves_its_fixes_and_holds_no_placeholder(case: Path, tmp_path: Path):
    report = planned(case)
    files = plan_files(report)
    for name, text in files.items():
        for mark in PLACEHOLDER_MARKS:
            assert mark not in text, f"{name} holds {mark!r}"
    covered = {label for step in report.plan.steps for label in step.resolves}
    covered |= {m.finding for m in report.plan.manual}
    for finding in report.findings:
        remediation = finding.object_fix or finding.remediation
        fixable = remediation is not None and (remediation.manifests or remediation.commands)
        if finding.suppressed_by is None and fixable:
            assert finding_label(finding) in covered, finding_label(finding)
    script = tmp_path / "apply.sh"
    script.write_text(files["apply.sh"])
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert plan_files(planned.__wrapped__(case)) == files  # deterministic


def _service_entries(case: Path) -> list[tuple[str, dict]]:
    report = planned(case)
    found = []
    texts = [s.content for s in report.plan.steps if s.name.endswith(".yaml")]
    texts += [a.content for a in report.plan.alternatives]
    for finding in report.findings:
        if finding.remediation is not None:
            texts += [*finding.remediation.manifests, *finding.remediation.alternative_manifests]
    for text in texts:
        found += [(case.name, d) for d in docs(text) if d.get("kind") == "ServiceEntry"]
    return found


EMITTED_SERVICE_ENTRIES = [entry for case in SCENARIOS for entry in _service_entries(case)]


@pytest.mark.parametrize("case, entry", EMITTED_SERVICE_ENTRIES, ids=lambda v: v if isinstance(v, str) else "")
def test_every_emitted_service_entry_is_clean_by_istios_own_rules(case: str, entry: dict):
    spec = entry["spec"]
    namespace = entry["metadata"]["namespace"]
    for port in spec["ports"]:
        assert port.get("name"), f"{case}: port {port} has no name"
        protocol = str(port.get("protocol") or "")
        # IST0134 (istio/istio pkg/config/analysis/analyzers/serviceentry/protocoladdresses.go)
        assert spec.get("addresses") or protocol not in ("", "TCP"), f"{case}: TCP port {port} without addresses"
    # IST0133 (schema warning): a wildcard host cannot be resolved by DNS
    if any(h.startswith("*") for h in spec["hosts"]):
        assert spec.get("resolution") != "DNS", case
    export = spec.get("exportTo")
    assert export is None or "*" in export or "." in export or namespace in export, case


def test_build_plan_without_findings_is_empty():
    state, source = load_offline([str(ROOT / "fixtures" / "scenarios" / "seed-fixed")], None, stdin=sys.stdin)
    report = run(RULES, state, source)
    assert [f for f in report.findings if f.remediation and f.remediation.manifests] == []
    assert build_plan(state, report.findings).steps == ()


def test_file_names_stay_inside_the_folder_and_portable():
    from meshdoctor.fixes.names import safe_name

    assert safe_name("../etc/passwd") == "_etc_passwd"
    assert safe_name("a b\nc") == "a_b_c"
    assert safe_name("..") == "_"


def test_an_unwritable_plan_folder_is_a_one_line_usage_error(tmp_path, seed):
    from meshdoctor.errors import UsageError
    from meshdoctor.fixes.emit import emit_fixes

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot write remediation files to"):
        emit_fixes(seed, blocker / "fixes")
