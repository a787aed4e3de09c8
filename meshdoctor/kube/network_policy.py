"""NetworkPolicy evaluation: may this pod reach that pod on that port.

The agent scrapes istiod (15014), Mixer's telemetry (42422/9093) and sidecars (15020/15090); a
NetworkPolicy on either side silently drops the scrape. This module answers with the semantics of
the `networking.k8s.io/v1` API (the reference every conformant CNI implements):

- A pod is isolated for ingress (egress) when at least one policy in ITS namespace selects it
  (`podSelector`, `{}` = every pod) and lists `Ingress` (`Egress`) in `policyTypes`. Without
  `policyTypes` the API server defaults it to `Ingress`, plus `Egress` when `egress` has rules.
- A non-isolated pod accepts (sends) everything. An isolated one accepts (sends) what at least one
  selecting policy allows: the policies add up, none subtracts.
- A rule matches when a peer matches (`from`/`to` absent or empty = every peer) and a port matches
  (`ports` absent or empty = every port). A peer is `podSelector` (pods of the policy's namespace),
  `namespaceSelector` (every pod of the namespaces whose labels match, which always include
  `kubernetes.io/metadata.name`), both in one peer (AND), or `ipBlock` (`cidr` minus `except`,
  matched against the other pod's `status.podIP`).
- A port is a number, a range (`port`..`endPort`) or a NAME, resolved against the destination
  pod's container ports of that protocol; the protocol defaults to TCP.

Pods may be "pod-like": a pod template with a namespace, so a DaemonSet's template can be
evaluated before any pod exists (see `pod_like`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshdoctor.kube.labels import selector_matches
from meshdoctor.kube.meta import labels_of, namespace_of
from meshdoctor.kube.object_names import dns_label, short_name
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader, object_ref

#: The label the API server puts on every Namespace (Kubernetes >= 1.21), holding its name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

#: Labels that change with every rollout or differ per pod: never put them in a selector we write.
_VOLATILE_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/controller-uid",
        "batch.kubernetes.io/job-name",
        "controller-uid",
        "job-name",
    }
)

INGRESS = "Ingress"
EGRESS = "Egress"

#: Every kind the functions here read: a rule using them declares these.
KINDS = ("NetworkPolicy", "Namespace")

#: Appended to a verdict's reason when either pod uses the host network.
HOST_NETWORK_NOTE = (
    " {pod} uses the host network: NetworkPolicy leaves host-network traffic undefined, and CNIs"
    " differ (its packets carry the node's IP, which pod and namespace selectors do not match)."
)


@dataclass(frozen=True)
class Verdict:
    """Whether one direction of traffic is allowed, and by (or despite) which policies."""

    allowed: bool
    """True when the pod is not isolated in that direction, or a selecting policy allows it."""
    policies: list[ObjectRef] = field(default_factory=list)
    """Allowed: the policies that allow it (empty when the pod is not isolated). Denied: the
    policies that isolate the pod, none of which allows the traffic."""
    reason: str = ""
    """One sentence naming the pods, the port and the policies."""


@dataclass(frozen=True)
class TrafficVerdict:
    """Both ends of a connection: the source's egress and the target's ingress."""

    egress: Verdict
    """May the source send it?"""
    ingress: Verdict
    """May the target accept it?"""

    @property
    def allowed(self) -> bool:
        """True only when both ends allow the traffic."""
        return self.egress.allowed and self.ingress.allowed

    @property
    def policies(self) -> list[ObjectRef]:
        """The policies of both verdicts, egress first, without repeats."""
        seen: list[ObjectRef] = []
        for ref in self.egress.policies + self.ingress.policies:
            if ref not in seen:
                seen.append(ref)
        return seen

    @property
    def reason(self) -> str:
        """The denied directions' reasons, or both reasons when allowed."""
        denied = [v.reason for v in (self.egress, self.ingress) if not v.allowed]
        return " ".join(denied) if denied else f"{self.egress.reason} {self.ingress.reason}"


# -- pods and namespaces ---------------------------------------------------------------------


def pod_like(workload: KubeObject) -> dict[str, Any] | None:
    """A pod-like dict (namespace, name, labels, spec) from a Pod or any workload's template."""
    template = pod_template(workload)
    if template is None:
        return None
    meta = workload.get("metadata") or {}
    template_meta = template.get("metadata") or {}
    return {
        "kind": "Pod",
        "metadata": {
            "namespace": str(meta.get("namespace") or template_meta.get("namespace") or "default"),
            "name": str(template_meta.get("name") or meta.get("name") or ""),
            "labels": dict(template_meta.get("labels") or {}),
        },
        "spec": template.get("spec") or {},
        "status": (workload.get("status") or {}) if workload.get("kind") == "Pod" else {},
    }


def _pod_namespace(pod: Mapping[str, Any]) -> str:
    """A pod's namespace; `default` for a manifest that names none, as `kubectl apply` would place it."""
    return namespace_of(pod) or "default"


def _pod_name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or ""
    if not name:
        labels = labels_of(pod)
        name = "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
    return f"{_pod_namespace(pod)}/{name}"


def namespace_labels(reader: ObjectReader, namespace: str) -> dict[str, str]:
    """A namespace's labels, always with `kubernetes.io/metadata.name` (the API server sets it)."""
    obj = reader.get("Namespace", "", namespace)
    labels = labels_of(obj) if obj is not None else {}
    labels[NAMESPACE_NAME_LABEL] = namespace
    return labels


def container_ports(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The declared ports of a pod's containers (and of its restartable init containers)."""
    spec = pod.get("spec") or {}
    found: list[dict[str, Any]] = []
    for container in spec.get("containers") or []:
        found.extend(p for p in container.get("ports") or [] if isinstance(p, dict))
    for container in spec.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":  # a sidecar: it serves like a container
            found.extend(p for p in container.get("ports") or [] if isinstance(p, dict))
    return found


def resolve_named_port(pod: Mapping[str, Any], name: str, protocol: str = "TCP") -> int | None:
    """The number of a named container port of that protocol, or None."""
    for port in container_ports(pod):
        if port.get("name") == name and str(port.get("protocol") or "TCP") == protocol:
            number = port.get("containerPort")
            return int(number) if number is not None else None
    return None


def port_number(port: int | str | None) -> int | None:
    """A port as a number: an int, or a string of digits; None for a name or nothing."""
    if isinstance(port, bool) or port is None:
        return None
    if isinstance(port, int):
        return port
    return int(port) if str(port).isdigit() else None


# -- policies ------------------------------------------------------------------------------


def policy_types(policy: Mapping[str, Any]) -> list[str]:
    """`spec.policyTypes`, or the server's default: Ingress, plus Egress when egress has rules."""
    spec = policy.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return [str(t) for t in declared]
    types = [INGRESS]
    if spec.get("egress"):
        types.append(EGRESS)
    return types


def selects(policy: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether a policy applies to a pod: same namespace, `podSelector` (absent = `{}`) matches."""
    if str((policy.get("metadata") or {}).get("namespace") or "default") != _pod_namespace(pod):
        return False
    selector = (policy.get("spec") or {}).get("podSelector")
    return selector_matches(selector if selector is not None else {}, labels_of(pod))


def _ip_in_block(ip: str | None, block: Mapping[str, Any]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
        network = ipaddress.ip_network(str(block.get("cidr")), strict=False)
    except ValueError:
        return False
    if address.version != network.version or address not in network:
        return False
    for excluded in block.get("except") or []:
        try:
            ex = ipaddress.ip_network(str(excluded), strict=False)
        except ValueError:
            continue
        if ex.version == address.version and address in ex:
            return False
    return True


def peer_matches(
    reader: ObjectReader, peer: Mapping[str, Any], policy_namespace: str, other: Mapping[str, Any]
) -> bool:
    """If one `from`/`to` peer covers the other pod (ingress: the source; egress: the target)."""
    block = peer.get("ipBlock")
    if block is not None:
        ip = str((other.get("status") or {}).get("podIP") or "") or None
        return _ip_in_block(ip, block)
    pod_selector = peer.get("podSelector")
    ns_selector = peer.get("namespaceSelector")
    if pod_selector is None and ns_selector is None:
        return False  # an empty peer is rejected by validation
    other_ns = _pod_namespace(other)
    if ns_selector is not None:
        if not selector_matches(ns_selector, namespace_labels(reader, other_ns)):
            return False
    elif other_ns != policy_namespace:
        return False
    return pod_selector is None or selector_matches(pod_selector, labels_of(other))


def port_matches(entry: Mapping[str, Any], destination: Mapping[str, Any], port: int | str, protocol: str) -> bool:
    """Whether one NetworkPolicyPort covers a port of the destination pod."""
    if str(entry.get("protocol") or "TCP") != protocol:
        return False
    ruled = entry.get("port")
    if ruled is None:
        return True  # every port of that protocol
    wanted = port_number(port)
    if wanted is None:
        wanted = resolve_named_port(destination, str(port), protocol)
    ruled_number = port_number(ruled)
    if ruled_number is None:  # a named port: resolved on the destination pod
        if wanted is None:
            return str(ruled) == str(port)
        return resolve_named_port(destination, str(ruled), protocol) == wanted
    if wanted is None:
        return False
    end = port_number(entry.get("endPort"))
    if end is not None:
        return ruled_number <= wanted <= end
    return ruled_number == wanted


def _rule_matches(
    reader: ObjectReader,
    rule: Mapping[str, Any],
    peers_key: str,
    policy_namespace: str,
    other: Mapping[str, Any],
    destination: Mapping[str, Any],
    port: int | str,
    protocol: str,
) -> bool:
    peers = rule.get(peers_key) or []
    if peers and not any(peer_matches(reader, p, policy_namespace, other) for p in peers):
        return False
    ports = rule.get("ports") or []
    return not ports or any(port_matches(p, destination, port, protocol) for p in ports)


def _policies(reader: ObjectReader) -> list[KubeObject]:
    return reader.objects("NetworkPolicy")


def _evaluate(
    reader: ObjectReader,
    direction: str,
    isolated_pod: Mapping[str, Any],
    other: Mapping[str, Any],
    destination: Mapping[str, Any],
    port: int | str,
    protocol: str,
) -> Verdict:
    rules_key, peers_key = ("ingress", "from") if direction == INGRESS else ("egress", "to")
    isolating = [p for p in _policies(reader) if selects(p, isolated_pod) and direction in policy_types(p)]
    what = f"{protocol} port {port}"
    verb = "receive" if direction == INGRESS else "send"
    pod, peer_pod = _pod_name(isolated_pod), _pod_name(other)
    if not isolating:
        return Verdict(
            True,
            [],
            f"No NetworkPolicy in namespace {_pod_namespace(isolated_pod)} isolates {pod} for "
            f"{direction.lower()}, so it may {verb} any traffic.",
        )
    namespace = _pod_namespace(isolated_pod)
    allowing = [
        p
        for p in isolating
        if any(
            _rule_matches(reader, r, peers_key, namespace, other, destination, port, protocol)
            for r in (p.get("spec") or {}).get(rules_key) or []
        )
    ]
    peer = "from" if direction == INGRESS else "to"
    if allowing:
        names = ", ".join(object_ref(p).name for p in allowing)
        return Verdict(
            True,
            [object_ref(p) for p in allowing],
            f"NetworkPolicy {names} lets {pod} {verb} {what} {peer} {peer_pod}.",
        )
    names = ", ".join(object_ref(p).name for p in isolating)
    return Verdict(
        False,
        [object_ref(p) for p in isolating],
        f"{pod} is isolated for {direction.lower()} by NetworkPolicy {names}, and none of "
        f"them lets it {verb} {what} {peer} {peer_pod}.",
    )


def _direction_allowed(
    reader: ObjectReader,
    direction: str,
    isolated_pod: Mapping[str, Any],
    other: Mapping[str, Any],
    destination: Mapping[str, Any],
    port: int | str,
    protocol: str,
) -> Verdict:
    verdict = _evaluate(reader, direction, isolated_pod, other, destination, port, protocol)
    notes = [
        HOST_NETWORK_NOTE.format(pod=_pod_name(p))
        for p in (isolated_pod, other)
        if (p.get("spec") or {}).get("hostNetwork") is True
    ]
    if not notes:
        return verdict
    return Verdict(verdict.allowed, verdict.policies, verdict.reason + "".join(notes))


def ingress_allowed(
    reader: ObjectReader,
    target_pod: Mapping[str, Any],
    source_pod: Mapping[str, Any],
    port: int | str,
    protocol: str = "TCP",
) -> Verdict:
    """Whether the target accepts the source pod's connection to this port (number or name)."""
    return _direction_allowed(reader, INGRESS, target_pod, source_pod, target_pod, port, protocol)


def egress_allowed(
    reader: ObjectReader,
    target_pod: Mapping[str, Any],
    source_pod: Mapping[str, Any],
    port: int | str,
    protocol: str = "TCP",
) -> Verdict:
    """Whether the source pod may connect to the target pod on this port (number or name)."""
    return _direction_allowed(reader, EGRESS, source_pod, target_pod, target_pod, port, protocol)


def traffic_allowed(
    reader: ObjectReader,
    target_pod: Mapping[str, Any],
    source_pod: Mapping[str, Any],
    port: int | str,
    protocol: str = "TCP",
) -> TrafficVerdict:
    """Both ends: the source's egress and the target's ingress."""
    return TrafficVerdict(
        egress_allowed(reader, target_pod, source_pod, port, protocol),
        ingress_allowed(reader, target_pod, source_pod, port, protocol),
    )


# -- the fix ---------------------------------------------------------------------------------


def stable_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """A pod's labels without the per-rollout and per-pod ones, fit for a selector."""
    return {k: v for k, v in sorted(labels_of(pod).items()) if k not in _VOLATILE_LABELS}


def admitting_policy_manifest(
    target_pod: Mapping[str, Any],
    source_pod: Mapping[str, Any],
    port: int | str,
    protocol: str = "TCP",
    ports: Sequence[int | str] = (),
) -> dict[str, Any]:
    """A complete NetworkPolicy, in the target's namespace, admitting the source's pods to the port.

    The source is named by its stable labels AND its namespace (`kubernetes.io/metadata.name`), in
    one peer; the target by its stable labels. Extra `ports` are admitted by the same rule.
    """
    source_ns = _pod_namespace(source_pod)
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: source_ns}},
        "podSelector": {"matchLabels": stable_labels(source_pod)} if stable_labels(source_pod) else {},
    }
    all_ports = [port, *[p for p in ports if p != port]]
    port_entries = [
        {"protocol": protocol, "port": port_number(p) if port_number(p) is not None else p} for p in all_ports
    ]
    target_labels = stable_labels(target_pod)
    name = dns_label(f"allow-{short_name(source_pod)}-to-{short_name(target_pod)}-{port}")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": _pod_namespace(target_pod)},
        "spec": {
            "podSelector": {"matchLabels": target_labels} if target_labels else {},
            "policyTypes": [INGRESS],
            "ingress": [{"from": [peer], "ports": port_entries}],
        },
    }
