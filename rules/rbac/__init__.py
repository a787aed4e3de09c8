"""RBAC: the agent's service account and what it may do (MD401-MD405).

Transitional: the family module moved whole to `md405_permissions_missing`, so that its history
follows the move; the next commit splits it into one module per rule.
"""

from __future__ import annotations

from .md405_permissions_missing import (
    FEATURE_SEVERITY,
    RULES,
    AgentPermissionsMissing,
    AgentServiceAccountMissing,
    AgentServiceAccountUnset,
    BindingSubjectWrongNamespace,
    BoundRoleMissing,
    LayeredReader,
    agent_accounts,
    check_permissions,
    describe_requests,
    rbac_evaluator,
    rules_for_denied,
    with_bootstrap_policy,
)

__all__ = [
    "FEATURE_SEVERITY",
    "RULES",
    "AgentPermissionsMissing",
    "AgentServiceAccountMissing",
    "AgentServiceAccountUnset",
    "BindingSubjectWrongNamespace",
    "BoundRoleMissing",
    "LayeredReader",
    "agent_accounts",
    "check_permissions",
    "describe_requests",
    "rbac_evaluator",
    "rules_for_denied",
    "with_bootstrap_policy",
]
