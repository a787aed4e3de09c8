from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshdoctor.errors import UsageError
from meshdoctor.model import SourceInfo
from meshdoctor.snapshot import LogKey, Snapshot
from meshdoctor.sources import load_offline
from meshdoctor.sources.snapshot_writer import kind_file_name, log_path, write_snapshot


class ListLog:
    def __init__(self, lines: list[str]) -> None:
        self.origin = "test"
        self._lines = lines

    def lines(self) -> Iterator[str]:
        yield from self._lines


def obj(kind: str, api_version: str, name: str, namespace: str | None = None, **rest: object) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **rest}


OBJECTS = [
    obj(
        "DaemonSet",
        "apps/v1",
        "datadog-agent",
        "datadog",
        spec={
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "image": "gcr.io/datadoghq/agent:7.49.1",
                            "env": [{"name": "DD_SITE", "value": "datadoghq.eu"}],
                        }
                    ]
                }
            }
        },
    ),
    obj("Pod", "v1", "datadog-agent-abcde", "datadog", status={"phase": "Running"}),
    obj("Pod", "v1", "istiod-1", "istio-system"),
    obj(
        "ConfigMap",
        "v1",
        "istio-check",
        "datadog",
        data={
            "conf.yaml": "instances:\n  - istiod_endpoint: http://istiod.istio-system:15014/metrics\n",
            "weird": "a: 'quoted: \"x\"'\n\ttab\u00e9",
        },
    ),
    obj(
        "ServiceEntry",
        "networking.istio.io/v1",
        "datadog-intake",
        "datadog",
        spec={
            "hosts": ["*.datadoghq.eu"],
            "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
            "resolution": "NONE",
            "location": "MESH_EXTERNAL",
        },
    ),
    obj(
        "ClusterRole",
        "rbac.authorization.k8s.io/v1",
        "datadog-agent",
        rules=[{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}],
    ),
    obj("Namespace", "v1", "datadog", metadata_extra=None),
    obj("Node", "v1", "node-1", status={"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}),
]


def snapshot_with_everything() -> Snapshot:
    snapshot = Snapshot()
    for o in OBJECTS:
        snapshot.add(o)
    snapshot.add(obj("Secret", "v1", "datadog-secret", "datadog", data={"api-key": "c2VjcmV0"}))
    snapshot.add_log(
        LogKey("datadog", "datadog-agent-abcde", "agent"),
        ListLog(["2024-01-01 UTC | CORE | ERROR | first", "caf\ufffd line", ""]),
    )
    snapshot.add_log(LogKey("datadog", "datadog-agent-abcde", "agent", previous=True), ListLog(["before restart"]))
    snapshot.add_log(LogKey("datadog", "datadog-agent-abcde", "istio-proxy"), ListLog([]))
    snapshot.mark_missing("ClusterRoleBinding", "forbidden: cannot list clusterrolebindings")
    return snapshot


def test_file_names() -> None:
    assert kind_file_name("Pod") == "pods.core.yaml"
    assert kind_file_name("DaemonSet") == "daemonsets.apps.yaml"
    assert kind_file_name("ServiceEntry") == "serviceentries.networking.istio.io.yaml"
    assert kind_file_name("Frobnicator") == "frobnicator.yaml"
    assert log_path(LogKey("ns", "p", "c")) == Path("logs/ns/p/c.log")
    assert log_path(LogKey("ns", "p", "c", True)) == Path("logs/ns/p/c.previous.log")


def test_round_trip_through_load_offline(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    written = write_snapshot(snapshot_with_everything(), out, SourceInfo("live", "ctx (https://127.0.0.1:1)"))
    names = sorted(str(p.relative_to(out)) for p in written)
    assert names == [
        "clusterroles.rbac.authorization.k8s.io.yaml",
        "configmaps.core.yaml",
        "daemonsets.apps.yaml",
        "logs/datadog/datadog-agent-abcde/agent.log",
        "logs/datadog/datadog-agent-abcde/agent.previous.log",
        "logs/datadog/datadog-agent-abcde/istio-proxy.log",
        "namespaces.core.yaml",
        "nodes.core.yaml",
        "pods.core.yaml",
        "serviceentries.networking.istio.io.yaml",
        "snapshot.txt",
    ]
    from meshdoctor.sources.dump import is_dump_dir

    assert not is_dump_dir(out), "a snapshot folder must not read back as a partial cluster-info dump"
    # each file is a List
    pods = yaml.safe_load((out / "pods.core.yaml").read_text())
    assert (pods["apiVersion"], pods["kind"], [p["metadata"]["name"] for p in pods["items"]]) == (
        "v1",
        "List",
        ["datadog-agent-abcde", "istiod-1"],
    )

    again, source = load_offline([str(out)])
    original = snapshot_with_everything()
    for kind in ("DaemonSet", "Pod", "ConfigMap", "ServiceEntry", "ClusterRole", "Namespace", "Node"):
        assert again.objects(kind) == original.objects(kind), kind
    assert again.objects("Secret") == []
    assert sorted(again.logs) == sorted(k for k in original.logs)
    for key in original.logs:
        assert list(again.logs[key].lines()) == list(original.logs[key].lines()), key
    info = (out / "snapshot.txt").read_text()
    assert "source: live ctx (https://127.0.0.1:1)" in info
    assert "  ClusterRoleBinding: forbidden: cannot list clusterrolebindings" in info
    assert "objects: 8 (Secrets left out)" in info


def test_secret_never_written(tmp_path: Path) -> None:
    write_snapshot(snapshot_with_everything(), tmp_path / "s")
    text = "".join(p.read_text(errors="replace") for p in (tmp_path / "s").rglob("*") if p.is_file())
    assert "datadog-secret" not in text
    assert "c2VjcmV0" not in text and "api-key" not in text


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "old.yaml").write_text("x: 1\n")
    with pytest.raises(UsageError, match="exists and is not an empty folder"):
        write_snapshot(Snapshot(), tmp_path)
    write_snapshot(Snapshot(), tmp_path / "empty-ok")
    assert sorted(p.name for p in (tmp_path / "empty-ok").iterdir()) == ["snapshot.txt"]
