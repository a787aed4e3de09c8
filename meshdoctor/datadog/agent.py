"""Which workloads are the Datadog Agent, what their environment says, which site they send to.

Agents are recognised by image (any registry, any tag or digest: `datadog/agent`,
`gcr.io/datadoghq/agent`, `public.ecr.aws/datadog/agent`...) or by the labels the Helm chart and
the Operator put on them. The Cluster Agent (`datadog/cluster-agent`) is not an agent here: it does
not run checks on nodes nor ship their logs. It does send to the intake, though (its forwarder, the
orchestrator explorer, Remote Configuration): `egress_workloads` adds it to the agents for the
egress rules, and `required_endpoints` knows what it sends (`_cluster_agent_products`).

Environment values are resolved the way the kubelet does for literal values and ConfigMaps; a
value that comes from a Secret is never read: `env_value` returns `FROM_SECRET` in its place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshdoctor.datadog.agent_version import AgentRelease, resolve_release, tag_version
from meshdoctor.datadog.sites import (
    APM_IMAGE_DEFAULT_SINCE,
    CONSEQUENCE,
    CONTAINER_EVENTS_DEFAULT_SINCE,
    DEFAULT_SITE,
    HTTPS_PORT,
    LOGS_FORCE_SWITCHES_SINCE,
    LOGS_HTTPS_DEFAULT_SINCE,
    LOGS_TCP_PORT_443_HOST,
    ORCHESTRATOR_DEFAULT_SINCE,
    PROCESS_IN_CORE_AGENT_SINCE,
    PRODUCTS,
    REMOTE_CONFIG_DEFAULT_SINCE,
    REMOTE_CONFIG_OFF_SITES,
    SCHEME_PORTS,
    api_key_validation_host,
    intake_endpoints,
    is_datadog_app_host,
    normalize_site,
    versioned_metrics_host,
)
from meshdoctor.kube.images import image_name, split_image
from meshdoctor.kube.meta import labels_of
from meshdoctor.kube.workloads import containers, pod_template
from meshdoctor.model import Severity
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


def is_cluster_agent_image(image: str) -> bool:
    """Whether an image is the Datadog Cluster Agent (`datadog/cluster-agent`, any registry)."""
    return image_name(image) == "cluster-agent"


def has_component_labels(labels: Mapping[str, Any], component: str = "agent") -> bool:
    """Helm chart labels (the component, a datadog name or app) or the Operator's, for a component.

    `agent` is the node agent, `cluster-agent` the Cluster Agent (both charts and the Operator set
    `app.kubernetes.io/component`; the Operator also `agent.datadoghq.com/component`).
    """
    if labels.get("agent.datadoghq.com/component") == component:
        return True
    if labels.get("app.kubernetes.io/component") != component:
        return False
    names = (str(labels.get("app.kubernetes.io/name", "")), str(labels.get("app", "")))
    return any("datadog" in name for name in names)


def is_cluster_agent_workload(workload: Mapping[str, Any]) -> bool:
    """Whether a Deployment runs the Datadog Cluster Agent (`cluster-agent` image or labels)."""
    if workload.get("kind") != "Deployment":
        return False
    template = pod_template(dict(workload)) or {}
    if any(is_cluster_agent_image(str(c.get("image") or "")) for c in containers(template, False)):
        return True
    return has_component_labels(labels_of(workload), "cluster-agent")


def cluster_agent_container(template: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Cluster Agent's container: `cluster-agent` (chart and Operator), else its image."""
    candidates = containers(template, include_init=False)
    for container in candidates:
        if container.get("name") == "cluster-agent":
            return container
    for container in candidates:
        if is_cluster_agent_image(str(container.get("image") or "")):
            return container
    return None


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
    if any(is_cluster_agent_image(image) for image in images):
        return False
    return has_component_labels(labels_of(workload)) or has_component_labels(labels_of(template))


def agent_workloads(reader: ObjectReader, kinds: tuple[str, ...] = AGENT_KINDS) -> list[KubeObject]:
    """Every agent DaemonSet and Deployment, DaemonSets first, each by namespace and name.

    `kinds` narrows the search (and the kinds read) to e.g. `("DaemonSet",)`.
    """
    return [w for kind in kinds if kind in AGENT_KINDS for w in reader.objects(kind) if is_agent_workload(w)]


def egress_workloads(reader: ObjectReader) -> list[KubeObject]:
    """What sends to the Datadog intake: every agent workload, then every Cluster Agent Deployment.

    The cluster check runners (`<release>-clusterchecks`, the agent image) are agent workloads
    already; the Cluster Agent is added here, for the egress rules only.
    """
    return [*agent_workloads(reader), *(d for d in reader.objects("Deployment") if is_cluster_agent_workload(d))]


def lone_agent_pods(reader: ObjectReader) -> list[KubeObject]:
    """Agent Pods no controller owns (a flare's agent, a hand-run pod), by namespace and name.

    Their logs are read as a workload's; structural rules know only DaemonSets and Deployments.
    """
    out = []
    for pod in reader.objects("Pod"):
        if (pod.get("metadata") or {}).get("ownerReferences"):
            continue
        if any(is_agent_image(str(c.get("image") or "")) for c in containers(pod, include_init=False)):
            out.append(pod)
    return out


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


def main_container(template: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The container whose env and image decide what a workload sends: the agent's, else the Cluster Agent's."""
    return agent_container(template) or cluster_agent_container(template)


def agent_version(container: Mapping[str, Any] | None) -> str | None:
    """Version a tag pins (`7.49.1`, `6.9.0-jmx` -> `6.9.0`); None for `latest`, `7`, digests.

    The tag only: what a workload runs is `agent_release` (runtime evidence first).
    """
    if not container:
        return None
    return tag_version(str(container.get("image") or ""))


def agent_release(reader: ObjectReader, workload: KubeObject) -> AgentRelease:
    """The release an agent workload runs and which evidence decided (`datadog.agent_version`)."""
    return resolve_release(reader, workload, main_container(pod_template(workload)))


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
    value = env_value(reader, template, main_container(template), "DD_SITE", namespace)
    if value is None or value == FROM_SECRET:
        return DEFAULT_SITE
    return normalize_site(value)


#: The strings Go's `strconv.ParseBool` reads as true. The agent reads every boolean setting
#: through it (`GetBool` -> DataDog/cast `ToBoolE` -> `strconv.ParseBool`); anything else
#: (`yes`, `on`, ` true`) is a parse error, which `GetBool` returns as false.
_PARSE_BOOL_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def env_flag(value: str | None) -> bool:
    """A boolean env value as the agent reads it: true only for what `strconv.ParseBool` accepts."""
    return value in _PARSE_BOOL_TRUE


def _env_false(value: str | None) -> bool:
    """Set, and read as false by the agent (a false value or one ParseBool rejects); unset is not."""
    return value not in (None, "") and not env_flag(value)


#: Env vars that override an intake (datadog-agent config bindings: `dd_url` <- DD_DD_URL, DD_URL
#: (the first one set wins); `logs_config.logs_dd_url`; `apm_config.apm_dd_url`;
#: `process_config.process_dd_url` <- DD_PROCESS_CONFIG_PROCESS_DD_URL,
#: DD_PROCESS_AGENT_PROCESS_DD_URL, DD_PROCESS_AGENT_URL, DD_PROCESS_CONFIG_URL;
#: `orchestrator_explorer.orchestrator_dd_url` <- ..., DD_ORCHESTRATOR_URL;
#: `remote_configuration.rc_dd_url`; `<prefix>.dd_url` of the event-platform products).
URL_OVERRIDES: dict[str, tuple[str, ...]] = {
    "metrics": ("DD_DD_URL", "DD_URL"),
    "api-key-validation": (),
    "logs": ("DD_LOGS_CONFIG_LOGS_DD_URL",),
    "traces": ("DD_APM_DD_URL",),
    "instrumentation-telemetry": (),
    "process": (
        "DD_PROCESS_CONFIG_PROCESS_DD_URL",
        "DD_PROCESS_AGENT_PROCESS_DD_URL",
        "DD_PROCESS_AGENT_URL",
        "DD_PROCESS_CONFIG_URL",
    ),
    "orchestrator": ("DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL", "DD_ORCHESTRATOR_URL"),
    "container-lifecycle": ("DD_CONTAINER_LIFECYCLE_DD_URL",),
    "container-images": ("DD_CONTAINER_IMAGE_DD_URL",),
    "remote-config": ("DD_REMOTE_CONFIGURATION_RC_DD_URL",),
}

#: Logs transport switches, in the order the agent reads them (`BuildEndpoints`:
#: `use_http || force_use_http` wins over `use_tcp || force_use_tcp`; the `force_` forms exist
#: from 7.36).
LOGS_TRANSPORT_ENV = (
    ("DD_LOGS_CONFIG_FORCE_USE_HTTP", "https"),
    ("DD_LOGS_CONFIG_USE_HTTP", "https"),
    ("DD_LOGS_CONFIG_FORCE_USE_TCP", "tcp"),
    ("DD_LOGS_CONFIG_USE_TCP", "tcp"),
)

#: Settings that make a 6.19+/7.19+ agent send logs over TCP although HTTPS works (`BuildEndpoints`:
#: `isSocks5ProxySet() || hasAdditionalEndpoints()`).
LOGS_TCP_FORCING_ENV = ("DD_LOGS_CONFIG_SOCKS5_PROXY_ADDRESS", "DD_LOGS_CONFIG_ADDITIONAL_ENDPOINTS")

#: Proxy settings, most telling first (datadog-agent pkg/config/setup `LoadProxyFromEnv`:
#: `DD_PROXY_HTTPS` wins over `HTTPS_PROXY`, then `https_proxy`; `DD_PROXY_NO_PROXY` is split on
#: spaces, `NO_PROXY` on commas; a no_proxy entry matches the host exactly). Every HTTPS sender
#: (forwarder, HTTPS logs and their start-up test, process, orchestrator, Remote Configuration,
#: event platform; the trace-agent reads `proxy.https`) goes through it; TCP logs never do.
HTTPS_PROXY_ENV = ("DD_PROXY_HTTPS", "HTTPS_PROXY", "https_proxy")
NO_PROXY_ENV = (("DD_PROXY_NO_PROXY", " "), ("NO_PROXY", ","), ("no_proxy", ","))

#: Container names (or commands) of the agent's helper processes in multi-container pods
#: (Helm chart and Operator: `trace-agent`, `process-agent`).
TRACE_AGENT = "trace-agent"
PROCESS_AGENT = "process-agent"


@dataclass(frozen=True, order=True)
class RequiredEndpoint:
    """One host and port an agent workload must reach, why it must, and what is lost if it cannot."""

    product: str
    """One of `datadog.sites.PRODUCTS` (`metrics`, `logs`, `logs-tcp`, `traces`...)."""
    host: str
    """Host name, or an Istio wildcard (`*.agent.datadoghq.com`) when the version is unknown."""
    port: int
    """TCP port."""
    protocol: str
    """What the agent speaks on the connection: `HTTPS`, `TLS` (TCP logs with SSL), `HTTP` or
    `TCP` (plaintext overrides); the keys `istio.egress.client_protocol` understands."""
    why: str
    """Which setting or default makes the agent use it."""
    consequence: Severity = Severity.ERROR
    """What an unreachable endpoint costs, as a severity (`datadog.sites.CONSEQUENCE`, lowered when
    the product is on only by a default the tool cannot confirm)."""
    fallback_for: str | None = None
    """The product this endpoint stands in for when that product's own endpoint fails (the TCP
    logs intake after a failed HTTPS test); None for an endpoint used on its own."""

    @property
    def address(self) -> str:
        """`host:port`."""
        return f"{self.host}:{self.port}"


def _container_named(template: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """A helper container by name, or by its command (`trace-agent`, `process-agent`)."""
    for container in containers(template, include_init=False):
        command = " ".join(str(c) for c in (container.get("command") or []))
        if container.get("name") == name or name in command.split():
            return container
    return None


class _AgentEnv:
    """Env lookups of one agent workload: main container, helper containers, namespace, release."""

    def __init__(self, reader: ObjectReader, workload: KubeObject) -> None:
        self.reader = reader
        self.template = pod_template(workload) or {}
        self.main = main_container(self.template)
        self.namespace = str((workload.get("metadata") or {}).get("namespace") or "") or None
        self.agent_release = agent_release(reader, workload)
        self.version = self.agent_release.version
        self.release = self.agent_release.release
        self.release_text = self.agent_release.text

    def get(self, name: str, container: Mapping[str, Any] | None = None) -> str | None:
        value = env_value(self.reader, self.template, container or self.main, name, self.namespace)
        return None if value == FROM_SECRET else value

    def first(self, names: tuple[str, ...], container: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
        for name in names:
            value = self.get(name, container)
            if value:
                return name, value.strip()
        return None

    def since(self, first: tuple[int, int] | dict[int, tuple[int, int]]) -> bool | None:
        """Whether the release is at least `first` (one version, or per major); None if unknown."""
        return self.agent_release.since(first)


@dataclass(frozen=True)
class _Use:
    """One product an agent sends to, why, and what its loss costs."""

    product: str
    why: str
    consequence: Severity
    fallback_for: str | None = None


def _logs_uses(env: _AgentEnv) -> list[_Use]:
    """The logs transports of an agent with DD_LOGS_ENABLED (`BuildEndpoints`, sources in sites.py).

    An explicit switch decides (HTTP first, as the agent reads them); a SOCKS5 proxy or additional
    endpoints mean TCP; before 6.19/7.19, TCP. From 6.19/7.19 (and when the version cannot be
    read, assumed current): HTTPS, with TCP as the fallback the agent takes when its HTTPS test at
    start fails, on the sites that serve TCP logs.
    """
    error = CONSEQUENCE["logs"]
    for name, transport in LOGS_TRANSPORT_ENV:
        if name.startswith("DD_LOGS_CONFIG_FORCE_") and env.since(LOGS_FORCE_SWITCHES_SINCE) is False:
            continue
        if env_flag(env.get(name)):
            return [_Use("logs" if transport == "https" else "logs-tcp", f"DD_LOGS_ENABLED=true; {name}=true", error)]
    for name in LOGS_TCP_FORCING_ENV:
        if env.get(name):
            return [_Use("logs-tcp", f"DD_LOGS_ENABLED=true; {name} is set, which sends logs over TCP", error)]
    modern = env.since(LOGS_HTTPS_DEFAULT_SINCE)
    if modern is False:
        return [
            _Use("logs-tcp", f"DD_LOGS_ENABLED=true; {env.release_text} sends logs over TCP (before 6.19/7.19)", error)
        ]
    assumed = "" if modern else " (assumed: 6.19+/7.19+)"
    return [
        _Use("logs", f"DD_LOGS_ENABLED=true; {env.release_text} sends logs over HTTPS{assumed}", error),
        _Use(
            "logs-tcp",
            f"DD_LOGS_ENABLED=true; {env.release_text} falls back to TCP when its HTTPS test at start fails",
            error,
            fallback_for="logs",
        ),
    ]


def logs_transports(reader: ObjectReader, workload: KubeObject) -> tuple[list[str], str]:
    """The logs transports an agent may use, and why the first.

    `https`, `tcp`, or both: HTTPS with the TCP fallback.
    """
    uses = _logs_uses(_AgentEnv(reader, workload))
    return ["https" if u.product == "logs" else "tcp" for u in uses], uses[0].why.split("; ", 1)[1]


def agent_products(reader: ObjectReader, workload: KubeObject) -> list[str]:
    """The intake products an agent workload sends to (names of `datadog.sites.PRODUCTS`)."""
    return list(dict.fromkeys(u.product for u in _products(reader, workload)))


def _default_on(env: _AgentEnv, name: str, since: tuple[int, int], what: str) -> str | None:
    """Why a feature with a version default is on (explicit true, or the default), or None."""
    value = env.get(name)
    if env_flag(value):
        return f"{name}=true"
    if value in (None, "") and env.since(since):
        return f"{what} is on by default from {since[0]}.{since[1]} and {env.release_text} has it"
    return None


def _fips(env: _AgentEnv) -> bool:
    """A FIPS agent (`-fips` image, or DD_FIPS_ENABLED): `IsFed`, so Remote Configuration is off unless set."""
    tag = split_image(str((env.main or {}).get("image") or ""))[1] or ""
    return "fips" in tag.split("-") or env_flag(env.get("DD_FIPS_ENABLED"))


def _products(reader: ObjectReader, workload: KubeObject) -> list[_Use]:
    """Every product an agent sends to, in `PRODUCTS` order, with why and what its loss costs.

    Metrics and the API-key check always; logs with DD_LOGS_ENABLED (`_logs_uses`); traces when a
    trace-agent container runs or DD_APM_ENABLED is true (an error to lose), or by the image's
    default (a warning: no tracer may be sending); tracer telemetry with traces; process with a
    process-agent container (container collection is on by default) or DD_PROCESS_AGENT_ENABLED;
    the orchestrator explorer (7.57+), container lifecycle and images (7.50+) and Remote
    Configuration (7.47+, not on ddog-gov.com unless set) by their version defaults.
    """
    env = _AgentEnv(reader, workload)
    site = datadog_site(reader, workload)
    if is_cluster_agent_workload(workload):
        return _cluster_agent_products(env, site)
    if env_flag(env.get(CLC_RUNNER_ENV)):
        return _cluster_check_runner_products(env, site)
    found = [
        _Use("metrics", "the core agent always sends metrics", CONSEQUENCE["metrics"]),
        _Use(
            "api-key-validation",
            "the forwarder checks the API key; an unreachable endpoint counts as a valid key",
            CONSEQUENCE["api-key-validation"],
        ),
    ]
    if env_flag(env.get("DD_LOGS_ENABLED")):
        found.extend(_logs_uses(env))
    trace = _container_named(env.template, TRACE_AGENT)
    apm = env.get("DD_APM_ENABLED", trace)
    traces: _Use | None = None
    if trace is not None and not _env_false(apm):
        traces = _Use("traces", "a trace-agent container runs", CONSEQUENCE["traces"])
    elif trace is None and env_flag(apm):
        traces = _Use("traces", "DD_APM_ENABLED=true", CONSEQUENCE["traces"])
    elif trace is None and apm in (None, "") and env.since(APM_IMAGE_DEFAULT_SINCE) is not False:
        traces = _Use(
            "traces",
            f"DD_APM_ENABLED is unset and {env.release_text} runs APM by default (6.18+/7.18+); "
            "traces are lost only if applications send them",
            Severity.WARNING,
        )
    if traces is not None:
        found.append(traces)
        found.append(
            _Use(
                "instrumentation-telemetry",
                "the trace-agent forwards tracer telemetry (apm_config.telemetry.enabled, on by default)",
                CONSEQUENCE["instrumentation-telemetry"],
            )
        )
    process = _container_named(env.template, PROCESS_AGENT)
    process_enabled = env.get("DD_PROCESS_AGENT_ENABLED", process)
    if process is not None and not _env_false(process_enabled):
        found.append(
            _Use(
                "process",
                "a process-agent container runs (container collection is on by default)",
                CONSEQUENCE["process"],
            )
        )
    elif process is None and env_flag(process_enabled):
        found.append(_Use("process", "DD_PROCESS_AGENT_ENABLED=true", CONSEQUENCE["process"]))
    elif process is None:
        in_core = _default_on(
            env,
            "DD_PROCESS_CONFIG_RUN_IN_CORE_AGENT_ENABLED",
            PROCESS_IN_CORE_AGENT_SINCE,
            "process checks in the core agent",
        )
        if in_core and not _env_false(env.get("DD_PROCESS_CONFIG_CONTAINER_COLLECTION_ENABLED")):
            found.append(
                _Use(
                    "process",
                    f"{in_core}: the core agent collects containers (container collection is on by default)",
                    CONSEQUENCE["process"],
                )
            )
    orchestrator = _default_on(
        env, "DD_ORCHESTRATOR_EXPLORER_ENABLED", ORCHESTRATOR_DEFAULT_SINCE, "the orchestrator explorer"
    )
    if orchestrator:
        found.append(_Use("orchestrator", orchestrator, CONSEQUENCE["orchestrator"]))
    for product, name, what in (
        ("container-lifecycle", "DD_CONTAINER_LIFECYCLE_ENABLED", "container lifecycle collection"),
        ("container-images", "DD_CONTAINER_IMAGE_ENABLED", "container image collection"),
    ):
        why = _default_on(env, name, CONTAINER_EVENTS_DEFAULT_SINCE, what)
        if why:
            found.append(_Use(product, why, CONSEQUENCE[product]))
    remote = _remote_config_use(env, site)
    if remote is not None:
        found.append(remote)
    return sorted(found, key=lambda u: PRODUCTS.index(u.product))


def _remote_config_use(env: _AgentEnv, site: str) -> _Use | None:
    """Remote Configuration: explicit true, or its version default where the site and FIPS allow it."""
    if env_flag(env.get("DD_REMOTE_CONFIGURATION_ENABLED")):
        return _Use("remote-config", "DD_REMOTE_CONFIGURATION_ENABLED=true", CONSEQUENCE["remote-config"])
    if site in REMOTE_CONFIG_OFF_SITES or _fips(env):
        return None
    why = _default_on(env, "DD_REMOTE_CONFIGURATION_ENABLED", REMOTE_CONFIG_DEFAULT_SINCE, "Remote Configuration")
    return _Use("remote-config", why, CONSEQUENCE["remote-config"]) if why else None


def _cluster_agent_products(env: _AgentEnv, site: str) -> list[_Use]:
    """What a Cluster Agent sends, in `PRODUCTS` order.

    Read in DataDog/datadog-agent `cmd/cluster-agent/subcommands/start/command.go` @677711e9.
    Its default forwarder (`defaultforwarder.NewParamsWithResolvers`: the `dd_url` endpoints, the
    versioned `<x>-<y>-<z>-app.agent.<site>` host like the node agent's) carries the Kubernetes
    events it collects and the metrics and service checks of the checks it runs itself
    (`kubernetes_apiserver`, its own telemetry): an error to lose. The same file sets
    `DisableAPIKeyChecking = true` (no `api.<site>` validation) and
    `UseEventPlatformForwarder = false` (no container lifecycle or image intake); it sends no logs,
    traces or processes. The orchestrator explorer (`orchestrator_explorer.enabled`, the same
    setting and default as the node agent's, its forwarder to `orchestrator.<site>`) and Remote
    Configuration (`IsRemoteConfigEnabled`, `config.<site>`) are features: warnings.
    """
    found = [
        _Use(
            "metrics",
            "the Cluster Agent's forwarder sends the Kubernetes events it collects and the metrics of "
            "the checks it runs itself",
            CONSEQUENCE["metrics"],
        )
    ]
    orchestrator = _default_on(
        env, "DD_ORCHESTRATOR_EXPLORER_ENABLED", ORCHESTRATOR_DEFAULT_SINCE, "the orchestrator explorer"
    )
    if orchestrator:
        found.append(_Use("orchestrator", orchestrator, CONSEQUENCE["orchestrator"]))
    remote = _remote_config_use(env, site)
    if remote is not None:
        found.append(remote)
    return found


#: The switch of a cluster check runner (`clc_runner_enabled`), set by the chart's
#: `<release>-clusterchecks` Deployment (DataDog/helm-charts `charts/datadog/templates/
#: agent-clusterchecks-deployment.yaml` @79f7c74f).
CLC_RUNNER_ENV = "DD_CLC_RUNNER_ENABLED"


def _cluster_check_runner_products(env: _AgentEnv, site: str) -> list[_Use]:
    """What a cluster check runner sends, in `PRODUCTS` order.

    It runs only the checks the Cluster Agent dispatches to it: their metrics go through its
    forwarder, which validates its API key. The chart turns off logs, APM and the process-agent
    (`DD_LOGS_ENABLED`, `DD_APM_ENABLED`, `DD_PROCESS_AGENT_ENABLED` false) and mounts no container
    runtime socket, so no container, process, container lifecycle or image collection runs there
    (agent-clusterchecks-deployment.yaml @79f7c74f). The orchestrator explorer counts when set
    explicitly (its cluster checks dispatched to the runners); Remote Configuration as everywhere.
    """
    found = [
        _Use(
            "metrics",
            "the cluster check runner sends the metrics of the checks dispatched to it",
            CONSEQUENCE["metrics"],
        ),
        _Use(
            "api-key-validation",
            "the forwarder checks the API key; an unreachable endpoint counts as a valid key",
            CONSEQUENCE["api-key-validation"],
        ),
    ]
    if env_flag(env.get("DD_ORCHESTRATOR_EXPLORER_ENABLED")):
        found.append(_Use("orchestrator", "DD_ORCHESTRATOR_EXPLORER_ENABLED=true", CONSEQUENCE["orchestrator"]))
    remote = _remote_config_use(env, site)
    if remote is not None:
        found.append(remote)
    return found


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


def _through_proxy(
    env: _AgentEnv, helpers: Mapping[str, Mapping[str, Any] | None], endpoint: RequiredEndpoint
) -> RequiredEndpoint:
    """The endpoint as the container reaches it: its HTTPS proxy instead, unless no_proxy names it."""
    if endpoint.protocol not in ("HTTPS", "HTTP"):
        return endpoint  # TCP logs ignore HTTP proxies (only a SOCKS5 proxy applies there)
    container = helpers.get(endpoint.product) or None
    proxy = env.first(HTTPS_PROXY_ENV, container) or env.first(HTTPS_PROXY_ENV)
    if proxy is None:
        return endpoint
    for name, separator in NO_PROXY_ENV:
        listed = env.get(name, container) or env.get(name)
        if listed is not None:
            if endpoint.host in {h.strip().lower() for h in listed.split(separator)}:
                return endpoint
            break
    parsed = parse_override(proxy[1], "http")
    if parsed is None:
        return endpoint
    host, port, scheme = parsed
    protocol = "HTTPS" if scheme == "https" else "HTTP"
    why = f"{endpoint.why}; through the proxy {proxy[0]}={proxy[1]} (for {endpoint.address})"
    return dataclasses.replace(endpoint, host=host, port=port, protocol=protocol, why=why)


def _required(use: _Use, host: str, port: int, protocol: str, why: str) -> RequiredEndpoint:
    return RequiredEndpoint(use.product, host, port, protocol, why, use.consequence, use.fallback_for)


def required_endpoints(reader: ObjectReader, workload: KubeObject) -> list[RequiredEndpoint]:
    """Every (product, host, port, protocol) an agent workload may reach, with why and consequence.

    The site's intake hosts (`datadog.sites.intake_endpoints`) for the products turned on, with
    each product's URL override applied instead where one is set: DD_DD_URL / DD_URL (a Datadog
    `app.<site>` URL still gets the versioned host, anything else — a proxy — is used as it is),
    DD_LOGS_CONFIG_LOGS_DD_URL (`host:port`, for whichever logs transport is on; plaintext with
    DD_LOGS_CONFIG_LOGS_NO_SSL), DD_LOGS_CONFIG_USE_PORT_443 (TCP logs to
    `agent-443-intake.logs.datadoghq.com:443`), DD_APM_DD_URL, the process, orchestrator,
    event-platform and Remote Configuration URLs.
    """
    env = _AgentEnv(reader, workload)
    site = datadog_site(reader, workload)
    helpers = {
        "traces": _container_named(env.template, TRACE_AGENT),
        "process": _container_named(env.template, PROCESS_AGENT),
    }
    found: list[RequiredEndpoint] = []
    for use in _products(reader, workload):
        product, why = use.product, use.why

        # The API key is validated where metrics go when DD_DD_URL points elsewhere (getAPIDomain).
        override_key = {"logs-tcp": "logs", "api-key-validation": "metrics"}.get(product, product)
        helper = helpers.get(product)
        names = URL_OVERRIDES[override_key]
        override = (env.first(names, helper) or env.first(names)) if names else None
        if override is None and product == "logs-tcp" and env_flag(env.get("DD_LOGS_CONFIG_USE_PORT_443")):
            host = (env.get("DD_LOGS_CONFIG_DD_URL_443") or LOGS_TCP_PORT_443_HOST).strip()
            found.append(_required(use, host, HTTPS_PORT, "TLS", f"{why}; DD_LOGS_CONFIG_USE_PORT_443=true"))
            continue
        if override is None:
            for intake in intake_endpoints(site, [product], env.version):
                protocol = "TLS" if intake.protocol == "tcp" else "HTTPS"
                found.append(_required(use, intake.host, intake.port, protocol, f"{why} (site {site})"))
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
            found.append(_required(use, host, port, protocol, f"{why}; {name}={value}"))
            continue
        parsed = parse_override(value)
        if parsed is None:
            continue
        host, port, scheme = parsed
        protocol = "HTTP" if scheme == "http" else "HTTPS"
        if override_key == "metrics" and is_datadog_app_host(host):
            site_named = host[len("app.") :]
            if product == "metrics":
                host = versioned_metrics_host(site_named, env.version)
            else:
                host = api_key_validation_host(site_named, env.version)
        found.append(_required(use, host, port, protocol, f"{why}; {name}={value}"))
    found = [_through_proxy(env, helpers, endpoint) for endpoint in found]
    unique: dict[tuple[str, str, int], RequiredEndpoint] = {}
    for endpoint in found:
        unique.setdefault((endpoint.product, endpoint.host, endpoint.port), endpoint)
    return sorted(unique.values(), key=lambda e: (PRODUCTS.index(e.product), e.host, e.port))
