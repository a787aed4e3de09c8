"""Offline sources: manifests, dumps and logs become a Snapshot with exact origins and coverage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from meshdoctor.errors import InputError
from meshdoctor.model import Origin, SourceInfo
from meshdoctor.snapshot import REDACTED, LogKey, Snapshot
from meshdoctor.sources import load_offline
from meshdoctor.sources.dump import index_logs_txt, is_dump_dir
from meshdoctor.sources.files import parse_field_path, read_file
from meshdoctor.sources.logs import MAX_LINE, FileLog, SectionLog, load_logs_dir

DATA = Path(__file__).resolve().parent / "data" / "sources"
MANIFESTS = DATA / "manifests"
DUMP = DATA / "dump"
EXTRA = DATA / "extra"

AGENT_LOGS_TXT = DUMP / "datadog" / "datadog-agent-x7k2p" / "logs.txt"


def refs(snapshot: Snapshot) -> list[tuple[str, str, str]]:
    return [
        (k, o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for k in snapshot.kinds()
        for o in snapshot.objects(k)
    ]


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- folders of manifests -------------------------------------------------------------------------


def test_folder_is_read_recursively_yaml_and_json_only_hidden_skipped():
    snapshot, source = load_offline([str(MANIFESTS)])
    assert source == SourceInfo("files", str(MANIFESTS), ())
    assert refs(snapshot) == [
        ("ClusterRole", "", "datadog-agent"),
        ("DaemonSet", "datadog", "datadog-agent"),
        ("Namespace", "", "datadog"),
        ("Secret", "datadog", "datadog-secret"),
        ("Service", "default", "kubernetes"),
        ("Service", "istio-system", "istiod"),
        ("ServiceAccount", "datadog", "datadog-agent"),
        ("ServiceEntry", "default", "datadog-intake"),
    ]


def test_each_object_keeps_its_file_and_first_line():
    snapshot, _ = load_offline([str(MANIFESTS)])
    origins = {(k, o["metadata"]["name"]): snapshot.origin(o) for k in snapshot.kinds() for o in snapshot.objects(k)}
    agent, lst = str(MANIFESTS / "agent.yaml"), str(MANIFESTS / "list.yaml")
    services = str(MANIFESTS / "nested" / "deeper" / "services.json")
    assert origins == {
        ("Namespace", "datadog"): Origin(agent, 3),  # after a comment and `---`
        ("DaemonSet", "datadog-agent"): Origin(agent, 9),  # after an empty document
        ("Secret", "datadog-secret"): Origin(agent, 45),
        ("ServiceAccount", "datadog-agent"): Origin(lst, 4),  # List items
        ("ClusterRole", "datadog-agent"): Origin(lst, 9),
        ("Service", "istiod"): Origin(services, 8),  # JSON list items
        ("Service", "kubernetes"): Origin(services, 26),
        ("ServiceEntry", "datadog-intake"): Origin(str(MANIFESTS / "nested" / "serviceentry.yml"), 1),
    }


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("spec.template.spec.containers[0].env[1].value", 36),
        ("spec.template.spec.containers[0].env[1]", 35),
        ("spec.template.spec.containers[0].volumeMounts[0].mountPath", 39),
        ("metadata.annotations.sidecar.istio.io/inject", 15),
        ('metadata.annotations["sidecar.istio.io/inject"]', 15),
        ("spec.template.spec.nodeSelector", 24),  # absent: the line of its parent
        ("spec.template.spec.containers[3]", 26),  # no such item: the list's key
        ("status", 9),  # absent at the top: the object's line
    ],
)
def test_field_lines_of_a_yaml_object(path, line):
    snapshot, _ = load_offline([str(MANIFESTS)])
    daemonset = snapshot.get("DaemonSet", "datadog", "datadog-agent")
    assert snapshot.field_line(daemonset, path) == line


@pytest.mark.parametrize(
    ("kind", "ns", "name", "path", "line"),
    [
        ("Service", "istio-system", "istiod", "spec.ports[1].port", 21),
        ("Service", "istio-system", "istiod", "spec.ports[1]", 19),
        ("Service", "default", "kubernetes", "spec.ports[0].name", 33),
        ("Service", "default", "kubernetes", "spec.clusterIP", 30),  # absent: the line of "spec"
        ("ClusterRole", "", "datadog-agent", "rules[0].verbs", 16),
        ("ServiceAccount", "datadog", "datadog-agent", "metadata.namespace", 8),
    ],
)
def test_field_lines_of_list_items(kind, ns, name, path, line):
    snapshot, _ = load_offline([str(MANIFESTS)])
    assert snapshot.field_line(snapshot.get(kind, ns, name), path) == line


def test_field_path_syntax():
    assert parse_field_path("spec.template.spec.containers[0].env[12].value") == [
        "spec",
        "template",
        "spec",
        "containers",
        0,
        "env",
        12,
        "value",
    ]
    assert parse_field_path('metadata.annotations["a.b/c"]') == ["metadata", "annotations", "a.b/c"]


def test_typed_list_items_get_kind_and_api_version_of_the_list():
    snapshot, _ = load_offline([str(MANIFESTS / "nested" / "deeper" / "services.json")])
    kubernetes = snapshot.get("Service", "default", "kubernetes")
    assert kubernetes == {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"ports": [{"name": "https", "port": 443}]},
    }


def test_namespaced_object_without_namespace_goes_to_default_cluster_scoped_stays_empty(tmp_path):
    path = write(
        tmp_path / "objs.yaml",
        """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Widget, plural: widgets}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: authentication.istio.io/v1alpha1
kind: MeshPolicy
metadata: {name: default}
""",
    )
    snapshot, _ = load_offline([path])
    assert refs(snapshot) == [
        ("ClusterRoleBinding", "", "crb"),
        ("ConfigMap", "default", "cm"),
        ("CustomResourceDefinition", "", "widgets.example.com"),
        ("MeshPolicy", "", "default"),
        ("Widget", "", "w"),
    ]
    assert snapshot.get("ConfigMap", "default", "cm")["metadata"] == {
        "name": "cm",
        "namespace": "default",
    }


def test_timestamps_stay_strings_as_the_api_server_serves_them(tmp_path):
    path = write(
        tmp_path / "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  creationTimestamp: 2024-05-02T09:12:44Z\n",
    )
    snapshot, _ = load_offline([path])
    assert snapshot.get("ConfigMap", "default", "a")["metadata"]["creationTimestamp"] == "2024-05-02T09:12:44Z"


def test_a_later_object_with_the_same_name_replaces_the_earlier(tmp_path):
    first = write(
        tmp_path / "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\ndata: {k: '1'}\n",
    )
    second = write(
        tmp_path / "b.json",
        '{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "a", "namespace": "x"'
        '},\n "data": {"k": "2"}}',
    )
    snapshot, _ = load_offline([first, second])
    cm = snapshot.get("ConfigMap", "x", "a")
    assert cm["data"] == {"k": "2"}
    assert snapshot.origin(cm) == Origin(second, 1)
    assert snapshot.field_line(cm, "data.k") == 3


def test_json_file_with_several_objects_and_non_ascii_text(tmp_path):
    path = write(
        tmp_path / "two.json",
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "é"},\n'
        ' "data": {"note": "café"}}\n{"apiVersion": "v1", "kind": "ConfigMap",\n'
        ' "metadata": {"name": "b"},\n "data": {"k": "ü"}}\n',
    )
    snapshot, _ = load_offline([path])
    b = snapshot.get("ConfigMap", "default", "b")
    assert snapshot.origin(b) == Origin(path, 3)
    assert snapshot.field_line(b, "data.k") == 5
    assert snapshot.field_line(snapshot.get("ConfigMap", "default", "é"), "data.note") == 2


def test_big_kubectl_json_list_keeps_each_item_line(tmp_path):
    items = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }
        for i in range(300)
    ]
    path = tmp_path / "pods.json"
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=4)
    path.write_text(text)
    lines = text.splitlines()
    name_line = lines.index('                "name": "p250",') + 1
    image_line = lines.index('                        "image": "i"', name_line) + 1
    snapshot, _ = load_offline([str(path)])
    assert len(snapshot.objects("Pod")) == 300
    assert snapshot.origin(snapshot.get("Pod", "ns", "p0")) == Origin(str(path), 5)
    p250 = snapshot.get("Pod", "ns", "p250")
    assert lines[name_line - 5] == "        {"
    assert snapshot.origin(p250) == Origin(str(path), name_line - 4)
    assert snapshot.field_line(p250, "metadata.name") == name_line
    assert snapshot.field_line(p250, "spec.containers[0].image") == image_line


def test_read_file_gives_item_type_to_list_items_without_kind(tmp_path):
    path = write(
        tmp_path / "x.json",
        '{"kind": "List", "apiVersion": "v1", "items": [{"metadata": {"name": "a"}}]}',
    )
    assert [loaded.obj["kind"] for loaded in read_file(path, ("Node", "v1"))] == ["Node"]
    with pytest.raises(InputError) as raised:
        read_file(path)
    assert str(raised.value) == f"{path}:1: not a Kubernetes object: no kind"


# -- standard input -------------------------------------------------------------------------------


def test_stdin_yaml_with_field_lines():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: x\ndata:\n  k: v\n"
    snapshot, source = load_offline(["-"], stdin=io.StringIO(text))
    cm = snapshot.get("ConfigMap", "x", "a")
    assert source == SourceInfo("files", "-", ())
    assert snapshot.origin(cm) == Origin("<stdin>", 1)
    assert snapshot.field_line(cm, "data.k") == 7


def test_stdin_json_list():
    text = (
        '{"kind": "ServiceList", "apiVersion": "v1", "items": [\n'
        '  {"metadata": {"name": "a", "namespace": "x"}},\n'
        '  {"metadata": {"name": "b", "namespace": "x"},\n'
        '   "spec": {"ports": [{"port": 1}]}}\n]}'
    )
    snapshot, _ = load_offline(["-"], stdin=io.StringIO(text))
    b = snapshot.get("Service", "x", "b")
    assert [snapshot.origin(s) for s in snapshot.objects("Service")] == [
        Origin("<stdin>", 2),
        Origin("<stdin>", 3),
    ]
    assert snapshot.field_line(b, "spec.ports[0].port") == 4


# -- secrets --------------------------------------------------------------------------------------


def test_secret_values_never_kept_not_even_for_field_lines():
    snapshot, _ = load_offline([str(MANIFESTS)])
    secret = snapshot.get("Secret", "datadog", "datadog-secret")
    assert secret["stringData"] == {"api-key": REDACTED}
    assert snapshot.field_line(secret, "stringData.api-key") is None
    # Field lines of another object of the same file read it again: the Secret is left out.
    daemonset = snapshot.get("DaemonSet", "datadog", "datadog-agent")
    assert snapshot.field_line(daemonset, "spec.selector") == 17
    assert "0123456789abcdef" not in repr(snapshot.objects("Secret"))


def test_secret_from_stdin_json_keeps_no_text():
    text = '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2"}}'
    snapshot, _ = load_offline(["-"], stdin=io.StringIO(text))
    secret = snapshot.get("Secret", "default", "s")
    assert secret["data"] == {"k": REDACTED}
    assert snapshot.field_line(secret, "data.k") is None


# -- coverage -------------------------------------------------------------------------------------


def test_files_describe_the_whole_cluster():
    snapshot, _ = load_offline([str(MANIFESTS)])
    assert snapshot.unavailable("ConfigMap") is None
    assert snapshot.unavailable("ServiceEntry") is None
    assert snapshot.missing() == {}


def test_dump_collects_only_its_kinds():
    snapshot, source = load_offline([str(DUMP)])
    assert source.kind == "dump"
    assert source.target == str(DUMP)
    assert "ServiceEntry: not in a cluster-info dump" in source.missing
    assert "ConfigMap: not in a cluster-info dump" in source.missing
    assert snapshot.unavailable("ServiceEntry") == "not in a cluster-info dump"
    assert snapshot.unavailable("ClusterRoleBinding") == "not in a cluster-info dump"
    assert snapshot.unavailable("SomeCustomKind") == "not in a cluster-info dump"  # any kind answers
    for kind in (
        "Node",
        "Event",
        "Pod",
        "Service",
        "DaemonSet",
        "Deployment",
        "ReplicaSet",
        "ReplicationController",
    ):
        assert snapshot.unavailable(kind) is None, kind


def test_dump_plus_a_configmap_file():
    snapshot, source = load_offline([str(DUMP), str(EXTRA)])
    assert source.kind == "dump"
    assert source.target == f"{DUMP}, {EXTRA}"
    assert snapshot.unavailable("ConfigMap") is None
    assert "ConfigMap: not in a cluster-info dump" not in source.missing
    assert snapshot.unavailable("ServiceEntry") == "not in a cluster-info dump"
    assert snapshot.get("ConfigMap", "datadog", "datadog-istio-check") is not None


def test_files_first_then_dump_is_still_a_dump():
    snapshot, source = load_offline([str(EXTRA), str(DUMP)])
    assert source.kind == "dump"
    assert snapshot.unavailable("ConfigMap") is None
    assert snapshot.unavailable("Secret") == "not in a cluster-info dump"


# -- the cluster-info dump ------------------------------------------------------------------------


def test_dump_is_detected():
    assert is_dump_dir(DUMP)
    assert not is_dump_dir(MANIFESTS)
    assert not is_dump_dir(EXTRA / "istio-check.yaml")


def test_dump_items_get_kind_and_api_version_from_the_file_name():
    snapshot, _ = load_offline([str(DUMP)])
    got = [
        (
            o["kind"],
            o["apiVersion"],
            o["metadata"].get("namespace", ""),
            o["metadata"]["name"],
            str(snapshot.origin(o)),
        )
        for k in snapshot.kinds()
        for o in snapshot.objects(k)
    ]
    assert got == [
        ("DaemonSet", "apps/v1", "datadog", "datadog-agent", f"{DUMP}/datadog/daemonsets.json:8"),
        (
            "Deployment",
            "apps/v1",
            "istio-system",
            "istiod",
            f"{DUMP}/istio-system/deployments.json:8",
        ),
        (
            "Event",
            "v1",
            "datadog",
            "datadog-agent-x7k2p.17c9a5b1e2f3a4b5",
            f"{DUMP}/datadog/events.json:8",
        ),
        ("Node", "v1", "", "worker-1", f"{DUMP}/nodes.json:8"),
        ("Node", "v1", "", "worker-2", f"{DUMP}/nodes.json:39"),
        ("Pod", "v1", "datadog", "datadog-agent-q9w4z", f"{DUMP}/datadog/pods.json:66"),
        ("Pod", "v1", "datadog", "datadog-agent-x7k2p", f"{DUMP}/datadog/pods.json:8"),
        ("Pod", "v1", "istio-system", "istiod-7f8d9c6b5-m2n3p", f"{DUMP}/istio-system/pods.json:8"),
        ("Service", "v1", "istio-system", "istiod", f"{DUMP}/istio-system/services.json:8"),
    ]


def test_dump_field_lines():
    snapshot, _ = load_offline([str(DUMP)])
    daemonset = snapshot.get("DaemonSet", "datadog", "datadog-agent")
    assert snapshot.field_line(daemonset, "spec.template.spec.containers[0].env[1].value") == 53
    assert snapshot.field_line(daemonset, "spec.template.spec.serviceAccountName") == 36


def test_dump_logs_one_source_per_container_with_logs_txt():
    snapshot, _ = load_offline([str(DUMP)])
    assert sorted(snapshot.logs) == [
        LogKey("datadog", "datadog-agent-x7k2p", "agent"),
        LogKey("datadog", "datadog-agent-x7k2p", "istio-init"),
        LogKey("datadog", "datadog-agent-x7k2p", "istio-proxy"),
    ]
    # datadog-agent-q9w4z and istiod have no logs.txt: no log at all.
    assert snapshot.log("datadog", "datadog-agent-q9w4z", "agent") is None
    agent = snapshot.log("datadog", "datadog-agent-x7k2p", "agent")
    assert agent.origin == f"{AGENT_LOGS_TXT} (container agent)"
    assert list(agent.lines()) == [
        "2024-05-02 09:20:10 UTC | CORE | INFO | (pkg/collector/scheduler.go:71 in Enter) | Scheduling check istio",
        "2024-05-02 09:20:11 UTC | CORE | ERROR | (pkg/forwarder/worker.go:184 in process) "
        "| Error while processing "
        'transaction: Post "https://7-52-0-app.agent.datadoghq.eu/api/v1/series": EOF caf'
        "\ufffd",  # a latin-1 byte
    ]
    assert list(snapshot.log("datadog", "datadog-agent-x7k2p", "istio-init").lines()) == []
    # The proxy's log has no final newline: kubectl glued the END marker to its last line.
    assert list(snapshot.log("datadog", "datadog-agent-x7k2p", "istio-proxy").lines()) == [
        '2024-05-02T09:20:09.114Z\tinfo\tFLAG: --concurrency="2"',
        '[2024-05-02T09:20:11.002Z] "- - -" 0 UH no_healthy_upstream - "-" 0 0 0 - "-" "-" "-" '
        '"-" "-" '
        "BlackHoleCluster - 34.107.236.155:443 10.244.1.17:51234 - -",
    ]
    with snapshot.log("datadog", "datadog-agent-x7k2p", "istio-init").open() as raw:
        assert raw.read() == b""


def test_logs_txt_index_is_byte_ranges():
    sections = index_logs_txt(str(AGENT_LOGS_TXT))
    data = AGENT_LOGS_TXT.read_bytes()
    assert sorted(sections) == ["agent", "istio-init", "istio-proxy"]
    start, end = sections["agent"]
    assert data[start:end].startswith(b"2024-05-02 09:20:10 UTC | CORE | INFO")
    assert data[start:end].endswith(b"EOF caf\xe9\n")
    assert sections["istio-init"][0] == sections["istio-init"][1]


def _logs_txt(tmp_path: Path, sections: list[tuple[str, bytes]], tail: bytes = b"") -> Path:
    pod_dir = tmp_path / "dump" / "ns" / "pod-1"
    pod_dir.mkdir(parents=True)
    (tmp_path / "dump" / "nodes.json").write_text('{"kind": "NodeList", "apiVersion": "v1", "items": []}')
    (tmp_path / "dump" / "ns" / "pods.json").write_text('{"kind": "PodList", "apiVersion": "v1", "items": []}')
    path = pod_dir / "logs.txt"
    with open(path, "wb") as out:
        for container, body in sections:
            out.write(f"==== START logs for container {container} of pod ns/pod-1 ====\n".encode())
            out.write(body)
            out.write(f"==== END logs for container {container} of pod ns/pod-1 ====\n".encode())
        out.write(tail)
    return path


def test_logs_txt_long_line_is_cut_and_markers_found_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("meshdoctor.sources.dump.INDEX_CHUNK", 4096)
    long_line = b"x" * (1024 * 1024) + b"\n"
    path = _logs_txt(tmp_path, [("a", b"first\n" + long_line + b"after\n"), ("b", b"only line\n")])
    sections = index_logs_txt(str(path))
    assert sorted(sections) == ["a", "b"]
    lines = list(SectionLog(path, *sections["a"]).lines())
    assert lines == ["first", "x" * MAX_LINE, "after"]
    assert list(SectionLog(path, *sections["b"]).lines()) == ["only line"]


def test_logs_txt_of_a_pod_not_in_pods_json_is_indexed_from_the_file(tmp_path):
    _logs_txt(tmp_path, [("a", b"one\n"), ("b", b"Request log error: container b is waiting to start\n")])
    snapshot, _ = load_offline([str(tmp_path / "dump")])
    assert sorted(snapshot.logs) == [LogKey("ns", "pod-1", "a"), LogKey("ns", "pod-1", "b")]
    assert list(snapshot.log("ns", "pod-1", "a").lines()) == ["one"]


def test_logs_txt_without_end_marker_runs_to_the_next_start_or_the_end(tmp_path):
    path = tmp_path / "logs.txt"
    path.write_bytes(
        b"==== START logs for container a of pod ns/p ====\nA1\n"
        b"==== START logs for container b of pod ns/p ====\nB1\nB2"
    )
    sections = index_logs_txt(str(path))
    assert [list(SectionLog(path, *sections[c]).lines()) for c in ("a", "b")] == [
        ["A1"],
        ["B1", "B2"],
    ]


def test_a_start_marker_inside_a_line_is_log_text(tmp_path):
    path = tmp_path / "logs.txt"
    path.write_bytes(
        b"==== START logs for container a of pod ns/p ====\n"
        b"echo ==== START logs for container z of pod ns/p ====\n"
        b"==== END logs for container a of pod ns/p ====\n"
    )
    sections = index_logs_txt(str(path))
    assert sorted(sections) == ["a"]
    assert list(SectionLog(path, *sections["a"]).lines()) == ["echo ==== START logs for container z of pod ns/p ===="]


# -- --logs folders -------------------------------------------------------------------------------


def test_logs_folder_inside_a_from_folder_is_read_as_logs():
    snapshot, _ = load_offline([str(MANIFESTS)])
    assert sorted(snapshot.logs) == [
        LogKey("datadog", "datadog-agent-x7k2p", "agent", False),
        LogKey("datadog", "datadog-agent-x7k2p", "agent", True),
    ]
    assert list(snapshot.log("datadog", "datadog-agent-x7k2p", "agent").lines()) == [
        "2024-05-02 09:20:10 UTC | CORE | INFO | started",
        "2024-05-02 09:20:11 UTC | CORE | ERROR | intake unreachable",
    ]
    assert list(snapshot.log("datadog", "datadog-agent-x7k2p", "agent", previous=True).lines()) == [
        "previous instance line 1"
    ]


def test_logs_dir_argument(tmp_path):
    log = tmp_path / "ns" / "pod" / "istio-proxy.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"a\r\nb\xff\n\nlast")
    (tmp_path / ".hidden" / "p").mkdir(parents=True)
    (tmp_path / ".hidden" / "p" / "c.log").write_text("x")
    snapshot, _ = load_offline([str(EXTRA)], logs_dir=str(tmp_path))
    assert sorted(snapshot.logs) == [LogKey("ns", "pod", "istio-proxy")]
    source = snapshot.log("ns", "pod", "istio-proxy")
    assert isinstance(source, FileLog)
    assert source.origin == str(log)
    assert list(source.lines()) == ["a", "b\ufffd", "", "last"]


def test_long_lines_of_a_file_log_are_cut(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"y" * (MAX_LINE + 1) + b"\n" + b"z" * MAX_LINE + b"\nend\n")
    assert list(FileLog(path).lines()) == ["y" * MAX_LINE, "z" * MAX_LINE, "end"]


def test_section_log_stops_at_its_end_even_mid_line(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc\ndef\nghi\n")
    assert list(SectionLog(path, 4, 10).lines()) == ["def", "gh"]
    with SectionLog(path, 4, 10).open() as raw:
        assert raw.read() == b"def\ngh"


def test_missing_logs_dir():
    with pytest.raises(InputError) as raised:
        load_logs_dir(Snapshot(), "/nonexistent/logs")
    assert str(raised.value) == "/nonexistent/logs: no such file or directory"


# -- broken input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "flow.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {a: b\n",
            "5: YAML syntax error: did not find expected ',' or '}'",
        ),
        (
            "indent.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n  - c\n",
            "7: YAML syntax error: did not find expected key",
        ),
        (
            "nokind.yaml",
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nmetadata:\n  name: b\n",
            "7: not a Kubernetes object: no kind",
        ),
        (
            "noapi.yaml",
            "kind: ConfigMap\nmetadata:\n  name: a\n",
            "1: not a Kubernetes object: no apiVersion",
        ),
        (
            "noname.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: x\n",
            "1: not a Kubernetes object: no metadata.name",
        ),
        ("seq.yaml", "- a\n- b\n", "1: not a Kubernetes object: expected a mapping, found a list"),
        ("scalar.yaml", "apiVersion: v1\n---\nhello\n", "1: not a Kubernetes object: no kind"),
        (
            "bad.json",
            '{\n  "apiVersion": "v1",\n  "kind": "ConfigMap"\n  "metadata": {}\n}\n',
            "4: JSON syntax error at column 3: Expecting ',' delimiter",
        ),
        (
            "item.json",
            '{"kind": "List", "apiVersion": "v1", "items": [\n  {"kind": "Pod", "apiVersion": "'
            'v1", "metadata": {"name": "a"}},\n  3]}',
            "3: not a Kubernetes object: expected a mapping, found a number",
        ),
        (
            "listitem.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  metadata: {name: a}\n",
            "4: not a Kubernetes object: no kind",
        ),
        (
            "ctrl.yaml",
            "a: \x00\n",
            "1: YAML syntax error: unacceptable character #x0000: control characters are not allowed",
        ),
    ],
)
def test_broken_input_is_one_line_naming_file_and_line(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(InputError) as raised:
        load_offline([path])
    assert str(raised.value) == f"{path}:{message}"
    assert raised.value.file == path
    assert "\n" not in str(raised.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(InputError) as raised:
        load_offline([str(path)])
    assert str(raised.value) == f"{path}:3: not UTF-8 text"


def test_missing_path():
    with pytest.raises(InputError) as raised:
        load_offline(["/nonexistent/cluster.yaml"])
    assert str(raised.value) == "/nonexistent/cluster.yaml: no such file or directory"


def test_unreadable_file(tmp_path):
    import os

    path = tmp_path / "secret.yaml"
    path.write_text("apiVersion: v1\n")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: every file is readable")
    with pytest.raises(InputError) as raised:
        load_offline([str(path)])
    assert str(raised.value) == f"{path}: cannot read: Permission denied"


def test_empty_documents_are_skipped(tmp_path):
    path = write(tmp_path / "empty.yaml", "---\n---\n# only a comment\n---\n")
    snapshot, source = load_offline([path])
    assert len(snapshot) == 0
    assert source == SourceInfo("files", path, ())


def test_stdin_syntax_error_names_stdin():
    with pytest.raises(InputError) as raised:
        load_offline(["-"], stdin=io.StringIO('{"kind": }'))
    assert str(raised.value) == "<stdin>:1: JSON syntax error at column 10: Expecting value"


def test_a_folder_read_as_a_file_is_unreadable(tmp_path):
    with pytest.raises(InputError) as raised:
        read_file(tmp_path)
    assert str(raised.value) == f"{tmp_path}: cannot read: Is a directory"


def test_dump_written_with_output_yaml_and_no_nodes_file(tmp_path):
    ns = tmp_path / "kube-system"
    ns.mkdir()
    (ns / "pods.yaml").write_text(
        "apiVersion: v1\nitems:\n- metadata:\n    name: coredns-1\n    namespace: kube-system\n"
        "  spec:\n    containers:\n    - name: coredns\n      image: coredns:1.11\n"
        'kind: PodList\nmetadata:\n  resourceVersion: "7"\n'
    )
    (ns / "events.yaml").write_text("apiVersion: v1\nitems: []\nkind: EventList\nmetadata: {}\n")
    assert is_dump_dir(tmp_path)
    snapshot, source = load_offline([str(tmp_path)])
    pod = snapshot.get("Pod", "kube-system", "coredns-1")
    assert (source.kind, pod["kind"], pod["apiVersion"]) == ("dump", "Pod", "v1")
    assert snapshot.origin(pod) == Origin(str(ns / "pods.yaml"), 3)
    assert snapshot.field_line(pod, "spec.containers[0].image") == 9


def test_a_manifests_folder_with_one_list_file_per_namespace_is_not_a_dump(tmp_path):
    (tmp_path / "team").mkdir()
    services = '{"kind": "ServiceList", "apiVersion": "v1", "items": []}'
    write(tmp_path / "team" / "services.json", services)
    assert not is_dump_dir(tmp_path)
    _, source = load_offline([str(tmp_path)])
    assert source.kind == "files"


# -- what a real kubectl writes for an empty list -------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "text"),
    [
        ("pods.json", '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":null}'),
        ("pods.yaml", "apiVersion: v1\nkind: PodList\nmetadata: {}\nitems: null\n"),
    ],
)
def test_items_null_is_an_empty_list(tmp_path, file_name, text):
    """kubectl prints an empty typed list as `items: null` (a nil Go slice), in JSON and YAML."""
    path = tmp_path / file_name
    path.write_text(text)
    assert read_file(path) == []


def test_dump_of_one_namespace_with_items_null(tmp_path):
    """`kubectl cluster-info dump --namespaces default` of a namespace without pods: not bad input."""
    (tmp_path / "default").mkdir()
    write(tmp_path / "default" / "pods.json", '{"kind":"PodList","apiVersion":"v1","metadata":{},"items":null}')
    write(tmp_path / "default" / "services.json", '{"kind":"ServiceList","apiVersion":"v1","metadata":{},"items":null}')
    snapshot, source = load_offline([str(tmp_path)])
    assert source.kind == "dump"
    assert refs(snapshot) == []
    assert snapshot.not_read("Pod", "default") is None
    assert snapshot.not_read("Pod", "istio-system") == (
        "namespace istio-system was not read (the cluster-info dump holds default)"
    )
