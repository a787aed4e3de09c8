"""Property-based fuzzing of `meshdoctor check --from` (issue 14): hostile input never breaks the contract.

The property, for every input: exit 0 or 1 with a JSON report valid against report-v1.json, or exit
2 with exactly one line on stderr and nothing on stdout; within `TIME_BOUND` seconds; and no
exception ever escapes `main` (a traceback fails the example). The CLI runs in-process.

Hypothesis runs derandomized (a fixed seed) with `MESHDOCTOR_FUZZ_EXAMPLES` examples per family
(10 by default, so the suite stays well under a minute); set it higher for a long run, e.g.
`MESHDOCTOR_FUZZ_EXAMPLES=500 python -m pytest tests/test_fuzz.py`.
"""

from __future__ import annotations

import codecs
import copy
import json
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshdoctor.cli.main import main
from meshdoctor.renderers import report_schema

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "fixtures" / "scenarios" / "seed-broken"
DUMP = ROOT / "fixtures" / "scenarios" / "logs-only-dump"

#: Seconds one check may take on any generated input (the largest are a few MB).
TIME_BOUND = 30

EXAMPLES = int(os.environ.get("MESHDOCTOR_FUZZ_EXAMPLES", "10"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

SCHEMA = report_schema()
MANIFESTS = sorted(p for p in SEED.rglob("*.yaml"))
BASE_DOCS: list[dict[str, Any]] = [
    doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(doc, dict)
]


class _Timeout(Exception):
    pass


@contextmanager
def _time_bound(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise _Timeout(f"check took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_contract(*args: str, stdin: bytes | None = None) -> int:
    """Run `meshdoctor check ARGS -o json` and assert the contract; return the exit code."""
    runner = CliRunner()
    with runner.isolation(input=stdin) as streams, _time_bound(TIME_BOUND):
        code = main(["check", *args, "-o", "json"])
        out, err = streams[0].getvalue(), streams[1].getvalue()
    if code == 2:
        assert out == b"", out[:500]
        text = err.decode("utf-8")  # strict: the message itself must be valid text
        assert text.startswith("meshdoctor: error: "), text
        assert text.endswith("\n") and text.count("\n") == 1, text
        assert "Traceback" not in text
        return code
    assert code in (0, 1, 3), (code, err[:2000])
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA, cls=jsonschema.Draft202012Validator)
    statuses = {result["status"] for result in report["results"]}
    assert "error" not in statuses, [r for r in report["results"] if r["status"] == "error"]  # a rule crashed
    if code == 3:  # exit 3 only when not a single rule could run (DESIGN.md "Exit codes")
        assert statuses == {"not_checked"}, statuses
    return code


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="meshdoctor-fuzz-") as folder:
        yield Path(folder)


def _fresh(workdir: Path, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=name, dir=workdir))
    return folder


# -- byte-level damage to fixture files -----------------------------------------------------------


@FUZZ
@given(index=st.integers(0, len(MANIFESTS) - 1), cut=st.floats(0, 1), as_json=st.booleans())
def test_truncated_fixture(workdir, index, cut, as_json):
    raw = MANIFESTS[index].read_bytes()
    if as_json:
        docs = [d for d in yaml.safe_load_all(raw) if d]
        raw = json.dumps({"kind": "List", "apiVersion": "v1", "items": docs}, indent=4).encode()
    path = _fresh(workdir, "trunc") / ("in.json" if as_json else "in.yaml")
    path.write_bytes(raw[: int(len(raw) * cut)])
    check_contract("--from", str(path))


@FUZZ
@given(
    index=st.integers(0, len(MANIFESTS) - 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
)
def test_flipped_bytes(workdir, index, flips):
    raw = bytearray(MANIFESTS[index].read_bytes())
    for where, value in flips:
        raw[min(int(where * len(raw)), len(raw) - 1)] = value
    path = _fresh(workdir, "flip") / "in.yaml"
    path.write_bytes(bytes(raw))
    check_contract("--from", str(path))


# -- wrong types, nulls and missing fields at every position of every object ----------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


ALL_PATHS = [(i, path) for i, doc in enumerate(BASE_DOCS) for path in _paths(doc) if path]

ODD_VALUES = st.sampled_from([None, "", "x", 0, -1, 1.5, True, [], {}, ["a"], [None], {"a": None}, [[1]], {"": {}}])


def _write_docs(folder: Path, docs: list[Any], as_json: bool) -> Path:
    if as_json:
        path = folder / "all.json"
        path.write_text("\n".join(json.dumps(doc) for doc in docs))
    else:
        path = folder / "all.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@FUZZ
@given(
    where=st.lists(st.integers(0, len(ALL_PATHS) - 1), min_size=1, max_size=3),
    values=st.lists(ODD_VALUES, min_size=3, max_size=3),
    delete=st.booleans(),
    as_json=st.booleans(),
)
def test_wrong_types_and_nulls_everywhere(workdir, where, values, delete, as_json):
    docs = copy.deepcopy(BASE_DOCS)
    for n, pick in enumerate(where):
        index, path = ALL_PATHS[pick]
        parent: Any = docs[index]
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = values[n]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    check_contract("--from", str(_write_docs(_fresh(workdir, "types"), docs, as_json)))


@FUZZ
@given(
    index=st.integers(0, len(BASE_DOCS) - 1),
    field=st.sampled_from(["kind", "apiVersion", "metadata", "name", "namespace"]),
)
def test_missing_identity_fields(workdir, index, field):
    docs = copy.deepcopy(BASE_DOCS)
    target = docs[index]
    if field in ("name", "namespace"):
        (target.get("metadata") or {}).pop(field, None)
    else:
        target.pop(field, None)
    check_contract("--from", str(_write_docs(_fresh(workdir, "ident"), docs, False)))


@FUZZ
@given(index=st.integers(0, len(MANIFESTS) - 1), line=st.floats(0, 1), other=st.text(max_size=20))
def test_duplicate_keys(workdir, index, line, other):
    lines = MANIFESTS[index].read_text().splitlines()
    keyed = [i for i, text in enumerate(lines) if ":" in text and not text.lstrip().startswith("#")]
    if keyed:
        at = keyed[min(int(line * len(keyed)), len(keyed) - 1)]
        key = lines[at].split(":", 1)[0]
        lines.insert(at + 1, f"{key}: {json.dumps(other)}")
    path = _fresh(workdir, "dup") / "in.yaml"
    path.write_text("\n".join(lines) + "\n")
    check_contract("--from", str(path))


# -- expensive YAML: aliases, nesting, huge lines -------------------------------------------------


@FUZZ
@given(levels=st.integers(1, 12), fan=st.integers(1, 12), flow=st.booleans())
def test_alias_bombs(workdir, levels, fan, flow):
    lines = ['  l0: &l0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join(f"*l{level - 1}" for _ in range(fan))
        lines.append(
            f"  l{level}: &l{level} [{refs}]"
            if flow
            else f"  l{level}: &l{level}\n" + "".join(f"  - *l{level - 1}\n" for _ in range(fan)).rstrip("\n")
        )
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: default\ndata:\n"
        + "\n".join(lines)
        + "\n"
    )
    path = _fresh(workdir, "bomb") / "bomb.yaml"
    path.write_text(text)
    check_contract("--from", str(path))


@FUZZ
@given(depth=st.integers(1, 5000), style=st.sampled_from(["flow-list", "flow-map", "block", "json"]))
def test_deep_nesting(workdir, depth, style):
    folder = _fresh(workdir, "deep")
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n  namespace: default\n"
    if style == "flow-list":
        path, text = folder / "in.yaml", head + "spec: " + "[" * depth + "]" * depth + "\n"
    elif style == "flow-map":
        path, text = folder / "in.yaml", head + "spec: " + "{a: " * depth + "1" + "}" * depth + "\n"
    elif style == "block":
        path, text = (
            folder / "in.yaml",
            head + "spec:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(min(depth, 1500))),
        )
    else:
        body = '{"a": ' * depth + "1" + "}" * depth
        path, text = (
            folder / "in.json",
            f'{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "deep"}}, "spec": {body}}}',
        )
    path.write_text(text)
    check_contract("--from", str(path))


@FUZZ
@given(size=st.integers(0, 3_000_000), where=st.sampled_from(["value", "key", "comment", "log"]))
def test_huge_lines(workdir, size, where):
    folder = _fresh(workdir, "huge")
    long = "x" * size
    if where == "log":
        logs = folder / "logs" / "datadog" / "datadog-agent-abcde"
        logs.mkdir(parents=True)
        (logs / "agent.log").write_text(long + "\n2024-01-01 UTC | CORE | ERROR | x\n")
        check_contract("--from", str(SEED / "datadog"), "--logs", str(folder / "logs"))
        return
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: default\n"
    text = {
        "value": head + f"data:\n  k: {long}\n",
        "key": head + f"data:\n  {long}: v\n",
        "comment": f"# {long}\n" + head,
    }[where]
    path = folder / "in.yaml"
    path.write_text(text)
    check_contract("--from", str(path))


# -- encodings and byte order marks ---------------------------------------------------------------


@FUZZ
@given(
    index=st.integers(0, len(MANIFESTS) - 1),
    codec=st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "latin-1", "cp1252"]),
    bom=st.booleans(),
    stdin=st.booleans(),
)
def test_encodings_and_byte_order_marks(workdir, index, codec, bom, stdin):
    text = MANIFESTS[index].read_text(encoding="utf-8")
    marks = {
        "utf-8": codecs.BOM_UTF8,
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
        "utf-32-be": codecs.BOM_UTF32_BE,
    }
    raw = (marks.get(codec, b"") if bom else b"") + text.encode(codec, "replace")
    if stdin:
        check_contract("--from", "-", stdin=raw)
        return
    path = _fresh(workdir, "enc") / "in.yaml"
    path.write_bytes(raw)
    check_contract("--from", str(path))


@FUZZ
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"{", b"[", b"---\n", b"\xef\xbb\xbf", b"\xff\xfe"]))
def test_arbitrary_bytes_on_stdin(data, prefix):
    check_contract("--from", "-", stdin=prefix + data)


# -- odd file system objects ----------------------------------------------------------------------

ODD_ENTRIES = [
    "fifo",
    "loop",
    "self-link",
    "dangling",
    "empty-dir",
    "dir-named-yaml",
    "socket",
    "unreadable",
    "deep",
    "newline-name",
    "device",
]


@FUZZ
@given(entries=st.lists(st.sampled_from(ODD_ENTRIES), min_size=1, max_size=5, unique=True), as_logs=st.booleans())
def test_odd_file_system_objects(workdir, entries, as_logs):
    folder = _fresh(workdir, "fs")
    base = folder / ("logs/datadog/datadog-agent-abcde" if as_logs else "manifests")
    base.mkdir(parents=True)
    (base / ("agent.log" if as_logs else "ok.yaml")).write_text(
        "hello\n" if as_logs else "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n"
    )
    name = "x.log" if as_logs else "x.yaml"
    for entry in entries:
        target = base / f"{entry}-{name}"
        if entry == "fifo":
            os.mkfifo(target)
        elif entry == "loop":
            (base / "up").symlink_to("..")
        elif entry == "self-link":
            target.symlink_to(target.name)
        elif entry == "dangling":
            target.symlink_to("nowhere")
        elif entry == "empty-dir":
            (base / "empty").mkdir()
        elif entry == "dir-named-yaml":
            target.mkdir()
        elif entry == "socket":
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.bind(str(target))
            except OSError:
                pass  # the path is too long for a socket address
            finally:
                sock.close()
        elif entry == "unreadable":
            target.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hidden\n")
            target.chmod(0)
        elif entry == "deep":
            deep = str(base / "deep")
            for _ in range(60):
                deep += "/d"
            os.makedirs(deep)
        elif entry == "newline-name":
            (base / f"new\nline-{name}").write_text("kind: [\n")
        elif entry == "device":
            (base / f"null-{name}").symlink_to("/dev/null")
    if as_logs:
        check_contract("--from", str(SEED / "datadog"), "--logs", str(folder / "logs"))
    else:
        check_contract("--from", str(base))


# -- broken dumps and log sections ----------------------------------------------------------------

MARKER_LINES = st.sampled_from(
    [
        "==== START logs for container agent of pod datadog/datadog-agent-abcde ====",
        "==== END logs for container agent of pod datadog/datadog-agent-abcde ====",
        "==== START logs for container istio-proxy of pod datadog/datadog-agent-abcde ====",
        "==== START logs for container  of pod / ====",
        "==== END logs for container x of pod a/b ====",
        "2024-01-01 10:00:00 UTC | CORE | ERROR | (pkg/forwarder/transaction.go:1) | API Key invalid",
        "\x00\xff garbage",
        "",
    ]
)


@FUZZ
@given(
    log_lines=st.lists(MARKER_LINES, max_size=12),
    pods=st.sampled_from(["keep", "truncate", "items-null", "items-map", "not-json", "empty"]),
    nodes=st.sampled_from(["keep", "missing", "garbage"]),
)
def test_broken_dumps_and_log_sections(workdir, log_lines, pods, nodes):
    import shutil

    folder = _fresh(workdir, "dump") / "dump"
    shutil.copytree(DUMP, folder, symlinks=True, ignore=shutil.ignore_patterns("expected*"))
    pods_files = sorted(folder.rglob("pods.json"))
    for pods_file in pods_files:
        raw = pods_file.read_text()
        pods_file.write_text(
            {
                "keep": raw,
                "truncate": raw[: len(raw) // 2],
                "items-null": '{"kind": "PodList", "apiVersion": "v1", "items": null}',
                "items-map": '{"kind": "PodList", "apiVersion": "v1", "items": {"a": 1}}',
                "not-json": "pods: [",
                "empty": "",
            }[pods]
        )
    for logs_txt in sorted(folder.rglob("logs.txt")):
        logs_txt.write_bytes("\n".join(log_lines).encode("utf-8", "surrogateescape"))
    nodes_file = folder / "nodes.json"
    if nodes == "missing" and nodes_file.exists():
        nodes_file.unlink()
    elif nodes == "garbage":
        nodes_file.write_text('{"kind": "NodeList", "items": [1, "a", null]}')
    check_contract("--from", str(folder))


# -- List oddities --------------------------------------------------------------------------------

LIST_SHAPES = st.sampled_from(
    [
        {"kind": "List", "apiVersion": "v1", "items": None},
        {"kind": "List", "apiVersion": "v1", "items": {}},
        {"kind": "List", "apiVersion": "v1", "items": [None, 1, "x", []]},
        {"kind": "List", "apiVersion": "v1", "items": [{"kind": "List", "apiVersion": "v1", "items": []}]},
        {"kind": "PodList", "items": [{"metadata": {"name": "p"}}]},
        {"kind": "PodList", "apiVersion": "v1", "items": [{"metadata": {"name": "p"}, "spec": "x"}]},
        {"kind": "ConfigMapList", "apiVersion": 1, "items": [{"metadata": {"name": "c"}}]},
        {"kind": "List", "apiVersion": "v1"},
        {"kind": "List", "apiVersion": "v1", "items": [{"apiVersion": "v1", "metadata": {"name": "nokind"}}]},
        {"kind": "ServiceList", "apiVersion": "v1", "items": [{"metadata": {"name": "s"}, "spec": {"ports": "80"}}]},
    ]
)


@FUZZ
@given(shape=LIST_SHAPES, extra=st.lists(st.sampled_from(BASE_DOCS), max_size=3), as_json=st.booleans())
def test_list_oddities(workdir, shape, extra, as_json):
    doc = copy.deepcopy(shape)
    if isinstance(doc.get("items"), list):
        doc["items"].extend(copy.deepcopy(extra))
    check_contract("--from", str(_write_docs(_fresh(workdir, "list"), [doc], as_json)))
