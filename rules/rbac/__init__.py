"""RBAC: the agent's service account and what it may do.

Ids: MD401 agent runs as `default` while its RBAC binds another account, MD402 the agent's
service account does not exist, MD403 a binding names the agent's account in another namespace,
MD404 a binding of the agent's account refers to a role that does not exist, MD405 the agent's
account lacks permissions the features it uses need.

Each root cause gives one finding: where MD401, MD403 or MD404 explain an agent's denials, MD405
judges the agent as if their fixes were applied (`structural_fixes`) and reports only what would
still be denied, with a fix to apply after theirs.
"""

from __future__ import annotations

from .md401_default_service_account import AgentServiceAccountUnset
from .md402_service_account_missing import AgentServiceAccountMissing
from .md403_subject_wrong_namespace import BindingSubjectWrongNamespace
from .md404_bound_role_missing import BoundRoleMissing
from .md405_permissions_missing import AgentPermissionsMissing

RULES = [
    AgentServiceAccountUnset,
    AgentServiceAccountMissing,
    BindingSubjectWrongNamespace,
    BoundRoleMissing,
    AgentPermissionsMissing,
]
