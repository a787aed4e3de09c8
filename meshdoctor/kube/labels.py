"""Kubernetes label selectors, with the API server's semantics, in one place.

Workloads (`spec.selector`), Services, NetworkPolicies and ClusterRole aggregation all select by
labels; they must agree with each other and with Kubernetes (apimachinery
`pkg/apis/meta/v1/helpers.go` LabelSelectorAsSelector): `matchLabels` AND every `matchExpressions`
requirement; an empty selector `{}` selects everything; a null selector selects nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The operators a LabelSelectorRequirement may use.
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any] | None) -> bool:
    """Whether a LabelSelector (`matchLabels` + `matchExpressions`) selects an object's labels.

    `None` matches nothing and `{}` matches everything, as in Kubernetes. A malformed requirement
    (unknown operator, `In` with no values) matches nothing: the API server would reject it.
    """
    if selector is None:
        return False
    if not isinstance(selector, Mapping):
        return False
    have = {str(k): str(v) for k, v in (labels or {}).items()}
    for key, value in (selector.get("matchLabels") or {}).items():
        if have.get(str(key)) != str(value):
            return False
    for requirement in selector.get("matchExpressions") or []:
        if not requirement_matches(requirement, have):
            return False
    return True


def requirement_matches(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One `matchExpressions` entry: In, NotIn, Exists, DoesNotExist."""
    key = str(requirement.get("key", ""))
    operator = requirement.get("operator")
    values = [str(v) for v in (requirement.get("values") or [])]
    if operator == "In":
        return bool(values) and key in labels and labels[key] in values
    if operator == "NotIn":
        # A NotIn requirement is satisfied by an object that lacks the key altogether.
        return bool(values) and (key not in labels or labels[key] not in values)
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def map_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any] | None) -> bool:
    """A plain map selector (Service `spec.selector`, ReplicationController): every pair must match.

    An empty or absent map selects nothing here, as a Service without a selector selects no pods.
    """
    if not selector:
        return False
    have = labels or {}
    return all(str(have.get(k)) == str(v) and k in have for k, v in selector.items())
