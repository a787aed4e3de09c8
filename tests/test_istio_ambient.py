"""Ambient enrollment as the Istio CNI decides it (meshdoctor.istio.ambient)."""

from __future__ import annotations

from typing import Any

import pytest

from meshdoctor.istio.ambient import ambient_membership
from meshdoctor.istio.injection import Injection
from meshdoctor.snapshot import Snapshot

ZTUNNEL = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "ztunnel", "namespace": "istio-system"},
    "spec": {
        "template": {"metadata": {"labels": {"app": "ztunnel"}}, "spec": {"containers": [{"name": "istio-proxy"}]}}
    },
}


def cluster(ns_labels: dict[str, str], ztunnel: bool = True) -> Snapshot:
    snap = Snapshot()
    snap.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "datadog", "labels": ns_labels}})
    if ztunnel:
        snap.add(ZTUNNEL)
    return snap


def agent(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, **spec: Any) -> dict:
    meta: dict[str, Any] = {"labels": {"app": "datadog-agent", **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "datadog-agent", "namespace": "datadog"},
        "spec": {"template": {"metadata": meta, "spec": {"containers": [{"name": "agent"}], **spec}}},
    }


AMBIENT_NS = {"istio.io/dataplane-mode": "ambient"}


@pytest.mark.parametrize(
    ("ns_labels", "workload", "ztunnel", "enrolled"),
    [
        (AMBIENT_NS, agent(), True, True),
        ({}, agent({"istio.io/dataplane-mode": "ambient"}), True, True),
        ({}, agent(), True, False),
        (AMBIENT_NS, agent({"istio.io/dataplane-mode": "none"}), True, False),
        (AMBIENT_NS, agent(hostNetwork=True), True, False),
        (AMBIENT_NS, agent(annotations={"sidecar.istio.io/status": "{}"}), True, False),
        (AMBIENT_NS, agent(), False, False),
        (AMBIENT_NS, agent(annotations={"ambient.istio.io/redirection": "enabled"}), False, True),
    ],
    ids=[
        "namespace",
        "pod-label",
        "unlabelled",
        "pod-none-opts-out",
        "host-network",
        "sidecar-wins",
        "no-ztunnel",
        "cni-annotation",
    ],
)
def test_enrollment(ns_labels: dict, workload: dict, ztunnel: bool, enrolled: bool) -> None:
    assert ambient_membership(cluster(ns_labels, ztunnel), workload).enrolled is enrolled


def test_a_predicted_sidecar_wins_over_an_ambient_namespace() -> None:
    got = ambient_membership(cluster(AMBIENT_NS), agent(), Injection(True, "istio-injection=enabled"))
    assert not got.enrolled
    assert "sidecar" in got.reason


def test_the_waypoint_binding_is_reported() -> None:
    got = ambient_membership(cluster({**AMBIENT_NS, "istio.io/use-waypoint": "waypoint"}), agent())
    assert got.enrolled and got.waypoint == "waypoint"
