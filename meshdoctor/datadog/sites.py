r"""Datadog sites, intake hosts and ports per product, and the Agent defaults that pick them.

Which products and which logs transport an agent uses follows from these defaults.

Facts only, each with its source; rules and remediations read them from here, the agent model
(`meshdoctor.datadog.agent`) applies them to a workload's environment.

Sources:
- Datadog docs, "Agent > Agent Configuration > Network Traffic"
  (https://docs.datadoghq.com/agent/configuration/network/): destinations per product and site
  (`trace.agent.<site>`, `process.<site>`, `orchestrator.<site>`, `config.<site>`, logs
  `agent-http-intake.logs.<site>`, logs TCP `agent-intake.logs.<site>` for US1 and EU only; the
  other sites list only the HTTP logs intake: "TCP log collection is not supported" there);
  "All Agent traffic is sent over SSL" (443).
- Datadog docs, "Log Collection > Agent Transport for Logs"
  (https://docs.datadoghq.com/agent/logs/log_transport/): "For Agent v6.19+/v7.19+, the default
  transport used for your logs is compressed HTTPS instead of TCP for the previous versions"; the
  Agent falls back to TCP when its HTTPS connectivity test at start fails; TCP uses "port 10516
  for Datadog US site and port 443 for Datadog EU site".
- Datadog docs, "Agent proxy for logs" (DataDog/documentation content/en/agent/logs/proxy.md):
  TCP forwarding to `agent-intake.logs.datadoghq.com` on 10516 and `agent-intake.logs.datadoghq.eu`
  on 443. The EU "Logs endpoints" page also lists `tcp-intake.logs.datadoghq.eu:443` for other
  forwarders; the Agent's own default is the `agent-intake` name (kept in UNCERTAIN below).
- datadog-agent `pkg/config/utils/endpoints.go` (`AddAgentVersionToDomain`, `ddURLRegexp`
  `^app(\.[a-z]{2}\d)?\.(datad(oghq|0g)\.(com|eu)|ddog-gov\.com)$`): the Agent sends metrics
  not to `app.<site>` but to `<major>-<minor>-<patch>-app.agent.<site>` (e.g.
  `7-49-1-app.agent.datadoghq.com`); a `dd_url` that is not such a Datadog host (a proxy) is used
  as it is. The first Agent 6 (`pkg/config/config.go`, `addAgentVersionToDomain` over
  `ddURLs = {app.datadoghq.com, app.datad0g.com}`) already did it, so every Agent 6/7 does;
  `app.<site>` still serves the API-key validation.
- datadog-agent `pkg/config/setup/config.go`: `apm_config.enabled` defaults to true
  (`BindEnvAndSetDefault("apm_config.enabled", true, "DD_APM_ENABLED")`), `process_config.enabled`
  to "false", `remote_configuration.enabled` to true; Datadog docs "Remote Configuration"
  (https://docs.datadoghq.com/agent/remote_config/): "enabled by default for Agent 7.47.0+".
- Sites: Datadog docs "Getting Started with Datadog Sites"
  (https://docs.datadoghq.com/getting_started/site/).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

#: The site an agent uses when DD_SITE is not set (Network Traffic page: US1 is the default).
DEFAULT_SITE = "datadoghq.com"

#: Every Datadog site, by the value DD_SITE takes. ap2 (Australia) opened in 2024; listed on the
#: sites page alongside the others.
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
    "logs",
    "logs-tcp",
    "traces",
    "process",
    "orchestrator",
    "remote-config",
)

#: HTTPS port of every intake (Network Traffic: "All Agent traffic is sent over SSL", 443).
HTTPS_PORT = 443

#: Log TCP intake per site: (host, port). Only US1 and EU accept TCP logs (Network Traffic page;
#: Log Transport page for the ports: 10516 US, 443 EU).
LOGS_TCP: dict[str, tuple[str, int]] = {
    "datadoghq.com": ("agent-intake.logs.datadoghq.com", 10516),
    "datadoghq.eu": ("agent-intake.logs.datadoghq.eu", 443),
}

#: Agent major -> first (major, minor) whose default logs transport is HTTPS (Log Transport page).
LOGS_HTTPS_DEFAULT_SINCE: dict[int, tuple[int, int]] = {6: (6, 19), 7: (7, 19)}

#: First Agent version with Remote Configuration on by default (Remote Configuration docs).
REMOTE_CONFIG_DEFAULT_SINCE = (7, 47)

#: `apm_config.enabled` default on Agent 6 and 7 (config.go): the trace-agent runs unless off.
APM_ENABLED_BY_DEFAULT = True

#: Port the Agent uses for a URL override without one: https 443, http 80 (Go net/url defaults).
SCHEME_PORTS = {"https": 443, "http": 80}

#: Facts we could not pin to a single authoritative source; kept visible rather than guessed.
UNCERTAIN: dict[str, str] = {
    "logs-tcp datadoghq.eu": "the Agent's TCP default is agent-intake.logs.datadoghq.eu:443 (proxy "
    "docs); the EU logs-endpoint table also lists tcp-intake.logs.datadoghq.eu:443 for forwarders",
    "ap2.datadoghq.com": "newest site; intake names assumed to follow the <product>.<site> pattern",
}


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
    """DD_SITE as the agent reads it: trimmed, lower case, no trailing dot; empty is the default."""
    value = (site or "").strip().lower().rstrip(".")
    return value or DEFAULT_SITE


def site_of_host(host: str) -> str | None:
    """The Datadog site a host (or wildcard host) belongs to, the longest match; None if none.

    `app.us3.datadoghq.com` -> `us3.datadoghq.com`; `*.datadoghq.eu` -> `datadoghq.eu`.
    """
    name = str(host).strip().lower().rstrip(".").lstrip("*").lstrip(".")
    found = [s for s in SITES if name == s or name.endswith("." + s)]
    return max(found, key=len) if found else None


def is_datadog_app_host(host: str) -> bool:
    """Whether a `dd_url` host is one the Agent prefixes with its version (`ddURLRegexp`)."""
    name = str(host).strip().lower().rstrip(".")
    if not name.startswith("app."):
        return False
    return name[len("app.") :] in SITES


def metrics_host(site: str) -> str:
    """The classic metrics/API host `app.<site>` (API-key validation, Agent 5, DD_DD_URL)."""
    return f"app.{normalize_site(site)}"


_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def versioned_metrics_host(site: str, agent_version: str | None) -> str:
    """Where Agent 6+ sends metrics: `<x>-<y>-<z>-app.agent.<site>`; a wildcard without a version.

    The wildcard `*.agent.<site>` is what a ServiceEntry must cover to accept any agent version.
    """
    match = _VERSION.match(agent_version or "")
    site = normalize_site(site)
    if match is None:
        return f"*.agent.{site}"
    return f"{match.group(1)}-{match.group(2)}-{match.group(3)}-app.agent.{site}"


def intake_endpoints(
    site: str, products: Iterable[str] = ("metrics",), agent_version: str | None = None
) -> list[IntakeEndpoint]:
    """The endpoints an agent on `site` reaches for the given products, sorted, without duplicates.

    `metrics` yields the versioned host (or `*.agent.<site>` without a version) and `app.<site>`;
    `logs` the HTTPS logs intake; `logs-tcp` the TCP logs intake where the site has one (none
    otherwise). Unknown product names raise ValueError.
    """
    site = normalize_site(site)
    found: set[IntakeEndpoint] = set()
    for product in products:
        if product == "metrics":
            found.add(IntakeEndpoint(versioned_metrics_host(site, agent_version), HTTPS_PORT, "https", product))
            found.add(IntakeEndpoint(metrics_host(site), HTTPS_PORT, "https", product))
        elif product == "logs":
            found.add(IntakeEndpoint(f"agent-http-intake.logs.{site}", HTTPS_PORT, "https", product))
        elif product == "logs-tcp":
            if site in LOGS_TCP:
                host, port = LOGS_TCP[site]
                found.add(IntakeEndpoint(host, port, "tcp", product))
        elif product == "traces":
            found.add(IntakeEndpoint(f"trace.agent.{site}", HTTPS_PORT, "https", product))
        elif product == "process":
            found.add(IntakeEndpoint(f"process.{site}", HTTPS_PORT, "https", product))
        elif product == "orchestrator":
            found.add(IntakeEndpoint(f"orchestrator.{site}", HTTPS_PORT, "https", product))
        elif product == "remote-config":
            found.add(IntakeEndpoint(f"config.{site}", HTTPS_PORT, "https", product))
        else:
            raise ValueError(f"unknown Datadog product {product!r}; one of {', '.join(PRODUCTS)}")
    return sorted(found, key=lambda e: (PRODUCTS.index(e.product), e.host, e.port))
