"""Events about a workload's pods, as the kubelet reports them.

A workload's pods are named after it (`<workload>-<suffix>`, a Deployment's
`<deployment>-<hash>-<suffix>`), so a pod's Events are found by name prefix even when the pods
themselves are not in the input (an Event outlives the pod it is about).
"""

from __future__ import annotations

from meshdoctor.kube.meta import metadata
from meshdoctor.snapshot import KubeObject, ObjectReader, object_ref


def failed_mount_events(reader: ObjectReader, workload: KubeObject, needle: str) -> list[KubeObject]:
    """`FailedMount` Events of the workload's pods whose message names `needle`.

    An Event's `involvedObject` without a namespace is in the Event's own namespace.
    """
    ref = object_ref(workload)
    found: list[KubeObject] = []
    for event in reader.objects("Event"):
        involved = event.get("involvedObject") or {}
        if (
            event.get("reason") == "FailedMount"
            and involved.get("kind") == "Pod"
            and involved.get("namespace", metadata(event).get("namespace")) == ref.namespace
            and str(involved.get("name", "")).startswith(f"{ref.name}-")
            and needle in str(event.get("message", ""))
        ):
            found.append(event)
    return found
