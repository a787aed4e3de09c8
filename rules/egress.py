"""Egress: the agent's traffic to the Datadog intake has to leave through the mesh.

Ids: MD101 intake egress blocked by the mesh.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog_agent import (
    agent_container,
    agent_products,
    agent_version,
    agent_workloads,
    datadog_site,
)
from meshdoctor.facts.datadog_sites import HTTPS_PORT, intake_endpoints, versioned_metrics_host
from meshdoctor.facts.istio_versions import (
    INJECT_ANNOTATION,
    INJECTION_NAMESPACE_LABEL,
    REVISION_LABEL,
    SIDECAR_CONTAINER,
)
from meshdoctor.istio_mesh import (
    REGISTRY_ONLY,
    MeshInfo,
    captures_external_egress,
    covering_service_entries,
    injector_include_outbound_ranges,
    mesh_config_map,
    mesh_info,
    outbound_traffic_policy,
    service_entry_api_version,
)
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
from meshdoctor.remediation import dry_run_then_apply, to_yaml
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject
from meshdoctor.workloads import containers, pod_template, pods_of, template_path

#: The agent's forwarder logs this once an endpoint's circuit breaker is open (datadog-agent
#: pkg/forwarder/worker.go `process`: "Too many errors for endpoint '%s': retrying later").
TOO_MANY_ERRORS = "Too many errors for endpoint"

#: Name of the ServiceEntry the remediation writes.
SERVICE_ENTRY_NAME = "datadog-intake"


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _sidecar_path(pod: KubeObject) -> str | None:
    """Field path of the pod's istio-proxy container, or None."""
    for key in ("containers", "initContainers"):
        for index, container in enumerate((pod.get("spec") or {}).get(key) or []):
            if container.get("name") == SIDECAR_CONTAINER:
                return f"spec.{key}[{index}]"
    return None


class IntakeEgressBlocked(Rule):
    """MD101."""

    id = "MD101"
    title = "The mesh blocks the agent's traffic to the Datadog intake"
    category = Category.EGRESS
    severity = Severity.ERROR
    inputs = inputs(
        "DaemonSet",
        "Deployment",
        "ServiceEntry",
        "ConfigMap",
        optional=["Pod", "Namespace", "ReplicaSet"],
        logs=["agent"],
    )
    docs = RuleDocs(
        what="An agent workload whose pods run an Istio sidecar (or will get one: namespace "
        'labelled `istio-injection: enabled`, no `sidecar.istio.io/inject: "false"`), in a mesh '
        "that drops traffic to hosts it does not know (Istio 1.0, whose sidecar captures all "
        "egress, or `outboundTrafficPolicy.mode: REGISTRY_ONLY`), with no ServiceEntry visible "
        "to the agent's namespace that covers the site's metrics intake on port 443.",
        why="The sidecar drops the agent's HTTPS connections to the intake: no metrics, events, "
        "service checks or logs reach Datadog, and the agent log fills with `Too many errors for "
        "endpoint ... retrying later`. The pods themselves look healthy.",
        fix="Apply a ServiceEntry (location MESH_EXTERNAL) for the intake hosts of the agent's "
        "site and products, in the agent's namespace; meshdoctor writes it for the site and "
        "products the agent uses. Or take the agent out of the mesh with the pod-template "
        "annotation "
        '`sidecar.istio.io/inject: "false"`.',
        references=(
            "https://docs.datadoghq.com/agent/configuration/network/",
            "https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/",
            "https://istio.io/latest/docs/reference/config/networking/service-entry/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per agent workload in the mesh whose intake egress is dropped."""
        info = mesh_info(ctx)
        policy = outbound_traffic_policy(ctx, info)
        for workload in agent_workloads(ctx):
            template = pod_template(workload) or {}
            meta = workload.get("metadata") or {}
            namespace = str(meta.get("namespace") or "")
            mesh_evidence = self._in_mesh(ctx, workload, template, namespace)
            if not mesh_evidence:
                continue
            if policy != REGISTRY_ONLY:
                continue
            if not captures_external_egress(template, injector_include_outbound_ranges(ctx, info)):
                continue
            site = datadog_site(ctx, workload)
            version = agent_version(agent_container(template))
            host = versioned_metrics_host(site, version)
            if covering_service_entries(ctx, host, HTTPS_PORT, namespace, info):
                continue
            evidence: list[Evidence] = list(mesh_evidence)
            evidence.extend(self._policy_evidence(ctx, info))
            evidence.append(
                FieldEvidence(
                    ObjectRef("ServiceEntry", namespace, "*"),
                    "spec.hosts",
                    f"<absent>: no ServiceEntry visible from namespace {namespace} "
                    f"covers {host}:{HTTPS_PORT}",
                )
            )
            evidence.extend(self._log_evidence(ctx, workload))
            ref = ctx.ref(workload)
            yield self.finding(
                f"{ref.kind} {namespace}/{ref.name} runs in the mesh, which drops traffic to "
                f"unknown hosts ({self._policy_words(info)}), and no ServiceEntry covers its "
                f"metrics intake {host}:{HTTPS_PORT}: the agent cannot send to {site}.",
                objects=[ref],
                evidence=evidence,
                remediation=self._remediation(ctx, workload, info, site, version, namespace),
            )

    @staticmethod
    def _policy_words(info: MeshInfo) -> str:
        if info.minor is not None and info.minor < (1, 1):
            return f"Istio {info.version}: REGISTRY_ONLY in effect"
        return "outboundTrafficPolicy REGISTRY_ONLY"

    def _in_mesh(
        self, ctx: Context, workload: KubeObject, template: dict[str, Any], namespace: str
    ) -> list[Evidence]:
        """Evidence that the agent's pods have (or will get) a sidecar; empty when they do not."""
        for pod in pods_of(ctx, workload):
            path = _sidecar_path(pod)
            if path is not None:
                image = next(
                    (c.get("image") for c in containers(pod) if c.get("name") == SIDECAR_CONTAINER),
                    None,
                )
                return [ctx.field(pod, f"{path}.image", image)]
        base = template_path(workload)
        for index, container in enumerate((template.get("spec") or {}).get("containers") or []):
            if container.get("name") == SIDECAR_CONTAINER:  # injected by hand (kube-inject)
                path = _join(base, f"spec.containers[{index}].image")
                return [ctx.field(workload, path, container.get("image"))]
        meta = template.get("metadata") or {}
        opted_out = any(
            str((meta.get(where) or {}).get(INJECT_ANNOTATION, "")).lower() == "false"
            for where in ("annotations", "labels")
        )
        # The injector never touches hostNetwork pods (istio/istio pkg/kube/inject injectRequired).
        if opted_out or (template.get("spec") or {}).get("hostNetwork") is True:
            return []
        ns_obj = ctx.get("Namespace", "", namespace)
        labels = ((ns_obj or {}).get("metadata") or {}).get("labels") or {}
        if ns_obj is None or labels.get(INJECTION_NAMESPACE_LABEL) == "disabled":
            return []
        if labels.get(INJECTION_NAMESPACE_LABEL) == "enabled":
            label = INJECTION_NAMESPACE_LABEL
        elif labels.get(REVISION_LABEL):  # revision-based injection, istiod era
            label = REVISION_LABEL
        else:
            return []
        return [
            ctx.field(ns_obj, f"metadata.labels['{label}']", labels[label]),
            ctx.field(workload, _join(base, f"metadata.annotations['{INJECT_ANNOTATION}']"), None),
        ]

    @staticmethod
    def _policy_evidence(ctx: Context, info: MeshInfo) -> list[Evidence]:
        evidence: list[Evidence] = []
        cm = mesh_config_map(ctx, info)
        if cm is not None:
            from meshdoctor.istio_mesh import mesh_config

            mode = (mesh_config(ctx, info).get("outboundTrafficPolicy") or {}).get("mode")
            evidence.append(ctx.field(cm, "data.mesh.outboundTrafficPolicy.mode", mode))
        if info.version is not None:
            for deployment in ctx.objects("Deployment"):
                if (deployment.get("metadata") or {}).get("namespace") != info.namespace:
                    continue
                for index, container in enumerate(
                    ((pod_template(deployment) or {}).get("spec") or {}).get("containers") or []
                ):
                    image = str(container.get("image") or "")
                    if image.split("/")[-1].startswith("pilot:"):
                        path = _join(template_path(deployment), f"spec.containers[{index}].image")
                        evidence.append(ctx.field(deployment, path, image))
                        return evidence
        return evidence

    @staticmethod
    def _log_evidence(ctx: Context, workload: KubeObject) -> list[Evidence]:
        """The first `Too many errors for endpoint` line of each agent pod's log, with the count."""
        found: list[Evidence] = []
        container = agent_container(pod_template(workload))
        if container is None:
            return found
        name = str(container.get("name", ""))
        for pod in pods_of(ctx, workload):
            meta = pod.get("metadata") or {}
            log = ctx.logs(str(meta.get("namespace") or ""), str(meta.get("name") or ""), name)
            if log is None:
                continue
            first: tuple[int, str] | None = None
            count = 0
            last = ""
            for number, line in enumerate(log.lines(), start=1):
                if TOO_MANY_ERRORS in line:
                    count += 1
                    last = line
                    if first is None:
                        first = (number, line)
            if first is not None:
                found.append(
                    LogEvidence(
                        str(meta.get("namespace") or ""),
                        str(meta.get("name") or ""),
                        name,
                        first[0],
                        first[1],
                        count=count,
                        first_seen=_timestamp(first[1]),
                        last_seen=_timestamp(last),
                    )
                )
        return found

    def _remediation(
        self,
        ctx: Context,
        workload: KubeObject,
        info: MeshInfo,
        site: str,
        version: str | None,
        namespace: str,
    ) -> Remediation:
        endpoints = intake_endpoints(site, agent_products(ctx, workload), version)
        hosts = list(dict.fromkeys(e.host for e in endpoints))
        ports: list[dict[str, Any]] = [{"number": HTTPS_PORT, "name": "https", "protocol": "HTTPS"}]
        for endpoint in endpoints:
            if endpoint.protocol == "tcp" and endpoint.port != HTTPS_PORT:
                ports.append({"number": endpoint.port, "name": "tcp-logs", "protocol": "TCP"})
        wildcard = any(h.startswith("*") for h in hosts)
        service_entry = {
            "apiVersion": service_entry_api_version(info),
            "kind": "ServiceEntry",
            "metadata": {"name": SERVICE_ENTRY_NAME, "namespace": namespace},
            "spec": {
                "hosts": hosts,
                "ports": ports,
                "location": "MESH_EXTERNAL",
                # Istio accepts DNS resolution only for fully qualified hosts; a wildcard host
                # (any agent version's `<version>-app.agent.<site>`) needs NONE (SNI passthrough).
                "resolution": "NONE" if wildcard else "DNS",
            },
        }
        why_none = (
            " Resolution is NONE because the image tag does not pin the agent version, so the "
            "versioned metrics host is the wildcard *.agent." + site + "."
            if wildcard
            else ""
        )
        ref = ctx.ref(workload)
        return Remediation(
            summary=f"Let the agent reach the {site} intake: ServiceEntry "
            f"{namespace}/{SERVICE_ENTRY_NAME} for {', '.join(hosts)} (MESH_EXTERNAL).{why_none}",
            manifests=(to_yaml(service_entry),),
            commands=dry_run_then_apply("<file>"),
            safe=True,
            alternatives=(
                f"Or take the agent out of the mesh: annotate the pod template of {ref.kind} "
                f'{namespace}/{ref.name} with sidecar.istio.io/inject: "false" '
                f"(kubectl -n {namespace} patch {ref.kind.lower()} {ref.name} --type merge -p "
                '\'{"spec":{"template":{"metadata":{"annotations":{"sidecar.istio.io/inject":"false"}}}}}\').',
            ),
        )


def _timestamp(line: str) -> str | None:
    """The agent's `2019-02-20 10:12:33 UTC` prefix of a log line, or None."""
    head = line.split(" | ", 1)[0].strip()
    return head if head[:4].isdigit() and len(head) >= 19 else None


RULES = [IntakeEgressBlocked]
