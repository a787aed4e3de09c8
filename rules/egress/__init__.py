"""Egress: the agent's traffic to the Datadog intake has to leave through the mesh.

Ids: MD101 intake egress blocked (nothing covers it), MD102 a ServiceEntry or Sidecar almost lets
it out (wrong site, port, protocol, exportTo, Sidecar egress hosts), MD103 the agent's calls to
the kubelet dropped by REGISTRY_ONLY.

Both rules read one model of an agent workload's egress (`meshdoctor.datadog.intake_egress`),
walked by `meshed_agents`.
"""

from __future__ import annotations

from meshdoctor.rule import Rule

from .md101_intake_blocked import IntakeEgressBlocked
from .md102_service_entry_near_miss import IntakeServiceEntryNearMiss
from .md103_kubelet_blocked import KubeletEgressBlocked

RULES: list[type[Rule]] = [IntakeEgressBlocked, IntakeServiceEntryNearMiss, KubeletEgressBlocked]
