"""Which Service a cluster DNS name names: `svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`."""

from __future__ import annotations

from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import ObjectReader


def service_of_host(reader: ObjectReader, host: str, namespace: str) -> ObjectRef | None:
    """The Service a host names (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`), when it exists.

    A bare `svc` is read in `namespace` (the client's), as the pod's DNS search path does.
    """
    parts = host.lower().rstrip(".").split(".")
    if len(parts) > 2 and parts[2] != "svc":
        return None
    name, ns = parts[0], (parts[1] if len(parts) > 1 else namespace)
    if reader.get("Service", ns, name) is None:
        return None
    return ObjectRef("Service", ns, name)
