"""Whether an istio check endpoint is one the mesh's Istio version serves.

Mixer-era options (`mixer_endpoint`, `galley_endpoint`, `pilot_endpoint`, `citadel_endpoint`)
before 1.5, `istiod_endpoint` from 1.5; Mixer telemetry (istio-telemetry) only while an
istio-telemetry Deployment runs and before its removal in 1.8; and the monitoring port of each
Mixer-era component by version (`istio.versions.TELEMETRY_ENDPOINTS`); and the sidecar's merged
stats port 15020, whose `/stats/prometheus` pilot-agent serves only from 1.6 (`MERGED_STATS_SINCE`).
"""

from __future__ import annotations

import re

from meshdoctor.datadog.istio_check import CheckEndpoint, mixer_telemetry_deployed
from meshdoctor.istio.mesh import ISTIOD, MIXER, MeshInfo, mesh_info
from meshdoctor.istio.versions import (
    ENVOY_STATS_PORT,
    ISTIOD_MONITORING_SINCE,
    MERGED_STATS_PORT,
    MERGED_STATS_SINCE,
    MIXER_REMOVED_IN,
    TELEMETRY_ENDPOINTS,
    telemetry_endpoints,
)
from meshdoctor.snapshot import ObjectReader

#: The host part `istiod` of a check URL (`http://istiod.istio-system:15014/metrics`).
_ISTIOD_HOST = re.compile(r"^(\w+://)istiod(?=[.:/]|$)")


def mesh_and_mixer_telemetry(reader: ObjectReader) -> tuple[MeshInfo, bool]:
    """The mesh, and whether it runs Mixer telemetry: what the check's endpoints must match."""
    info = mesh_info(reader)
    return info, mixer_telemetry_deployed(reader, info)


def era_problem(endpoint: CheckEndpoint, info: MeshInfo, telemetry: bool) -> tuple[str, str | None] | None:
    """(why the endpoint belongs to another era or version, the right URL or None) or None."""
    minor = info.minor
    if info.era not in (MIXER, ISTIOD):
        return None
    key, port = endpoint.key, endpoint.port
    version = info.version or info.era
    if key == "istiod_endpoint" and info.era == MIXER:
        return (f"istiod exists from Istio 1.5, this mesh runs {version} (Mixer era)", None)
    mixer_alive = telemetry and (minor is None or minor < MIXER_REMOVED_IN)
    if info.era == ISTIOD:
        if key in ("galley_endpoint", "pilot_endpoint", "citadel_endpoint"):
            return (
                f"a Mixer-era option: from Istio 1.5 pilot, galley and citadel run inside istiod "
                f"(use istiod_endpoint), this mesh runs {version}",
                None,
            )
        if (
            key == "mixer_endpoint" or (key == "istio_mesh_endpoint" and endpoint.era_hint == MIXER)
        ) and not mixer_alive:
            return (
                f"Mixer telemetry (istio-telemetry), which this mesh ({version}) does not run "
                "(no istio-telemetry Deployment; Mixer was removed in 1.8)",
                None,
            )
    if (
        key == "istiod_endpoint"
        and endpoint.service == "istiod"
        and port == 15014
        and minor is not None
        and minor < ISTIOD_MONITORING_SINCE
    ):
        return (
            f"the istiod Service serves 15014 from Istio 1.6; in {version} only istio-pilot (which "
            "selects the istiod pods) has it",
            _ISTIOD_HOST.sub(r"\1istio-pilot", endpoint.url, count=1),
        )
    merged = _merged_port_problem(endpoint, info)
    if merged is not None:
        return merged
    component = endpoint.service if endpoint.service in ("istio-telemetry", "istio-pilot", "istio-galley") else None
    if component is None or minor is None or not isinstance(port, int) or key == "istio_mesh_endpoint":
        return None
    served = {e.port: e for e in telemetry_endpoints(minor, component)}
    known = {e.port for e in TELEMETRY_ENDPOINTS if e.component == component}
    if port in known and port not in served:
        names = {e.port_name for e in TELEMETRY_ENDPOINTS if e.component == component and e.port == port}
        right = next((p for p, e in served.items() if e.port_name in names), None)
        if right is None:
            return None
        fixed = endpoint.url.replace(f":{port}", f":{right}", 1)
        return (
            f"{component} serves its monitoring on {right} in Istio {version}, not on {port}",
            fixed,
        )
    return None


def _merged_port_problem(endpoint: CheckEndpoint, info: MeshInfo) -> tuple[str, str | None] | None:
    """`istio_mesh_endpoint` on the sidecar's 15020 `/stats/prometheus` before Istio 1.6 serves it."""
    minor = info.minor
    if (
        endpoint.key != "istio_mesh_endpoint"
        or endpoint.port != MERGED_STATS_PORT
        or not endpoint.path.startswith("/stats/prometheus")
        or minor is None
        or minor >= MERGED_STATS_SINCE
    ):
        return None
    version = info.version or info.era
    served = "pilot-agent serves /stats/prometheus on 15020 from Istio 1.6"
    if info.era == ISTIOD:
        return (
            f"{served}; in {version} that path is not on 15020 (HTTP 404), the sidecar's metrics are "
            f"on Envoy's {ENVOY_STATS_PORT}",
            endpoint.url.replace(f":{MERGED_STATS_PORT}", f":{ENVOY_STATS_PORT}", 1),
        )
    return (
        f"{served}, and the mesh metrics of {version} (Mixer era) come from istio-telemetry:42422",
        None,
    )
