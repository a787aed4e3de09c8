"""Agent flares (issue 12 point 2): a flare zip gives its agent's findings; bad archives are one-line errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshdoctor.cli.main import main
from meshdoctor.snapshot import Snapshot
from meshdoctor.sources.flare import agent_pod, load_flare

ROOT = Path(__file__).resolve().parent.parent
FLARE = ROOT / "fixtures" / "flares" / "istio-check-refused"
HOST = "ip-10-0-1-23.ec2.internal"


def invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as streams:
        code = main(list(args))
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return code, out.decode(), err.decode()


def zipped(folder: Path, target: Path) -> Path:
    """The folder zipped as `agent flare` does: its files under one root folder named after it."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent).as_posix())
    return target


@pytest.fixture
def flare(tmp_path: Path) -> Path:
    return zipped(FLARE / HOST, tmp_path / "datadog-agent-2026-11-20T08-07-00Z-info.zip")


def test_the_flare_agent_is_a_pod_named_after_the_hostname_with_its_resolved_settings(flare):
    snapshot = Snapshot()
    found = load_flare(snapshot, str(flare))
    assert (found.hostname, found.version) == (HOST, "7.60.1")
    assert found.istio_sources == ["file:/etc/datadog-agent/conf.d/istio.d/conf.yaml"]
    assert agent_pod(found)["spec"]["containers"] == [
        {
            "name": "agent",
            "image": "datadog/agent:7.60.1",
            "env": [
                {"name": "DD_SITE", "value": "datadoghq.eu"},
                {"name": "DD_LOGS_ENABLED", "value": "true"},
                {"name": "DD_APM_ENABLED", "value": "false"},
                {"name": "DD_PROCESS_AGENT_ENABLED", "value": "false"},
            ],
        }
    ]
    assert sorted((k.namespace, k.pod, k.container) for k in snapshot.logs) == [
        ("", HOST, "agent"),
        ("", HOST, "status.log"),
    ]
    status = list(snapshot.logs[sorted(snapshot.logs)[1]].lines())
    # only the istio check's block is kept, each line where it is in status.log
    assert [(n, line.strip()[:22]) for n, line in enumerate(status, 1) if line][:2] == [
        (39, "istio (5.0.0)"),
        (40, "-------------"),
    ]
    assert status[49].startswith("      Error: HTTPConnectionPool(host='istiod.istio-system', port=15014)")


def test_a_flare_gives_its_forwarder_and_istio_check_errors(flare):
    code, out, err = invoke("check", "--from", str(flare), "-o", "json")
    assert (code, err) == (1, "")
    report = json.loads(out)
    pod = {"kind": "Pod", "namespace": "", "name": HOST}
    assert [(f["rule"], f["severity"], f["objects"]) for f in report["findings"]] == [
        ("MD601", "error", [pod]),
        ("MD603", "error", [pod]),
    ]
    intake, check = report["findings"]
    assert [(e["container"], e["line"]) for e in intake["evidence"]] == [("agent", 4), ("agent", 5)]
    assert "7-60-1-app.agent.datadoghq.eu" in intake["message"]
    [manifest] = intake["remediation"]["manifests"]
    assert "namespace" not in manifest  # the flare does not say the agent's namespace
    assert [(e["container"], e["line"]) for e in check["evidence"]] == [("status.log", 50)]
    assert check["message"].startswith(
        f"Pod {HOST}: The istio check cannot connect to istiod.istio-system:15014 (connection refused)"
    )
    statuses = {r["rule"]: r["status"] for r in report["results"]}
    assert [rule for rule, status in statuses.items() if status != "not_checked"] == [
        "MD601",
        "MD602",
        "MD603",
        "MD604",
        "MD605",
    ]
    assert "api_key" not in out and "12345" not in out


def test_the_flare_site_reaches_the_rules(flare, tmp_path):
    """MD602 says the site the flare's agent resolved (runtime_config_dump.yaml), not the default."""
    folder = tmp_path / "flare" / HOST
    for path in sorted((FLARE / HOST).rglob("*")):
        if path.is_file():
            target = folder / path.relative_to(FLARE / HOST)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (folder / "logs" / "agent.log").write_text(
        "2026-11-20 08:05:17 UTC | CORE | ERROR | (comp/forwarder/defaultforwarder/transaction/transaction.go:433 "
        "in internalProcess) | API Key invalid, dropping transaction for "
        "https://7-60-1-app.agent.datadoghq.eu/api/v2/series\n"
    )
    code, out, _ = invoke("check", "--from", str(zipped(folder, tmp_path / "f.zip")), "--rule", "MD602", "-o", "json")
    [finding] = json.loads(out)["findings"]
    assert code == 1
    assert finding["message"].startswith(f"Pod {HOST} (DD_SITE datadoghq.eu): ")


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({"../evil/status.log": "x"}, "unsafe file name in the archive: '../evil/status.log'"),
        ({"/abs/status.log": "x"}, "unsafe file name in the archive: '/abs/status.log'"),
        ({"a/status.log": "x", "b/status.log": "x"}, "not an agent flare: one root folder (the hostname) expected"),
        ({"host/agent.log": "x"}, "not an agent flare: no host/status.log"),
    ],
)
def test_archives_that_are_not_flares_are_one_line_errors(tmp_path, members, error):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    code, out, err = invoke("check", "--from", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"meshdoctor: error: {path}: {error}")
    assert err.count("\n") == 1


def test_a_file_named_zip_that_is_not_one_is_a_one_line_error(tmp_path):
    path = tmp_path / "flare.zip"
    path.write_text("not a zip\n")
    code, out, err = invoke("check", "--from", str(path))
    assert (code, out) == (2, "")
    assert err == f"meshdoctor: error: {path}: not a zip archive (an agent flare is one): File is not a zip file\n"
