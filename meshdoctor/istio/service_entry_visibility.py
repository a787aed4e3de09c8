"""Whether a client's sidecar loads a ServiceEntry: the mesh's `exportTo` default and Sidecar imports.

`meshdoctor.istio.egress` answers whether some entry covers a host for a client
(`covering_service_entries`); this module answers, for one entry, whether the client's sidecar has
it in its registry at all (exported to the client's namespace, imported by the Sidecar resource
that scopes the client), and corrects a coverage for a Sidecar that declares no `egress`.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshdoctor.istio.egress import Coverage, exported_to, sidecar_imports
from meshdoctor.istio.mesh import mesh_config
from meshdoctor.kube.meta import metadata, namespace_of
from meshdoctor.snapshot import KubeObject, ObjectReader

#: What `covering_service_entries` says of an entry the client's Sidecar does not import.
_NOT_IMPORTED = "does not import it"


def default_export_to(reader: ObjectReader, revision: str | None = None) -> list[str]:
    """The mesh config's `defaultServiceExportTo`, else `*` (every namespace), as istiod reads it.

    `revision`: the revision whose istiod configures the client (its `istio-<rev>` mesh config).
    """
    configured = mesh_config(reader, None, revision).get("defaultServiceExportTo")
    return [str(v) for v in configured] if configured else ["*"]


def sidecar_loads(
    entry: KubeObject,
    client_namespace: str,
    sidecar: KubeObject | None,
    default: Sequence[str],
    port: int,
) -> bool:
    """Whether a client's sidecar loads the entry: exported to it, imported by its Sidecar.

    `sidecar` is the Sidecar resource that scopes the client (None: none does); one without
    `egress` imports everything. A root-namespace Sidecar is read in the client's namespace.
    """
    if not exported_to(entry, client_namespace, default):
        return False
    if sidecar is None or not (sidecar.get("spec") or {}).get("egress"):
        return True
    scoped = sidecar
    if metadata(sidecar).get("namespace") != client_namespace:
        scoped = {
            **sidecar,
            "metadata": {**metadata(sidecar), "namespace": client_namespace},
        }
    entry_ns = namespace_of(entry)
    return any(sidecar_imports(scoped, entry_ns, str(h), port) for h in (entry.get("spec") or {}).get("hosts") or [])


def with_default_sidecar_imports(coverage: Coverage) -> Coverage:
    """A Sidecar without `egress` imports everything (istiod's default listener is `*/*`).

    `istio_egress.sidecar_imports` finds no listener there and reports a near miss; an entry that
    failed only that test does cover the host.
    """
    sidecar = coverage.sidecar
    if sidecar is None or ((sidecar.get("spec") or {}).get("egress")):
        return coverage
    hidden = [e for e, why in coverage.near_misses if _NOT_IMPORTED in why]
    if not hidden:
        return coverage
    rest = [(e, why) for e, why in coverage.near_misses if _NOT_IMPORTED not in why]
    return Coverage(True, coverage.entries + hidden, rest, sidecar)
