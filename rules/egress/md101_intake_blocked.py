"""MD101: the mesh blocks the agent's traffic to the Datadog intake (nothing covers an endpoint)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from meshdoctor.datadog.agent import RequiredEndpoint, agent_container
from meshdoctor.datadog.intake_egress import (
    FORWARDER_ERRORS,
    AgentEgress,
    forwarder_timestamp,
    losses,
    primary_endpoints,
    service_entry_protocol,
    upgrade_proof_host,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.egress import host_matches, service_entry_manifest
from meshdoctor.istio.injection import INJECT_KEY
from meshdoctor.istio.mesh import (
    REGISTRY_ONLY,
    MeshInfo,
    parsed_mesh_config,
    service_entry_api_version,
    service_entry_has_export_to,
)
from meshdoctor.istio.versions import EXCLUDE_OUTBOUND_PORTS_SINCE
from meshdoctor.kube.meta import metadata, name_of, namespace_of
from meshdoctor.kube.workloads import pod_template, pods_of, template_path
from meshdoctor.logs.literal_lines import lines_holding
from meshdoctor.model import (
    Category,
    Evidence,
    FieldEvidence,
    Finding,
    LogEvidence,
    ObjectRef,
    Remediation,
    Severity,
)
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .meshed_agents import (
    INTAKE_KINDS,
    INTAKE_OPTIONAL_KINDS,
    consequence_words,
    describe_endpoints,
    meshed_agents,
    version_evidence,
    version_words,
)

#: Name of the ServiceEntry MD101's remediation writes.
SERVICE_ENTRY_NAME = "datadog-intake"

#: Istio 1.12 made the injector read the `sidecar.istio.io/inject` label (it wins over the
#: annotation); the istiod charts' webhook objectSelectors read the label too
#: (see meshdoctor.istio.injection).
INJECT_LABEL_SINCE = (1, 12)


# -- evidence --------------------------------------------------------------------------------------

_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")


def _value_at(obj: Any, path: str) -> Any:
    """The value at a dotted path with `[i]` and `['key']` steps, or None."""
    node = obj
    for name, index, key in _PATH_STEP.findall(path):
        if index:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        else:
            node = node.get(key or name) if isinstance(node, Mapping) else None
        if node is None:
            return None
    return node


def injection_evidence(ctx: Context, state: AgentEgress) -> list[Evidence]:
    """The fields that decided the injection (paths as istio_injection writes them)."""
    found: list[Evidence] = []
    for path in state.injection.evidence_paths:
        head, sep, rest = path.partition(":")
        if sep and "/" in head and not head.startswith(("spec", "metadata")):
            parts = head.split("/")
            kind, name = parts[0], parts[-1]
            namespace = parts[1] if len(parts) == 3 else ""
            obj = ctx.get(kind, namespace, name)
            if obj is None:
                continue
            found.append(ctx.field(obj, rest, _value_at(obj, rest)))
        else:
            value = _value_at(state.subject, path)
            if isinstance(value, Mapping) and "image" in value:
                path, value = f"{path}.image", value["image"]
            found.append(ctx.field(state.subject, path, value))
    return found


def policy_evidence(ctx: Context, state: AgentEgress, info: MeshInfo) -> list[Evidence]:
    """Where the outbound policy that drops unknown hosts comes from (Sidecar, mesh config, 1.0)."""
    if state.sidecar_policy is not None:
        mode = ((state.sidecar_policy.get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
        return [ctx.field(state.sidecar_policy, "spec.outboundTrafficPolicy.mode", mode)]
    found: list[Evidence] = []
    cm = state.mesh_configmap
    mode = (parsed_mesh_config(cm).get("outboundTrafficPolicy") or {}).get("mode")
    if cm is not None and mode is not None:
        return [ctx.field(cm, "data.mesh.outboundTrafficPolicy.mode", mode)]
    if cm is not None:
        found.append(ctx.field(cm, "data.mesh.outboundTrafficPolicy.mode", None))
    if info.version is not None and info.namespace is not None:
        for deployment in ctx.objects("Deployment"):
            if metadata(deployment).get("namespace") != info.namespace:
                continue
            template = pod_template(deployment) or {}
            for index, container in enumerate((template.get("spec") or {}).get("containers") or []):
                image = str(container.get("image") or "")
                if image.rsplit("/", 1)[-1].startswith("pilot:"):
                    path = f"{template_path(deployment)}.spec.containers[{index}].image"
                    found.append(ctx.field(deployment, path, image))
                    return found
    return found


def _policy_words(state: AgentEgress, info: MeshInfo) -> str:
    if state.sidecar_policy is not None:
        meta = metadata(state.sidecar_policy)
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        return f"Sidecar {name} sets outboundTrafficPolicy REGISTRY_ONLY"
    if info.minor is not None and info.minor < (1, 1):
        return f"Istio {info.version} has no ALLOW_ANY: it drops every host outside the registry"
    return f"{mesh_config_words(state)} sets outboundTrafficPolicy REGISTRY_ONLY"


def mesh_config_words(state: AgentEgress) -> str:
    """`the mesh config ConfigMap istio-system/istio-1-22 (revision 1-22, which injects the agent)`."""
    cm = state.mesh_configmap
    if cm is None:
        return "the mesh config"
    meta = metadata(cm)
    name = f"ConfigMap {meta.get('namespace')}/{meta.get('name')}"
    if state.revision and state.revision != "default":
        via = f" via tag {state.injection.tag}" if state.injection.tag else ""
        return f"the mesh config {name} (of revision {state.revision}, which injects the agent{via})"
    return f"the mesh config {name}"


def _log_evidence(ctx: Context, workload: KubeObject) -> list[Evidence]:
    """The first forwarder error line of each agent pod's log, with the count of such lines."""
    found: list[Evidence] = []
    container = agent_container(pod_template(workload))
    if container is None:
        return found
    name = str(container.get("name", ""))
    for pod in pods_of(ctx, workload):
        namespace, pod_name = namespace_of(pod), name_of(pod)
        log = ctx.logs(namespace, pod_name, name)
        if log is None:
            continue
        first: tuple[int, str] | None = None
        count, last = 0, ""
        for number, line in lines_holding(log, FORWARDER_ERRORS):
            count += 1
            last = line
            if first is None:
                first = (number, line)
        if first is not None:
            found.append(
                LogEvidence(
                    namespace,
                    pod_name,
                    name,
                    first[0],
                    first[1],
                    count=count,
                    first_seen=forwarder_timestamp(first[1]),
                    last_seen=forwarder_timestamp(last),
                )
            )
    return found


# -- remediation -----------------------------------------------------------------------------------


def intake_service_entry(namespace: str, endpoints: Sequence[RequiredEndpoint], info: MeshInfo) -> dict[str, Any]:
    """The ServiceEntry that lets an agent in `namespace` reach all its endpoints, for the era.

    The versioned metrics host becomes `*.agent.<site>` (it changes with every agent upgrade; the
    wildcard also covers `trace.agent.<site>`), so the entry has resolution NONE: the sidecar
    forwards to the address the agent resolved, matched by SNI on the TLS/HTTPS ports.
    """
    hosts = list(dict.fromkeys(upgrade_proof_host(e.host) for e in endpoints))
    for wildcard in [h for h in hosts if h.startswith("*.")]:
        hosts = [h for h in hosts if h == wildcard or not host_matches(wildcard, h)]
    ports: dict[int, str] = {}
    for endpoint in sorted(endpoints, key=lambda e: e.protocol != "HTTPS"):
        ports.setdefault(endpoint.port, service_entry_protocol(endpoint))
    return service_entry_manifest(
        SERVICE_ENTRY_NAME,
        namespace,
        hosts,
        sorted(ports.items()),
        api_version=service_entry_api_version(info),
        export_to_namespaces=(".",) if service_entry_has_export_to(info) else None,
    )


def without_sidecar(workload: KubeObject, info: MeshInfo) -> dict[str, Any]:
    """The whole workload with its pod template opted out of injection, as the mesh honours it."""
    fixed = clean_copy(workload)
    template = pod_template(fixed)
    if template is None:
        return fixed
    meta = template.setdefault("metadata", {})
    meta.setdefault("annotations", {})[INJECT_KEY] = "false"
    if info.minor is None or info.minor >= INJECT_LABEL_SINCE:
        meta.setdefault("labels", {})[INJECT_KEY] = "false"
    return fixed


# -- the rule --------------------------------------------------------------------------------------


class IntakeEgressBlocked(Rule):
    """MD101."""

    id = "MD101"
    title = "The mesh blocks the agent's traffic to the Datadog intake"
    category = Category.EGRESS
    severity = Severity.ERROR
    inputs = inputs(*INTAKE_KINDS, optional=INTAKE_OPTIONAL_KINDS, logs=["agent"])
    docs = RuleDocs(
        what="An agent workload whose pods run an Istio sidecar (or will get one: the injection "
        "webhook selects the namespace and the pod does not opt out) that captures their traffic "
        "to the internet (`includeOutboundIPRanges` `*`, the default), in a mesh that drops "
        "traffic to hosts outside its registry (Istio 1.0, whose sidecar knows no ALLOW_ANY; "
        "`outboundTrafficPolicy.mode: REGISTRY_ONLY` in the mesh config of the revision that injects "
        "the agent (`istio-<rev>`, a tag's target revision; `istio` for the default one); or a Sidecar resource "
        "with that mode for the agent's pods), where at least one intake endpoint the agent needs "
        "(metrics, logs over HTTPS or TCP, traces, process, orchestrator, remote configuration, "
        "per its DD_SITE, version and env) is covered by no ServiceEntry at all. Endpoints that "
        "a ServiceEntry almost covers are MD102's. An agent in ambient mode (no sidecar: ztunnel passes "
        "unknown hosts through) is left out; when it is the only agent, the rule is not checked.",
        why="The sidecar sends the agent's connections to the BlackHole cluster: no metrics, "
        "events, service checks, logs or traces reach Datadog, and the agent log fills with "
        "`Too many errors for endpoint ... retrying later`. The pods themselves look healthy.",
        fix="Apply the ServiceEntry meshdoctor writes (location MESH_EXTERNAL, in the agent's "
        "namespace, exported only there, the right apiVersion for the mesh's era) for the hosts "
        "and ports of the agent's site and products; a wildcard host needs resolution NONE. Or "
        "take the agent out of the mesh: the second manifest is the workload with "
        '`sidecar.istio.io/inject: "false"` on its pod template (label and annotation on '
        "Istio 1.12+, annotation before) — it then also leaves mTLS, so review before applying.",
        references=(
            "https://docs.datadoghq.com/agent/configuration/network/",
            "https://docs.datadoghq.com/agent/logs/log_transport/",
            "https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/",
            "https://istio.io/latest/docs/reference/config/networking/service-entry/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload with intake endpoints that nothing lets out."""
        for state, info in meshed_agents(ctx):
            if state.policy != REGISTRY_ONLY:
                continue
            lost = losses(state)
            blocked = [
                s.endpoint
                for s in state.endpoints
                if s.endpoint in lost and not s.coverage.near_misses  # type: ignore[union-attr]
            ]
            if not blocked:
                continue
            ref = ctx.ref(state.workload)
            evidence: list[Evidence] = injection_evidence(ctx, state)
            evidence.extend(policy_evidence(ctx, state, info))
            for endpoint in blocked:
                note = f"; {lost[endpoint].note}" if lost[endpoint].note else ""
                evidence.append(
                    FieldEvidence(
                        ObjectRef("ServiceEntry", state.namespace, "*"),
                        "spec.hosts",
                        f"<absent>: no ServiceEntry visible from namespace {state.namespace} "
                        f"covers {endpoint.address} ({endpoint.product}: {endpoint.why}{note})",
                    )
                )
            evidence.extend(version_evidence(ctx, state, evidence))
            evidence.extend(_log_evidence(ctx, state.workload))
            needed = primary_endpoints(state)
            severity = max(lost[e].severity for e in blocked)
            yield self.finding(
                f"{ref} runs in the mesh ({state.injection.reason}) and "
                f"{_policy_words(state, info)}; no ServiceEntry covers {len(blocked)} of the "
                f"{len(needed)} intake endpoints it needs for {state.site}: {describe_endpoints(blocked)}"
                f"{consequence_words(severity)}.{version_words(state.release)}",
                objects=[ref],
                evidence=evidence,
                remediation=self._remediation(ctx, state, info, needed),
                severity=severity,
            )

    @staticmethod
    def _remediation(
        ctx: Context, state: AgentEgress, info: MeshInfo, needed: Sequence[RequiredEndpoint]
    ) -> Remediation:
        service_entry = intake_service_entry(state.namespace, needed, info)
        hosts = service_entry["spec"]["hosts"]
        ref = ctx.ref(state.workload)
        wildcard = (
            " The versioned metrics host is written *.agent." + state.site + " so that agent "
            "upgrades keep working; a wildcard host needs resolution NONE."
            if any(h.startswith("*") for h in hosts)
            else ""
        )
        how = "label and annotation" if info.minor is None or info.minor >= INJECT_LABEL_SINCE else "annotation"
        return apply_manifests(
            f"ServiceEntry {state.namespace}/{SERVICE_ENTRY_NAME} (MESH_EXTERNAL) for "
            f"{', '.join(hosts)}, the {state.site} intake of the agent's products.{wildcard} "
            f'Or, instead, {ref} with sidecar.istio.io/inject: "false" ({how}) on its pod '
            "template, which takes the agent out of the mesh.",
            [service_entry],
            alternative_objects=[without_sidecar(state.workload, info)],
            safe=False,
            alternatives=(
                (
                    f"Or let the agent's pods bypass the sidecar for the intake only, with the pod "
                    f"annotation traffic.sidecar.istio.io/excludeOutboundPorts "
                    f"({','.join(str(p) for p in sorted({e.port for e in needed}))}).",
                )
                if info.minor is None or info.minor >= EXCLUDE_OUTBOUND_PORTS_SINCE
                else ()
            ),
        )
