"""The Istio mesh a snapshot shows: version, era, mesh config, outbound policy.

A rule must never give Mixer-era advice to an istiod-era mesh or the other way round, so the era
comes from the control plane's own images. Facts (defaults per version) live in
`meshdoctor.istio.versions`; this module applies them to objects. Which ServiceEntry, Sidecar
and interception settings let a pod reach an external host is `meshdoctor.istio.egress`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from meshdoctor.istio.versions import ALLOW_ANY_SINCE, ISTIOD_SINCE
from meshdoctor.kube.images import image_name, split_image
from meshdoctor.kube.meta import labels_of
from meshdoctor.kube.workloads import containers, pod_template
from meshdoctor.snapshot import EVERY_NAMESPACE, KubeObject, ObjectReader

MIXER = "mixer"
ISTIOD = "istiod"
UNKNOWN = "unknown"

REGISTRY_ONLY = "REGISTRY_ONLY"

#: `exportTo` on ServiceEntry and Sidecar resources came with Istio 1.1 (istio/api release-1.1
#: networking/v1alpha3/service_entry.proto `export_to`; absent from release-1.0).
EXPORT_TO_SINCE = (1, 1)
ALLOW_ANY = "ALLOW_ANY"

#: Where the control plane is installed unless told otherwise (istioctl and the charts' default
#: `--istioNamespace` / `global.istioNamespace`: istio/istio manifests/charts/base/values.yaml).
DEFAULT_CONTROL_PLANE_NAMESPACE = "istio-system"

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
    not_read: str | None = None
    """Why no control plane was found although there may be one: its namespace was not read
    (`-n`, a dump of other namespaces). None when every namespace's Deployments were read."""

    def unknown_reason(self) -> str:
        """Why the mesh is not known, for a `not_checked` reason."""
        if self.not_read is not None:
            return f"the Istio control plane is not known: {self.not_read}"
        return "no Istio control plane in the input"

    @property
    def minor(self) -> tuple[int, int] | None:
        """(major, minor) of the version, or None."""
        return version_tuple(self.version)


NO_MESH = MeshInfo(None, UNKNOWN, None)


def version_tuple(version: str | None) -> tuple[int, int] | None:
    """`1.20.3-distroless` -> (1, 20); None when it does not start with a version."""
    match = _VERSION.match(version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


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


def _is_control_plane(deployment: KubeObject) -> bool:
    template = pod_template(deployment) or {}
    for labels in (labels_of(deployment), labels_of(template)):
        for key, values in _CONTROL_PLANE_LABELS.items():
            if str(labels.get(key, "")) in values:
                return True
    return False


def mesh_info(reader: ObjectReader) -> MeshInfo:
    """Version, era and namespace of the Istio control plane, from its Deployments' images.

    Deployments in any namespace that carry an Istio control-plane label are considered; when none
    is found and the Deployments of some namespace were not read (`-n`, a partial dump), the mesh
    is unknown with that reason (`not_read`), never "no mesh"; the pilot
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
        labels = {**labels_of(pod_template(deployment) or {}), **labels_of(deployment)}
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
        if reader.not_read("Deployment", EVERY_NAMESPACE) is None:
            return NO_MESH
        why = reader.not_read("Deployment", DEFAULT_CONTROL_PLANE_NAMESPACE) or reader.not_read(
            "Deployment", EVERY_NAMESPACE
        )
        return MeshInfo(None, UNKNOWN, None, not_read=why)
    if candidates:
        best_rank = min(c[0] for c in candidates)
        _, _, version, namespace = max((c for c in candidates if c[0] == best_rank), key=lambda c: c[1])
        return MeshInfo(version, era_of(version), namespace)
    era = ISTIOD if has_istiod else MIXER if has_mixer else UNKNOWN
    namespace = "istio-system" if "istio-system" in namespaces else sorted(namespaces)[0]
    return MeshInfo(None, era, namespace)


#: The mesh config ConfigMap of a revision: `istio` for the default revision, `istio-<rev>` for
#: another (istio/istio 1.24.0 pilot/pkg/bootstrap/mesh.go `getMeshConfigMapName`: "" and
#: "default" give `istio`; the istio-discovery chart's templates/configmap.yaml names it
#: `istio{{- if not (eq .Values.revision "") }}-{{ .Values.revision }}{{- end }}`). An istiod of
#: revision <rev> reads only that one, so a sidecar it configures gets that ConfigMap's
#: `outboundTrafficPolicy`, `rootNamespace`, `defaultServiceExportTo`.
MESH_CONFIGMAP = "istio"
MESH_CONFIG_KEY = "mesh"
DEFAULT_REVISION = "default"


def mesh_configmap_name(revision: str | None) -> str:
    """`istio` for the default revision (or none), `istio-<rev>` for another."""
    if revision in (None, "", DEFAULT_REVISION):
        return MESH_CONFIGMAP
    return f"{MESH_CONFIGMAP}-{revision}"


def _mesh_configmaps(reader: ObjectReader) -> list[KubeObject]:
    return [
        cm
        for cm in reader.objects("ConfigMap")
        if isinstance((cm.get("data") or {}).get(MESH_CONFIG_KEY), str)
        and re.fullmatch(r"istio(-[a-z0-9-]+)?", str((cm.get("metadata") or {}).get("name", "")))
    ]


def mesh_config_map(
    reader: ObjectReader, info: MeshInfo | None = None, revision: str | None = None
) -> KubeObject | None:
    """The ConfigMap holding the mesh config: `istio` (or `istio-<rev>`) with a `mesh` key.

    With a `revision` (the one whose istiod configures the pods asked about), only that revision's
    ConfigMap counts (`mesh_configmap_name`): another revision's settings never apply to them, so
    None when it is not in the snapshot. Without one, `istio` is preferred, then any revision's.
    The control plane's namespace is preferred, then `istio-system`, then any namespace.
    """
    found = _mesh_configmaps(reader)
    if revision is not None:
        wanted = mesh_configmap_name(revision)
        found = [cm for cm in found if (cm.get("metadata") or {}).get("name") == wanted]
    if not found:
        return None
    preferred = [info.namespace if info else None, "istio-system"]

    def rank(cm: KubeObject) -> tuple[int, int, str]:
        meta = cm.get("metadata") or {}
        namespace = meta.get("namespace")
        where = preferred.index(namespace) if namespace in preferred else len(preferred)
        return (where, 0 if meta.get("name") == MESH_CONFIGMAP else 1, f"{namespace}/{meta.get('name')}")

    return min(found, key=rank)


def parsed_mesh_config(cm: KubeObject | None) -> dict[str, Any]:
    """The parsed `mesh` key of a mesh ConfigMap; `{}` when absent or not a YAML mapping."""
    if cm is None:
        return {}
    try:
        parsed = yaml.safe_load(cm["data"][MESH_CONFIG_KEY])
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def mesh_config(reader: ObjectReader, info: MeshInfo | None = None, revision: str | None = None) -> dict[str, Any]:
    """The parsed `mesh` key of the mesh ConfigMap (of `revision`, when given); `{}` when absent."""
    return parsed_mesh_config(mesh_config_map(reader, info, revision))


def root_namespace(reader: ObjectReader, info: MeshInfo, revision: str | None = None) -> str:
    """The mesh's root namespace: `rootNamespace` in the mesh config, else the control plane's, else istio-system."""
    root = mesh_config(reader, info, revision).get("rootNamespace")
    return str(root or info.namespace or "istio-system")


def outbound_policy_of(config: dict[str, Any], info: MeshInfo) -> str:
    """`REGISTRY_ONLY` or `ALLOW_ANY` from a parsed mesh config, else the version's default.

    `outboundTrafficPolicy.mode` in the mesh config decides when set. Otherwise the version's
    default: 1.0 has no such setting and drops unknown destinations (REGISTRY_ONLY in effect); 1.1
    and later default to ALLOW_ANY. Without a version, an istiod-era mesh is ALLOW_ANY and a
    Mixer-era one is assumed REGISTRY_ONLY only when nothing says otherwise — callers that must be
    sure check `info.version`.
    """
    mode = (config.get("outboundTrafficPolicy") or {}).get("mode")
    if isinstance(mode, str) and mode.upper() in (REGISTRY_ONLY, ALLOW_ANY):
        return mode.upper()
    minor = info.minor
    if minor is not None:
        return ALLOW_ANY if minor >= ALLOW_ANY_SINCE else REGISTRY_ONLY
    return ALLOW_ANY if info.era != MIXER else REGISTRY_ONLY


def outbound_traffic_policy(reader: ObjectReader, info: MeshInfo, revision: str | None = None) -> str:
    """`REGISTRY_ONLY` or `ALLOW_ANY`: what a sidecar of `revision` does with traffic to an unknown host."""
    return outbound_policy_of(mesh_config(reader, info, revision), info)


def service_entry_api_version(info: MeshInfo) -> str:
    """The ServiceEntry apiVersion to write: v1alpha3 in the Mixer era (1.0-1.4), v1beta1 from 1.5.

    networking.istio.io/v1beta1 is served from Istio 1.5 (istio/api release-1.5 networking/v1beta1);
    an unknown era gets v1alpha3, which every release so far still serves.
    """
    return "networking.istio.io/v1beta1" if info.era == ISTIOD else "networking.istio.io/v1alpha3"


def service_entry_has_export_to(info: MeshInfo) -> bool:
    """Whether the mesh's ServiceEntry has `exportTo` (added in Istio 1.1; 1.0 rejects the field).

    Unknown versions are assumed to have it unless the era is Mixer without a version.
    """
    minor = info.minor
    if minor is not None:
        return minor >= EXPORT_TO_SINCE
    return info.era != MIXER
