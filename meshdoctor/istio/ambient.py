"""Is a pod in Istio's ambient data plane (ztunnel, no sidecar), and what that changes.

Enrollment, as the Istio CNI node agent decides it (istio/istio 1.24.0
cni/pkg/util/podutil.go `PodRedirectionEnabled`; 1.22.0 the same without the host-network test;
1.27.0 cni/pkg/util/enablement_selector.go with the istio-cni chart's default
`ambient.enablementSelectors`, manifests/charts/istio-cni/values.yaml):

1. the namespace or the pod is labelled `istio.io/dataplane-mode=ambient`;
2. a pod with a sidecar (the injector's `sidecar.istio.io/status` annotation) is never enrolled:
   "Ztunnel and sidecar for a single pod is currently not supported; opt out" — so sidecar
   injection wins over ambient, and the pod is handled as a sidecar pod;
3. the pod label `istio.io/dataplane-mode=none` opts a pod of an ambient namespace out (1.27's
   default selectors: a pod labelled `ambient` is enrolled whatever its namespace says; a pod of
   an ambient namespace unless it is labelled `none`);
4. a host-network pod is never captured (1.24.0 podutil.go: "Host network pods cannot be
   captured"; the CNI plugin is not called for them anyway).

Once enrolled, the CNI annotates the pod `ambient.istio.io/redirection: enabled` (1.24.0
pkg/config/constants/constants.go `AmbientRedirectionEnabled`; istio-api annotations.yaml). The
labels do nothing without the node proxy: the `ztunnel` DaemonSet (pods `app: ztunnel`; 1.24.0
manifests/charts/ztunnel/templates/daemonset.yaml, podutil.go `IsZtunnelPod`). Ambient is Beta in
1.22 and GA (`istio.io/dataplane-mode` featureStatus Stable) in 1.24 (istio-api labels.yaml).

What it changes for the agent:

- Egress to hosts outside the registry: ztunnel forwards a connection to an address no Service
  or workload has as plain TCP passthrough ("built request as passthrough; no upstream found",
  istio/ztunnel 1.24.0 and 1.27.0 src/proxy/outbound.rs; 1.22.0 outbound.rs blocks passthrough
  only for its SOCKS5 listener: "For typical outbound calls, we need to allow calls to arbitrary
  domains"). ztunnel has no outbound traffic policy at all, and the mesh config's
  `outboundTrafficPolicy` is documented as "the default behavior of the sidecar" (istio/api
  mesh/v1alpha1/config.proto); istio/istio#54281 ("ztunnel not respecting
  meshConfig.outboundTrafficPolicy.mode: REGISTRY_ONLY") shows the intake-style traffic going
  "straight from ztunnel to the internet" even with a waypoint bound. A waypoint
  (`istio.io/use-waypoint`) sits in front of the *destination*: the agent's own binding does not
  route its outbound calls through it; only a ServiceEntry bound to a waypoint (an egress
  waypoint) does, and that host is then in the registry.
- None of the sidecar's settings exist: no `istio-init`/`traffic.sidecar.istio.io/*` capture, no
  Envoy stats on 15090 or merged metrics on 15020 in the agent's pod, no sidecar mTLS origination.
  What the istio check scrapes in ambient is istiod's 15014 and ztunnel's own metrics on 15020
  (`/stats/prometheus` and `/metrics`, istio/ztunnel 1.24.0 src/config.rs `DEFAULT_STATS_PORT`,
  src/metrics/server.rs; the chart's containerPort 15020 `ztunnel-stats`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshdoctor.istio.injection import STATUS_ANNOTATION, Injection, proxy_container_path
from meshdoctor.kube.meta import annotations_of, labels_of, metadata
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.snapshot import KubeObject, ObjectReader

DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
AMBIENT = "ambient"
NO_DATAPLANE = "none"
REDIRECTION_ANNOTATION = "ambient.istio.io/redirection"
REDIRECTION_ENABLED = "enabled"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
ZTUNNEL_APP = "ztunnel"

#: What a rule that needs a sidecar says of an ambient agent.
NO_SIDECAR_IN_AMBIENT = "it runs in Istio ambient mode: no sidecar, its traffic goes through ztunnel"


@dataclass(frozen=True)
class Ambient:
    """Whether a pod (or a workload's pods) is in the ambient data plane."""

    enrolled: bool
    """True: its traffic is redirected to ztunnel (no sidecar)."""
    reason: str
    """Which label, annotation or absence decided."""
    evidence_paths: list[str] = field(default_factory=list)
    """Field paths (as `meshdoctor.istio.injection` writes them) that decided."""
    waypoint: str | None = None
    """The waypoint bound by `istio.io/use-waypoint` on the pod or its namespace, if any."""


NOT_AMBIENT = Ambient(False, "no istio.io/dataplane-mode=ambient label")


def ztunnel_running(reader: ObjectReader) -> bool:
    """Whether the snapshot has a ztunnel DaemonSet (name `ztunnel` or pods labelled `app: ztunnel`)."""
    for daemonset in reader.objects("DaemonSet"):
        template = pod_template(daemonset) or {}
        if metadata(daemonset).get("name") == ZTUNNEL_APP or labels_of(template).get("app") == ZTUNNEL_APP:
            return True
    return False


def ambient_membership(
    reader: ObjectReader, workload_or_pod: KubeObject, injection: Injection | None = None
) -> Ambient:
    """Whether a pod or a workload's pods are enrolled in ambient mode, and why.

    `injection` is the sidecar decision for the same object (`injection_decision`): a sidecar
    present or predicted wins over ambient.
    """
    template = pod_template(workload_or_pod)
    if template is None:
        return NOT_AMBIENT
    prefix = template_path(workload_or_pod)
    meta_path = f"{prefix}.metadata" if prefix else "metadata"
    namespace = str(metadata(workload_or_pod).get("namespace") or metadata(template).get("namespace") or "default")
    ns_obj = reader.get("Namespace", "", namespace)
    ns_labels = labels_of(ns_obj) if ns_obj is not None else {}
    pod_labels = labels_of(template)
    annotations = annotations_of(template)
    pod_mode = pod_labels.get(DATAPLANE_MODE_LABEL)
    ns_mode = ns_labels.get(DATAPLANE_MODE_LABEL)
    if pod_mode != AMBIENT and ns_mode != AMBIENT:
        return NOT_AMBIENT
    paths = []
    if ns_mode is not None:
        paths.append(f"Namespace/{namespace}:metadata.labels['{DATAPLANE_MODE_LABEL}']")
    if pod_mode is not None:
        paths.append(f"{meta_path}.labels['{DATAPLANE_MODE_LABEL}']")
    if STATUS_ANNOTATION in annotations or proxy_container_path(workload_or_pod) is not None:
        return Ambient(False, "the pod has a sidecar, which wins over ambient (the CNI skips it)", paths)
    if injection is not None and injection.injected is True:
        return Ambient(False, f"the pod gets a sidecar, which wins over ambient ({injection.reason})", paths)
    if pod_mode == NO_DATAPLANE:
        return Ambient(False, f"the pod opts out with {DATAPLANE_MODE_LABEL}={NO_DATAPLANE}", paths)
    if (template.get("spec") or {}).get("hostNetwork") is True:
        return Ambient(False, "a host-network pod is never captured by ztunnel", paths)
    redirected = annotations.get(REDIRECTION_ANNOTATION) == REDIRECTION_ENABLED
    if redirected:
        paths.append(f"{meta_path}.annotations['{REDIRECTION_ANNOTATION}']")
    elif not ztunnel_running(reader):
        return Ambient(False, f"labelled {DATAPLANE_MODE_LABEL}={AMBIENT} but no ztunnel DaemonSet runs", paths)
    where = "pod" if pod_mode == AMBIENT else f"namespace {namespace}"
    waypoint = pod_labels.get(USE_WAYPOINT_LABEL) or ns_labels.get(USE_WAYPOINT_LABEL) or None
    bound = f", bound to waypoint {waypoint}" if waypoint else ""
    how = "the CNI marked it redirected" if redirected else "ztunnel runs in the cluster"
    return Ambient(True, f"the {where} is labelled {DATAPLANE_MODE_LABEL}={AMBIENT} and {how}{bound}", paths, waypoint)
