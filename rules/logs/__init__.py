"""Logs: what the agent and its sidecar logged, read against the signature catalogue (MD601-MD605)."""

from __future__ import annotations

from .log_rule import RULES

__all__ = ["RULES"]
