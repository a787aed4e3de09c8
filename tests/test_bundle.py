"""`meshdoctor bundle`: what it holds, byte-identical for the same input, replayed to the same report,
and a hostile archive refused in one line."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshdoctor import __version__
from meshdoctor.bundle import archive, write_bundle
from meshdoctor.cli.main import main
from meshdoctor.engine import Selection, run, select_rules
from meshdoctor.registry import load_rules
from meshdoctor.renderers import report_to_dict
from meshdoctor.sources import load_offline
from meshdoctor.sources.bundle import read_members

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SCENARIOS = sorted(p for p in (FIXTURES / "scenarios").iterdir() if p.is_dir())
SEED = FIXTURES / "scenarios" / "seed-broken"


def invoke(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as streams:
        code = main(list(args))
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return code, out.decode(), err.decode()


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_the_bundle_holds_every_format_the_snapshot_the_fixes_and_a_manifest(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    code, out, err = invoke("bundle", "-o", str(target), "--from", str(SEED), "--logs", str(SEED / "logs"))
    assert (code, out) == (0, "")
    held = members(target)
    assert err == f"wrote {target} ({len(held)} files)\n"
    assert sorted(n for n in held if n.startswith("report/")) == [
        "report/report.html",
        "report/report.json",
        "report/report.junit.xml",
        "report/report.md",
        "report/report.sarif",
        "report/report.txt",
        "report/report.yaml",
    ]
    assert "snapshot/daemonsets.apps.yaml" in held and "snapshot/snapshot.txt" in held
    assert "snapshot/logs/default/datadog-agent-4xk2p/datadog-agent.log" in held
    assert "fixes/index.md" in held and "fixes/apply.sh" in held and "fixes/plan.json" in held
    assert "fixes/03-daemonset-default-datadog-agent.yaml" in held
    manifest = json.loads(held["manifest.json"])
    assert manifest["bundle"] == 1 and manifest["meshdoctor"] == __version__
    assert manifest["source"] == {"kind": "files", "target": str(SEED), "missing": []}
    assert manifest["not_collected"] == {}
    assert manifest["collected"]["logs"] == 1 and manifest["collected"]["objects"]["DaemonSet"] == 1
    assert [f["name"] for f in manifest["files"]] == sorted(n for n in held if n != "manifest.json")
    assert all(f["size"] == len(held[f["name"]]) for f in manifest["files"])
    # the report in the bundle is the report `check -o json` prints
    code, report, _ = invoke("check", "--from", str(SEED), "--logs", str(SEED / "logs"), "-o", "json")
    assert held["report/report.json"].decode() == report


def test_tar_entries_are_sorted_with_fixed_metadata(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    assert invoke("bundle", "-o", str(target), "--from", str(SEED))[0] == 0
    raw = target.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
    with tarfile.open(target, "r:gz") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == sorted(i.name for i in infos)
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode, i.type) for i in infos} == {
        (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
    }


def test_the_same_input_gives_a_byte_identical_bundle(tmp_path: Path) -> None:
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    for target in (first, second):
        assert invoke("bundle", "-o", str(target), "--from", str(SEED), "--logs", str(SEED / "logs"))[0] == 0
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("case", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_a_bundle_replays_to_the_same_report(case: Path, tmp_path: Path) -> None:
    """Every scenario: the replay's JSON report is the first run's, but for its source block."""
    logs = str(case / "logs") if (case / "logs").is_dir() else None
    rules = select_rules(load_rules(()), Selection())
    snapshot, source = load_offline([str(case)], logs)
    report = run(rules, snapshot, source)
    target = tmp_path / "b.tar.gz"
    write_bundle(report, snapshot, source, target)
    again, replayed_source = load_offline([str(target)])
    replay = run(rules, again, replayed_source)
    first, second = report_to_dict(report), report_to_dict(replay)
    assert second.pop("source") == {"kind": "bundle", "target": str(target), "missing": list(source.missing)}
    first.pop("source")
    assert second == first


def test_check_replays_a_bundle_from_the_command_line(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    dump = FIXTURES / "scenarios" / "dump-one-namespace"
    assert invoke("bundle", "-o", str(target), "--from", str(dump))[0] == 0
    code, first, _ = invoke("check", "--from", str(dump), "-o", "json", "--fail-on", "never")
    code2, second, _ = invoke("check", "--from", str(target), "-o", "json", "--fail-on", "never")
    assert code == code2 == 0
    a, b = json.loads(first), json.loads(second)
    assert a.pop("source")["kind"] == "dump" and b.pop("source")["kind"] == "bundle"
    assert a == b


def hostile(tmp_path: Path, build: object) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        build(tar)  # type: ignore[operator]
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(raw.getvalue())
    return path


def add(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.linkname = link
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda t: add(t, "/etc/passwd"), "bundle member '/etc/passwd' has a name outside the bundle"),
        (lambda t: add(t, "snapshot/../../x"), "bundle member 'snapshot/../../x' has a name outside the bundle"),
        (
            lambda t: add(t, "snapshot/l", kind=tarfile.SYMTYPE, link="/etc/passwd"),
            "bundle member 'snapshot/l' is not a regular file (links are refused)",
        ),
        (
            lambda t: add(t, "snapshot/h", kind=tarfile.LNKTYPE, link="manifest.json"),
            "bundle member 'snapshot/h' is not a regular file (links are refused)",
        ),
        (lambda t: add(t, "snapshot/x.yaml"), "not a meshdoctor bundle: no manifest.json"),
        (lambda t: add(t, "manifest.json", b'{"bundle": 7}'), "manifest.json: not a meshdoctor bundle of layout 1"),
    ],
)
def test_a_hostile_or_foreign_archive_is_one_line_and_exit_2(tmp_path: Path, build: object, message: str) -> None:
    path = hostile(tmp_path, build)
    code, out, err = invoke("check", "--from", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"meshdoctor: error: {path}") and err.endswith(f"{message}\n") and err.count("\n") == 1


def test_a_member_over_the_size_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import meshdoctor.sources.bundle as reader

    monkeypatch.setattr(reader, "MAX_MEMBER_BYTES", 10)
    path = hostile(tmp_path, lambda t: add(t, "snapshot/big.yaml", b"x" * 11))
    with pytest.raises(Exception, match=r"bundle member snapshot/big.yaml is larger than 10 bytes"):
        read_members(str(path))


def test_a_truncated_archive_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.tar.gz"
    whole = archive({"manifest.json": b"{}", "snapshot/x.yaml": bytes(range(256)) * 64})
    path.write_bytes(whole[: len(whole) // 2])
    code, _, err = invoke("check", "--from", str(path))
    assert (
        code == 2
        and err.startswith(f"meshdoctor: error: {path}: not a readable .tar.gz bundle")
        and err.count("\n") == 1
    )


def test_a_bundle_is_replayed_alone(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    assert invoke("bundle", "-o", str(target), "--from", str(SEED))[0] == 0
    code, _, err = invoke("check", "--from", str(target), "--from", str(SEED))
    assert (code, err) == (
        2,
        f"meshdoctor: error: {target}: a bundle is replayed alone: no other --from, --logs or -n with it\n",
    )


def test_the_bundle_must_be_a_tar_gz(tmp_path: Path) -> None:
    code, _, err = invoke("bundle", "-o", str(tmp_path / "b.zip"), "--from", str(SEED))
    assert (code, err) == (2, f"meshdoctor: error: {tmp_path / 'b.zip'}: a bundle is a .tar.gz (or .tgz) file\n")
