"""Check configuration: the `istio` check's ConfigMap, its wiring into the agent, its endpoints.

Ids: MD201 ConfigMap missing, MD202 check not configured anywhere, MD203 ConfigMap not referenced,
MD204 volume not mounted, MD205 mounted where the agent does not read, MD206 `items` key absent,
MD207 ConfigMap in another namespace, MD208 not valid YAML / no instances, MD209 endpoint names no
Service, MD210 endpoint of the wrong mesh era, MD211 a folder mount hiding the image's auto_conf.yaml,
MD212 sidecar metrics scraped on Envoy's 15090 instead of the merged 15020 (advice).

Split with the telemetry family (MD3xx): here, whether the configuration names endpoints that can
exist at all (a Service of that name; the keys and ports of the mesh's version). Whether that
Service has the port, ready endpoints, and whether NetworkPolicy or mTLS let the agent in, is
telemetry's, built on the same `meshdoctor.datadog.istio_check.configured_endpoints`.

One module per rule; `istio_volume` (the check's ConfigMap volume), `endpoint_findings` (evidence
and fixes of a wrong endpoint) and `references` serve several of them.
"""

from __future__ import annotations

from meshdoctor.rule import Rule

from .md201_configmap_missing import IstioCheckConfigMapMissing
from .md202_check_not_configured import IstioCheckNotConfigured
from .md203_configmap_not_referenced import IstioCheckConfigMapNotReferenced
from .md204_volume_not_mounted import IstioCheckVolumeNotMounted
from .md205_mount_path_not_read import IstioCheckMountPathNotRead
from .md206_items_key_missing import IstioCheckItemsKeyMissing
from .md207_configmap_other_namespace import IstioCheckConfigMapInOtherNamespace
from .md208_config_invalid import IstioCheckConfigInvalid
from .md209_endpoint_no_service import IstioCheckEndpointNoService
from .md210_endpoint_wrong_era import IstioCheckEndpointWrongEra
from .md211_mount_hides_auto_conf import MountHidesAutoConf
from .md212_sidecar_envoy_port import SidecarEnvoyPort

RULES: list[type[Rule]] = [
    IstioCheckConfigMapMissing,
    IstioCheckNotConfigured,
    IstioCheckConfigMapNotReferenced,
    IstioCheckVolumeNotMounted,
    IstioCheckMountPathNotRead,
    IstioCheckItemsKeyMissing,
    IstioCheckConfigMapInOtherNamespace,
    IstioCheckConfigInvalid,
    IstioCheckEndpointNoService,
    IstioCheckEndpointWrongEra,
    MountHidesAutoConf,
    SidecarEnvoyPort,
]
