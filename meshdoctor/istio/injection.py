"""Will this pod (or this workload's pods) run an Istio sidecar, and why.

The agent's egress, the telemetry scrape and mTLS all depend on whether a pod has an `istio-proxy`
and whether that proxy redirects the pod's traffic. A running pod answers the first question by
itself; a workload (or a pod in a manifest that is not yet applied) needs a prediction made the way
the API server and the injector make it:

1. the API server calls an injection webhook of a MutatingWebhookConfiguration only when the
   webhook's `namespaceSelector` matches the pod's Namespace labels and its `objectSelector` the
   pod's labels (absent selector: everything);
2. the injector then runs `injectRequired` (istio/istio `pkg/kube/inject/inject.go`;
   `pilot/pkg/kube/inject/inject.go` in 1.0), which is:
   `spec.hostNetwork` -> never; namespaces kube-system and kube-public (plus kube-node-lease and
   local-path-storage since 1.9) -> never; the `sidecar.istio.io/inject` annotation (the label of
   the same name wins over it since 1.12); then, only when that is unset, the injector ConfigMap's
   `neverInjectSelector` and `alwaysInjectSelector` (1.1+); then the ConfigMap's `policy`:
   `enabled` injects by default, `disabled` only on an explicit "true".
   Until 1.26 the value is read as a YAML 1.1 boolean (`y`, `yes`, `true`, `on` inject; any other
   non-empty value, "false" or "no" alike, does not); since 1.27 only "true"/"false" count and any
   other value falls back to the default policy.

When the snapshot has the webhook configuration, its selectors are used as they are. When it has
only the injector ConfigMap, the chart's default webhook for the mesh's era is assumed (1.0.7's
`istio-injection: enabled`, or the four webhooks of 1.30's chart) and the reason says so. When it
has neither, the answer is unknown, unless the pod already has its sidecar.

Evidence paths: a path on the object asked about is a plain dotted path
(`spec.template.metadata.annotations['sidecar.istio.io/inject']`); a path on another object is
prefixed with that object as `Kind/[namespace/]name:`, e.g.
`Namespace/agents:metadata.labels['istio-injection']`,
`MutatingWebhookConfiguration/istio-sidecar-injector:webhooks[0]`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshdoctor.istio.mesh import version_tuple
from meshdoctor.kube.labels import selector_matches
from meshdoctor.kube.meta import metadata
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.snapshot import KubeObject, ObjectReader

#: The sidecar container's name, fixed by every injection template
#: (1.0.7 sidecar-injector-configmap.yaml, 1.30 files/injection-template.yaml).
PROXY_CONTAINER = "istio-proxy"

#: Init containers that install the traffic redirection: `istio-init` runs iptables; with the
#: Istio CNI plugin the injector adds `istio-validation` instead (1.30 injection-template.yaml).
REDIRECT_INIT_CONTAINERS = ("istio-init", "istio-validation")

#: Annotation the injector writes on every pod it injected (istio-api annotations.yaml).
STATUS_ANNOTATION = "sidecar.istio.io/status"

#: The per-pod switch: an annotation since 0.x (deprecated since istio/api 1.15), a label read
#: by the injector since 1.12 and by the webhook objectSelectors of the istiod charts
#: (istio-api labels.yaml, annotations.yaml; istio/istio 1.12.0 inject.go).
INJECT_KEY = "sidecar.istio.io/inject"

#: Namespace labels the injection webhooks select on
#: (1.0.7 and 1.30 mutatingwebhook.yaml).
NAMESPACE_INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"

#: A revision tag's webhook configuration `istio-revision-tag-<tag>` carries `istio.io/tag: <tag>`
#: and `istio.io/rev: <the revision it points to>`, and its webhooks call `istiod-<rev>`; its
#: namespaceSelector is `istio.io/rev In [<tag>]` with `istio-injection DoesNotExist` (istio/istio
#: 1.24.0 manifests/charts/istio-control/istio-discovery/templates/revision-tags.yaml;
#: istio-api label/labels.yaml `istio.io/tag`, "for internal use only", on
#: MutatingWebhookConfiguration).
TAG_LABEL = "istio.io/tag"

#: What an injected pod says about the revision that injected it: the injection template writes
#: the annotation `istio.io/rev: <revision | "default">` (istio/istio 1.24.0
#: manifests/charts/istio-control/istio-discovery/files/injection-template.yaml, metadata.
#: annotations), and `sidecar.istio.io/status` JSON carries `"revision"` (1.24.0
#: pkg/kube/inject/webhook.go `getInjectionStatus`: "Rather than setting istio.io/rev label on
#: injected pods include them here in status annotation. This keeps us from overwriting the
#: istio.io/rev label when using revision tags"). The injector does not set the `istio.io/rev`
#: label: a pod label of that name is the user's (a revision or a tag the webhooks select on).
REVISION_ANNOTATION = "istio.io/rev"

#: The label the API server sets on every Namespace (Kubernetes >= 1.21); the 1.30
#: `enableNamespacesByDefault` webhook selects on it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

#: Namespaces `injectRequired` never injects: `ignoredNamespaces` in 1.0.7
#: pilot/pkg/kube/inject/initializer.go; kube-node-lease and local-path-storage were added in
#: 1.9.0 (pkg/kube/inject/initializer.go).
IGNORED_NAMESPACES_BEFORE_1_9 = ("kube-system", "kube-public")
IGNORED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage")

#: Injector ConfigMap: `istio-sidecar-injector[-<revision>]`, key `config` (1.0.7
#: templates/sidecar-injector-configmap.yaml; 1.30 templates/istiod-injector-configmap.yaml).
INJECTOR_CONFIGMAP = "istio-sidecar-injector"
INJECTOR_CONFIG_KEY = "config"

#: `global.proxy.autoInject` default (1.0.7, 1.4.10 and 1.30 values.yaml).
DEFAULT_POLICY = "enabled"

#: The webhook the 1.0.7 chart installs with `enableNamespacesByDefault: false`
#: (charts/sidecarInjectorWebhook/templates/mutatingwebhook.yaml).
MIXER_ERA_DEFAULT_WEBHOOKS: tuple[dict[str, Any], ...] = (
    {
        "name": "sidecar-injector.istio.io",
        "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
    },
)

#: The webhooks the 1.30 chart installs for the default revision with `enableNamespacesByDefault:
#: false` (istio-discovery templates/mutatingwebhook.yaml, in its order).
ISTIOD_ERA_DEFAULT_WEBHOOKS: tuple[dict[str, Any], ...] = (
    {
        "name": "rev.namespace.sidecar-injector.istio.io",
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "istio.io/rev", "operator": "In", "values": ["default"]},
                {"key": "istio-injection", "operator": "DoesNotExist"},
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
            ]
        },
    },
    {
        "name": "rev.object.sidecar-injector.istio.io",
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "istio.io/rev", "operator": "DoesNotExist"},
                {"key": "istio-injection", "operator": "DoesNotExist"},
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
                {"key": "istio.io/rev", "operator": "In", "values": ["default"]},
            ]
        },
    },
    {
        "name": "namespace.sidecar-injector.istio.io",
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "istio-injection", "operator": "In", "values": ["enabled"]},
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
            ]
        },
    },
    {
        "name": "object.sidecar-injector.istio.io",
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "istio-injection", "operator": "DoesNotExist"},
                {"key": "istio.io/rev", "operator": "DoesNotExist"},
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
                {"key": "istio.io/rev", "operator": "DoesNotExist"},
            ]
        },
    },
)

_YAML_TRUE = ("y", "yes", "true", "on")


@dataclass(frozen=True)
class Injection:
    """Whether a pod has (or will get) an Istio sidecar."""

    injected: bool | None
    """True: sidecar present or predicted; False: absent or predicted absent; None: cannot tell."""
    reason: str
    """One sentence a user can act on: which switch decided."""
    evidence_paths: list[str] = field(default_factory=list)
    """Field paths that decided (see the module docstring for their form)."""
    revision: str | None = None
    """The control-plane revision whose istiod injects (or injected) the pod and configures its
    sidecar (`default` for the default one); None when no webhook or annotation says it (the
    webhook configuration assumed, or no sidecar)."""
    tag: str | None = None
    """The revision tag whose webhook injects the pod (`istio.io/tag` on it), if one does."""


@dataclass(frozen=True)
class InjectorConfig:
    """The parts of the injector ConfigMap's `config` that decide injection."""

    policy: str = DEFAULT_POLICY
    """`enabled` or `disabled` (anything else disables injection, as the injector does)."""
    never_inject_selector: tuple[dict[str, Any], ...] = ()
    """Label selectors on the pod that veto injection when the pod does not say."""
    always_inject_selector: tuple[dict[str, Any], ...] = ()
    """Label selectors on the pod that force injection when the pod does not say."""
    source: str = ""
    """`ConfigMap/<ns>/<name>` it was read from, or empty for the chart default."""


@dataclass(frozen=True)
class _Webhook:
    """One injection webhook: its selectors, its revision, where it came from."""

    name: str
    namespace_selector: Mapping[str, Any] | None
    object_selector: Mapping[str, Any] | None
    revision: str
    source: str
    tag: str | None = None


# -- small readers ---------------------------------------------------------------------------------


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _key_path(prefix: str, field_name: str, key: str) -> str:
    base = f"{prefix}.{field_name}" if prefix else field_name
    return f"{base}['{key}']"


def mesh_version(mesh_info: Any) -> tuple[int, int] | None:
    """(major, minor) of a `MeshInfo`-like object's `version`, or None when unknown."""
    version = getattr(mesh_info, "version", None) if mesh_info is not None else None
    return version_tuple(str(version)) if version else None


def mesh_era(mesh_info: Any) -> str:
    """`mixer`, `istiod` or `unknown` for a `MeshInfo`-like object: its era, else its version's."""
    era = getattr(mesh_info, "era", None) if mesh_info is not None else None
    if era in ("mixer", "istiod"):
        return str(era)
    version = mesh_version(mesh_info)
    if version is not None:
        return "mixer" if version < (1, 5) else "istiod"
    return "unknown"


def _template_and_prefix(obj: KubeObject) -> tuple[dict[str, Any] | None, str]:
    """The pod template (the Pod itself for a Pod) and the dotted path to it."""
    return pod_template(obj), template_path(obj)


def _under(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def proxy_container_path(obj: KubeObject) -> str | None:
    """Path of the `istio-proxy` container of a pod or template (native sidecars too), or None."""
    template, prefix = _template_and_prefix(obj)
    spec = (template or {}).get("spec") or {}
    for key in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(key) or []):
            if isinstance(container, Mapping) and container.get("name") == PROXY_CONTAINER:
                return _under(prefix, f"spec.{key}[{index}]")
    return None


def sidecar_redirects_traffic(obj: KubeObject) -> bool | None:
    """Whether a pod's `istio-proxy` has its traffic redirected to it (None: no istio-proxy at all).

    An injected pod carries an `istio-init` (iptables) or `istio-validation` (Istio CNI) init
    container, or at least the injector's `sidecar.istio.io/status` annotation. A proxy written
    into a template by hand has none: Mixer's own pods in 1.0.7 (charts/mixer/templates/
    deployment.yaml) carry `sidecar.istio.io/inject: "false"` and an `istio-proxy` that serves only
    9091/15004 for Mixer; nothing redirects the pod's other ports (42422 included) to it.
    """
    if proxy_container_path(obj) is None:
        return None
    template, _ = _template_and_prefix(obj)
    spec = (template or {}).get("spec") or {}
    for container in spec.get("initContainers") or []:
        if isinstance(container, Mapping) and container.get("name") in REDIRECT_INIT_CONTAINERS:
            return True
    annotations = _str_map(metadata(template).get("annotations"))
    return STATUS_ANNOTATION in annotations


def injected_revision(obj: KubeObject) -> str | None:
    """The revision an injected pod (or template) says injected it, or None when it does not say.

    The `istio.io/rev` annotation first, then the `revision` of `sidecar.istio.io/status`.
    """
    template, _ = _template_and_prefix(obj)
    annotations = _str_map(metadata(template).get("annotations"))
    if annotations.get(REVISION_ANNOTATION):
        return annotations[REVISION_ANNOTATION]
    try:
        status = json.loads(annotations.get(STATUS_ANNOTATION, "") or "{}")
    except ValueError:
        return None
    revision = status.get("revision") if isinstance(status, Mapping) else None
    return str(revision) if revision else None


def _is_existing_pod(obj: KubeObject) -> bool:
    """A Pod the cluster created (has a status or a node), as opposed to one in a manifest."""
    if obj.get("kind") != "Pod":
        return False
    status = obj.get("status") or {}
    return bool(status.get("phase")) or bool((obj.get("spec") or {}).get("nodeName"))


# -- injector config -------------------------------------------------------------------------------


def parse_injector_config(configmap: Mapping[str, Any]) -> InjectorConfig:
    """Read `policy`, `neverInjectSelector`, `alwaysInjectSelector` from an injector ConfigMap.

    The `config` value is YAML; the 1.0 one embeds a Go template in a block scalar, which YAML reads
    as a string. When it does not parse, `policy:` is read from its line.
    """
    meta = metadata(configmap)
    source = f"ConfigMap/{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    text = _str_map(configmap.get("data")).get(INJECTOR_CONFIG_KEY, "")
    parsed: Any = None
    try:
        parsed = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, Mapping):
        match = re.search(r"^policy:\s*(\S+)", text, re.MULTILINE)
        return InjectorConfig(policy=match.group(1) if match else DEFAULT_POLICY, source=source)
    policy = parsed.get("policy")
    return InjectorConfig(
        policy=DEFAULT_POLICY if policy is None else str(policy),
        never_inject_selector=tuple(dict(s) for s in parsed.get("neverInjectSelector") or [] if isinstance(s, Mapping)),
        always_inject_selector=tuple(
            dict(s) for s in parsed.get("alwaysInjectSelector") or [] if isinstance(s, Mapping)
        ),
        source=source,
    )


def injector_configmap_name(revision: str) -> str:
    """`istio-sidecar-injector` for the default revision, else `istio-sidecar-injector-<rev>`."""
    return INJECTOR_CONFIGMAP if revision in ("", "default") else f"{INJECTOR_CONFIGMAP}-{revision}"


def injector_configmaps(reader: ObjectReader) -> list[KubeObject]:
    """Every injector ConfigMap in the snapshot (any namespace, any revision)."""
    found = []
    for cm in reader.objects("ConfigMap"):
        name = str(metadata(cm).get("name") or "")
        if name == INJECTOR_CONFIGMAP or name.startswith(INJECTOR_CONFIGMAP + "-"):
            if INJECTOR_CONFIG_KEY in (cm.get("data") or {}):
                found.append(cm)
    return found


def injector_configmap(reader: ObjectReader, mesh_info: Any = None, revision: str = "default") -> KubeObject | None:
    """The injector ConfigMap of a revision, from the control plane's namespace first; or None.

    This is what `istio_egress.egress_capture` takes as `injector_config`.
    """
    namespace = getattr(mesh_info, "namespace", None)
    return _configmap_for(injector_configmaps(reader), revision, namespace)


def _configmap_for(configmaps: Sequence[KubeObject], revision: str, mesh_namespace: str | None) -> KubeObject | None:
    wanted = injector_configmap_name(revision)
    matching = [cm for cm in configmaps if metadata(cm).get("name") == wanted]
    matching.sort(
        key=lambda cm: (
            metadata(cm).get("namespace") != mesh_namespace,
            metadata(cm).get("namespace") != "istio-system",
            str(metadata(cm).get("namespace")),
        )
    )
    return matching[0] if matching else None


def _injector_config_for(
    configmaps: Sequence[KubeObject], revision: str, mesh_namespace: str | None
) -> InjectorConfig | None:
    found = _configmap_for(configmaps, revision, mesh_namespace)
    return parse_injector_config(found) if found is not None else None


# -- webhooks --------------------------------------------------------------------------------------


def _is_injection_webhook(webhook: Mapping[str, Any]) -> bool:
    name = str(webhook.get("name") or "")
    path = str(((webhook.get("clientConfig") or {}).get("service") or {}).get("path") or "")
    url = str((webhook.get("clientConfig") or {}).get("url") or "")
    return name.endswith("sidecar-injector.istio.io") or path.startswith("/inject") or "/inject" in url


def _webhook_revision(config: Mapping[str, Any], webhook: Mapping[str, Any]) -> str:
    """The revision a webhook injects for: the `istio.io/rev` label, or its service."""
    labels = _str_map(metadata(config).get("labels"))
    if labels.get(REVISION_LABEL):
        return labels[REVISION_LABEL]
    service = str(((webhook.get("clientConfig") or {}).get("service") or {}).get("name") or "")
    if service.startswith("istiod-"):
        return service[len("istiod-") :]
    return "default"


def injection_webhooks(reader: ObjectReader) -> list[_Webhook]:
    """Every Istio injection webhook of every MutatingWebhookConfiguration in the snapshot."""
    found = []
    for config in reader.objects("MutatingWebhookConfiguration"):
        config_name = str(metadata(config).get("name") or "")
        for index, webhook in enumerate(config.get("webhooks") or []):
            if not isinstance(webhook, Mapping) or not _is_injection_webhook(webhook):
                continue
            found.append(
                _Webhook(
                    name=str(webhook.get("name") or ""),
                    namespace_selector=webhook.get("namespaceSelector"),
                    object_selector=webhook.get("objectSelector"),
                    revision=_webhook_revision(config, webhook),
                    source=f"MutatingWebhookConfiguration/{config_name}:webhooks[{index}]",
                    tag=_str_map(metadata(config).get("labels")).get(TAG_LABEL) or None,
                )
            )
    return found


def _default_webhooks(era: str) -> list[_Webhook]:
    chart = MIXER_ERA_DEFAULT_WEBHOOKS if era == "mixer" else ISTIOD_ERA_DEFAULT_WEBHOOKS
    label = "1.0.7 chart default" if era == "mixer" else "1.30 chart default"
    return [
        _Webhook(str(w["name"]), w.get("namespaceSelector"), w.get("objectSelector"), "default", label) for w in chart
    ]


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A webhook selector: absent selects everything (admissionregistration defaulting)."""
    if selector is None:
        return True
    return selector_matches(selector, labels)


def _selector_needs(selector: Mapping[str, Any] | None) -> set[str]:
    if not selector:
        return set()
    keys = {str(k) for k in (selector.get("matchLabels") or {})}
    keys.update(str(e.get("key")) for e in selector.get("matchExpressions") or [] if isinstance(e, Mapping))
    return keys


# -- injectRequired --------------------------------------------------------------------------------


def inject_required(
    namespace: str,
    pod_meta: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    config: InjectorConfig,
    version: tuple[int, int] | None,
    prefix: str = "",
) -> Injection:
    """The injector's own decision once its webhook was called (istio/istio `injectRequired`).

    `version` picks the semantics of the release (label since 1.12, strict values since 1.27,
    more ignored namespaces since 1.9); None means the newest.
    """
    if pod_spec.get("hostNetwork") is True:
        return Injection(
            False,
            "spec.hostNetwork is true: Istio never injects host-network pods",
            [_under(prefix, "spec.hostNetwork")],
        )
    ignored = IGNORED_NAMESPACES_BEFORE_1_9 if version is not None and version < (1, 9) else IGNORED_NAMESPACES
    if namespace in ignored:
        return Injection(False, f"namespace {namespace} is one the injector always skips", [])
    annotations = _str_map(pod_meta.get("annotations"))
    labels = _str_map(pod_meta.get("labels"))
    value = annotations.get(INJECT_KEY, "")
    path = _key_path(_under(prefix, "metadata"), "annotations", INJECT_KEY) if INJECT_KEY in annotations else ""
    kind_of_value = "annotation"
    if (version is None or version >= (1, 12)) and INJECT_KEY in labels:
        value, kind_of_value = labels[INJECT_KEY], "label"
        path = _key_path(_under(prefix, "metadata"), "labels", INJECT_KEY)
    explicit: bool | None
    if version is None or version >= (1, 27):
        explicit = {"true": True, "false": False}.get(value)
    elif value == "":
        explicit = None
    else:
        explicit = value.lower() in _YAML_TRUE
    paths = [path] if path else []
    if explicit is not None:
        word = "asks for" if explicit else "refuses"
        return Injection(explicit, f"the pod's {INJECT_KEY} {kind_of_value} ({value!r}) {word} a sidecar", paths)
    where = f" ({config.source})" if config.source else " (chart default)"
    for selector in config.never_inject_selector:
        if selector and selector_matches(selector, labels):
            return Injection(False, f"the pod's labels match the injector's neverInjectSelector{where}", paths)
    for selector in config.always_inject_selector:
        if selector and selector_matches(selector, labels):
            return Injection(True, f"the pod's labels match the injector's alwaysInjectSelector{where}", paths)
    if config.policy == "enabled":
        return Injection(True, f"the injector's policy is enabled{where} and the pod does not opt out", paths)
    if config.policy == "disabled":
        return Injection(
            False,
            f'the injector\'s policy is disabled{where}: only pods with {INJECT_KEY}="true" are injected',
            paths,
        )
    return Injection(
        False,
        f"the injector's policy {config.policy!r}{where} is invalid: the injector injects nothing",
        paths,
    )


# -- the decision ----------------------------------------------------------------------------------


def injection_decision(reader: ObjectReader, workload_or_pod: KubeObject, mesh_info: Any = None) -> Injection:
    """Whether a pod (or a workload's pods) has or gets an Istio sidecar, and which switch decided.

    `mesh_info` (`meshdoctor.istio.mesh.MeshInfo`: version, era, namespace) picks the injector's
    semantics and the default webhooks; without it the newest semantics apply.
    """
    template, prefix = _template_and_prefix(workload_or_pod)
    if template is None:
        return Injection(None, f"{workload_or_pod.get('kind')} has no pod template", [])
    proxy_path = proxy_container_path(workload_or_pod)
    if proxy_path is not None:
        if sidecar_redirects_traffic(workload_or_pod):
            revision = injected_revision(workload_or_pod)
            paths = [proxy_path]
            if revision is None:
                revision = _predict(reader, workload_or_pod, template, prefix, mesh_info).revision
            elif REVISION_ANNOTATION in _str_map(metadata(template).get("annotations")):
                paths.append(_key_path(_under(prefix, "metadata"), "annotations", REVISION_ANNOTATION))
            return Injection(True, "the pod has an istio-proxy container", paths, revision)
        return Injection(
            True,
            "the pod has an istio-proxy container written into its template (not injected: "
            "no istio-init, no sidecar.istio.io/status), so its traffic is not redirected to it",
            [proxy_path],
        )
    prediction = _predict(reader, workload_or_pod, template, prefix, mesh_info)
    if _is_existing_pod(workload_or_pod):
        then = {
            True: "would get one",
            False: "would not get one either",
            None: "may or may not get one",
        }
        return Injection(
            False,
            f"the running pod has no istio-proxy container; a pod created now "
            f"{then[prediction.injected]}: {prediction.reason}",
            [_under(prefix, "spec.containers")] + prediction.evidence_paths,
        )
    return prediction


def _predict(
    reader: ObjectReader, obj: KubeObject, template: Mapping[str, Any], prefix: str, mesh_info: Any
) -> Injection:
    namespace = str(metadata(obj).get("namespace") or metadata(template).get("namespace") or "default")
    pod_meta = metadata(template)
    pod_spec = template.get("spec") or {}
    version = mesh_version(mesh_info)
    mesh_namespace = getattr(mesh_info, "namespace", None) if mesh_info is not None else None
    if pod_spec.get("hostNetwork") is True:
        return Injection(
            False,
            "spec.hostNetwork is true: Istio never injects host-network pods",
            [_under(prefix, "spec.hostNetwork")],
        )

    webhooks = injection_webhooks(reader)
    configmaps = injector_configmaps(reader)
    assumed = ""
    if not webhooks:
        if not configmaps:
            return Injection(
                None,
                "the snapshot has neither an injection MutatingWebhookConfiguration nor an "
                "istio-sidecar-injector ConfigMap",
                [],
            )
        era = mesh_era(mesh_info)
        if era == "unknown":
            era = _era_from_injector(configmaps)
        webhooks = _default_webhooks(era)
        assumed = f" (the webhook configuration is not in the snapshot: assumed the {webhooks[0].source})"

    ns_obj = reader.get("Namespace", "", namespace)
    ns_path = f"Namespace/{namespace}:metadata.labels"
    ns_labels = _str_map(metadata(ns_obj).get("labels")) if ns_obj is not None else None
    if ns_labels is not None:
        ns_labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
    pod_labels = _str_map(pod_meta.get("labels"))

    selected: list[_Webhook] = []
    for webhook in webhooks:
        if not _selects(webhook.object_selector, pod_labels):
            continue
        if ns_labels is None:
            if webhook.namespace_selector:
                return Injection(
                    None,
                    f"Namespace {namespace} is not in the snapshot, so its injection labels are unknown{assumed}",
                    [],
                )
            selected.append(webhook)
            continue
        if _selects(webhook.namespace_selector, ns_labels):
            selected.append(webhook)

    paths = []
    for key in (NAMESPACE_INJECTION_LABEL, REVISION_LABEL):
        if ns_labels and key in ns_labels:
            paths.append(f"{ns_path}['{key}']")
    for field_name in ("labels", "annotations"):
        if INJECT_KEY in _str_map(pod_meta.get(field_name)):
            paths.append(_key_path(_under(prefix, "metadata"), field_name, INJECT_KEY))
    if REVISION_LABEL in pod_labels:
        paths.append(_key_path(_under(prefix, "metadata"), "labels", REVISION_LABEL))

    if not selected:
        wanted_rev = (ns_labels or {}).get(REVISION_LABEL) or pod_labels.get(REVISION_LABEL)
        if (
            wanted_rev
            and not any(wanted_rev in (w.revision, w.tag) for w in webhooks)
            and not (ns_labels or {}).get(NAMESPACE_INJECTION_LABEL)
        ):
            return Injection(
                None,
                f"{REVISION_LABEL}={wanted_rev} asks for a revision whose injection webhook is not "
                f"in the snapshot{assumed}",
                paths,
            )
        return Injection(
            False,
            f"no injection webhook selects namespace {namespace} and the pod's labels"
            f"{_selection_hint(ns_labels, pod_labels)}{assumed}",
            paths,
        )

    webhook = selected[0]
    config = _injector_config_for(configmaps, webhook.revision, mesh_namespace)
    if config is None:
        config = InjectorConfig()
        missing = (
            f" (ConfigMap {injector_configmap_name(webhook.revision)} is not in the snapshot: "
            f"assumed policy {DEFAULT_POLICY})"
        )
    else:
        missing = ""
    decision = inject_required(namespace, pod_meta, pod_spec, config, version, prefix)
    by_tag = f" (revision tag {webhook.tag} -> revision {webhook.revision})" if webhook.tag else ""
    reason = f"webhook {webhook.name} ({webhook.source}){by_tag} is called; {decision.reason}{missing}{assumed}"
    return Injection(
        decision.injected,
        reason,
        _dedupe(paths + decision.evidence_paths + [webhook.source]),
        revision=None if assumed else webhook.revision,
        tag=webhook.tag,
    )


def _era_from_injector(configmaps: Sequence[KubeObject]) -> str:
    """A `values` key marks a 1.4+ injector ConfigMap (istiod defaults); 1.0 has only `config`."""
    return "istiod" if any("values" in (cm.get("data") or {}) for cm in configmaps) else "mixer"


def _selection_hint(ns_labels: Mapping[str, str] | None, pod_labels: Mapping[str, str]) -> str:
    if ns_labels is None:
        return ""
    value = ns_labels.get(NAMESPACE_INJECTION_LABEL)
    if value == "disabled":
        return f" (the namespace has {NAMESPACE_INJECTION_LABEL}=disabled)"
    if pod_labels.get(INJECT_KEY) == "false":
        return f" (the pod has the label {INJECT_KEY}=false)"
    if value is None and REVISION_LABEL not in ns_labels:
        return f" (label the namespace {NAMESPACE_INJECTION_LABEL}=enabled)"
    return ""


def _dedupe(paths: list[str]) -> list[str]:
    seen: set[str] = set()
    return [p for p in paths if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def injector_values(configmap: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `values` JSON of an injector ConfigMap (1.4+), or {}."""
    text = _str_map((configmap or {}).get("data")).get("values", "")
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
    return parsed if isinstance(parsed, dict) else {}
