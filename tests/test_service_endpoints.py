from __future__ import annotations

from typing import Any

import pytest

from meshdoctor.kube.service_endpoints import (
    Endpoint,
    EndpointsStatus,
    EndpointUrl,
    ServicePort,
    parse_endpoint_url,
    ready_endpoints,
    resolve_service_port,
    service_ports,
    target_port,
)
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import Snapshot

ISTIOD_SVC: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "istiod", "namespace": "istio-system"},
    "spec": {
        "selector": {"app": "istiod", "istio": "pilot"},
        "ports": [
            {"name": "grpc-xds", "port": 15010, "protocol": "TCP"},
            {"name": "https-dns", "port": 15012, "targetPort": 15012},
            {"name": "http-monitoring", "port": 15014, "targetPort": "monitoring"},
            {"name": "dns-udp", "port": 53, "targetPort": 15053, "protocol": "UDP"},
        ],
    },
}
SVC = ObjectRef("Service", "istio-system", "istiod")
MONITORING = ServicePort(SVC, "http-monitoring", 15014, "monitoring", "TCP")


def pod(
    name: str,
    ip: str | None,
    ready: bool,
    labels: dict[str, str] | None = None,
    port_name: str = "monitoring",
    phase: str = "Running",
    ns: str = "istio-system",
    **meta: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels or {"app": "istiod", "istio": "pilot"},
            **meta,
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "discovery",
                    "ports": [
                        {"name": port_name, "containerPort": 15014},
                        {"name": "dns", "containerPort": 15053, "protocol": "UDP"},
                    ],
                }
            ],
        },
        "status": status,
    }


def snapshot(*objects: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for obj in objects:
        snap.add(obj)
    return snap


def test_service_ports_default_target_port_and_protocol() -> None:
    assert service_ports(ISTIOD_SVC) == [
        ServicePort(SVC, "grpc-xds", 15010, 15010, "TCP"),
        ServicePort(SVC, "https-dns", 15012, 15012, "TCP"),
        MONITORING,
        ServicePort(SVC, "dns-udp", 53, 15053, "UDP"),
    ]


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (15014, MONITORING),
        ("15014", MONITORING),
        ("http-monitoring", MONITORING),
        (15020, None),
        ("monitoring", None),
        (15053, None),
    ],
)
def test_resolve_service_port(port: int | str, expected: ServicePort | None) -> None:
    assert resolve_service_port(snapshot(ISTIOD_SVC), "istio-system", "istiod", port) == expected


def test_resolve_service_port_missing_service() -> None:
    assert resolve_service_port(snapshot(ISTIOD_SVC), "default", "istiod", 15014) is None


def test_target_port_by_name_per_pod() -> None:
    assert target_port(MONITORING, pod("a", "10.0.0.1", True)) == 15014
    assert target_port(MONITORING, pod("b", "10.0.0.2", True, port_name="http-monitoring")) is None
    udp = ServicePort(SVC, "dns-udp", 53, "dns", "UDP")
    assert target_port(udp, pod("a", "10.0.0.1", True)) == 15053
    assert target_port(ServicePort(SVC, "dns-tcp", 53, "dns", "TCP"), pod("a", "10.0.0.1", True)) is None
    assert target_port(ServicePort(SVC, "x", 80, 8080), {}) == 8080


ENDPOINTS: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "istiod", "namespace": "istio-system"},
    "subsets": [
        {
            "addresses": [
                {
                    "ip": "10.0.0.1",
                    "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "name": "istiod-a", "namespace": "istio-system"},
                }
            ],
            "notReadyAddresses": [{"ip": "10.0.0.2", "targetRef": {"kind": "Pod", "name": "istiod-b"}}],
            "ports": [
                {"name": "grpc-xds", "port": 15010},
                {"name": "http-monitoring", "port": 15014, "protocol": "TCP"},
            ],
        },
        {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "grpc-xds", "port": 15010}]},
    ],
}


def test_ready_endpoints_from_endpoints() -> None:
    status = ready_endpoints(snapshot(ISTIOD_SVC, ENDPOINTS), ISTIOD_SVC, "http-monitoring")
    assert status == EndpointsStatus(
        [Endpoint("10.0.0.1", 15014, ObjectRef("Pod", "istio-system", "istiod-a"), "node-1")],
        [Endpoint("10.0.0.2", 15014, ObjectRef("Pod", "istio-system", "istiod-b"))],
        "Endpoints",
    )
    xds = ready_endpoints(snapshot(ISTIOD_SVC, ENDPOINTS), ISTIOD_SVC, 15010)
    assert [str(e) for e in xds.ready] == ["10.0.0.1:15010", "10.0.0.3:15010"]
    assert [str(e) for e in xds.not_ready] == ["10.0.0.2:15010"]


def endpoint_slice(
    name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]], service: str = "istiod"
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "istio-system",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def test_ready_endpoints_from_endpoint_slices() -> None:
    slice_a = endpoint_slice(
        "istiod-abc",
        [
            {
                "addresses": ["10.0.0.1"],
                "conditions": {"ready": True},
                "nodeName": "node-1",
                "targetRef": {"kind": "Pod", "name": "istiod-a", "namespace": "istio-system"},
            },
            {
                "addresses": ["10.0.0.2"],
                "conditions": {"ready": False, "serving": False, "terminating": True},
            },
            {"addresses": ["10.0.0.4"], "conditions": {}},
        ],
        [{"name": "http-monitoring", "port": 15014, "protocol": "TCP"}],
    )
    slice_b = endpoint_slice(
        "istiod-def",
        [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
            {"addresses": ["10.0.0.5"], "conditions": {"ready": True}},
        ],
        [{"name": "http-monitoring", "port": 15014}],
    )
    other = endpoint_slice(
        "other-xyz",
        [{"addresses": ["10.9.9.9"]}],
        [{"name": "http-monitoring", "port": 15014}],
        service="other",
    )
    status = ready_endpoints(snapshot(ISTIOD_SVC, ENDPOINTS, slice_a, slice_b, other), ISTIOD_SVC, 15014)
    assert status == EndpointsStatus(
        [
            Endpoint("10.0.0.1", 15014, ObjectRef("Pod", "istio-system", "istiod-a"), "node-1"),
            Endpoint("10.0.0.4", 15014),
            Endpoint("10.0.0.5", 15014),
        ],
        [Endpoint("10.0.0.2", 15014)],
        "EndpointSlice",
    )
    # A slice that lists only other ports does not serve this one.
    assert ready_endpoints(snapshot(ISTIOD_SVC, slice_a), ISTIOD_SVC, 15010) == EndpointsStatus([], [], "EndpointSlice")


def test_ready_endpoints_from_pods_with_named_target_port() -> None:
    objects = [
        ISTIOD_SVC,
        pod("istiod-a", "10.0.0.1", True),
        pod("istiod-b", "10.0.0.2", False),
        pod("istiod-c", None, False),  # no IP yet: not an endpoint
        pod("istiod-d", "10.0.0.4", True, port_name="http-monitoring"),  # the name does not resolve
        pod("istiod-e", "10.0.0.5", True, phase="Succeeded"),
        pod("istiod-f", "10.0.0.6", True, deletionTimestamp="2024-01-01T00:00:00Z"),
        pod("other", "10.0.0.7", True, labels={"app": "istiod"}),  # selector needs both labels
        pod("elsewhere", "10.0.0.8", True, ns="default"),
    ]
    status = ready_endpoints(snapshot(*objects), ISTIOD_SVC, 15014)
    assert status == EndpointsStatus(
        [Endpoint("10.0.0.1", 15014, ObjectRef("Pod", "istio-system", "istiod-a"), "node-1")],
        [Endpoint("10.0.0.2", 15014, ObjectRef("Pod", "istio-system", "istiod-b"), "node-1")],
        "pods",
    )
    # The numeric target port needs no name: istiod-d serves 15012.
    assert [str(e) for e in ready_endpoints(snapshot(*objects), ISTIOD_SVC, 15012).ready] == [
        "10.0.0.1:15012",
        "10.0.0.4:15012",
    ]


def test_publish_not_ready_addresses() -> None:
    svc = {**ISTIOD_SVC, "spec": {**ISTIOD_SVC["spec"], "publishNotReadyAddresses": True}}
    objects = [
        svc,
        pod("istiod-b", "10.0.0.2", False),
        pod("istiod-f", "10.0.0.6", True, deletionTimestamp="x"),
    ]
    status = ready_endpoints(snapshot(*objects), svc, 15014)
    assert [str(e) for e in status.ready] == ["10.0.0.2:15014", "10.0.0.6:15014"]
    assert status.not_ready == []


def test_unknown_port_and_selectorless_service() -> None:
    assert ready_endpoints(snapshot(ISTIOD_SVC, ENDPOINTS), ISTIOD_SVC, 9999) == EndpointsStatus([], [], "Endpoints")
    bare = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ext", "namespace": "istio-system"},
        "spec": {"ports": [{"port": 80}]},
    }
    assert ready_endpoints(snapshot(bare, pod("istiod-a", "10.0.0.1", True)), bare, 80) == EndpointsStatus(
        [], [], "pods"
    )


def test_endpoint_str() -> None:
    assert str(Endpoint("fd00::1", 15014)) == "[fd00::1]:15014"
    assert str(Endpoint("10.0.0.1", None)) == "10.0.0.1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://istio-telemetry.istio-system:42422/metrics",
            EndpointUrl("istio-telemetry.istio-system", "istio-system", "istio-telemetry", 42422, "/metrics"),
        ),
        (
            "http://istiod.istio-system.svc:15014/metrics",
            EndpointUrl("istiod.istio-system.svc", "istio-system", "istiod", 15014, "/metrics"),
        ),
        (
            "istiod.istio-system.svc.cluster.local",
            EndpointUrl("istiod.istio-system.svc.cluster.local", "istio-system", "istiod", None, ""),
        ),
        (
            "http://istiod.istio-system.svc.cluster.local.:15014/metrics",
            EndpointUrl(
                "istiod.istio-system.svc.cluster.local.",
                "istio-system",
                "istiod",
                15014,
                "/metrics",
            ),
        ),
        (
            "http://istio-proxy.istio-system:15020/stats/prometheus",
            EndpointUrl(
                "istio-proxy.istio-system",
                "istio-system",
                "istio-proxy",
                15020,
                "/stats/prometheus",
            ),
        ),
        (
            "http://%%host%%:15020/stats/prometheus",
            EndpointUrl("%%host%%", None, None, 15020, "/stats/prometheus"),
        ),
        (
            "http://%%host%%:%%port_monitoring%%/metrics",
            EndpointUrl("%%host%%", None, None, "%%port_monitoring%%", "/metrics"),
        ),
        ("http://istiod:15014/metrics", EndpointUrl("istiod", None, "istiod", 15014, "/metrics")),
        (
            "https://istiod.istio-system/metrics",
            EndpointUrl("istiod.istio-system", "istio-system", "istiod", 443, "/metrics"),
        ),
        ("http://10.0.0.1:15014/metrics", EndpointUrl("10.0.0.1", None, None, 15014, "/metrics")),
        ("http://[fd00::1]:15014/metrics", EndpointUrl("[fd00::1]", None, None, 15014, "/metrics")),
        (
            "http://localhost:15020/stats/prometheus",
            EndpointUrl("localhost", None, None, 15020, "/stats/prometheus"),
        ),
        (
            "https://intake.logs.datadoghq.com:443",
            EndpointUrl("intake.logs.datadoghq.com", None, None, 443, ""),
        ),
        (
            "http://istiod-0.istiod.istio-system.svc.cluster.local:15014/metrics",
            EndpointUrl(
                "istiod-0.istiod.istio-system.svc.cluster.local",
                "istio-system",
                "istiod",
                15014,
                "/metrics",
            ),
        ),
        (
            "http://istio-pilot.istio-system:15014/metrics?x=1",
            EndpointUrl("istio-pilot.istio-system", "istio-system", "istio-pilot", 15014, "/metrics"),
        ),
    ],
)
def test_parse_endpoint_url(url: str, expected: EndpointUrl) -> None:
    assert parse_endpoint_url(url) == expected


def test_kinds_read_are_declared() -> None:
    from meshdoctor.kube.service_endpoints import KINDS
    from meshdoctor.rule import Context

    ctx = Context(snapshot(ISTIOD_SVC, pod("istiod-a", "10.0.0.1", True)))
    resolve_service_port(ctx, "istio-system", "istiod", 15014)
    ready_endpoints(ctx, ISTIOD_SVC, 15014)
    assert ctx.kinds_read == set(KINDS)
