"""Istio versions: eras, outbound-policy defaults, and the telemetry endpoints each version serves.

Facts only, each with the upstream file it comes from (the `istio/istio` repository at the tag
named; copies of these files are what the team's corpus holds). A rule that needs a port or a
default asks here, never writes the number itself.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Istio 1.5 replaced pilot/galley/citadel/sidecar-injector with the single `istiod` Deployment
#: (istio/istio 1.5.0 operator/data/profiles/default.yaml: components.pilot = istiod;
#: telemetry (Mixer) disabled by default, telemetry v2 enabled).
ISTIOD_SINCE = (1, 5)

#: The `istiod` Service serves the control-plane metrics port 15014 from 1.6; in 1.5 only the
#: `istio-pilot` Service (selecting the istiod pods) has it (istio/istio 1.5.0 and 1.6.0
#: istio-discovery templates/service.yaml).
ISTIOD_MONITORING_SINCE = (1, 6)

#: Istio 1.8 removed Mixer altogether (istio/istio 1.7.8
#: manifests/charts/istio-telemetry/mixer-telemetry is the last release line shipping it).
MIXER_REMOVED_IN = (1, 8)

#: Istio 1.1 made ALLOW_ANY the default outbound policy (istio/istio 1.4.10
#: install/kubernetes/helm/istio/values.yaml: "ALLOW_ANY is the default in 1.1 ... REGISTRY_ONLY
#: was the default in 1.0"). In 1.0 the mesh config has no `outboundTrafficPolicy` key at all
#: (istio/istio 1.0.7 install/kubernetes/helm/istio/templates/configmap.yaml) and a sidecar drops
#: traffic to hosts outside the service registry.
ALLOW_ANY_SINCE = (1, 1)

#: Default of the injector's `-i` (includeOutboundIPRanges) argument: `*`, every destination is
#: redirected to the sidecar (istio/istio 1.0.7 templates/sidecar-injector-configmap.yaml,
#: `traffic.sidecar.istio.io/includeOutboundIPRanges` default `"*"`; values.yaml
#: `global.proxy.includeIPRanges: "*"`).
INCLUDE_OUTBOUND_IP_RANGES_ANNOTATION = "traffic.sidecar.istio.io/includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IP_RANGES_ANNOTATION = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
DEFAULT_INCLUDE_OUTBOUND_IP_RANGES = "*"
#: `traffic.sidecar.istio.io/excludeOutboundPorts` (istio-init `-o`) exists from 1.2.0
#: (install/kubernetes/helm/istio/files/injection-template.yaml `- "-o"`); no 1.0.x or 1.1.x
#: injection template passes it, so on those releases the annotation does nothing.
#: `excludeOutboundIPRanges` (`-x`) is there from 0.8.0 (pilot/pkg/kube/inject/inject.go).
EXCLUDE_OUTBOUND_PORTS_ANNOTATION = "traffic.sidecar.istio.io/excludeOutboundPorts"
EXCLUDE_OUTBOUND_PORTS_SINCE = (1, 2)

#: Container name of the injected sidecar (every version's injection template).
SIDECAR_CONTAINER = "istio-proxy"

#: Namespace label that turns injection on (1.0.7
#: charts/sidecarInjectorWebhook/templates/mutatingwebhook.yaml namespaceSelector
#: `istio-injection: enabled`; unchanged in 1.30.3 istio-discovery/templates/mutatingwebhook.yaml).
INJECTION_NAMESPACE_LABEL = "istio-injection"
#: Namespace label of revision-based injection (istio/api v1.30.3 label/labels.yaml `istio.io/rev`;
#: 1.30.3 istio-discovery/templates/mutatingwebhook.yaml selects on it, `istio-injection` absent).
REVISION_LABEL = "istio.io/rev"
#: Pod annotation that opts a pod out (1.0.7 injector; istio/api v1.30.3 annotation/annotations.yaml
#: `sidecar.istio.io/inject`, deprecated in favour of the label of the same name, which
#: label/labels.yaml documents; both are honoured).
INJECT_ANNOTATION = "sidecar.istio.io/inject"


@dataclass(frozen=True)
class TelemetryEndpoint:
    """One metrics endpoint of the mesh that the Datadog `istio` check can scrape."""

    component: str
    """`istio-telemetry` (Mixer), `istio-pilot`, `istio-galley`, `istiod`, or `sidecar`."""
    port: int
    """Container / Service port."""
    port_name: str
    """The Service or container port name upstream gives it."""
    path: str
    """HTTP path of the metrics."""
    what: str
    """What the endpoint serves."""
    since: tuple[int, int]
    """First minor version serving it (inclusive)."""
    until: tuple[int, int] | None = None
    """First minor version no longer serving it (exclusive), or None."""

    def served_by(self, version: tuple[int, int]) -> bool:
        """Whether a given Istio major.minor serves this endpoint."""
        return self.since <= version and (self.until is None or version < self.until)


TELEMETRY_ENDPOINTS: tuple[TelemetryEndpoint, ...] = (
    # istio/istio 1.0.7 install/kubernetes/helm/istio/charts/mixer/templates/service.yaml:
    # istio-telemetry `prometheus` 42422 (the istio_* mesh metrics, Mixer prometheus adapter);
    # 1.4.10 and 1.5.0 (manifests/istio-telemetry/mixer-telemetry/templates/service.yaml) keep it.
    TelemetryEndpoint(
        "istio-telemetry",
        42422,
        "prometheus",
        "/metrics",
        "mesh metrics (Mixer prometheus adapter)",
        (1, 0),
        MIXER_REMOVED_IN,
    ),
    # 1.0.7 same file: `http-monitoring` 9093 (Mixer self-monitoring).
    TelemetryEndpoint(
        "istio-telemetry",
        9093,
        "http-monitoring",
        "/metrics",
        "Mixer self-monitoring",
        (1, 0),
        (1, 1),
    ),
    # 1.4.10 charts/mixer/templates/service.yaml: http-monitoring = global.monitoringPort, 15014 in
    # values.yaml since 1.1 (integrations-core istio conf.yaml.example, 2019: "If using
    # Istio < v1.1, replace port 15014 with port 9093").
    TelemetryEndpoint(
        "istio-telemetry",
        15014,
        "http-monitoring",
        "/metrics",
        "Mixer self-monitoring",
        (1, 1),
        MIXER_REMOVED_IN,
    ),
    # 1.0.7 charts/pilot/templates/service.yaml: istio-pilot `http-monitoring` 9093.
    TelemetryEndpoint("istio-pilot", 9093, "http-monitoring", "/metrics", "Pilot self-monitoring", (1, 0), (1, 1)),
    # 1.4.10 values.yaml global.monitoringPort 15014 (pilot, galley, citadel, mixer). In 1.5 the
    # `istio-pilot` Service stays and is the only one with 15014: it selects the istiod pods
    # (1.5.0 manifests/istio-control/istio-discovery/templates/service.yaml, `istio-pilot`
    # `15014 http-monitoring`; the `istiod` Service there has only 15012 and 443). 1.6 has no
    # `istio-pilot` Service.
    TelemetryEndpoint(
        "istio-pilot",
        15014,
        "http-monitoring",
        "/metrics",
        "Pilot self-monitoring",
        (1, 1),
        ISTIOD_MONITORING_SINCE,
    ),
    # 1.0.7 charts/galley/templates/service.yaml: istio-galley `http-monitoring` 9093.
    TelemetryEndpoint(
        "istio-galley",
        9093,
        "http-monitoring",
        "/metrics",
        "Galley self-monitoring",
        (1, 0),
        (1, 1),
    ),
    TelemetryEndpoint(
        "istio-galley",
        15014,
        "http-monitoring",
        "/metrics",
        "Galley self-monitoring",
        (1, 1),
        ISTIOD_SINCE,
    ),
    # 1.6.0 manifests/charts/istio-control/istio-discovery/templates/service.yaml: the single
    # `istiod` Service with `15014 http-monitoring` ("prometheus stats"); 1.30.3 keeps it. Not in 1.5
    # (see istio-pilot above).
    TelemetryEndpoint(
        "istiod", 15014, "http-monitoring", "/metrics", "istiod control-plane metrics", ISTIOD_MONITORING_SINCE
    ),
    # Envoy's own stats on 15090 since 1.0.3 (tools/deb/envoy_bootstrap_v2.json `"port_value":
    # 15090`, prefix `/stats/prometheus`); declared as the istio-proxy containerPort
    # `http-envoy-prom` by the injector from 1.1.0; 1.30.3 files/injection-template.yaml keeps it.
    TelemetryEndpoint(
        "sidecar",
        15090,
        "http-envoy-prom",
        "/stats/prometheus",
        "Envoy stats of the sidecar",
        (1, 0),
    ),
    # The pilot-agent status port 15020 serves the merged metrics on /stats/prometheus from 1.6.0
    # (istio/istio 1.6.0 pilot/cmd/pilot-agent/status/server.go `mux.HandleFunc(`/stats/prometheus`,
    # s.handleStats)`: Envoy's 15090 stats, plus the application's when merging is on; 1.5.0's
    # status server has only the readiness, quit and app-health paths). From 1.7.0 it adds
    # pilot-agent's own metrics (`scrapeAgentMetrics`, the `istio_agent_*` families). It serves
    # the path whatever `meshConfig.enablePrometheusMerge` says: that setting (false in 1.6.0
    # manifests/charts/global.yaml, true from 1.7.0) and the pod annotation
    # `prometheus.istio.io/merge-metrics` (pkg/kube/inject/webhook.go `enablePrometheusMerge`) only
    # decide whether the application's metrics are merged and the `prometheus.io/*` annotations
    # point at 15020. integrations-core istio auto_conf.yaml scrapes
    # `http://%%host%%:15020/stats/prometheus` from check 4.3.1 / Agent 7.44.0 (PR #13204; 15090
    # before, issue #13047).
    TelemetryEndpoint(
        "sidecar",
        15020,
        "http-envoy-prom-merged",
        "/stats/prometheus",
        "merged sidecar and application metrics",
        (1, 6),
    ),
)


#: First minor whose pilot-agent serves `/stats/prometheus` on the status port 15020, and first
#: whose answer there includes pilot-agent's own `istio_agent_*` metrics (the 15020 fact above).
MERGED_STATS_SINCE = (1, 6)
AGENT_METRICS_MERGED_SINCE = (1, 7)
#: The sidecar's stats ports: Envoy's own (every version) and pilot-agent's merged one.
ENVOY_STATS_PORT = 15090
MERGED_STATS_PORT = 15020


def telemetry_endpoints(version: tuple[int, int], component: str | None = None) -> list[TelemetryEndpoint]:
    """The telemetry endpoints a given Istio major.minor serves, optionally of one component."""
    return [e for e in TELEMETRY_ENDPOINTS if e.served_by(version) and (component is None or e.component == component)]


#: Pod labels of the pods whose logs make the `telemetry` group: Mixer's istio-telemetry
#: (istio/istio 1.0.7 charts/mixer: `istio: mixer`, `istio-mixer-type: telemetry`) and istiod
#: (1.5+ istio-discovery chart: `app: istiod`), plus pilot before 1.5 (`istio: pilot`).
TELEMETRY_POD_LABELS: tuple[tuple[str, str], ...] = (
    ("istio-mixer-type", "telemetry"),
    ("app", "istiod"),
    ("istio", "pilot"),
)
