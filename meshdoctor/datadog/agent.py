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
from dataclasses import dataclass
from typing import Any

from meshdoctor.datadog.sites import (
    APM_ENABLED_BY_DEFAULT,
    DEFAULT_SITE,
    HTTPS_PORT,
    LOGS_HTTPS_DEFAULT_SINCE,
    PRODUCTS,
    REMOTE_CONFIG_DEFAULT_SINCE,
    SCHEME_PORTS,
    intake_endpoints,
    is_datadog_app_host,
    metrics_host,
    normalize_site,
    versioned_metrics_host,
)
from meshdoctor.kube.images import image_name, split_image
from meshdoctor.kube.meta import labels_of
from meshdoctor.kube.workloads import containers, pod_template
from meshdoctor.snapshot import KubeObject, ObjectReader

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
    return _has_agent_labels(labels_of(workload)) or _has_agent_labels(labels_of(template))


def agent_workloads(reader: ObjectReader, kinds: tuple[str, ...] = AGENT_KINDS) -> list[KubeObject]:
    """Every agent DaemonSet and Deployment, DaemonSets first, each by namespace and name.

    `kinds` narrows the search (and the kinds read) to e.g. `("DaemonSet",)`.
    """
    return [w for kind in kinds if kind in AGENT_KINDS for w in reader.objects(kind) if is_agent_workload(w)]


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
            data = _config_map_data(reader, namespace, str((source["configMapRef"] or {}).get("name", "")))
            if data is not None and key in data:
                value, found = str(data[key]), True
        elif "secretRef" in source:
            secret = _secret_keys(reader, namespace, str((source["secretRef"] or {}).get("name", "")))
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


def _config_map_data(reader: ObjectReader, namespace: str | None, name: str) -> Mapping[str, Any] | None:
    if namespace:
        cm = reader.get("ConfigMap", namespace, name)
    else:
        matches = [c for c in reader.objects("ConfigMap") if (c.get("metadata") or {}).get("name") == name]
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

    URL overrides (DD_DD_URL, DD_LOGS_CONFIG_LOGS_DD_URL...) do not change the site: they replace
    one product's endpoint, which `required_endpoints` applies on top of this value.
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


def _env_false(value: str | None) -> bool:
    """An explicit false (`false`, `0`, `no`, `off`); unset or unreadable is not false."""
    return (value or "").strip().lower() in ("false", "0", "no", "off", "f", "n")


#: Env vars that override an intake (datadog-agent pkg/config/setup/config.go bindings:
#: `dd_url` <- DD_DD_URL, DD_URL (the first one set wins); `logs_config.logs_dd_url`;
#: `apm_config.apm_dd_url`; `process_config.process_dd_url`;
#: `orchestrator_explorer.orchestrator_dd_url`; `remote_configuration.rc_dd_url`).
URL_OVERRIDES: dict[str, tuple[str, ...]] = {
    "metrics": ("DD_DD_URL", "DD_URL"),
    "logs": ("DD_LOGS_CONFIG_LOGS_DD_URL",),
    "traces": ("DD_APM_DD_URL",),
    "process": ("DD_PROCESS_CONFIG_PROCESS_DD_URL",),
    "orchestrator": ("DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL",),
    "remote-config": ("DD_REMOTE_CONFIGURATION_RC_DD_URL",),
}

#: Logs transport switches, in the order the agent reads them (pkg/logs/config `BuildEndpoints`:
#: `use_http || force_use_http` wins over `use_tcp || force_use_tcp`).
LOGS_TRANSPORT_ENV = (
    ("DD_LOGS_CONFIG_FORCE_USE_HTTP", "https"),
    ("DD_LOGS_CONFIG_USE_HTTP", "https"),
    ("DD_LOGS_CONFIG_FORCE_USE_TCP", "tcp"),
    ("DD_LOGS_CONFIG_USE_TCP", "tcp"),
)

#: Container names (or commands) of the agent's helper processes in multi-container pods
#: (Helm chart and Operator: `trace-agent`, `process-agent`).
TRACE_AGENT = "trace-agent"
PROCESS_AGENT = "process-agent"


@dataclass(frozen=True, order=True)
class RequiredEndpoint:
    """One host and port an agent workload must reach, and why it must."""

    product: str
    """One of `facts.datadog_sites.PRODUCTS` (`metrics`, `logs`, `logs-tcp`, `traces`...)."""
    host: str
    """Host name, or an Istio wildcard (`*.agent.datadoghq.com`) when the version is unknown."""
    port: int
    """TCP port."""
    protocol: str
    """What the agent speaks on the connection: `HTTPS`, `TLS` (TCP logs with SSL), `HTTP` or
    `TCP` (plaintext overrides); the keys `istio_egress.client_protocol` understands."""
    why: str
    """Which setting or default makes the agent use it."""

    @property
    def address(self) -> str:
        """`host:port`."""
        return f"{self.host}:{self.port}"


def _version_tuple(version: str | None) -> tuple[int, int] | None:
    if version is None:
        return None
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _container_named(template: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """A helper container by name, or by its command (`trace-agent`, `process-agent`)."""
    for container in containers(template, include_init=False):
        command = " ".join(str(c) for c in (container.get("command") or []))
        if container.get("name") == name or name in command.split():
            return container
    return None


class _AgentEnv:
    """Env lookups of one agent workload: main container, helper containers, namespace."""

    def __init__(self, reader: ObjectReader, workload: KubeObject) -> None:
        self.reader = reader
        self.template = pod_template(workload) or {}
        self.main = agent_container(self.template)
        self.namespace = str((workload.get("metadata") or {}).get("namespace") or "") or None
        self.version = agent_version(self.main)

    def get(self, name: str, container: Mapping[str, Any] | None = None) -> str | None:
        value = env_value(self.reader, self.template, container or self.main, name, self.namespace)
        return None if value == FROM_SECRET else value

    def first(self, names: tuple[str, ...], container: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
        for name in names:
            value = self.get(name, container)
            if value:
                return name, value.strip()
        return None


def logs_transports(reader: ObjectReader, workload: KubeObject) -> tuple[list[str], str]:
    """The logs transports an agent uses (`https`, `tcp`, or both), and why.

    An explicit switch decides (HTTP switches first, as the agent reads them); otherwise the
    pinned version: HTTPS by default from 6.19/7.19, TCP before. An unpinned image (`latest`, `7`,
    a digest) may run either, so both must be open.
    """
    env = _AgentEnv(reader, workload)
    for name, transport in LOGS_TRANSPORT_ENV:
        if env_flag(env.get(name)):
            return [transport], f"{name}=true"
    parsed = _version_tuple(env.version)
    if parsed is None:
        return ["https", "tcp"], (
            "the image tag does not pin the agent version: 6.19+/7.19+ send logs over HTTPS, "
            "older versions (and newer ones whose HTTPS test fails at start) over TCP"
        )
    since = LOGS_HTTPS_DEFAULT_SINCE.get(parsed[0])
    if since is not None and parsed >= since:
        return ["https"], f"agent {env.version} sends logs over HTTPS by default (6.19+/7.19+)"
    return ["tcp"], f"agent {env.version} sends logs over TCP by default (before 6.19/7.19)"


def agent_products(reader: ObjectReader, workload: KubeObject) -> list[str]:
    """The intake products an agent workload sends to (names of `facts.datadog_sites.PRODUCTS`).

    Metrics always; `logs` (HTTPS) and/or `logs-tcp` with DD_LOGS_ENABLED, per `logs_transports`;
    `traces` unless DD_APM_ENABLED is false (on by default), or when a trace-agent container runs;
    `process` with DD_PROCESS_AGENT_ENABLED or a process-agent container; `orchestrator` with
    DD_ORCHESTRATOR_EXPLORER_ENABLED; `remote-config` with DD_REMOTE_CONFIGURATION_ENABLED, or by
    default on 7.47+ (and on an unpinned image, which pulls a current 7.x) unless turned off.
    """
    return list(dict.fromkeys(p for p, _ in _products(reader, workload)))


def _products(reader: ObjectReader, workload: KubeObject) -> list[tuple[str, str]]:
    """(product, why) pairs in `PRODUCTS` order."""
    env = _AgentEnv(reader, workload)
    found: list[tuple[str, str]] = [("metrics", "the core agent always sends metrics")]
    if env_flag(env.get("DD_LOGS_ENABLED")):
        transports, why = logs_transports(reader, workload)
        for transport in transports:
            product = "logs" if transport == "https" else "logs-tcp"
            found.append((product, f"DD_LOGS_ENABLED=true; {why}"))
    trace = _container_named(env.template, TRACE_AGENT)
    apm = env.get("DD_APM_ENABLED", trace)
    if trace is not None and not _env_false(apm):
        found.append(("traces", "a trace-agent container runs"))
    elif trace is None and env_flag(apm):
        found.append(("traces", "DD_APM_ENABLED=true"))
    elif trace is None and apm is None and APM_ENABLED_BY_DEFAULT:
        found.append(("traces", "DD_APM_ENABLED is unset and APM is on by default"))
    process = _container_named(env.template, PROCESS_AGENT)
    if process is not None:
        found.append(("process", "a process-agent container runs"))
    elif env_flag(env.get("DD_PROCESS_AGENT_ENABLED")):
        found.append(("process", "DD_PROCESS_AGENT_ENABLED=true"))
    if env_flag(env.get("DD_ORCHESTRATOR_EXPLORER_ENABLED")):
        found.append(("orchestrator", "DD_ORCHESTRATOR_EXPLORER_ENABLED=true"))
    remote = env.get("DD_REMOTE_CONFIGURATION_ENABLED")
    parsed = _version_tuple(env.version)
    if env_flag(remote):
        found.append(("remote-config", "DD_REMOTE_CONFIGURATION_ENABLED=true"))
    elif remote is None and parsed is not None and parsed >= REMOTE_CONFIG_DEFAULT_SINCE:
        found.append(
            (
                "remote-config",
                f"agent {env.version} turns Remote Configuration on by default (7.47+)",
            )
        )
    elif remote is None and parsed is None and _unpinned_latest(env.main):
        found.append(
            (
                "remote-config",
                "the unpinned image is a current 7.x, which has Remote Configuration on by default",
            )
        )
    return found


def _unpinned_latest(container: Mapping[str, Any] | None) -> bool:
    """An image that floats to the newest 7.x: tag `latest`, `7`, none, or a digest."""
    if not container:
        return False
    _, tag, digest = split_image(str(container.get("image") or ""))
    if digest and not tag:
        return False  # a digest pins some version we cannot read
    return tag in (None, "latest", "7") or (tag or "").startswith("7-")


def parse_override(value: str, default_scheme: str = "https") -> tuple[str, int, str] | None:
    """`https://host:port/path`, `host:port` or `host` -> (host, port, scheme); None if empty."""
    text = value.strip()
    if not text:
        return None
    scheme = default_scheme
    if "://" in text:
        scheme, text = text.split("://", 1)
        scheme = scheme.lower()
    hostport = text.split("/", 1)[0]
    host, _, port_text = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if not port_text.isdigit():
        host, port_text = hostport, ""
    port = int(port_text) if port_text else SCHEME_PORTS.get(scheme, HTTPS_PORT)
    return host.lower().rstrip("."), port, scheme


def required_endpoints(reader: ObjectReader, workload: KubeObject) -> list[RequiredEndpoint]:
    """Every (product, host, port, protocol) an agent workload must reach, with why.

    The site's intake hosts (`facts.datadog_sites.intake_endpoints`) for the products turned on,
    with each product's URL override applied instead where one is set: DD_DD_URL / DD_URL (a
    Datadog `app.<site>` URL still gets the versioned host, anything else — a proxy — is used as
    it is), DD_LOGS_CONFIG_LOGS_DD_URL (`host:port`, for whichever logs transport is on; plaintext
    with DD_LOGS_CONFIG_LOGS_NO_SSL), DD_APM_DD_URL, DD_PROCESS_CONFIG_PROCESS_DD_URL,
    DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL, DD_REMOTE_CONFIGURATION_RC_DD_URL.
    """
    env = _AgentEnv(reader, workload)
    site = datadog_site(reader, workload)
    helpers = {
        "traces": _container_named(env.template, TRACE_AGENT),
        "process": _container_named(env.template, PROCESS_AGENT),
    }
    found: list[RequiredEndpoint] = []
    for product, why in _products(reader, workload):
        override_key = "logs" if product in ("logs", "logs-tcp") else product
        helper = helpers.get(product)
        override = env.first(URL_OVERRIDES[override_key], helper) or env.first(URL_OVERRIDES[override_key])
        if override is None:
            for intake in intake_endpoints(site, [product], env.version):
                protocol = "TLS" if intake.protocol == "tcp" else "HTTPS"
                where = f"{why} (site {site})"
                found.append(RequiredEndpoint(product, intake.host, intake.port, protocol, where))
            continue
        name, value = override
        if override_key == "logs":
            parsed = parse_override(value, "tcp" if product == "logs-tcp" else "https")
            if parsed is None:
                continue
            host, port, _ = parsed
            if product == "logs-tcp":
                protocol = "TCP" if env_flag(env.get("DD_LOGS_CONFIG_LOGS_NO_SSL")) else "TLS"
            else:
                protocol = "HTTP" if env_flag(env.get("DD_LOGS_CONFIG_LOGS_NO_SSL")) else "HTTPS"
            found.append(RequiredEndpoint(product, host, port, protocol, f"{why}; {name}={value}"))
            continue
        parsed = parse_override(value)
        if parsed is None:
            continue
        host, port, scheme = parsed
        protocol = "HTTP" if scheme == "http" else "HTTPS"
        if product == "metrics" and is_datadog_app_host(host):
            dd_site = host[len("app.") :]
            versioned = versioned_metrics_host(dd_site, env.version)
            for metrics in (versioned, metrics_host(dd_site)):
                found.append(RequiredEndpoint(product, metrics, port, protocol, f"{why}; {name}={value}"))
            continue
        found.append(RequiredEndpoint(product, host, port, protocol, f"{why}; {name}={value}"))
    unique: dict[tuple[str, str, int], RequiredEndpoint] = {}
    for endpoint in found:
        unique.setdefault((endpoint.product, endpoint.host, endpoint.port), endpoint)
    return sorted(unique.values(), key=lambda e: (PRODUCTS.index(e.product), e.host, e.port))
