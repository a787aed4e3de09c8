r"""Datadog sites, intake hosts and ports per product, and the Agent defaults that pick them.

Facts only, each with its source; the agent model (`meshdoctor.datadog.agent`) applies them to a
workload's environment, rules read the result. Read in the datadog-agent source (Go), not in docs:

- Metrics: `pkg/config/utils/endpoints.go` `AddAgentVersionToDomain` / `getDomainPrefix`
  (`fmt.Sprintf("%d-%d-%d-%s.agent", v.Major, v.Minor, v.Patch, app)`): the Agent sends metrics
  to `<major>-<minor>-<patch>-app.agent.<site>` (`7-49-1-app.agent.datadoghq.com`), but only for
  a `dd_url` its `ddURLRegexp` recognises; the regexp grew site by site (6.0: US1; 6.5: EU; 6.22 /
  7.22: `(us|eu)\d`; 6.34 / 7.34: ddog-gov.com; 6.43 / 7.43: `[a-z]{2}\d`), and an older agent on
  a newer site posts to plain `app.<site>` ("we don't update unknown URLs (ie: proxy or custom DD
  domain)"). `app.<site>` is not an intake of a current agent.
- API-key validation: `comp/forwarder/defaultforwarder/forwarder_health.go` `getAPIDomain`
  (`"https://api." + domainURLRegexp.FindString(domain)`, `/api/v1/validate`), since 6.18.0 /
  7.18.0 (commit 9eadc866a "API validation on api instead of app endpoint"); before, the
  configured `dd_url`. Every version: "If there is an error during the api call, we assume that
  there is a valid key to avoid killing lots of agent on an outage": an unreachable validation
  endpoint loses no data.
- Logs: `pkg/logs/config/config.go` `BuildEndpoints` (6.19.0 / 7.19.0 on): HTTPS to
  `agent-http-intake.logs.<site>` when `force_use_http`/`use_http` is set, or when a 5 s HTTPS
  connectivity test at start succeeds and neither `use_tcp`/`force_use_tcp`, a SOCKS5 proxy nor
  `additional_endpoints` asks for TCP; otherwise TCP to `agent-intake.logs.<site>` on the port of
  the `logsEndpoints` map (`agent-intake.logs.datadoghq.com: 10516`,
  `agent-intake.logs.datadoghq.eu: 443`; any other host `logs_config.dd_port`, 10516). Before
  6.19 / 7.19: TCP unless `logs_config.use_http` (6.12+). `use_port_443` sends TCP to
  `logs_config.dd_url_443`, default `agent-443-intake.logs.datadoghq.com` whatever the site.
  Only US1 and EU serve TCP logs (Datadog "Network Traffic" page: the other sites list only the
  HTTPS logs intake), so elsewhere the TCP fallback leads nowhere.
- Traces: `comp/trace/config/setup.go` (`https://trace.agent.`, `apm_config.apm_dd_url`);
  `apm_config.enabled` defaults to true in code, but the container images baked
  `apm_config: enabled: false` until commit 77bb0c97ee "Dockerfiles/agent: enable APM by default
  on Kubernetes" (6.18.0 / 7.18.0).
- Remote Configuration: `remote_configuration.enabled` default true from 7.47.0 (false in
  7.40-7.46); `pkg/config/setup` `IsRemoteConfigEnabled`: off on `ddog-gov.com` and FIPS
  (`IsFed(cfg) && !cfg.IsConfigured("remote_configuration.enabled")` in the current source;
  always off there in 7.47-7.57). Host `https://config.<site>` (`rcservice.go`).
- Orchestrator explorer: `orchestrator_explorer.enabled` default true from 7.57 (commit
  5e6200a64e "[Orchestrator] Enable explorer by default"); host `https://orchestrator.<site>`.
- Container lifecycle and container images: `container_lifecycle.enabled` and
  `container_image.enabled` default true from 7.50 (false 7.46-7.49); event-platform hosts
  `contlcycle-intake.<site>` and `contimage-intake.<site>` (`epforwarder.go`
  `hostnameEndpointPrefix`).
- Processes and containers: `pkg/process/runner/endpoint` (`https://process.`,
  `process_config.process_dd_url`); container collection is on by default wherever the
  process-agent runs in a container environment.
- Sites: the values the agent's `config_template.yaml` and the Helm chart's `values.yaml` name
  (`datadoghq.com` default, `datadoghq.eu`, `us3.`, `us5.`, `ap1.datadoghq.com`, `ddog-gov.com`)
  and `ap2.datadoghq.com`, which the 6.43 / 7.43 regexp recognises. The agent itself validates no
  site: every intake is `<prefix> + strings.TrimSpace(site)`, so a host given as DD_SITE
  (`api.datadoghq.com`) yields hosts that do not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from meshdoctor.model import Severity

#: The site an agent uses when DD_SITE is not set (`DefaultSite = "datadoghq.com"`).
DEFAULT_SITE = "datadoghq.com"

#: Every Datadog site, by the value DD_SITE takes.
SITES: tuple[str, ...] = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
)

#: Products whose intake the Agent reaches, as `intake_endpoints` names them.
PRODUCTS: tuple[str, ...] = (
    "metrics",
    "api-key-validation",
    "logs",
    "logs-tcp",
    "traces",
    "instrumentation-telemetry",
    "process",
    "orchestrator",
    "container-lifecycle",
    "container-images",
    "remote-config",
)

#: What is lost when a product's intake cannot be reached, as a finding severity (DESIGN.md,
#: "Severity means consequence"): metrics, logs and traces are the user's data; the others are
#: features that degrade (Live Containers, the orchestrator explorer, Remote Configuration,
#: container lifecycle and image views); the API-key check and tracer telemetry lose nothing.
CONSEQUENCE: dict[str, Severity] = {
    "metrics": Severity.ERROR,
    "api-key-validation": Severity.INFO,
    "logs": Severity.ERROR,
    "logs-tcp": Severity.ERROR,
    "traces": Severity.ERROR,
    "instrumentation-telemetry": Severity.INFO,
    "process": Severity.WARNING,
    "orchestrator": Severity.WARNING,
    "container-lifecycle": Severity.WARNING,
    "container-images": Severity.WARNING,
    "remote-config": Severity.WARNING,
}

#: HTTPS port of every intake ("All Agent traffic is sent over SSL", 443).
HTTPS_PORT = 443

#: Log TCP intake per site: (host, port), from the agent's `logsEndpoints` map. Only US1 and EU
#: serve TCP logs; elsewhere the agent would try `agent-intake.logs.<site>:10516`, which the
#: Network Traffic page does not list.
LOGS_TCP: dict[str, tuple[str, int]] = {
    "datadoghq.com": ("agent-intake.logs.datadoghq.com", 10516),
    "datadoghq.eu": ("agent-intake.logs.datadoghq.eu", 443),
}

#: `logs_config.use_port_443`: TCP logs to this host on 443 (`logs_config.dd_url_443` default,
#: the same for every site).
LOGS_TCP_PORT_443_HOST = "agent-443-intake.logs.datadoghq.com"

#: Agent major -> first (major, minor) whose default logs transport is HTTPS, with the TCP
#: fallback after a failed HTTPS test at start (`BuildEndpoints`, 6.19.0 / 7.19.0).
LOGS_HTTPS_DEFAULT_SINCE: dict[int, tuple[int, int]] = {6: (6, 19), 7: (7, 19)}

#: First version with `logs_config.force_use_http` / `force_use_tcp` (7.36.0; `use_http` and
#: `use_tcp` work on every version that knows HTTPS).
LOGS_FORCE_SWITCHES_SINCE = (7, 36)

#: First Agent version with Remote Configuration on by default.
REMOTE_CONFIG_DEFAULT_SINCE = (7, 47)

#: Sites where Remote Configuration is off unless configured explicitly (`IsFed`).
REMOTE_CONFIG_OFF_SITES = ("ddog-gov.com",)

#: First Agent version with the orchestrator explorer on by default.
ORCHESTRATOR_DEFAULT_SINCE = (7, 57)

#: Process checks (Live Containers, to `process.<site>`) in the core agent without a process-agent:
#: `process_config.run_in_core_agent.enabled` (DD_PROCESS_CONFIG_RUN_IN_CORE_AGENT_ENABLED), which
#: the Helm chart sets for Agent 7.60+ (DataDog/helm-charts charts/datadog/values.yaml
#: `datadog.processAgent.runInCoreAgent`: "requires Agent 7.60.0+"), and on Linux always from 7.78
#: ("For Agent 7.78.0+ ... process checks always run in the core agent on Linux"; datadog-agent
#: pkg/config/setup default `runtime.GOOS == "linux"`).
PROCESS_IN_CORE_AGENT_SINCE = (7, 78)

#: First Agent version with container lifecycle and container image collection on by default.
CONTAINER_EVENTS_DEFAULT_SINCE = (7, 50)

#: Agent major -> first (major, minor) whose container image runs APM by default (the image's
#: baked `apm_config.enabled: false` was removed in 6.18.0 / 7.18.0).
APM_IMAGE_DEFAULT_SINCE: dict[int, tuple[int, int]] = {6: (6, 18), 7: (7, 18)}

#: Agent major -> first (major, minor) that validates the API key at `api.<site>` (before: at
#: the configured `dd_url`, `app.<site>`).
API_KEY_VALIDATION_AT_API_SINCE: dict[int, tuple[int, int]] = {6: (6, 18), 7: (7, 18)}

#: Site -> agent major -> first (major, minor) whose `ddURLRegexp` recognises `app.<site>` and
#: so adds the version prefix; an older agent posts metrics to `app.<site>` itself. Agent 7
#: started at 7.16, which already knew US1 and EU.
VERSIONED_METRICS_SINCE: dict[str, dict[int, tuple[int, int]]] = {
    "datadoghq.com": {6: (6, 0), 7: (7, 0)},
    "datadoghq.eu": {6: (6, 5), 7: (7, 0)},
    "us3.datadoghq.com": {6: (6, 22), 7: (7, 22)},
    "us5.datadoghq.com": {6: (6, 22), 7: (7, 22)},
    "ddog-gov.com": {6: (6, 34), 7: (7, 34)},
    "ap1.datadoghq.com": {6: (6, 43), 7: (7, 43)},
    "ap2.datadoghq.com": {6: (6, 43), 7: (7, 43)},
}

#: Port the Agent uses for a URL override without one: https 443, http 80 (Go net/url defaults).
SCHEME_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, order=True)
class IntakeEndpoint:
    """One host and port an agent connects to for one product."""

    host: str
    """Fully qualified host, or an Istio-style wildcard (`*.agent.datadoghq.com`)."""
    port: int
    """TCP port."""
    protocol: str
    """`https` or `tcp` (TLS over TCP, for TCP logs)."""
    product: str
    """One of `PRODUCTS`."""


def is_known_site(site: str) -> bool:
    """Whether a DD_SITE value is a Datadog site."""
    return normalize_site(site) in SITES


def normalize_site(site: str | None) -> str:
    """DD_SITE as a site name: trimmed, lower case, no trailing dot; empty is the default."""
    value = (site or "").strip().lower().rstrip(".")
    return value or DEFAULT_SITE


def site_of_host(host: str) -> str | None:
    """The Datadog site a host (or wildcard host) belongs to, the longest match; None if none.

    `app.us3.datadoghq.com` -> `us3.datadoghq.com`; `*.datadoghq.eu` -> `datadoghq.eu`.
    """
    name = str(host).strip().lower().rstrip(".").lstrip("*").lstrip(".")
    found = [s for s in SITES if name == s or name.endswith("." + s)]
    return max(found, key=len) if found else None


def site_meant(value: str) -> str | None:
    """The site a host or URL given as DD_SITE belongs to (`https://app.datadoghq.eu/` -> `datadoghq.eu`)."""
    return site_of_host(value.strip().split("://", 1)[-1].split("/", 1)[0])


def site_value_problem(value: str) -> str | None:
    """Why a DD_SITE value is not a site the agent can use, naming the site meant; None if it is.

    The agent prepends its prefixes to the value as it is (`app.` + `api.datadoghq.com`), so a
    host, a URL or an unknown domain gives intake hosts that do not exist.
    """
    text = value.strip()
    if normalize_site(text) in SITES:
        return None
    meant = site_meant(text)
    if meant is not None:
        return f"DD_SITE={text} is a host, not a site: the agent would send to hosts under {text}; the site is {meant}"
    return f"DD_SITE={text} is not a Datadog site (one of {', '.join(SITES)})"


def is_datadog_app_host(host: str) -> bool:
    """Whether a `dd_url` host is `app.<site>`, which the Agent prefixes with its version."""
    name = str(host).strip().lower().rstrip(".")
    if not name.startswith("app."):
        return False
    return name[len("app.") :] in SITES


def metrics_host(site: str) -> str:
    """`app.<site>`: where agents too old to know the site post metrics; DD_DD_URL's usual value."""
    return f"app.{normalize_site(site)}"


_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def _major_minor(agent_version: str | None) -> tuple[int, int] | None:
    match = _VERSION.match(agent_version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def at_least(agent_version: str | None, since: dict[int, tuple[int, int]] | tuple[int, int]) -> bool | None:
    """Whether a version is at least `since` (per major, or one version); None when unknown."""
    parsed = _major_minor(agent_version)
    if parsed is None:
        return None
    first = since.get(parsed[0]) if isinstance(since, dict) else since
    return first is not None and parsed >= first


def versioned_metrics_host(site: str, agent_version: str | None) -> str:
    """Where the agent sends metrics: `<x>-<y>-<z>-app.agent.<site>`.

    Without a version, `*.agent.<site>` (what a ServiceEntry must cover to accept any version);
    for an agent older than its site's entry in `VERSIONED_METRICS_SINCE`, `app.<site>`.
    """
    match = _VERSION.match(agent_version or "")
    site = normalize_site(site)
    if match is None:
        return f"*.agent.{site}"
    if at_least(agent_version, VERSIONED_METRICS_SINCE.get(site, {})) is False:
        return metrics_host(site)
    return f"{match.group(1)}-{match.group(2)}-{match.group(3)}-app.agent.{site}"


def api_key_validation_host(site: str, agent_version: str | None) -> str:
    """Where the agent validates its API key: `api.<site>` (6.18 / 7.18+), `app.<site>` before."""
    site = normalize_site(site)
    if at_least(agent_version, API_KEY_VALIDATION_AT_API_SINCE) is False:
        return metrics_host(site)
    return f"api.{site}"


#: Products whose intake is `<prefix><site>` on 443.
_PREFIXED: dict[str, str] = {
    "logs": "agent-http-intake.logs.",
    "traces": "trace.agent.",
    "instrumentation-telemetry": "instrumentation-telemetry-intake.",
    "process": "process.",
    "orchestrator": "orchestrator.",
    "container-lifecycle": "contlcycle-intake.",
    "container-images": "contimage-intake.",
    "remote-config": "config.",
}


def intake_endpoints(
    site: str, products: Iterable[str] = ("metrics",), agent_version: str | None = None
) -> list[IntakeEndpoint]:
    """The endpoints an agent on `site` reaches for the given products, sorted, without duplicates.

    `metrics` yields the versioned host (`versioned_metrics_host`); `api-key-validation` the
    validation host; `logs-tcp` the TCP logs intake where the site has one (none otherwise); every
    other product `<prefix><site>:443`. Unknown product names raise ValueError.
    """
    site = normalize_site(site)
    found: set[IntakeEndpoint] = set()
    for product in products:
        if product == "metrics":
            found.add(IntakeEndpoint(versioned_metrics_host(site, agent_version), HTTPS_PORT, "https", product))
        elif product == "api-key-validation":
            found.add(IntakeEndpoint(api_key_validation_host(site, agent_version), HTTPS_PORT, "https", product))
        elif product == "logs-tcp":
            if site in LOGS_TCP:
                host, port = LOGS_TCP[site]
                found.add(IntakeEndpoint(host, port, "tcp", product))
        elif product in _PREFIXED:
            found.add(IntakeEndpoint(f"{_PREFIXED[product]}{site}", HTTPS_PORT, "https", product))
        else:
            raise ValueError(f"unknown Datadog product {product!r}; one of {', '.join(PRODUCTS)}")
    return sorted(found, key=lambda e: (PRODUCTS.index(e.product), e.host, e.port))
