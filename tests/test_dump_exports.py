"""Exports next to a dump: a file named after its kind lists that kind completely, even when empty."""

from __future__ import annotations

import shutil
from pathlib import Path

from meshdoctor.sources import kind_named_by, load_offline
from meshdoctor.sources.dump import NOT_IN_DUMP

ROOT = Path(__file__).resolve().parent.parent
DUMP = ROOT / "fixtures" / "scenarios" / "logs-only-dump"
EMPTY = 'apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: ""\n'


def test_file_names_as_snapshot_writes_them_name_their_kind():
    assert kind_named_by("out/networkpolicies.networking.k8s.io.yaml") == "NetworkPolicy"
    assert kind_named_by("configmaps.core.yaml") == "ConfigMap"
    assert kind_named_by("serviceentries.networking.istio.io.json") == "ServiceEntry"
    # a bare `pods.yaml` is a dump's list file; other names say nothing
    assert kind_named_by("pods.yaml") is None
    assert kind_named_by("configmaps.yaml") is None
    assert kind_named_by("cluster.yaml") is None


def test_an_empty_export_named_after_its_kind_counts_as_collected(tmp_path):
    dump = tmp_path / "dump"
    shutil.copytree(DUMP, dump)
    named = tmp_path / "networkpolicies.networking.k8s.io.yaml"
    named.write_text(EMPTY)
    anonymous = tmp_path / "export.yaml"
    anonymous.write_text(EMPTY)
    snapshot, source = load_offline([str(dump), str(named)])
    assert snapshot.unavailable("NetworkPolicy") is None
    assert "NetworkPolicy: not in a cluster-info dump" not in source.missing
    snapshot, source = load_offline([str(dump), str(anonymous)])
    assert snapshot.unavailable("NetworkPolicy") == NOT_IN_DUMP
    assert f"NetworkPolicy: {NOT_IN_DUMP}" in source.missing


def namespaces(*names: str) -> str:
    items = "".join(f"- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: {n}\n" for n in names)
    return f"apiVersion: v1\nkind: List\nitems:\n{items}"


def test_a_dump_holding_every_listed_namespace_read_them_all(tmp_path):
    """Namespaces given next to a dump say whether it is whole: a namespace it lacks then does not exist."""
    exports = tmp_path / "namespaces.core.yaml"
    exports.write_text(namespaces("datadog", "istio-system"))
    snapshot, source = load_offline([str(DUMP), str(exports)])
    assert snapshot.not_read("Service", "gone") is None
    assert not [line for line in source.missing if "holds" in line]
    exports.write_text(namespaces("datadog", "istio-system", "payments"))
    snapshot, source = load_offline([str(DUMP), str(exports)])
    assert snapshot.not_read("Service", "payments") == (
        "namespace payments was not read (the cluster-info dump holds datadog, istio-system)"
    )
