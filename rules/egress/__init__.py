"""Egress: the agent's traffic to the Datadog intake has to leave through the mesh (MD101, MD102)."""

from __future__ import annotations

from .md102_service_entry_near_miss import RULES

__all__ = ["RULES"]
