"""Pod templates of every workload kind, owner chains, and the pods a workload runs.

Rules ask "what does this workload run?" and "which pods are its?" of objects from any era: an
`extensions/v1beta1` DaemonSet from 2018 has its template where an `apps/v1` one has it, a CronJob
one level deeper. Everything here reads through an `ObjectReader`, so a rule's reads are recorded.

Functions return the template dicts that live inside the object (not copies): a rule that builds a
corrected manifest deep-copies the object first and edits the copy's template.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from meshdoctor.kube.labels import map_selector_matches, selector_matches
from meshdoctor.kube.meta import metadata, name_of, namespace_of
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Kinds that carry a pod template, in the order rules report them.
WORKLOAD_KINDS: tuple[str, ...] = (
    "Pod",
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
)

#: Where each kind keeps its pod template. The path is the same in every apiVersion the kind was
#: served under (extensions/v1beta1, apps/v1beta1, apps/v1beta2, apps/v1; batch/v1beta1,
#: batch/v2alpha1, batch/v1), so it is keyed by kind only. A Pod is its own template.
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

#: Workload kinds whose pods belong to an intermediate controller: Deployment -> ReplicaSet -> Pod,
#: CronJob -> Job -> Pod.
_INTERMEDIATE = {"Deployment": "ReplicaSet", "CronJob": "Job"}


def pod_template(obj: KubeObject) -> dict[str, Any] | None:
    """The pod template (metadata + spec) of a workload, the Pod itself for a Pod, else None."""
    path = _TEMPLATE_PATHS.get(str(obj.get("kind", "")))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def template_path(obj: KubeObject) -> str:
    """Dotted path from the object to its pod template (`spec.template`; `""` for a Pod)."""
    return ".".join(_TEMPLATE_PATHS.get(str(obj.get("kind", "")), ()))


def iter_pod_templates(
    reader: ObjectReader, kinds: Iterable[str] = WORKLOAD_KINDS
) -> Iterator[tuple[KubeObject, dict[str, Any]]]:
    """Every (object, pod template) of the given workload kinds, kind by kind, in name order.

    Pass `kinds` to read only what a rule declares: every kind listed is read.
    """
    for kind in kinds:
        for obj in reader.objects(kind):
            template = pod_template(obj)
            if template is not None:
                yield obj, template


def containers(template: Mapping[str, Any] | None, include_init: bool = True) -> list[dict[str, Any]]:
    """The containers of a pod template (init containers first, as the kubelet starts them)."""
    spec = (template or {}).get("spec") or {}
    keys = ("initContainers", "containers") if include_init else ("containers",)
    found: list[dict[str, Any]] = []
    for key in keys:
        found.extend(c for c in spec.get(key) or [] if isinstance(c, dict))
    return found


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether an ownerReference of `obj` names `owner` (kind, namespace, name; uid if both set).

    Hand-written manifests rarely carry uids, so kind and name decide; when both sides have a uid
    it must agree, as a recreated owner of the same name is another object.
    """
    if namespace_of(obj) != namespace_of(owner):
        return False
    owner_uid = metadata(owner).get("uid")
    for ref in metadata(obj).get("ownerReferences") or []:
        if not isinstance(ref, Mapping):
            continue
        if ref.get("kind") != owner.get("kind") or ref.get("name") != name_of(owner):
            continue
        if owner_uid and ref.get("uid") and ref.get("uid") != owner_uid:
            continue
        return True
    return False


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with `controller: true`, else the first one, else None."""
    refs = [r for r in metadata(obj).get("ownerReferences") or [] if isinstance(r, Mapping)]
    for ref in refs:
        if ref.get("controller") is True:
            return ref
    return refs[0] if refs else None


#: The built-in controllers an owner chain walks through (Pod -> ReplicaSet -> Deployment...).
CONTROLLER_KINDS = frozenset(
    {"ReplicaSet", "Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "ReplicationController"}
)


def owner_chain(reader: ObjectReader, obj: KubeObject) -> list[KubeObject]:
    """The controllers above an object, nearest first: Pod -> [ReplicaSet, Deployment].

    A Job owned by a CronJob gives [CronJob].

    The object itself is not in the list. The walk stops at an owner that is not in the snapshot,
    at a uid that disagrees, or at a cycle.
    """
    chain: list[KubeObject] = []
    seen = {(str(obj.get("kind")), namespace_of(obj), name_of(obj))}
    current: KubeObject = obj
    while True:
        ref = _controller_ref(current)
        if ref is None:
            return chain
        kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
        if kind not in CONTROLLER_KINDS:
            return chain  # an operator's own kind (DatadogAgentInternal...): not a workload
        key = (kind, namespace_of(current), name)
        if key in seen:
            return chain
        owner = reader.get(kind, namespace_of(current), name)
        if owner is None:
            return chain
        uid = metadata(owner).get("uid")
        if uid and ref.get("uid") and ref.get("uid") != uid:
            return chain
        seen.add(key)
        chain.append(owner)
        current = owner


def workload_selector(workload: Mapping[str, Any]) -> tuple[str, Any]:
    """The workload's pod selector as (`"label"` | `"map"`, selector).

    A ReplicationController selects with a plain map; every other kind with a LabelSelector. Where
    the selector is absent the API server defaulted it to the template's labels (extensions/v1beta1
    DaemonSets and Deployments, ReplicationControllers, Jobs), and so does this function.
    """
    spec = workload.get("spec") or {}
    template = pod_template(dict(workload)) or {}
    template_labels = dict((template.get("metadata") or {}).get("labels") or {})
    kind = workload.get("kind")
    if kind == "ReplicationController":
        return "map", spec.get("selector") or template_labels
    if kind == "CronJob":
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        selector = job_spec.get("selector")
    else:
        selector = spec.get("selector")
    if selector is None:
        return "map", template_labels
    return "label", selector


def selects(workload: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether a workload's selector matches a pod's labels (namespaces must agree)."""
    if namespace_of(workload) != namespace_of(pod):
        return False
    labels = metadata(pod).get("labels") or {}
    form, selector = workload_selector(workload)
    if form == "map":
        return map_selector_matches(selector, labels)
    return selector_matches(selector, labels)


def pods_of(reader: ObjectReader, workload: KubeObject) -> list[KubeObject]:
    """The pods a workload runs, in name order.

    Through ownerReferences: directly (DaemonSet, StatefulSet, ReplicaSet, Job...), or through the
    intermediate controller (Deployment -> ReplicaSet, CronJob -> Job; a ReplicaSet missing from
    the snapshot is recognised by its `<deployment>-<pod-template-hash>` name). Pods that carry no
    ownerReferences at all (hand-written manifests) belong to it when its selector matches them.
    A Pod's pods are itself.
    """
    kind = str(workload.get("kind", ""))
    if kind == "Pod":
        return [workload]
    if kind not in _TEMPLATE_PATHS:
        return []
    namespace = namespace_of(workload)
    parents: list[Mapping[str, Any]] = [workload]
    intermediate = _INTERMEDIATE.get(kind)
    if intermediate is not None:
        parents = [o for o in reader.objects(intermediate) if namespace_of(o) == namespace and owned_by(o, workload)]
    pods = []
    for pod in reader.objects("Pod"):
        if namespace_of(pod) != namespace:
            continue
        if metadata(pod).get("ownerReferences"):
            if any(owned_by(pod, parent) for parent in parents) or (
                kind == "Deployment" and _owned_by_hashed_replicaset(pod, workload, parents)
            ):
                pods.append(pod)
        elif selects(workload, pod):
            pods.append(pod)
    return pods


def _owned_by_hashed_replicaset(
    pod: Mapping[str, Any], deployment: Mapping[str, Any], known: list[Mapping[str, Any]]
) -> bool:
    """A pod owned by `<deployment>-<pod-template-hash>`, a ReplicaSet missing from the snapshot."""
    template_hash = (metadata(pod).get("labels") or {}).get("pod-template-hash")
    if not template_hash:
        return False
    expected = f"{name_of(deployment)}-{template_hash}"
    if any(name_of(rs) == expected for rs in known):
        return False  # present: owned_by already decided
    return any(
        isinstance(ref, Mapping) and ref.get("kind") == "ReplicaSet" and ref.get("name") == expected
        for ref in metadata(pod).get("ownerReferences") or []
    )
