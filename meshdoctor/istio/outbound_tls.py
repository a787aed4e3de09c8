"""The client side of mTLS: whether a port bypasses the sidecar, auto mTLS, port-level TLS settings.

Which DestinationRule a client applies, and the TLS mode it sets, is `mtls.client_tls_rule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshdoctor.istio.egress import EXCLUDE_OUTBOUND_PORTS
from meshdoctor.istio.mesh import ISTIOD, MeshInfo, mesh_config
from meshdoctor.kube.meta import metadata
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Auto mTLS (a client sidecar sends ISTIO_MUTUAL to pods that have a sidecar when no
#: DestinationRule sets TLS) is on by default from 1.5: istio/istio 1.4.10 values.yaml
#: `global.mtls.auto: false`; 1.5.0 operator/data/profiles/default.yaml `mtls.auto: true`. The
#: mesh config key is `enableAutoMtls`.
AUTO_MTLS_DEFAULT_SINCE = (1, 5)
AUTO_MTLS_KEY = "enableAutoMtls"


def auto_mtls(reader: ObjectReader, info: MeshInfo) -> bool:
    """Whether auto mTLS is on: the mesh config's `enableAutoMtls`, else the version's default."""
    setting = mesh_config(reader, info).get(AUTO_MTLS_KEY)
    if isinstance(setting, bool):
        return setting
    if info.minor is not None:
        return info.minor >= AUTO_MTLS_DEFAULT_SINCE
    return info.era == ISTIOD


def outbound_port_excluded(pod: Mapping[str, Any], port: int) -> str | None:
    """The field path that keeps outbound `port` away from the pod's sidecar, or None.

    istio-init's `-o` (excludeOutboundPorts) on a running pod, else the pod (template)
    annotation the injector turns into it (1.30 injection-template.yaml, 1.0.7
    sidecar-injector-configmap.yaml: `-o "{{ annotation ... excludeOutboundPorts ... }}"`).
    """
    spec = pod.get("spec") or {}
    for index, container in enumerate(spec.get("initContainers") or []):
        if container.get("name") != "istio-init":
            continue
        args = [str(a) for a in container.get("args") or []]
        for at, arg in enumerate(args[:-1]):
            if arg == "-o" and str(port) in _port_list(args[at + 1]):
                return f"spec.initContainers[{index}].args[{at + 1}]"
        return None
    annotations = metadata(pod).get("annotations") or {}
    if str(port) in _port_list(str(annotations.get(EXCLUDE_OUTBOUND_PORTS, ""))):
        return f"metadata.annotations['{EXCLUDE_OUTBOUND_PORTS}']"
    return None


def _port_list(text: str) -> set[str]:
    return {p.strip().strip('"') for p in text.split(",") if p.strip()}


def port_level_setting(rule: KubeObject, port: int) -> dict[str, Any] | None:
    """A DestinationRule's port-level traffic setting for a port, or None."""
    policy = (rule.get("spec") or {}).get("trafficPolicy") or {}
    for setting in policy.get("portLevelSettings") or []:
        if str((setting.get("port") or {}).get("number")) == str(port):
            return dict(setting)
    return None
