from __future__ import annotations

from typing import Any

import pytest

from meshdoctor.kube.network_policy import (
    Verdict,
    admitting_policy_manifest,
    egress_allowed,
    ingress_allowed,
    namespace_labels,
    pod_like,
    policy_types,
    traffic_allowed,
)
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import Snapshot

ISTIOD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "istiod-7d9c-x1",
        "namespace": "istio-system",
        "labels": {"app": "istiod", "istio": "pilot", "pod-template-hash": "7d9c"},
    },
    "spec": {
        "containers": [
            {
                "name": "discovery",
                "ports": [
                    {"name": "grpc-xds", "containerPort": 15010, "protocol": "TCP"},
                    {"name": "http-monitoring", "containerPort": 15014},
                    {"name": "dns-udp", "containerPort": 15053, "protocol": "UDP"},
                ],
            }
        ]
    },
    "status": {"podIP": "10.0.1.5"},
}
AGENT: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "datadog-agent-abcde",
        "namespace": "datadog",
        "labels": {
            "app": "datadog-agent",
            "controller-revision-hash": "55f",
            "pod-template-generation": "3",
        },
    },
    "spec": {"containers": [{"name": "agent"}]},
    "status": {"podIP": "10.0.2.7"},
}
AGENT_DS: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "datadog-agent", "namespace": "datadog"},
    "spec": {
        "template": {
            "metadata": {"labels": {"app": "datadog-agent"}},
            "spec": {"containers": [{"name": "agent"}]},
        }
    },
}
NAMESPACES = [
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "datadog", "labels": {"team": "obs"}},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
]


def netpol(name: str, spec: dict[str, Any], ns: str = "istio-system") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def reader(*policies: dict[str, Any], namespaces: list[dict[str, Any]] = NAMESPACES) -> Snapshot:
    snap = Snapshot()
    for obj in [*namespaces, *policies]:
        snap.add(obj)
    return snap


def ref(name: str, ns: str = "istio-system") -> ObjectRef:
    return ObjectRef("NetworkPolicy", ns, name)


DENY = netpol("deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW_ALL = netpol("allow-all", {"podSelector": {}, "ingress": [{}]})
DD_NS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "datadog"}}}
AGENT_PODS = {"podSelector": {"matchLabels": {"app": "datadog-agent"}}}


def from_(
    peers: list[dict[str, Any]] | None,
    ports: list[dict[str, Any]] | None = None,
    name: str = "p",
    selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if peers is not None:
        rule["from"] = peers
    if ports is not None:
        rule["ports"] = ports
    return netpol(
        name,
        {
            "podSelector": {} if selector is None else selector,
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    )


INGRESS_CASES: list[tuple[str, list[dict[str, Any]], int | str, str, bool, list[str]]] = [
    ("no policy", [], 15014, "TCP", True, []),
    ("default deny", [DENY], 15014, "TCP", False, ["deny"]),
    (
        "default deny, policyTypes absent",
        [netpol("deny", {"podSelector": {}})],
        15014,
        "TCP",
        False,
        ["deny"],
    ),
    (
        "egress-only policy does not isolate ingress",
        [netpol("eg", {"podSelector": {}, "policyTypes": ["Egress"]})],
        15014,
        "TCP",
        True,
        [],
    ),
    (
        "policyTypes absent with egress isolates both",
        [netpol("both", {"podSelector": {}, "egress": [{"to": [DD_NS]}]})],
        15014,
        "TCP",
        False,
        ["both"],
    ),
    (
        "policyTypes absent, empty egress list: ingress only, denied",
        [netpol("empty", {"podSelector": {}, "egress": []})],
        15014,
        "TCP",
        False,
        ["empty"],
    ),
    ("allow all {}", [ALLOW_ALL], 15014, "TCP", True, ["allow-all"]),
    ("from empty list = all sources", [from_([], [{"port": 15014}])], 15014, "TCP", True, ["p"]),
    ("namespaceSelector by metadata.name", [from_([DD_NS])], 15014, "TCP", True, ["p"]),
    (
        "namespaceSelector by namespace label",
        [from_([{"namespaceSelector": {"matchLabels": {"team": "obs"}}}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "namespaceSelector label absent",
        [from_([{"namespaceSelector": {"matchLabels": {"team": "web"}}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "namespaceSelector {} = every namespace",
        [from_([{"namespaceSelector": {}}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "podSelector alone = policy namespace only",
        [from_([AGENT_PODS])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "podSelector {} alone = policy namespace only",
        [from_([{"podSelector": {}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "namespace AND pod in one peer",
        [from_([{**DD_NS, **AGENT_PODS}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "namespace AND wrong pod",
        [from_([{**DD_NS, "podSelector": {"matchLabels": {"app": "other"}}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "pod OR namespace, namespace matches",
        [from_([AGENT_PODS, DD_NS])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "pod OR namespace, neither",
        [from_([AGENT_PODS, {"namespaceSelector": {"matchLabels": {"x": "y"}}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "matchExpressions on namespace",
        [
            from_(
                [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "team", "operator": "In", "values": ["obs", "sre"]}]
                        }
                    }
                ]
            )
        ],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    ("port number", [from_(None, [{"port": 15014}])], 15014, "TCP", True, ["p"]),
    ("other port number", [from_(None, [{"port": 15014}])], 15010, "TCP", False, ["p"]),
    (
        "named port, asked by number",
        [from_(None, [{"port": "http-monitoring"}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "named port, asked by name",
        [from_(None, [{"port": "http-monitoring"}])],
        "http-monitoring",
        "TCP",
        True,
        ["p"],
    ),
    (
        "named port, other number",
        [from_(None, [{"port": "http-monitoring"}])],
        15010,
        "TCP",
        False,
        ["p"],
    ),
    (
        "named port the target lacks",
        [from_(None, [{"port": "http-metrics"}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "named port of another protocol",
        [from_(None, [{"port": "dns-udp", "protocol": "TCP"}])],
        15053,
        "TCP",
        False,
        ["p"],
    ),
    ("number asked by name", [from_(None, [{"port": 15010}])], "grpc-xds", "TCP", True, ["p"]),
    (
        "endPort range inside",
        [from_(None, [{"port": 15000, "endPort": 15020}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "endPort range edge",
        [from_(None, [{"port": 15000, "endPort": 15014}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "endPort range outside",
        [from_(None, [{"port": 15000, "endPort": 15020}])],
        15090,
        "TCP",
        False,
        ["p"],
    ),
    (
        "protocol UDP rule, TCP traffic",
        [from_(None, [{"port": 15014, "protocol": "UDP"}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "protocol UDP rule, UDP traffic",
        [from_(None, [{"port": 15053, "protocol": "UDP"}])],
        15053,
        "UDP",
        True,
        ["p"],
    ),
    ("protocol only = every port", [from_(None, [{"protocol": "TCP"}])], 15090, "TCP", True, ["p"]),
    ("empty ports list = every port", [from_([DD_NS], [])], 15090, "TCP", True, ["p"]),
    (
        "peer AND port must both match",
        [from_([DD_NS], [{"port": 15010}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "several policies add up",
        [DENY, from_([DD_NS], [{"port": 15014}], name="allow")],
        15014,
        "TCP",
        True,
        ["allow"],
    ),
    (
        "several policies, none allows",
        [DENY, from_([DD_NS], [{"port": 15014}], name="allow")],
        15010,
        "TCP",
        False,
        ["allow", "deny"],
    ),
    (
        "policy for other pods does not isolate",
        [from_([], name="other", selector={"matchLabels": {"app": "grafana"}})],
        15014,
        "TCP",
        True,
        [],
    ),
    (
        "policy in another namespace does not isolate",
        [netpol("deny", {"podSelector": {}}, ns="datadog")],
        15014,
        "TCP",
        True,
        [],
    ),
    (
        "selector by matchExpressions isolates",
        [
            netpol(
                "deny",
                {"podSelector": {"matchExpressions": [{"key": "istio", "operator": "Exists"}]}},
            )
        ],
        15014,
        "TCP",
        False,
        ["deny"],
    ),
    (
        "ipBlock covering the source",
        [from_([{"ipBlock": {"cidr": "10.0.2.0/24"}}])],
        15014,
        "TCP",
        True,
        ["p"],
    ),
    (
        "ipBlock except the source",
        [from_([{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.0/28"]}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "ipBlock elsewhere",
        [from_([{"ipBlock": {"cidr": "192.168.0.0/16"}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    (
        "ipBlock IPv6 vs IPv4 source",
        [from_([{"ipBlock": {"cidr": "::/0"}}])],
        15014,
        "TCP",
        False,
        ["p"],
    ),
    ("empty peer is invalid", [from_([{}])], 15014, "TCP", False, ["p"]),
]


@pytest.mark.parametrize(
    ("policies", "port", "protocol", "allowed", "names"),
    [c[1:] for c in INGRESS_CASES],
    ids=[c[0] for c in INGRESS_CASES],
)
def test_ingress(
    policies: list[dict[str, Any]], port: int | str, protocol: str, allowed: bool, names: list[str]
) -> None:
    verdict = ingress_allowed(reader(*policies), ISTIOD, AGENT, port, protocol)
    assert (verdict.allowed, verdict.policies) == (allowed, [ref(n) for n in names])


def test_reasons() -> None:
    assert ingress_allowed(reader(), ISTIOD, AGENT, 15014) == Verdict(
        True,
        [],
        "No NetworkPolicy in namespace istio-system isolates istio-system/istiod-7d9c-x1 "
        "for ingress, so it may receive any traffic.",
    )
    assert ingress_allowed(reader(DENY), ISTIOD, AGENT, 15014).reason == (
        "istio-system/istiod-7d9c-x1 is isolated for ingress by NetworkPolicy deny, "
        "and none of them lets it receive TCP port 15014 from datadog/datadog-agent-abcde."
    )
    assert ingress_allowed(reader(ALLOW_ALL), ISTIOD, AGENT, 15014).reason == (
        "NetworkPolicy allow-all lets istio-system/istiod-7d9c-x1 receive TCP port 15014 "
        "from datadog/datadog-agent-abcde."
    )


def test_daemonset_template_as_source() -> None:
    source = pod_like(AGENT_DS)
    assert source == {
        "kind": "Pod",
        "metadata": {
            "namespace": "datadog",
            "name": "datadog-agent",
            "labels": {"app": "datadog-agent"},
        },
        "spec": {"containers": [{"name": "agent"}]},
        "status": {},
    }
    assert ingress_allowed(reader(from_([{**DD_NS, **AGENT_PODS}])), ISTIOD, source, "http-monitoring").allowed is True
    # A template has no IP: an ipBlock cannot be shown to cover it.
    assert ingress_allowed(reader(from_([{"ipBlock": {"cidr": "0.0.0.0/0"}}])), ISTIOD, source, 15014).allowed is False
    assert pod_like({"kind": "ConfigMap"}) is None


def test_namespace_labels_without_namespace_object() -> None:
    assert namespace_labels(reader(namespaces=[]), "datadog") == {"kubernetes.io/metadata.name": "datadog"}
    assert namespace_labels(reader(), "datadog") == {
        "team": "obs",
        "kubernetes.io/metadata.name": "datadog",
    }
    # Without the Namespace object its labels are unknown: only the name label can match.
    policy = from_([{"namespaceSelector": {"matchLabels": {"team": "obs"}}}])
    assert ingress_allowed(reader(policy, namespaces=[]), ISTIOD, AGENT, 15014).allowed is False


def test_policy_types_defaults() -> None:
    assert policy_types(netpol("a", {"podSelector": {}})) == ["Ingress"]
    assert policy_types(netpol("a", {"podSelector": {}, "egress": [{}]})) == ["Ingress", "Egress"]
    assert policy_types(netpol("a", {"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]})) == ["Egress"]


def agent_egress(name: str, rules: list[dict[str, Any]] | None, types: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "datadog-agent"}}}
    if types is not None:
        spec["policyTypes"] = types
    if rules is not None:
        spec["egress"] = rules
    return netpol(name, spec, ns="datadog")


ISTIO_NS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}}
ISTIOD_PODS = {"podSelector": {"matchLabels": {"app": "istiod"}}}

EGRESS_CASES: list[tuple[str, list[dict[str, Any]], int | str, bool, list[str]]] = [
    ("no policy", [], 15014, True, []),
    ("ingress-only policy on the agent", [agent_egress("in", None)], 15014, True, []),
    ("egress default deny", [agent_egress("deny", None, ["Egress"])], 15014, False, ["deny"]),
    (
        "egress to istio-system namespace",
        [agent_egress("e", [{"to": [ISTIO_NS], "ports": [{"port": 15014}]}])],
        15014,
        True,
        ["e"],
    ),
    (
        "egress podSelector alone is the agent's namespace",
        [agent_egress("e", [{"to": [ISTIOD_PODS]}])],
        15014,
        False,
        ["e"],
    ),
    (
        "egress namespace AND pod",
        [agent_egress("e", [{"to": [{**ISTIO_NS, **ISTIOD_PODS}]}])],
        15014,
        True,
        ["e"],
    ),
    (
        "egress named port resolved on the target",
        [agent_egress("e", [{"to": [ISTIO_NS], "ports": [{"port": "http-monitoring"}]}])],
        15014,
        True,
        ["e"],
    ),
    (
        "egress DNS only",
        [agent_egress("e", [{"ports": [{"port": 53, "protocol": "UDP"}]}])],
        15014,
        False,
        ["e"],
    ),
    (
        "egress ipBlock of the target",
        [agent_egress("e", [{"to": [{"ipBlock": {"cidr": "10.0.1.0/24"}}]}])],
        15014,
        True,
        ["e"],
    ),
]


@pytest.mark.parametrize(
    ("policies", "port", "allowed", "names"),
    [c[1:] for c in EGRESS_CASES],
    ids=[c[0] for c in EGRESS_CASES],
)
def test_egress(policies: list[dict[str, Any]], port: int | str, allowed: bool, names: list[str]) -> None:
    verdict = egress_allowed(reader(*policies), ISTIOD, AGENT, port)
    assert (verdict.allowed, verdict.policies) == (allowed, [ref(n, "datadog") for n in names])


def test_traffic_needs_both_ends() -> None:
    egress_ok = agent_egress("e", [{"to": [ISTIO_NS]}])
    both = traffic_allowed(reader(egress_ok, from_([DD_NS], name="i")), ISTIOD, AGENT, 15014)
    assert both.allowed is True
    assert both.policies == [ref("e", "datadog"), ref("i")]
    only_egress = traffic_allowed(reader(egress_ok, DENY), ISTIOD, AGENT, 15014)
    assert (only_egress.allowed, only_egress.egress.allowed, only_egress.ingress.allowed) == (
        False,
        True,
        False,
    )
    assert only_egress.reason == only_egress.ingress.reason
    assert only_egress.policies == [ref("e", "datadog"), ref("deny")]


def test_admitting_policy_manifest() -> None:
    manifest = admitting_policy_manifest(ISTIOD, AGENT, 15014)
    assert manifest == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-datadog-agent-to-istiod-15014", "namespace": "istio-system"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "istiod", "istio": "pilot"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "datadog"}},
                            "podSelector": {"matchLabels": {"app": "datadog-agent"}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 15014}],
                }
            ],
        },
    }
    # Added next to a default deny, it admits the agent and nothing else.
    fixed = reader(DENY, manifest)
    assert ingress_allowed(fixed, ISTIOD, AGENT, 15014).policies == [ref("allow-datadog-agent-to-istiod-15014")]
    assert ingress_allowed(fixed, ISTIOD, AGENT, 15010).allowed is False
    stranger = {**AGENT, "metadata": {**AGENT["metadata"], "namespace": "default"}}
    assert ingress_allowed(fixed, ISTIOD, stranger, 15014).allowed is False


def test_admitting_policy_manifest_named_and_extra_ports() -> None:
    manifest = admitting_policy_manifest(ISTIOD, pod_like(AGENT_DS) or {}, "http-monitoring", ports=[15010, "15090"])
    assert manifest["metadata"]["name"] == "allow-datadog-agent-to-istiod-http-monitoring"
    assert manifest["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": "http-monitoring"},
        {"protocol": "TCP", "port": 15010},
        {"protocol": "TCP", "port": 15090},
    ]


def test_host_network_pod_gets_a_note() -> None:
    host_agent = {**AGENT, "spec": {"hostNetwork": True, "containers": [{"name": "agent"}]}}
    verdict = ingress_allowed(reader(from_([{**DD_NS, **AGENT_PODS}])), ISTIOD, host_agent, 15014)
    assert verdict.allowed is True
    assert verdict.reason == (
        "NetworkPolicy p lets istio-system/istiod-7d9c-x1 receive TCP port 15014 from "
        "datadog/datadog-agent-abcde. datadog/datadog-agent-abcde uses the host network: "
        "NetworkPolicy leaves host-network traffic undefined, and CNIs differ (its packets carry "
        "the node's IP, which pod and namespace selectors do not match)."
    )


def test_kinds_read_are_declared() -> None:
    from meshdoctor.kube.network_policy import KINDS
    from meshdoctor.rule import Context

    ctx = Context(reader(DENY))
    ingress_allowed(ctx, ISTIOD, AGENT, 15014)
    ingress_allowed(Context(reader(from_([DD_NS]))), ISTIOD, AGENT, 15014)
    ctx2 = Context(reader(from_([DD_NS])))
    egress_allowed(ctx2, ISTIOD, AGENT, 15014)
    ingress_allowed(ctx2, ISTIOD, AGENT, 15014)
    assert ctx.kinds_read | ctx2.kinds_read == set(KINDS)
