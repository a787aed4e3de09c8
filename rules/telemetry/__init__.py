"""Telemetry: the endpoints the agents' `istio` check scrapes must be reachable (MD301-MD305).

Step one of the split into one module per rule: the family's code moved here unchanged, so that
its history follows into the module that keeps most of it.
"""

from __future__ import annotations

from .md302_no_ready_endpoints import RULES

__all__ = ["RULES"]
