"""How the rbac rules say what the agent is denied: requests grouped by feature and verb.

MD401, MD403, MD404 and MD405 all end their message with what the agent's account is denied, in the
same words (`what it needs for kubelet: get nodes/proxy; events: get/list/watch events`).
"""

from __future__ import annotations

from collections.abc import Iterable

from meshdoctor.datadog.permission_check import PermissionCheck
from meshdoctor.kube.rbac import Request


def _target(request: Request) -> str:
    """What a request is about, without the verb: `nodes/proxy`, `configmaps "x" in datadog`."""
    text = request.describe()[len(request.verb) + 1 :]
    return text.removesuffix(" cluster-wide")


def describe_requests(requests: Iterable[Request]) -> str:
    """`get/list/watch pods, nodes, get nodes/proxy`: verbs grouped over the same targets."""
    verbs_by_target: dict[str, list[str]] = {}
    for request in requests:
        verbs = verbs_by_target.setdefault(_target(request), [])
        if request.verb not in verbs:
            verbs.append(request.verb)
    targets_by_verbs: dict[tuple[str, ...], list[str]] = {}
    for target, verbs in verbs_by_target.items():
        targets_by_verbs.setdefault(tuple(verbs), []).append(target)
    return ", ".join(f"{'/'.join(v)} {', '.join(t)}" for v, t in targets_by_verbs.items())


def describe_denied(check: PermissionCheck) -> str:
    """`what it needs for kubelet: get nodes/proxy; events: get/list/watch events`."""
    parts = []
    for feature in check.denied_features():
        requests = [v.request for v in check.denied if v.feature == feature]
        parts.append(f"{feature}: {describe_requests(requests)}")
    return "what it needs for " + "; ".join(parts)
