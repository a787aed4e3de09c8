"""The server side's mTLS policies: their APIs, the object behind a mode, the workload policy that applies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshdoctor.istio.mtls import MtlsMode
from meshdoctor.kube.meta import labels_of, metadata, name_of, namespace_of
from meshdoctor.model import ObjectRef
from meshdoctor.snapshot import KubeObject, ObjectReader

#: PeerAuthentication (security.istio.io) replaced the authentication.istio.io/v1alpha1 `Policy`
#: in 1.5; v1beta1 is served from 1.5 through 1.30 (1.30.3 base CRD: v1 and v1beta1 served).
PEER_AUTHENTICATION_API = "security.istio.io/v1beta1"
#: The Mixer-era authentication policy kind
#: (1.0.7 templates/crds.yaml `policies.authentication.istio.io`).
POLICY_API = "authentication.istio.io/v1alpha1"

_SOURCE = re.compile(r"^(?P<kind>[A-Za-z]+)/(?P<namespace>[^/]*)/(?P<name>[^ ;]+)")


def mode_object(mode: MtlsMode) -> ObjectRef | None:
    """The object an `MtlsMode.source` names (`PeerAuthentication/ns/name (scope)`), or None."""
    match = _SOURCE.match(mode.source)
    if not match or match.group("kind") == "default":
        return None
    return ObjectRef(match.group("kind"), match.group("namespace"), match.group("name"))


def workload_peer_authentication(reader: ObjectReader, pod: Mapping[str, Any], root: str) -> KubeObject | None:
    """The workload-level PeerAuthentication that applies to a pod, or None.

    Only the oldest one whose selector matches counts (1.30 `policy_applier.go`
    ComposePeerAuthentication; the root namespace's selector ones are ignored), so a fix goes into
    that one rather than into a new one that would be ignored.
    """
    namespace = namespace_of(pod)
    labels = labels_of(pod)
    matching = []
    if namespace == root:
        return None
    for policy in reader.objects("PeerAuthentication"):
        selector = ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if namespace_of(policy) != namespace or not selector:
            continue
        if all(labels.get(str(k)) == str(v) for k, v in selector.items()):
            matching.append(policy)
    matching.sort(key=lambda p: (str(metadata(p).get("creationTimestamp") or "~"), name_of(p)))
    return matching[0] if matching else None
