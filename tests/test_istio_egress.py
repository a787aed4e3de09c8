"""Istio host matching, ServiceEntry coverage, Sidecar scoping and outbound capture."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshdoctor.istio.egress import (
    Coverage,
    covering_service_entries,
    effective_outbound_policy,
    effective_sidecar,
    egress_capture,
    egress_captured,
    exported_to,
    host_matches,
    host_subset_of,
    port_protocol,
    protocol_compatible,
    service_entry_manifest,
)
from meshdoctor.snapshot import Snapshot

INTAKE = "app.datadoghq.com"


def se(
    name: str,
    hosts: list[str],
    ports: list[dict[str, Any]] | None = None,
    ns: str = "datadog",
    export_to: list[str] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "hosts": hosts,
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": ports if ports is not None else [{"number": 443, "name": "https", "protocol": "HTTPS"}],
    }
    if export_to is not None:
        spec["exportTo"] = export_to
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": meta,
        "spec": spec,
    }


def sidecar(
    name: str,
    ns: str,
    hosts: list[str],
    selector: dict[str, str] | None = None,
    port: dict[str, Any] | None = None,
    outbound: str | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    listener: dict[str, Any] = {"hosts": hosts}
    if port:
        listener["port"] = port
    spec: dict[str, Any] = {"egress": [listener]}
    if selector:
        spec["workloadSelector"] = {"labels": selector}
    if outbound:
        spec["outboundTrafficPolicy"] = {"mode": outbound}
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "Sidecar",
        "metadata": meta,
        "spec": spec,
    }


AGENT_POD = {
    "kind": "Pod",
    "metadata": {"name": "agent-1", "namespace": "datadog", "labels": {"app": "datadog-agent"}},
    "spec": {"containers": [{"name": "agent"}]},
}


def snapshot(*objs: dict[str, Any]) -> Snapshot:
    snap = Snapshot()
    for obj in objs:
        snap.add(obj)
    return snap


def cover(
    snap: Snapshot,
    host: str = INTAKE,
    port: int = 443,
    protocol: str = "TLS",
    ns: str = "datadog",
    client: dict[str, Any] | None = None,
    default_export_to: list[str] | None = None,
) -> Coverage:
    return covering_service_entries(
        snap,
        ns,
        host,
        port,
        protocol,
        client=client,
        root_namespace="istio-system",
        default_export_to=default_export_to or ["*"],
    )


def names(entries: list[dict[str, Any]]) -> list[str]:
    return [e["metadata"]["name"] for e in entries]


def misses(coverage: Any) -> list[tuple[str, str]]:
    return [(e["metadata"]["name"], why) for e, why in coverage.near_misses]


# -- host matching (pkg/config/host/name.go) -------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*", "app.datadoghq.com", True),
        ("*.datadoghq.com", "app.datadoghq.com", True),
        ("*.datadoghq.com", "trace.agent.datadoghq.com", True),
        ("*.datadoghq.com", "datadoghq.com", False),
        ("*.datadoghq.com", "app.datadoghq.eu", False),
        ("app.datadoghq.com", "app.datadoghq.com", True),
        ("App.DatadogHQ.com", "app.datadoghq.COM", True),
        ("app.datadoghq.com.", "app.datadoghq.com", True),
        ("app.datadoghq.com", "api.datadoghq.com", False),
        ("datadoghq.com", "app.datadoghq.com", False),
        ("*.com", "app.datadoghq.com", True),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


def test_wildcard_host_is_a_subset_only_of_a_wider_wildcard() -> None:
    assert host_subset_of("*.datadoghq.com", "*") is True
    assert host_subset_of("*.datadoghq.com", "*.com") is True
    assert host_subset_of("*.datadoghq.com", "app.datadoghq.com") is False
    assert host_subset_of("*.com", "*.datadoghq.com") is False


# -- ports and protocols ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"number": 443, "protocol": "HTTPS"}, "HTTPS"),
        ({"number": 443, "name": "https", "protocol": "http"}, "HTTP"),  # 1.0 googleapis sample
        # The name never sets a ServiceEntry port's protocol (serviceentry/conversion.go).
        ({"number": 443, "name": "https-intake"}, ""),
        ({"number": 443, "name": "tls"}, ""),
        ({"number": 443, "name": "intake"}, ""),
    ],
)
def test_port_protocol(port: dict[str, Any], expected: str) -> None:
    assert port_protocol(port) == expected


def test_protocol_table_for_a_tls_client() -> None:
    assert [p for p in ("HTTPS", "TLS", "TCP", "", "HTTP", "HTTP2", "GRPC") if protocol_compatible(p, "TLS")] == [
        "HTTPS",
        "TLS",
        "TCP",
        "",
    ]
    assert protocol_compatible("HTTP", "HTTP") is True
    assert protocol_compatible("HTTPS", "HTTP") is False


# -- ServiceEntry coverage -------------------------------------------------------------------------


def test_exact_host_https_443_covers() -> None:
    got = cover(snapshot(se("dd", [INTAKE])))
    assert (got.covered, names(got.entries), got.near_misses, got.sidecar) == (
        True,
        ["dd"],
        [],
        None,
    )


def test_wildcard_entry_covers_every_intake_host() -> None:
    snap = snapshot(se("dd", ["*.datadoghq.com"]))
    for host in (
        "app.datadoghq.com",
        "7-49-0-app.agent.datadoghq.com",
        "trace.agent.datadoghq.com",
    ):
        assert cover(snap, host).covered is True


def test_wildcard_entry_does_not_cover_the_bare_domain() -> None:
    got = cover(snapshot(se("dd", ["*.datadoghq.com"])), "datadoghq.com")
    assert got.covered is False
    assert misses(got) == [
        (
            "dd",
            "host *.datadoghq.com does not cover the bare domain datadoghq.com: "
            "a wildcard needs at least one more label",
        )
    ]


def test_parent_domain_entry_is_a_near_miss() -> None:
    got = cover(snapshot(se("dd", ["datadoghq.com"])))
    assert misses(got) == [
        (
            "dd",
            "host datadoghq.com is the parent domain of app.datadoghq.com, not "
            "app.datadoghq.com itself (use *.datadoghq.com)",
        )
    ]


def test_entry_for_another_site_is_a_near_miss() -> None:
    got = cover(snapshot(se("dd-eu", ["*.datadoghq.eu"])))
    assert got.covered is False
    assert misses(got) == [("dd-eu", "host *.datadoghq.eu does not cover app.datadoghq.com (another site or domain)")]


def test_unrelated_entry_is_not_a_near_miss() -> None:
    got = cover(snapshot(se("github", ["github.com"])))
    assert (got.covered, got.near_misses) == (False, [])


def test_wrong_port_is_a_near_miss() -> None:
    got = cover(snapshot(se("dd", [INTAKE], [{"number": 80, "name": "http", "protocol": "HTTP"}])))
    assert misses(got) == [("dd", "covers app.datadoghq.com but not port 443 (ports: 80/HTTP)")]


def test_http_protocol_on_443_does_not_carry_the_agents_tls() -> None:
    # The 1.0 googleapis sample style: 443 declared `http` (for TLS origination by a
    # DestinationRule).
    got = cover(snapshot(se("dd", ["*.datadoghq.com"], [{"number": 443, "name": "https", "protocol": "http"}])))
    assert got.covered is False
    assert misses(got) == [
        (
            "dd",
            "covers app.datadoghq.com:443 with protocol HTTP, which does not carry a TLS connection from the client",
        )
    ]


@pytest.mark.parametrize("protocol", ["TLS", "TCP", "tcp"])
def test_tls_and_tcp_ports_carry_the_agents_tls(protocol: str) -> None:
    got = cover(snapshot(se("dd", [INTAKE], [{"number": 443, "name": "p", "protocol": protocol}])))
    assert got.covered is True


def test_plain_http_client_on_port_80_is_covered_by_an_http_port() -> None:
    snap = snapshot(se("dd", [INTAKE], [{"number": 80, "name": "http", "protocol": "HTTP"}]))
    assert cover(snap, port=80, protocol="HTTP").covered is True


@pytest.mark.parametrize(
    ("export", "client_ns", "expected"),
    [
        (None, "datadog", True),  # default exportTo "*"
        (["*"], "monitoring", True),
        (["."], "datadog", True),
        (["."], "monitoring", False),
        (["monitoring"], "monitoring", True),
        (["monitoring"], "datadog", False),
        (["~"], "datadog", False),
        (["~", "*"], "datadog", True),  # "*" wins over "~" (initServiceRegistry)
    ],
)
def test_export_to_visibility(export: list[str] | None, client_ns: str, expected: bool) -> None:
    got = cover(snapshot(se("dd", [INTAKE], export_to=export)), ns=client_ns)
    assert got.covered is expected


def test_not_exported_entry_is_a_near_miss_naming_its_export_to() -> None:
    got = cover(snapshot(se("dd", [INTAKE], ns="istio-system", export_to=["."])))
    assert misses(got) == [
        (
            "dd",
            "covers app.datadoghq.com:443 but is not exported to namespace datadog (exportTo: .)",
        )
    ]


def test_mesh_default_export_to_applies_when_the_entry_has_none() -> None:
    snap = snapshot(se("dd", [INTAKE], ns="istio-system"))
    assert cover(snap, default_export_to=["."]).covered is False
    assert cover(snap, default_export_to=["*"]).covered is True


def test_export_to_annotation_is_ignored_on_service_entries() -> None:
    entry = se("dd", [INTAKE], ns="istio-system")
    entry["metadata"]["annotations"] = {"networking.istio.io/exportTo": "."}
    assert exported_to(entry, "datadog") is True


# -- Sidecar scoping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "entry_ns", "expected"),
    [
        (["./*"], "datadog", True),
        (["./*"], "istio-system", False),
        (["istio-system/*"], "istio-system", True),
        (["istio-system/*"], "datadog", False),
        (["*/app.datadoghq.com"], "istio-system", True),
        (["*/*.datadoghq.com"], "datadog", True),
        (["~/*"], "datadog", False),
        (["*/*"], "other", True),
        (["datadog/app.datadoghq.com"], "datadog", True),
        (["not-a-namespaced-host"], "datadog", False),
    ],
)
def test_sidecar_egress_hosts_import(hosts: list[str], entry_ns: str, expected: bool) -> None:
    snap = snapshot(se("dd", [INTAKE], ns=entry_ns), sidecar("default", "datadog", hosts))
    got = cover(snap, client=AGENT_POD)
    assert got.covered is expected
    assert got.sidecar is not None and got.sidecar["metadata"]["name"] == "default"


def test_exact_sidecar_host_does_not_import_a_wildcard_entry() -> None:
    snap = snapshot(se("dd", ["*.datadoghq.com"]), sidecar("default", "datadog", ["*/app.datadoghq.com"]))
    got = cover(snap)
    assert got.covered is False
    assert misses(got) == [
        (
            "dd",
            "covers app.datadoghq.com:443 but the Sidecar Sidecar/datadog/default does not "
            "import it (egress hosts need datadog/*.datadoghq.com or a wildcard covering it)",
        )
    ]


def test_workload_selected_sidecar_wins_over_the_namespace_wide_one() -> None:
    snap = snapshot(
        se("dd", [INTAKE]),
        sidecar("ns-wide", "datadog", ["*/*"]),
        sidecar("agent-only", "datadog", ["./other.example.com"], selector={"app": "datadog-agent"}),
    )
    got = cover(snap, client=AGENT_POD)
    assert (got.covered, got.sidecar["metadata"]["name"]) == (False, "agent-only")  # type: ignore[index]
    # Another workload of the namespace uses the namespace-wide Sidecar.
    other = {
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": "datadog", "labels": {"app": "x"}},
        "spec": {},
    }
    assert cover(snap, client=other).covered is True


def test_root_namespace_sidecar_applies_when_the_namespace_has_none() -> None:
    # 1.1.0 global-default-sidecar-scope.yaml, placed in the root namespace: `./*` means the
    # workload's namespace.
    root = sidecar(
        "default-sidecar-scope",
        "istio-system",
        ["./*", "istio-system/istio-telemetry.istio-system.svc.cluster.local"],
    )
    snap = snapshot(se("dd", [INTAKE], ns="datadog"), se("dd-shared", [INTAKE], ns="shared"), root)
    got = cover(snap, client=AGENT_POD)
    assert names(got.entries) == ["dd"]
    assert misses(got)[0][0] == "dd-shared"
    assert got.sidecar is root


def test_oldest_workload_selected_sidecar_wins() -> None:
    snap = snapshot(
        sidecar(
            "newer",
            "datadog",
            ["*/*"],
            selector={"app": "datadog-agent"},
            created="2024-02-01T00:00:00Z",
        ),
        sidecar(
            "older",
            "datadog",
            ["./*"],
            selector={"app": "datadog-agent"},
            created="2023-01-01T00:00:00Z",
        ),
    )
    chosen = effective_sidecar(snap, "datadog", {"app": "datadog-agent"}, "istio-system")
    assert chosen is not None and chosen["metadata"]["name"] == "older"


def test_sidecar_listener_with_another_port_does_not_import() -> None:
    snap = snapshot(
        se("dd", [INTAKE]),
        sidecar("default", "datadog", ["*/*"], port={"number": 80, "protocol": "HTTP"}),
    )
    assert cover(snap).covered is False
    snap = snapshot(
        se("dd", [INTAKE]),
        sidecar("default", "datadog", ["*/*"], port={"number": 443, "protocol": "TLS"}),
    )
    assert cover(snap).covered is True


def test_near_misses_list_each_entry_once_with_its_first_failure() -> None:
    snap = snapshot(
        se("a-wrong-port", [INTAKE], [{"number": 80, "protocol": "HTTP", "name": "http"}]),
        se("b-good", ["*.datadoghq.com"]),
        se("c-eu", ["*.datadoghq.eu"]),
    )
    got = cover(snap)
    assert names(got.entries) == ["b-good"]
    assert [name for name, _ in misses(got)] == ["a-wrong-port", "c-eu"]


# -- outbound policy -------------------------------------------------------------------------------


def test_sidecar_outbound_policy_overrides_the_mesh() -> None:
    snap = snapshot(sidecar("default", "datadog", ["*/*"], outbound="REGISTRY_ONLY"))
    assert effective_outbound_policy(snap, AGENT_POD, "ALLOW_ANY", root_namespace="istio-system") == "REGISTRY_ONLY"
    assert effective_outbound_policy(snapshot(), AGENT_POD, "ALLOW_ANY", root_namespace="istio-system") == "ALLOW_ANY"
    no_mode = snapshot(sidecar("default", "datadog", ["*/*"]))
    assert (
        effective_outbound_policy(no_mode, AGENT_POD, "REGISTRY_ONLY", root_namespace="istio-system") == "REGISTRY_ONLY"
    )


# -- the fix ---------------------------------------------------------------------------------------


def test_service_entry_manifest_is_complete_and_namespace_local() -> None:
    got = service_entry_manifest(
        "datadog-intake",
        "datadog",
        ["app.datadoghq.com", "trace.agent.datadoghq.com"],
        [(443, "HTTPS")],
        "networking.istio.io/v1beta1",
    )
    assert got == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": "datadog-intake", "namespace": "datadog"},
        "spec": {
            "hosts": ["app.datadoghq.com", "trace.agent.datadoghq.com"],
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 443, "name": "https-443", "protocol": "HTTPS"}],
            "resolution": "DNS",
        },
    }
    # And the snapshot then covers the agent with it.
    assert cover(snapshot(got)).covered is True


def test_service_entry_manifest_for_1_0_and_wildcards() -> None:
    got = service_entry_manifest(
        "dd",
        "datadog",
        ["*.datadoghq.com"],
        [{"number": 443, "protocol": "tls", "name": "tls"}],
        "networking.istio.io/v1alpha3",
        export_to_namespaces=None,
    )
    assert got["spec"] == {
        "hosts": ["*.datadoghq.com"],
        "location": "MESH_EXTERNAL",
        "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
        "resolution": "NONE",
    }


# -- outbound capture ------------------------------------------------------------------------------


def injector_1_0(include: str = "*") -> dict[str, Any]:
    template = (
        "policy: enabled\ntemplate: |-\n  initContainers:\n  - name: istio-init\n"
        '    args:\n    - "-i"\n'
        '    - "[[ annotation .ObjectMeta '
        f'`traffic.sidecar.istio.io/includeOutboundIPRanges`  "{include}"  ]]"\n'
    )
    return {
        "kind": "ConfigMap",
        "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
        "data": {"config": template},
    }


def injector_1_4(include: str = "*", exclude_ports: str = "") -> dict[str, Any]:
    values = {
        "global": {
            "proxy": {
                "includeIPRanges": include,
                "excludeIPRanges": "",
                "excludeOutboundPorts": exclude_ports,
            }
        }
    }
    return {
        "kind": "ConfigMap",
        "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
        "data": {"config": "policy: enabled\n", "values": json.dumps(values)},
    }


def agent(annotations: dict[str, str] | None = None, init_args: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "agent"}]}
    if init_args is not None:
        spec["initContainers"] = [{"name": "istio-init", "args": init_args}]
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "datadog-agent", "namespace": "datadog"},
        "spec": {"template": {"metadata": {"annotations": annotations or {}}, "spec": spec}},
    }


def test_default_include_star_captures() -> None:
    assert egress_captured(agent(), injector_1_0()) is True
    assert egress_captured(agent(), None) is True


def test_1_0_injector_default_cluster_cidr_does_not_capture_internet_egress() -> None:
    got = egress_capture(agent(), injector_1_0("10.0.0.0/8,172.16.0.0/12"))
    assert got.captured is False
    assert got.reason == (
        "includeOutboundIPRanges is '10.0.0.0/8,172.16.0.0/12' (injector default): only those "
        "ranges are captured, traffic to the internet bypasses the sidecar"
    )


def test_annotation_overrides_the_injector_default() -> None:
    annotated = agent({"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/12"})
    assert egress_captured(annotated, injector_1_4("*")) is False
    assert egress_captured(agent({"traffic.sidecar.istio.io/includeOutboundIPRanges": ""}), None) is False
    assert egress_captured(agent({"traffic.sidecar.istio.io/includeOutboundIPRanges": "0.0.0.0/0"}), None) is True


def test_running_pod_istio_init_args_are_the_fact() -> None:
    pod = agent(
        {"traffic.sidecar.istio.io/includeOutboundIPRanges": "*"},
        init_args=[
            "-p",
            "15001",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "10.0.0.0/8",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "",
        ],
    )
    assert egress_captured(pod, None) is False


def test_excluded_port_443_bypasses_the_sidecar() -> None:
    assert egress_captured(agent({"traffic.sidecar.istio.io/excludeOutboundPorts": "443,8443"}), None) is False
    assert egress_captured(agent(), injector_1_4(exclude_ports="443")) is False
    assert egress_captured(agent(), injector_1_4(exclude_ports="8443")) is True


def test_excluded_ranges() -> None:
    assert egress_captured(agent({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "0.0.0.0/0"}), None) is False
    assert (
        egress_captured(agent({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "169.254.169.254/32"}), None) is True
    )
    assert egress_captured(agent({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "3.233.144.0/20"}), None) is None
    assert egress_captured(agent({"traffic.sidecar.istio.io/includeOutboundIPRanges": "3.233.144.0/20"}), None) is None


# -- mesh config read through meshdoctor.istio.mesh ------------------------------------------------


def mesh_configmap(mesh: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": mesh},
    }


def test_mesh_config_root_namespace_and_default_export_to_are_read_when_not_given() -> None:
    root_sidecar = sidecar("default", "istio-config", ["./*"], outbound="REGISTRY_ONLY")
    snap = snapshot(
        mesh_configmap("rootNamespace: istio-config\ndefaultServiceExportTo: ['.']\n"),
        se("dd-here", [INTAKE], ns="datadog"),
        se("dd-elsewhere", [INTAKE], ns="shared"),
        root_sidecar,
    )
    got = covering_service_entries(snap, "datadog", INTAKE, 443, "TLS", client=AGENT_POD)
    assert names(got.entries) == ["dd-here"]
    assert misses(got) == [
        (
            "dd-elsewhere",
            "covers app.datadoghq.com:443 but is not exported to namespace datadog (exportTo: .)",
        )
    ]
    assert got.sidecar is root_sidecar
    assert effective_outbound_policy(snap, AGENT_POD, "ALLOW_ANY") == "REGISTRY_ONLY"


def test_without_mesh_config_the_root_namespace_is_istio_system() -> None:
    snap = snapshot(se("dd", [INTAKE], ns="shared"), sidecar("default", "istio-system", ["./*"]))
    got = covering_service_entries(snap, "datadog", INTAKE, 443)
    assert got.covered is False
    assert got.sidecar is not None and got.sidecar["metadata"]["namespace"] == "istio-system"


def test_root_namespace_sidecar_with_a_selector_does_not_apply_to_other_namespaces() -> None:
    snap = snapshot(
        se("dd", [INTAKE]),
        sidecar("agents", "istio-system", ["~/*"], selector={"app": "datadog-agent"}),
    )
    got = cover(snap, client=AGENT_POD)
    assert (got.covered, got.sidecar) == (True, None)


def _pod(annotations: dict | None = None, init_args: list | None = None) -> dict:
    spec: dict = {"containers": [{"name": "agent"}]}
    if init_args is not None:
        spec["initContainers"] = [{"name": "istio-init", "args": init_args}]
    return {"kind": "Pod", "metadata": {"annotations": annotations or {}}, "spec": spec}


@pytest.mark.parametrize(
    ("pod", "addresses", "version", "expected"),
    [
        (_pod(), ["10.132.0.12"], (1, 20), True),
        # loopback is never captured (istio-iptables `-d 127.0.0.1/32 -j RETURN`): kwok's nodes
        (_pod(), ["127.0.0.1"], (1, 20), False),
        (_pod({"traffic.sidecar.istio.io/excludeOutboundPorts": "10250"}), ["10.132.0.12"], (1, 20), False),
        # no 1.0/1.1 injection template passes -o
        (_pod({"traffic.sidecar.istio.io/excludeOutboundPorts": "10250"}), ["10.132.0.12"], (1, 1), True),
        (_pod({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.132.0.0/24"}), ["10.132.0.12"], (1, 0), False),
        (_pod({"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/12"}), ["10.132.0.12"], (1, 0), False),
        (_pod({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.132.0.0/24"}), [], (1, 0), None),
        (_pod(), [], (1, 0), True),
        (_pod(init_args=["-i", "*", "-x", "", "-o", "10250"]), ["10.132.0.12"], (1, 20), False),
    ],
)
def test_cluster_ip_capture(pod, addresses, version, expected) -> None:
    from meshdoctor.istio.egress import cluster_ip_capture

    assert cluster_ip_capture(pod, None, 10250, addresses, version).captured is expected
