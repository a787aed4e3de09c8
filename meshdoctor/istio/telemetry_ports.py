"""Which control-plane component a Service is, and the telemetry endpoint it serves on a port.

The facts are `versions.TELEMETRY_ENDPOINTS`; this reads them for one Service port in one mesh.
"""

from __future__ import annotations

from meshdoctor.istio.mesh import MeshInfo
from meshdoctor.istio.versions import TELEMETRY_ENDPOINTS, TelemetryEndpoint

#: Component of a Service name, for the telemetry endpoint facts (`istiod-<rev>` is istiod).
COMPONENT_OF_SERVICE = {
    "istio-telemetry": "istio-telemetry",
    "istio-pilot": "istio-pilot",
    "istio-galley": "istio-galley",
    "istiod": "istiod",
}


def component_of_service(service_name: str) -> str | None:
    """The control-plane component a Service of that name fronts, or None."""
    if service_name in COMPONENT_OF_SERVICE:
        return COMPONENT_OF_SERVICE[service_name]
    if service_name.startswith("istiod-"):
        return "istiod"
    return None


def telemetry_fact(service_name: str, port: int, info: MeshInfo) -> tuple[str | None, TelemetryEndpoint | None]:
    """(component, the fact for that port in this mesh version) — fact None when not served."""
    component = component_of_service(service_name)
    if component is None:
        return None, None
    minor = info.minor
    for fact in TELEMETRY_ENDPOINTS:
        if fact.component == component and fact.port == port and (minor is None or fact.served_by(minor)):
            return component, fact
    return component, None
