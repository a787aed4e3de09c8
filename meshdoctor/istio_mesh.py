"""The Istio mesh a snapshot shows: version, era, mesh config, outbound policy, sidecar capture.

A rule must never give Mixer-era advice to an istiod-era mesh or the other way round, so the era
comes from the control plane's own images. Facts (defaults per version) live in
`meshdoctor.facts.istio_versions`; this module applies them to objects.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from meshdoctor.facts.istio_versions import (
    ALLOW_ANY_SINCE,
    DEFAULT_INCLUDE_OUTBOUND_IP_RANGES,
    EXCLUDE_OUTBOUND_IP_RANGES_ANNOTATION,
    INCLUDE_OUTBOUND_IP_RANGES_ANNOTATION,
    ISTIOD_SINCE,
)
from meshdoctor.snapshot import KubeObject, ObjectReader
from meshdoctor.workloads import containers, pod_template

MIXER = "mixer"
ISTIOD = "istiod"
UNKNOWN = "unknown"

REGISTRY_ONLY = "REGISTRY_ONLY"
ALLOW_ANY = "ALLOW_ANY"

#: Image names (last path segment) of control-plane components, most telling first: the pilot
#: image runs both `istio-pilot` (< 1.5) and `istiod` (>= 1.5).
_CONTROL_PLANE_IMAGES = (
    "pilot",
    "mixer",
    "galley",
    "citadel",
    "sidecar_injector",
    "proxyv2",
    "proxy_init",
)

#: Labels that mark a Deployment as part of the control plane (1.0.7 charts: `istio: pilot`,
#: `istio: mixer`, `istio: sidecar-injector`, `istio: galley`, `istio: citadel`;
#: 1.5+: `app: istiod`, `istio: pilot` on istiod too).
_CONTROL_PLANE_LABELS = {
    "istio": {"pilot", "mixer", "galley", "citadel", "sidecar-injector", "istiod"},
    "app": {"istiod", "pilot", "istio-pilot", "mixer", "istio-mixer"},
}

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class MeshInfo:
    """What the control plane says about the mesh."""

    version: str | None
    """`1.0.7`, `1.20.3`, or None when no image carries a version."""
    era: str
    """`mixer` (< 1.5), `istiod` (>= 1.5) or `unknown`."""
    namespace: str | None
    """Namespace of the control plane, or None without one."""

    @property
    def minor(self) -> tuple[int, int] | None:
        """(major, minor) of the version, or None."""
        return version_tuple(self.version)


NO_MESH = MeshInfo(None, UNKNOWN, None)


def version_tuple(version: str | None) -> tuple[int, int] | None:
    """`1.20.3-distroless` -> (1, 20); None when it does not start with a version."""
    match = _VERSION.match(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """Split an image into repository, tag and digest (each part None when absent).

    `reg:5000/istio/pilot:1.20.3@sha256:ab` -> (`reg:5000/istio/pilot`, `1.20.3`, `sha256:ab`).
    """
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    last_slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > last_slash:
        image, tag = image[:colon], image[colon + 1 :]
    return image, tag, digest


def image_name(image: str) -> str:
    """The last path segment of an image's repository: `docker.io/istio/pilot:1.0.7` -> `pilot`."""
    return split_image(image)[0].rsplit("/", 1)[-1]


def image_version(image: str) -> str | None:
    """The version a tag carries: `1.20.3-distroless` -> `1.20.3`; None for `latest` or a digest."""
    tag = split_image(image)[1]
    match = _VERSION.match(tag or "")
    if not match:
        return None
    return ".".join(g for g in match.groups() if g is not None)


def era_of(version: str | None) -> str:
    """`mixer` below 1.5, `istiod` from 1.5, `unknown` without a version."""
    parsed = version_tuple(version)
    if parsed is None:
        return UNKNOWN
    return ISTIOD if parsed >= ISTIOD_SINCE else MIXER


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _is_control_plane(deployment: KubeObject) -> bool:
    template = pod_template(deployment) or {}
    for labels in (_labels(deployment), _labels(template)):
        for key, values in _CONTROL_PLANE_LABELS.items():
            if str(labels.get(key, "")) in values:
                return True
    return False


def mesh_info(reader: ObjectReader) -> MeshInfo:
    """Version, era and namespace of the Istio control plane, from its Deployments' images.

    Deployments in any namespace that carry an Istio control-plane label are considered; the pilot
    image (istio-pilot or istiod) decides, then Mixer, galley, citadel, the injector. With several
    revisions the highest version wins. Without any version in the tags, the shape decides the era:
    an `istiod` Deployment means istiod, Mixer without istiod means mixer.
    """
    candidates: list[tuple[int, tuple[int, int, int], str, str]] = []
    namespaces: list[str] = []
    has_istiod = has_mixer = False
    for deployment in reader.objects("Deployment"):
        if not _is_control_plane(deployment):
            continue
        meta = deployment.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        namespaces.append(namespace)
        labels = {**_labels(pod_template(deployment) or {}), **_labels(deployment)}
        if labels.get("app") == "istiod" or str(meta.get("name", "")).startswith("istiod"):
            has_istiod = True
        if labels.get("istio") == "mixer":
            has_mixer = True
        for container in containers(pod_template(deployment), include_init=False):
            image = str(container.get("image") or "")
            name = image_name(image)
            if name not in _CONTROL_PLANE_IMAGES:
                continue
            version = image_version(image)
            if version is None:
                continue
            parts = tuple(int(p) for p in version.split(".")) + (0, 0)
            candidates.append(
                (
                    _CONTROL_PLANE_IMAGES.index(name),
                    (parts[0], parts[1], parts[2]),
                    version,
                    namespace,
                )
            )
    if not namespaces:
        return NO_MESH
    if candidates:
        best_rank = min(c[0] for c in candidates)
        _, _, version, namespace = max(
            (c for c in candidates if c[0] == best_rank), key=lambda c: c[1]
        )
        return MeshInfo(version, era_of(version), namespace)
    era = ISTIOD if has_istiod else MIXER if has_mixer else UNKNOWN
    namespace = "istio-system" if "istio-system" in namespaces else sorted(namespaces)[0]
    return MeshInfo(None, era, namespace)


def mesh_config_map(reader: ObjectReader, info: MeshInfo | None = None) -> KubeObject | None:
    """The ConfigMap holding the mesh config: `istio` (or `istio-<rev>`) with a `mesh` key.

    The control plane's namespace is preferred, then `istio-system`, then any namespace.
    """
    found = [
        cm
        for cm in reader.objects("ConfigMap")
        if isinstance((cm.get("data") or {}).get("mesh"), str)
        and re.fullmatch(r"istio(-[a-z0-9-]+)?", str((cm.get("metadata") or {}).get("name", "")))
    ]
    if not found:
        return None
    preferred = [info.namespace if info else None, "istio-system"]

    def rank(cm: KubeObject) -> tuple[int, int, str]:
        meta = cm.get("metadata") or {}
        namespace = meta.get("namespace")
        where = preferred.index(namespace) if namespace in preferred else len(preferred)
        return (where, 0 if meta.get("name") == "istio" else 1, f"{namespace}/{meta.get('name')}")

    return min(found, key=rank)


def mesh_config(reader: ObjectReader, info: MeshInfo | None = None) -> dict[str, Any]:
    """The parsed `mesh` key of the mesh ConfigMap; `{}` when absent or not a YAML mapping."""
    cm = mesh_config_map(reader, info)
    if cm is None:
        return {}
    try:
        parsed = yaml.safe_load(cm["data"]["mesh"])
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def outbound_traffic_policy(reader: ObjectReader, info: MeshInfo) -> str:
    """`REGISTRY_ONLY` or `ALLOW_ANY`: what a sidecar does with traffic to an unknown host.

    `outboundTrafficPolicy.mode` in the mesh config decides when set. Otherwise the version's
    default: 1.0 has no such setting and drops unknown destinations (REGISTRY_ONLY in effect); 1.1
    and later default to ALLOW_ANY. Without a version, an istiod-era mesh is ALLOW_ANY and a
    Mixer-era one is assumed REGISTRY_ONLY only when nothing says otherwise — callers that must be
    sure check `info.version`.
    """
    mode = (mesh_config(reader, info).get("outboundTrafficPolicy") or {}).get("mode")
    if isinstance(mode, str) and mode.upper() in (REGISTRY_ONLY, ALLOW_ANY):
        return mode.upper()
    minor = info.minor
    if minor is not None:
        return ALLOW_ANY if minor >= ALLOW_ANY_SINCE else REGISTRY_ONLY
    return ALLOW_ANY if info.era != MIXER else REGISTRY_ONLY


def injector_include_outbound_ranges(reader: ObjectReader, info: MeshInfo | None = None) -> str:
    """The include-outbound-IP-ranges default in the injector template (`*` unless set at install).

    Read from ConfigMap `istio-sidecar-injector[-<rev>]` key `config` (1.0–1.x) or `values`: the
    `-i` argument's annotation default, as Helm rendered `global.proxy.includeIPRanges` into it.
    """
    pattern = re.compile(re.escape(INCLUDE_OUTBOUND_IP_RANGES_ANNOTATION) + r'`\s+"([^"]*)"')
    values_pattern = re.compile(r'"includeIPRanges"\s*:\s*"([^"]*)"')
    for cm in reader.objects("ConfigMap"):
        meta = cm.get("metadata") or {}
        if not str(meta.get("name", "")).startswith("istio-sidecar-injector"):
            continue
        if info is not None and info.namespace and meta.get("namespace") != info.namespace:
            continue
        data = cm.get("data") or {}
        match = pattern.search(str(data.get("config") or ""))
        if match:
            return match.group(1)
        match = values_pattern.search(str(data.get("values") or ""))
        if match:
            return match.group(1)
    return DEFAULT_INCLUDE_OUTBOUND_IP_RANGES


def captures_external_egress(
    template: Mapping[str, Any], default_include: str = DEFAULT_INCLUDE_OUTBOUND_IP_RANGES
) -> bool:
    """Whether the sidecar's iptables redirect traffic to public addresses (Datadog's intake).

    `traffic.sidecar.istio.io/includeOutboundIPRanges` on the pod (else the injector default) of
    `*` captures everything; a list of CIDRs captures public addresses only if one of them is not
    private. An `excludeOutboundIPRanges` of `0.0.0.0/0` captures nothing.
    """
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    exclude = _ranges(str(annotations.get(EXCLUDE_OUTBOUND_IP_RANGES_ANNOTATION, "")))
    if any(net.prefixlen == 0 for net in exclude if net is not None):
        return False
    include = str(annotations.get(INCLUDE_OUTBOUND_IP_RANGES_ANNOTATION, default_include)).strip()
    if include == "*":
        return True
    for net in _ranges(include):
        if net is None or not net.is_private:
            return True
    return False


def _ranges(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network | None]:
    """CIDRs of an annotation; None for an entry that does not parse (treated as capturing)."""
    found: list[ipaddress.IPv4Network | ipaddress.IPv6Network | None] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            found.append(None)
    return found


# -- ServiceEntry hosts and visibility ------------------------------------------------------------

#: Port protocols that carry the agent's TLS traffic unchanged. HTTP/HTTP2/GRPC on 443 would make
#: the sidecar parse TLS bytes as plaintext HTTP and fail.
_TLS_CARRYING_PROTOCOLS = ("HTTPS", "TLS", "TCP")


def host_covers(pattern: str, host: str) -> bool:
    """Istio host matching: `*.datadoghq.com` covers `app.datadoghq.com`, not `datadoghq.com`.

    `*` covers everything; otherwise an exact, case-insensitive match; a trailing dot is ignored.
    A wildcard host (`*.agent.datadoghq.com`) is covered only by a pattern covering every name it
    stands for (`*.datadoghq.com`, `*.agent.datadoghq.com`, `*`).
    """
    pattern = pattern.strip().lower().rstrip(".")
    host = host.strip().lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".datadoghq.com"
        if host.startswith("*."):
            return host[1:].endswith(suffix)
        return host.endswith(suffix) and len(host) > len(suffix)
    return pattern == host


def service_entry_visible(
    service_entry: Mapping[str, Any], namespace: str, default_export_to: Any = None
) -> bool:
    """Whether a ServiceEntry applies to workloads in `namespace` (its `exportTo`).

    Absent `exportTo` means the mesh default (`defaultServiceExportTo`, itself `*` by default);
    `*` is every namespace, `.` the entry's own namespace, other values name namespaces.
    """
    export_to = (service_entry.get("spec") or {}).get("exportTo")
    if not export_to:
        export_to = default_export_to or ["*"]
    own = str((service_entry.get("metadata") or {}).get("namespace") or "")
    for target in export_to:
        target = str(target)
        if target == "*" or target == namespace or (target == "." and own == namespace):
            return True
    return False


def service_entry_port(service_entry: Mapping[str, Any], port: int) -> Mapping[str, Any] | None:
    """The entry's port of that number that passes TLS through (HTTPS, TLS or TCP), or None."""
    for entry in (service_entry.get("spec") or {}).get("ports") or []:
        if not isinstance(entry, Mapping):
            continue
        try:
            number = int(entry.get("number", -1))
        except (TypeError, ValueError):
            continue
        if number == port and str(entry.get("protocol", "")).upper() in _TLS_CARRYING_PROTOCOLS:
            return entry
    return None


def covering_service_entries(
    reader: ObjectReader, host: str, port: int, namespace: str, info: MeshInfo | None = None
) -> list[KubeObject]:
    """ServiceEntries (networking.istio.io, any version) visible from `namespace` for host:port."""
    default_export_to = mesh_config(reader, info).get("defaultServiceExportTo")
    found = []
    for service_entry in reader.objects("ServiceEntry"):
        if not str(service_entry.get("apiVersion", "")).startswith("networking.istio.io/"):
            continue
        hosts = (service_entry.get("spec") or {}).get("hosts") or []
        if not any(host_covers(str(h), host) for h in hosts):
            continue
        if service_entry_port(service_entry, port) is None:
            continue
        if service_entry_visible(service_entry, namespace, default_export_to):
            found.append(service_entry)
    return found


def service_entry_api_version(info: MeshInfo) -> str:
    """The ServiceEntry apiVersion to write: v1alpha3 on Mixer-era meshes, v1beta1 from 1.5."""
    return "networking.istio.io/v1beta1" if info.era == ISTIOD else "networking.istio.io/v1alpha3"
