"""Which workloads are the Datadog Agent, what their environment says, which site they send to.

Agents are recognised by image (any registry, any tag or digest: `datadog/agent`,
`gcr.io/datadoghq/agent`, `public.ecr.aws/datadog/agent`...) or by the labels the Helm chart and
the Operator put on them. The Cluster Agent (`datadog/cluster-agent`) is not an agent here: it does
not run checks on nodes nor ship their logs.

Environment values are resolved the way the kubelet does for literal values and ConfigMaps; a
value that comes from a Secret is never read: `env_value` returns `FROM_SECRET` in its place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshdoctor.facts.datadog_sites import DEFAULT_SITE, normalize_site
from meshdoctor.istio_mesh import image_name, split_image
from meshdoctor.snapshot import KubeObject, ObjectReader
from meshdoctor.workloads import containers, pod_template

#: Kinds the agent runs as: the node agent as a DaemonSet, cluster-checks runners as Deployments.
AGENT_KINDS = ("DaemonSet", "Deployment")

#: What `env_value` returns for a variable whose value comes from a Secret: set, but unreadable.
FROM_SECRET = "<from secret>"

#: Image repositories of the agent: last path segment `agent` under an owner `datadog`/`datadoghq`
#: (Docker Hub `datadog/agent`, GCR `gcr.io/datadoghq/agent`, ECR `public.ecr.aws/datadog/agent`),
#: or at the root of a Datadog registry (`datadoghq.azurecr.io/agent`,
#: `registry.datadoghq.com/agent`).
_AGENT_IMAGE_OWNERS = ("datadog", "datadoghq")

#: Container names the agent's main container has had: `agent` (Helm, Operator, current manifests),
#: `datadog-agent` (the 2018-2019 manifests).
_MAIN_CONTAINER_NAMES = ("agent", "datadog-agent")


def is_agent_image(image: str) -> bool:
    """Whether an image is the Datadog Agent (not the Cluster Agent, not dogstatsd)."""
    repository = split_image(image)[0]
    parts = repository.split("/")
    if len(parts) < 2 or parts[-1] != "agent":
        return False
    owner = parts[-2]
    # Datadog's own registries put the image at the root: datadoghq.azurecr.io/agent,
    # registry.datadoghq.com/agent.
    return owner in _AGENT_IMAGE_OWNERS or (len(parts) == 2 and "datadoghq" in owner.split("."))


def _is_cluster_agent_image(image: str) -> bool:
    return image_name(image) == "cluster-agent"


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _has_agent_labels(labels: Mapping[str, Any]) -> bool:
    """Helm chart labels (component `agent`, a datadog name or app) or the Operator's."""
    if labels.get("agent.datadoghq.com/component") == "agent":
        return True
    if labels.get("app.kubernetes.io/component") != "agent":
        return False
    names = (str(labels.get("app.kubernetes.io/name", "")), str(labels.get("app", "")))
    return any("datadog" in name for name in names)


def is_agent_workload(workload: KubeObject) -> bool:
    """Whether a DaemonSet or Deployment runs the Datadog Agent."""
    if workload.get("kind") not in AGENT_KINDS:
        return False
    template = pod_template(workload)
    if template is None:
        return False
    images = [str(c.get("image") or "") for c in containers(template, include_init=False)]
    if any(is_agent_image(image) for image in images):
        return True
    if any(_is_cluster_agent_image(image) for image in images):
        return False
    return _has_agent_labels(_labels(workload)) or _has_agent_labels(_labels(template))


def agent_workloads(reader: ObjectReader, kinds: tuple[str, ...] = AGENT_KINDS) -> list[KubeObject]:
    """Every agent DaemonSet and Deployment, DaemonSets first, each by namespace and name.

    `kinds` narrows the search (and the kinds read) to e.g. `("DaemonSet",)`.
    """
    return [
        w
        for kind in kinds
        if kind in AGENT_KINDS
        for w in reader.objects(kind)
        if is_agent_workload(w)
    ]


def agent_container(template: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The main container: `agent` or `datadog-agent`, else the first agent image, else None."""
    candidates = containers(template, include_init=False)
    for name in _MAIN_CONTAINER_NAMES:
        for container in candidates:
            if container.get("name") == name:
                return container
    for container in candidates:
        if is_agent_image(str(container.get("image") or "")):
            return container
    return None


def agent_version(container: Mapping[str, Any] | None) -> str | None:
    """Version a tag pins (`7.49.1`, `6.9.0-jmx` -> `6.9.0`); None for `latest`, `7`, digests."""
    if not container:
        return None
    tag = split_image(str(container.get("image") or ""))[1] or ""
    parts = tag.split("-", 1)[0].split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return ".".join(parts)
    return None


def env_value(
    reader: ObjectReader,
    template: Mapping[str, Any],
    container: Mapping[str, Any] | None,
    name: str,
    namespace: str | None = None,
) -> str | None:
    """The value a container sees for an env var, or None when unset or unknowable here.

    Resolution follows the kubelet: `envFrom` sources in order (a later one wins, `prefix`
    applied), then `env` entries (they override `envFrom`; a later duplicate wins). Literal values
    and ConfigMaps (`configMapKeyRef`, `envFrom.configMapRef`) are read; `secretKeyRef` and
    `envFrom.secretRef` give `FROM_SECRET` (the value is never read); `fieldRef` and
    `resourceFieldRef` give None (known only at runtime). ConfigMaps are looked up in `namespace`,
    else the template's own namespace (a Pod), else — for a workload's template, which has none —
    in the only namespace holding a ConfigMap of that name.
    """
    if not container:
        return None
    namespace = namespace or str((template.get("metadata") or {}).get("namespace") or "") or None
    value: str | None = None
    found = False
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :]
        if "configMapRef" in source:
            data = _config_map_data(
                reader, namespace, str((source["configMapRef"] or {}).get("name", ""))
            )
            if data is not None and key in data:
                value, found = str(data[key]), True
        elif "secretRef" in source:
            secret = _secret_keys(
                reader, namespace, str((source["secretRef"] or {}).get("name", ""))
            )
            if secret is not None and key in secret:
                value, found = FROM_SECRET, True
    for var in container.get("env") or []:
        if var.get("name") != name:
            continue
        found = True
        if "value" in var:
            value = None if var["value"] is None else str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        if "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"] or {}
            data = _config_map_data(reader, namespace, str(key_ref.get("name", "")))
            raw = None if data is None else data.get(str(key_ref.get("key", "")))
            value = None if raw is None else str(raw)
        elif "secretKeyRef" in ref:
            value = FROM_SECRET
        else:
            value = None
    return value if found else None


def _config_map_data(
    reader: ObjectReader, namespace: str | None, name: str
) -> Mapping[str, Any] | None:
    if namespace:
        cm = reader.get("ConfigMap", namespace, name)
    else:
        matches = [
            c for c in reader.objects("ConfigMap") if (c.get("metadata") or {}).get("name") == name
        ]
        cm = matches[0] if len(matches) == 1 else None
    if cm is None:
        return None
    return cm.get("data") or {}


def _secret_keys(reader: ObjectReader, namespace: str | None, name: str) -> set[str] | None:
    """Key names of a Secret referenced by envFrom (values never enter the snapshot)."""
    if not namespace:
        return None
    secret = reader.get("Secret", namespace, name)
    if secret is None:
        return None
    return set(secret.get("data") or {}) | set(secret.get("stringData") or {})


def datadog_site(reader: ObjectReader, workload: KubeObject) -> str:
    """The site an agent workload sends to: its DD_SITE, normalised; `datadoghq.com` when unset.

    Seam: DD_DD_URL / DD_URL and per-product URL overrides are not applied here; the override
    model (with the agent version's logs transport) plugs in on top of this value.
    A DD_SITE read from a Secret cannot be known and counts as the default.
    """
    template = pod_template(workload) or {}
    namespace = str((workload.get("metadata") or {}).get("namespace") or "") or None
    value = env_value(reader, template, agent_container(template), "DD_SITE", namespace)
    if value is None or value == FROM_SECRET:
        return DEFAULT_SITE
    return normalize_site(value)


def env_flag(value: str | None) -> bool:
    """A boolean env value as the agent parses it (`true`, `1`, `yes`...)."""
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


#: Agent versions from which logs go over HTTPS by default (Datadog docs "Agent Transport for Logs":
#: "For Agent v6.19+/v7.19+, the default transport ... is compressed HTTPS", with a fall back to
#: TCP when the HTTPS connectivity test at start fails).
LOGS_HTTPS_DEFAULT_SINCE = {6: (6, 19), 7: (7, 19)}


def agent_products(reader: ObjectReader, workload: KubeObject) -> list[str]:
    """The intake products an agent workload sends to (names of `facts.datadog_sites.PRODUCTS`).

    Metrics always; `logs` with DD_LOGS_ENABLED; `logs-tcp` too when the agent forces TCP, or may
    use it: an agent older than 6.19/7.19, or one of unknown version that is not forced to HTTPS
    (it falls back to TCP when HTTPS fails at start). Traces, process, orchestrator and remote
    config only when their env var turns them on explicitly.

    Seam: a fuller model (datadog.yaml in a ConfigMap, DD_DD_URL, logs_dd_url, proxies) replaces
    this function's body without changing its callers.
    """
    template = pod_template(workload) or {}
    container = agent_container(template)
    namespace = str((workload.get("metadata") or {}).get("namespace") or "") or None

    def flag(name: str) -> bool:
        return env_flag(env_value(reader, template, container, name, namespace))

    products = ["metrics"]
    if flag("DD_LOGS_ENABLED"):
        products.append("logs")
        if flag("DD_LOGS_CONFIG_USE_TCP") or (
            not flag("DD_LOGS_CONFIG_USE_HTTP") and not _https_logs_by_default(container)
        ):
            products.append("logs-tcp")
    for env_name, product in (
        ("DD_APM_ENABLED", "traces"),
        ("DD_PROCESS_AGENT_ENABLED", "process"),
        ("DD_ORCHESTRATOR_EXPLORER_ENABLED", "orchestrator"),
        ("DD_REMOTE_CONFIGURATION_ENABLED", "remote-config"),
    ):
        if flag(env_name):
            products.append(product)
    return products


def _https_logs_by_default(container: Mapping[str, Any] | None) -> bool:
    """True only when the image pins a version whose default logs transport is HTTPS."""
    version = agent_version(container)
    if version is None:
        return False
    major, minor, _ = (int(p) for p in version.split("."))
    since = LOGS_HTTPS_DEFAULT_SINCE.get(major)
    return since is not None and (major, minor) >= since
