"""Telemetry: the endpoints the agents' `istio` check scrapes must be reachable.

Ids: MD301 Service lacks the scraped port, MD302 no ready endpoint behind it, MD303 a
NetworkPolicy drops the scrape, MD304 mTLS the plaintext scraper cannot pass, MD305 the agent's
sidecar sends mTLS to a port that speaks plaintext.

The endpoints come from `meshdoctor.datadog.istio_check.configured_endpoints` (ConfigMaps the agents read
and Autodiscovery annotations). This family looks only at endpoints that name a Service that
exists: an endpoint naming no Service, or the wrong era's endpoint, is the check-config family's.
"""

from __future__ import annotations

from meshdoctor.rule import Rule

from .md301_service_port_missing import ServicePortMissing
from .md302_no_ready_endpoints import NoReadyEndpoints
from .md303_network_policy_blocks_scrape import NetworkPolicyBlocksScrape
from .md304_strict_mtls_blocks_scrape import MtlsBlocksScrape
from .md305_mtls_to_plaintext_port import MtlsToPlaintextPort

RULES: list[type[Rule]] = [
    ServicePortMissing,
    NoReadyEndpoints,
    NetworkPolicyBlocksScrape,
    MtlsBlocksScrape,
    MtlsToPlaintextPort,
]
