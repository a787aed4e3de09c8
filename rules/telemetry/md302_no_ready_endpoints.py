"""MD302: no ready endpoint behind the Service the istio check scrapes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.meta import labels_of, name_of, namespace_of
from meshdoctor.kube.network_policy import port_number
from meshdoctor.kube.service_endpoints import (
    FROM_ENDPOINTS,
    FROM_PODS,
    FROM_SLICES,
    SERVICE_NAME_LABEL,
    EndpointsStatus,
    pod_is_ready,
    ready_endpoints,
    target_port,
)
from meshdoctor.kube.service_pods import declares_port, service_pods, service_selector, serving_workloads
from meshdoctor.kube.workloads import owner_chain, pod_template, template_path
from meshdoctor.model import Category, Evidence, FieldEvidence, Finding, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .scrape_targets import (
    ENDPOINT_KINDS,
    POD_KINDS,
    SCRAPE_KINDS,
    ScrapeTarget,
    config_refs,
    scrape_evidence,
    scrape_targets,
    where_configured,
)


def _waiting_reason(container_status: Mapping[str, Any]) -> str:
    waiting = (container_status.get("state") or {}).get("waiting") or {}
    return str(waiting.get("reason") or "not ready")


class NoReadyEndpoints(Rule):
    """MD302."""

    id = "MD302"
    title = "No ready endpoint behind the Service the istio check scrapes"
    category = Category.TELEMETRY
    severity = Severity.ERROR
    inputs = inputs(*SCRAPE_KINDS, optional=[*POD_KINDS, *ENDPOINT_KINDS], probes=True)
    docs = RuleDocs(
        what="An endpoint of the `istio` check whose Service has the port but no ready address "
        "behind it: the EndpointSlices (or the Endpoints object) list only not-ready addresses or "
        "none at all, or, when neither is in the input, no pod the Service selects is Ready. A "
        "Service whose selector matches no pod at all is reported with the corrected selector.",
        why="The ClusterIP has nowhere to send the scrape: connections are refused, the check "
        "reports its health service check CRITICAL and the control-plane or mesh metrics stop. The "
        "usual causes are a control-plane rollout stuck on a failing readiness probe, a "
        "scaled-to-zero Deployment, or a selector left behind by a relabelled Deployment (revision "
        "upgrades change `istio.io/rev`).",
        fix="Find why the pods are not ready (`kubectl rollout status`, `kubectl describe pod`: "
        "events, failing probes) and fix that; when the selector matches no pod, apply the "
        "corrected Service meshdoctor writes (the selector of the workload that serves the port).",
        references=(
            "https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/",
            "https://kubernetes.io/docs/tasks/debug/debug-application/debug-service/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        """One finding per scraped Service port without a ready endpoint."""
        targets = [t for t in scrape_targets(ctx) if t.service_port is not None]
        unknown = []
        for target in targets:
            status = ready_endpoints(ctx, target.service, target.port)
            if status.ready:
                continue
            namespace = target.ref.namespace
            if status.source == FROM_PODS and not any(namespace_of(p) == namespace for p in ctx.objects("Pod")):
                unknown.append(target)
                continue
            yield self._finding(ctx, target, status)
        if unknown and len(unknown) == len(targets):
            names = ", ".join(str(t.ref) for t in unknown)
            raise NotChecked(f"no Endpoints, EndpointSlices or Pods in the input for {names}: readiness cannot be told")

    def _finding(self, ctx: Context, target: ScrapeTarget, status: EndpointsStatus) -> Finding:
        service = target.service
        ref = target.ref
        evidence: list[Evidence] = []
        selector = service_selector(service)
        pods = service_pods(ctx, target.service, target.port, status)
        running = [p for p in pods if p.get("status")]
        fixed_service: KubeObject | None = None
        if status.source == FROM_SLICES:
            evidence += self._slice_evidence(ctx, target)
        elif status.source == FROM_ENDPOINTS:
            evidence += self._endpoints_evidence(ctx, target)
        else:
            evidence.append(ctx.field(service, "spec.selector", selector or None))
        for pod in running[:5]:
            evidence.append(self._pod_evidence(ctx, pod))
        evidence += scrape_evidence(ctx, target)
        not_ready = len(status.not_ready)
        if not selector and status.source == FROM_PODS:
            cause = f"{ref} has no selector and no Endpoints object: nothing receives the scrape"
        elif not running and not status.not_ready:
            cause = f"the selector of {ref} ({self._selector_text(selector)}) matches no pod"
            fixed_service, candidate = self._corrected_service(ctx, target)
            if candidate is not None:
                evidence.append(
                    ctx.field(
                        candidate,
                        f"{template_path(candidate)}.metadata.labels",
                        labels_of(pod_template(candidate) or {}),
                    )
                )
        elif (unresolved := self._unresolved_target_port(target, running)) is not None:
            cause = (
                f"{ref} port {target.port} sends to targetPort `{unresolved}`, which no container "
                "port of the selected pods is named, so the pods are left out of its endpoints"
            )
            fixed_service = self._numbered_target_port(target, running)
            service_port_index = self._port_index(service, target.port)
            evidence.append(ctx.field(service, f"spec.ports[{service_port_index}].targetPort", unresolved))
        elif not status.not_ready and status.source != FROM_PODS:
            cause = f"the {status.source} of {ref} list no address for port {target.port}"
        else:
            count = not_ready or len(running)
            where = {FROM_SLICES: "in its EndpointSlices", FROM_ENDPOINTS: "in its Endpoints"}.get(
                status.source, "among the pods its selector picks"
            )
            cause = f"{ref} port {target.port} has {count} endpoint(s) {where}, none of them ready"
        message = f"{cause}; the istio check scrapes {target.urls()} ({where_configured(target)}) and gets no answer."
        return self.finding(
            message,
            objects=[ref, *config_refs(target)],
            evidence=evidence,
            remediation=self._remediation(ctx, target, running, fixed_service),
        )

    @staticmethod
    def _port_index(service: Mapping[str, Any], port: int) -> int:
        for index, entry in enumerate((service.get("spec") or {}).get("ports") or []):
            if port_number(entry.get("port")) == port:
                return index
        return 0

    @staticmethod
    def _unresolved_target_port(target: ScrapeTarget, pods: list[KubeObject]) -> str | None:
        """The targetPort NAME when Ready pods are selected but none declares it, else None."""
        service_port = target.service_port
        if service_port is None or not isinstance(service_port.target_port, str):
            return None
        ready = [p for p in pods if pod_is_ready(p)]
        if not ready or any(target_port(service_port, p) is not None for p in ready):
            return None
        return service_port.target_port

    def _numbered_target_port(self, target: ScrapeTarget, pods: list[KubeObject]) -> KubeObject | None:
        """The Service with that port's targetPort set to the port number, or None.

        None unless the pods declare a container port of that number.
        """
        if not declares_port(pods, target.port):
            return None
        fixed = clean_copy(target.service)
        ports = (fixed.get("spec") or {}).get("ports") or []
        ports[self._port_index(fixed, target.port)]["targetPort"] = target.port
        return fixed

    @staticmethod
    def _selector_text(selector: Mapping[str, str]) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "none"

    def _slice_evidence(self, ctx: Context, target: ScrapeTarget) -> list[Evidence]:
        found: list[Evidence] = []
        for endpoint_slice in ctx.objects("EndpointSlice"):
            if namespace_of(endpoint_slice) != target.ref.namespace:
                continue
            if labels_of(endpoint_slice).get(SERVICE_NAME_LABEL) != target.ref.name:
                continue
            endpoints = endpoint_slice.get("endpoints") or []
            if not endpoints:
                found.append(ctx.field(endpoint_slice, "endpoints", None))
            for index, endpoint in enumerate(endpoints):
                conditions = endpoint.get("conditions") or {}
                found.append(ctx.field(endpoint_slice, f"endpoints[{index}].conditions", conditions or None))
        return found

    def _endpoints_evidence(self, ctx: Context, target: ScrapeTarget) -> list[Evidence]:
        endpoints = ctx.get("Endpoints", target.ref.namespace, target.ref.name)
        if endpoints is None:
            return []
        subsets = endpoints.get("subsets") or []
        if not subsets:
            return [ctx.field(endpoints, "subsets", None)]
        found: list[Evidence] = []
        for index, subset in enumerate(subsets):
            found.append(ctx.field(endpoints, f"subsets[{index}].addresses", self._ips(subset.get("addresses"))))
            if subset.get("notReadyAddresses"):
                found.append(
                    ctx.field(
                        endpoints,
                        f"subsets[{index}].notReadyAddresses",
                        self._ips(subset.get("notReadyAddresses")),
                    )
                )
        return found

    @staticmethod
    def _ips(addresses: Any) -> str | None:
        if not addresses:
            return None
        return ", ".join(str(a.get("ip")) for a in addresses if isinstance(a, Mapping))

    @staticmethod
    def _pod_evidence(ctx: Context, pod: KubeObject) -> FieldEvidence:
        conditions = (pod.get("status") or {}).get("conditions") or []
        for index, condition in enumerate(conditions):
            if condition.get("type") == "Ready":
                text = f"Ready={condition.get('status')}"
                detail = condition.get("reason") or condition.get("message")
                waiting = [
                    f"{c.get('name')}: {_waiting_reason(c)}"
                    for c in (pod.get("status") or {}).get("containerStatuses") or []
                    if not c.get("ready")
                ]
                if detail:
                    text += f" ({detail})"
                if waiting:
                    text += "; " + "; ".join(waiting)
                return ctx.field(pod, f"status.conditions[{index}]", text)
        return ctx.field(
            pod,
            "status.conditions",
            "no Ready condition" if not pod_is_ready(pod) else "Ready=True",
        )

    def _corrected_service(self, ctx: Context, target: ScrapeTarget) -> tuple[KubeObject | None, KubeObject | None]:
        """The Service re-pointed at the one workload of its namespace that serves the port.

        Returns it with that workload; (None, None) when there is not exactly one.
        """
        service_port = target.service_port
        assert service_port is not None
        candidates = serving_workloads(ctx, target.ref.namespace, service_port)
        if len(candidates) != 1:
            return None, None
        workload = candidates[0]
        template_labels = labels_of(pod_template(workload) or {})
        match_labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = {str(k): str(v) for k, v in match_labels.items()}
        # Keep the keys the Service chose, with the pods' values.
        for key in service_selector(target.service):
            if key in template_labels:
                selector[key] = template_labels[key]
        if not selector or not all(template_labels.get(k) == v for k, v in selector.items()):
            return None, None
        selector = dict(sorted(selector.items()))
        fixed = clean_copy(target.service)
        fixed.setdefault("spec", {})["selector"] = selector
        return fixed, workload

    def _remediation(
        self, ctx: Context, target: ScrapeTarget, pods: list[KubeObject], fixed: KubeObject | None
    ) -> Remediation:
        ref = target.ref
        ns = ref.namespace
        commands = [f"kubectl -n {ns} get endpointslices -l {SERVICE_NAME_LABEL}={ref.name} -o wide"]
        owners: list[str] = []
        for pod in pods:
            chain = owner_chain(ctx, pod)
            if chain:
                top = chain[-1]
                text = f"{str(top.get('kind')).lower()}/{name_of(top)}"
                if text not in owners and top.get("kind") in (
                    "Deployment",
                    "DaemonSet",
                    "StatefulSet",
                ):
                    owners.append(text)
        commands += [f"kubectl -n {ns} rollout status {owner}" for owner in owners]
        commands += [f"kubectl -n {ns} describe pod {name_of(p)}" for p in pods[:3] if not pod_is_ready(p)]
        selector = service_selector(target.service)
        if not pods and selector:
            commands.append(f"kubectl -n {ns} get pods -l {self._selector_text(selector)} -o wide")
        if fixed is not None and fixed["spec"].get("selector") != target.service["spec"].get("selector"):
            return apply_manifests(
                f"Point the selector of {ref} at the workload that serves port {target.port} "
                f"({self._selector_text(fixed['spec']['selector'])}); review it, then apply.",
                [fixed],
                safe=False,
                before=commands,
            )
        if fixed is not None:
            return apply_manifests(
                f"Send port {target.port} of {ref} to container port {target.port}, "
                "which the selected pods declare, instead of a port name they do not have.",
                [fixed],
                safe=False,
                before=commands,
            )
        return Remediation(
            summary="Find why the pods behind the Service are not ready (rollout, probe failures, "
            "events) and fix that cause.",
            commands=tuple(commands),
            safe=False,
        )
