"""Regression tests for issue 14: hostile input is a report or one line and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshdoctor.cli.main import main
from meshdoctor.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SEED_BROKEN = ROOT / "fixtures" / "scenarios" / "seed-broken"

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\n"


def invoke(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation(input=stdin) as streams:
        code = main(list(args))
        out, err = streams[0].getvalue(), streams[1].getvalue()
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def objects_read(*args: str, stdin: bytes | None = None) -> list[tuple[str, str]]:
    """(kind, name) of every object the input gave, through `check -o json --rule` of nothing."""
    from meshdoctor.sources import load_offline

    snapshot, _ = load_offline(list(args), stdin=_stdin(stdin))
    return sorted((kind, name) for kind, by_key in snapshot._by_kind.items() for (_, name) in by_key)


def _stdin(data: bytes | None):  # a text stream over bytes, as sys.stdin is
    import io

    return io.TextIOWrapper(io.BytesIO(data or b""), encoding="utf-8", errors="surrogateescape")


# -- encodings ------------------------------------------------------------------------------------


def test_non_utf8_bytes_on_stdin_are_one_line_naming_the_line():
    code, out, err = invoke("check", "--from", "-", stdin=CONFIGMAP.replace("name: a", "name: a\xff").encode("latin-1"))
    assert (code, out, err) == (2, "", "meshdoctor: error: <stdin>:4: not UTF-8 text\n")


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_text_with_a_byte_order_mark_is_decoded_on_stdin_and_in_files(tmp_path, codec):
    data = CONFIGMAP.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    if codec == "utf-32-be":
        data = b"\x00\x00\xfe\xff" + data
    assert objects_read("-", stdin=data) == [("ConfigMap", "a")]
    for suffix in (".yaml", ".json"):
        body = (
            data
            if suffix == ".yaml"
            else '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}'.encode(codec)
        )
        if suffix == ".json" and codec in ("utf-16-be", "utf-32-be"):
            body = (b"\xfe\xff" if codec == "utf-16-be" else b"\x00\x00\xfe\xff") + body
        path = tmp_path / f"cm{suffix}"
        path.write_bytes(body)
        assert objects_read(str(path)) == [("ConfigMap", "a")]


def test_utf16_without_a_mark_is_one_line(tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_bytes(CONFIGMAP.encode("utf-16-le"))  # valid UTF-8 bytes, with NULs YAML refuses
    code, _, err = invoke("check", "--from", str(path))
    assert (code, err) == (
        2,
        f"meshdoctor: error: {path}:1: YAML syntax error: "
        "unacceptable character #x0000: control characters are not allowed\n",
    )


# -- file system objects --------------------------------------------------------------------------


def test_symlink_loop_in_a_from_folder_is_walked_once(tmp_path):
    (tmp_path / "cm.yaml").write_text(CONFIGMAP)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    (tmp_path / "self.yaml").symlink_to("self.yaml")
    assert objects_read(str(tmp_path)) == [("ConfigMap", "a")]


def test_symlink_loop_in_a_dump_folder_and_under_logs(tmp_path):
    dump = tmp_path / "dump"
    (dump / "default" / "pod-a").mkdir(parents=True)
    (dump / "nodes.json").write_text('{"kind": "NodeList", "apiVersion": "v1", "items": []}')
    (dump / "default" / "pods.json").write_text('{"kind": "PodList", "apiVersion": "v1", "items": []}')
    (dump / "loop").symlink_to(".")
    (dump / "default" / "loop").symlink_to("..")
    (dump / "default" / "pod-a" / "logs.txt").symlink_to("logs.txt")
    logs = tmp_path / "logs"
    (logs / "default" / "pod-a").mkdir(parents=True)
    (logs / "default" / "pod-a" / "agent.log").symlink_to("agent.log")
    (logs / "default" / "up").symlink_to("..")
    code, out, err = invoke("check", "--from", str(dump), "--logs", str(logs), "-o", "json")
    assert code == 3, err  # read without a traceback; an empty dump lets no rule run (exit 3, DESIGN.md)
    assert '"kind": "dump"' in out


def test_a_folder_tree_1100_levels_deep(tmp_path):
    deep = str(tmp_path)
    for _ in range(1100):
        deep += "/d"
        os.mkdir(deep)
    Path(deep, "cm.yaml").write_text(CONFIGMAP)
    try:
        assert objects_read(str(tmp_path)) == [("ConfigMap", "a")]
    finally:  # pytest's own clean-up of tmp_path recurses once per level
        subprocess.run(["rm", "-rf", str(tmp_path / "d")], check=True)


def test_a_named_pipe_is_refused_at_once(tmp_path):
    fifo = tmp_path / "objects.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    code, _, err = invoke("check", "--from", str(fifo))
    assert (code, err) == (2, f"meshdoctor: error: {fifo}: not a regular file (a named pipe)\n")
    assert time.monotonic() - started < 5


def test_a_named_pipe_under_logs_is_not_a_log(tmp_path):
    (tmp_path / "cm.yaml").write_text(CONFIGMAP)
    logs = tmp_path / "logs" / "default" / "pod-a"
    logs.mkdir(parents=True)
    os.mkfifo(logs / "agent.log")  # not a file: skipped like any other non-file, never opened
    from meshdoctor.snapshot import Snapshot
    from meshdoctor.sources.logs import load_logs_dir, open_log

    assert load_logs_dir(Snapshot(), tmp_path / "logs") == 0
    with pytest.raises(InputError) as raised:
        open_log(str(logs / "agent.log"))
    assert str(raised.value) == f"{logs / 'agent.log'}: not a regular file"


def test_a_file_name_with_a_newline_is_escaped_in_the_error(tmp_path):
    path = tmp_path / "bad\nmeshdoctor: error: forged.yaml"
    path.write_text("kind: [\n")
    code, _, err = invoke("check", "--from", str(path))
    assert code == 2
    assert err.count("\n") == 1
    assert (
        err
        == f"meshdoctor: error: {tmp_path}/bad\\nmeshdoctor: error: forged.yaml:1: YAML syntax error: "
        + err.split("YAML syntax error: ", 1)[1]
    )


# -- unreadable input, as a user who is not root -------------------------------------------------


def _run_unprivileged(*args: str) -> tuple[int, str]:
    """Run the CLI in a forked child that is uid/gid 65534 when the tests run as root.

    Root reads a mode-000 folder, so as root the child gives up its privileges (the interpreter
    and meshdoctor are loaded before the fork: root's own files need not be readable to it).
    Returns the exit code and stderr.
    """
    invoke("check", "--from", str(SEED_BROKEN))  # load every module the check uses
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            code, _, err = invoke(*args)
            os.write(write_end, err.encode())
        except BaseException as exc:
            os.write(write_end, f"Traceback: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        err = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.fixture
def world_readable_tmp():
    """A temporary folder a dropped-privilege child can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="meshdoctor-perm-"))
    path.chmod(0o755)
    yield path
    for sub in path.rglob("*"):
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o755)
    subprocess.run(["rm", "-rf", str(path)], check=True)


@pytest.mark.parametrize("where", ["from", "logs-pod", "logs-file", "dump-namespace"])
def test_unreadable_folders_and_logs_are_one_line_and_exit_2(world_readable_tmp, where):
    base = world_readable_tmp
    (base / "cm.yaml").write_text(CONFIGMAP)
    args = ["check", "--from", str(base / "cm.yaml")]
    if where == "from":
        locked = base / "manifests" / "locked"
        locked.mkdir(parents=True)
        (base / "manifests").chmod(0o755)
        args = ["check", "--from", str(base / "manifests")]
    elif where in ("logs-pod", "logs-file"):
        pod = base / "logs" / "default" / "pod-a"
        pod.mkdir(parents=True)
        (pod / "agent.log").write_text("hello\n")
        for folder in (base / "logs", base / "logs" / "default"):
            folder.chmod(0o755)
        locked = pod if where == "logs-pod" else pod / "agent.log"
        pod.chmod(0o755)
        args += ["--logs", str(base / "logs")]
    else:
        dump = base / "dump"
        locked = dump / "default"
        locked.mkdir(parents=True)
        (dump / "nodes.json").write_text('{"kind": "NodeList", "apiVersion": "v1", "items": []}')
        (locked / "pods.json").write_text('{"kind": "PodList", "apiVersion": "v1", "items": []}')
        (locked / "services.json").write_text('{"kind": "ServiceList", "apiVersion": "v1", "items": []}')
        dump.chmod(0o755)
        args = ["check", "--from", str(dump)]
    locked.chmod(0)
    if os.geteuid() != 0 and os.access(locked, os.R_OK):
        pytest.skip("this user can read a mode-000 path (a capability) and cannot drop it")
    code, err = _run_unprivileged(*args)
    assert (code, err) == (2, f"meshdoctor: error: {locked}: cannot read: Permission denied\n")


# -- YAML that costs too much ---------------------------------------------------------------------

ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    path = tmp_path / "bomb.yaml"
    bomb = ALIAS_BOMB.replace("\n", "\n  ")
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  {bomb}")
    assert len(path.read_bytes()) < 1000
    started = time.monotonic()
    code, _, err = invoke("check", "--from", str(path))
    assert time.monotonic() - started < 5
    assert (code, err) == (
        2,
        f"meshdoctor: error: {path}:1: YAML document contains excessive aliasing (as kubectl refuses it)\n",
    )


def test_a_few_aliases_are_fine(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &labels {app: x}\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels: {app: y}\n"
    )
    assert objects_read(str(path)) == [("ConfigMap", "a"), ("ConfigMap", "b")]


def test_the_size_limit_names_the_file_and_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text(CONFIGMAP + "data:\n  k: " + "x" * 2 * 1024 * 1024 + "\n")
    monkeypatch.setenv("MESHDOCTOR_MAX_FILE_MB", "1")
    limit = "larger than the 1 MiB limit per input file (set MESHDOCTOR_MAX_FILE_MB to raise it, 0 for none)"
    assert invoke("check", "--from", str(path)) == (2, "", f"meshdoctor: error: {path}: {limit}\n")
    assert invoke("check", "--from", "-", stdin=path.read_bytes()) == (2, "", f"meshdoctor: error: <stdin>: {limit}\n")
    monkeypatch.setenv("MESHDOCTOR_MAX_FILE_MB", "0")
    assert objects_read(str(path)) == [("ConfigMap", "a")]


# -- wrong types: refused where objects enter, naming the file, line, object and field -----------

_DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: datadog-agent
  namespace: datadog
spec:
  selector:
    matchLabels: {app: datadog-agent}
  template:
    metadata:
      labels: {app: datadog-agent}
    spec:
      containers:
      - name: agent
        image: gcr.io/datadoghq/agent:7.50.0
        env:
        - name: DD_SITE
          value: datadoghq.com
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "        - name: DD_SITE\n          value: datadoghq.com\n",
            "        - DD_SITE=datadoghq.com\n",
            17,
            "spec.template.spec.containers[0].env[0] is a string, not a mapping",
        ),
        (
            "        env:\n",
            "        envFrom: [configMapRef]\n        env:\n",
            16,
            "spec.template.spec.containers[0].envFrom[0] is a string, not a mapping",
        ),
        (
            "        envFrom: x\n" if False else "        env:\n",
            "        envFrom:\n        - configMapRef: [a]\n        env:\n",
            17,
            "spec.template.spec.containers[0].envFrom[0].configMapRef is a list, not a mapping",
        ),
        (
            "  name: datadog-agent\n  namespace: datadog\n",
            "  name: datadog-agent\n  namespace: datadog\n  labels: [app, datadog]\n",
            6,
            "metadata.labels is a list, not a mapping of strings",
        ),
        (
            "    spec:\n      containers:",
            "    spec: agent\n    x:\n      containers:",
            12,
            "spec.template.spec is a string, not a mapping",
        ),
    ],
)
def test_wrong_types_are_one_line_naming_the_field(tmp_path, old, new, line, message):
    path = tmp_path / "agent.yaml"
    assert old in _DAEMONSET
    path.write_text(_DAEMONSET.replace(old, new, 1))
    code, out, err = invoke("check", "--from", str(path))
    expected = f"meshdoctor: error: {path}:{line}: DaemonSet datadog/datadog-agent: {message}"
    assert (code, out, err) == (2, "", f"{expected} (the API server would refuse it)\n")


def test_deployment_labels_a_list_in_a_mesh_is_refused(tmp_path):
    path = tmp_path / "istiod.json"
    path.write_text(
        '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": '
        '"istio-system", "labels": ["app", "istiod"]}, "spec": {"template": {"spec": {"containers": []}}}}'
    )
    code, _, err = invoke("check", "--from", str(path))
    assert (code, err) == (
        2,
        f"meshdoctor: error: {path}:1: Deployment istio-system/istiod: metadata.labels is a list, "
        "not a mapping of strings (the API server would refuse it)\n",
    )


def test_a_crd_whose_names_is_a_string(tmp_path):
    path = tmp_path / "crd.yaml"
    path.write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: things.example.com\nspec:\n  scope: Cluster\n  names: Thing\n"
    )
    code, _, err = invoke("check", "--from", str(path))
    assert (code, err) == (
        2,
        f"meshdoctor: error: {path}:7: CustomResourceDefinition things.example.com: spec.names is a "
        "string, not a mapping (the API server would refuse it)\n",
    )


def test_a_binding_without_a_role_ref_is_refused(tmp_path):
    path = tmp_path / "binding.yaml"
    path.write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: datadog-agent\n"
        "roleRef: null\nsubjects:\n- kind: ServiceAccount\n  name: datadog-agent\n  namespace: datadog\n"
    )
    code, _, err = invoke("check", "--from", str(path))
    assert (code, err) == (
        2,
        f"meshdoctor: error: {path}:5: ClusterRoleBinding datadog-agent: roleRef is missing "
        "(the API server would refuse it)\n",
    )


def test_nulls_are_absent_fields(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        _DAEMONSET.replace("value: datadoghq.com", "value: null").replace(
            "labels: {app: datadog-agent}", "labels: null"
        )
    )
    code, out, err = invoke("check", "--from", str(path), "-o", "json")
    assert code in (0, 1) and err == ""
    assert '"status": "error"' not in out


def test_a_lone_surrogate_in_a_json_name_with_emit_fixes(tmp_path):
    import json

    import yaml

    docs = []
    for file in sorted(SEED_BROKEN.rglob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(file.read_text()) if doc]
    for doc in docs:
        if doc["kind"] in ("DaemonSet", "ServiceAccount"):
            doc["metadata"]["name"] += "\udcff"
    path = tmp_path / "all.json"
    path.write_text("\n".join(json.dumps(doc) for doc in docs))
    code, out, err = invoke("check", "--from", str(path), "--emit-fixes", str(tmp_path / "fixes"), "-o", "json")
    assert code == 1, err
    assert "\\udcff" not in out
    assert '"name": "datadog-agent\ufffd"' in out  # as Go's JSON decoding reads it
    assert err.startswith("fix plan: ") and err.splitlines()[-1].startswith("wrote the fix plan ")
    written = [p.name for p in (tmp_path / "fixes").iterdir()]
    assert "04-daemonset-default-datadog-agent_.yaml" in written  # the U+FFFD of the name made portable


# -- costs that grew with the input ---------------------------------------------------------------


def test_the_istio_check_configuration_is_parsed_once_per_text(monkeypatch):
    from meshdoctor.datadog import istio_check

    istio_check.parse_check_yaml.cache_clear()
    code, _, err = invoke("check", "--from", str(SEED_BROKEN))
    assert code == 1, err
    info = istio_check.parse_check_yaml.cache_info()
    assert info.misses >= 1
    assert info.hits >= info.misses  # the other rules reuse the parse


def test_a_configmap_value_without_an_istio_option_is_not_parsed():
    from meshdoctor.datadog import istio_check

    istio_check.parse_check_yaml.cache_clear()
    assert not istio_check.looks_like_istio_check("a: [" * 10 + "x" * 1_000_000)
    assert istio_check.parse_check_yaml.cache_info().misses == 0
    assert istio_check.looks_like_istio_check("instances:\n- istiod_endpoint: http://istiod:15014/metrics\n")


def test_a_20_mb_string_through_to_yaml_is_quick():
    from meshdoctor.kube.manifest_yaml import to_yaml

    started = time.monotonic()
    text = to_yaml({"data": {"big": "line\n" * 4_000_000, "flat": "x" * 1_000_000}})
    assert time.monotonic() - started < 10
    assert yaml_load(text)["data"]["flat"] == "x" * 1_000_000


def yaml_load(text: str):
    import yaml

    return yaml.load(text, Loader=yaml.CSafeLoader)


def test_a_kubectl_style_list_read_item_by_item_matches_the_whole_document(tmp_path):
    from meshdoctor.sources import files

    items = "".join(
        f"- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-{i}\n    namespace: default\n"
        f"  data:\n    key: |\n      line one\n      line two {i}\n"
        for i in range(3)
    )
    text = f"apiVersion: v1\nitems:\n{items}kind: List\nmetadata:\n  resourceVersion: ''\n"
    path = tmp_path / "list.yaml"
    path.write_text(text)
    assert files._list_item_spans(text.encode()) is not None
    by_item = files.read_file(path)
    whole = files._read_yaml(text.encode(), str(path), None, files._YamlFile(str(path)))
    assert [x.obj for x in by_item] == [x.obj for x in whole]
    assert (
        [x.origin for x in by_item]
        == [x.origin for x in whole]
        == [files.Origin(str(path), line) for line in (3, 12, 21)]
    )
    for field in ("metadata.name", "data.key", "kind"):
        assert [x.field_lines(field) for x in by_item] == [x.field_lines(field) for x in whole]
    assert by_item[1].field_lines("data.key") == 18


def test_a_list_whose_items_alias_each_other_is_read_whole(tmp_path):
    from meshdoctor.sources import files

    text = (
        "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: &m\n    name: a\n"
        "- apiVersion: v1\n  kind: Secret\n  metadata: *m\nkind: List\n"
    )
    path = tmp_path / "list.yaml"
    path.write_text(text)
    assert [(x.obj["kind"], x.obj["metadata"]["name"]) for x in files.read_file(path)] == [
        ("ConfigMap", "a"),
        ("Secret", "a"),
    ]
