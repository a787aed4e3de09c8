"""Building remediation manifests: whole objects a person can review and `kubectl apply`.

A fix to an existing object is the whole corrected object with everything else preserved, minus
what the API server owns (status, uid, resourceVersion, managedFields…) — and minus secrets: a
literal API key in an env var is replaced by a placeholder, never reproduced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from meshdoctor.kube.manifest_yaml import to_yaml, without_server_fields
from meshdoctor.model import Remediation
from meshdoctor.snapshot import KubeObject

#: Env var names whose literal values are secrets (Datadog keys, tokens, passwords).
SECRET_ENV_NAME = re.compile(r"(^DD_API_KEY$|^DD_APP_KEY$|_API_KEY$|_APP_KEY$|_KEY$|TOKEN|PASSWORD|SECRET)")
#: Suffixes of env names whose value says where a secret is (a path, a Secret's name), not what it is.
_NAMES_A_SECRET = ("_PATH", "_FILE", "_NAME")
SECRET_PLACEHOLDER = "<redacted: was a literal secret; use a secretKeyRef>"

#: Stands for the manifest's file in remediation commands; `--emit-fixes` puts the real name in.
FILE_PLACEHOLDER = "<file>"


def clean_copy(obj: KubeObject, served: bool = True) -> KubeObject:
    """A deep copy without status and server-owned metadata, with literal secrets replaced.

    With `served`, a workload written in an API version Kubernetes stopped serving
    (extensions/v1beta1 DaemonSet…) comes back in its replacement, so the fix can be applied.
    """
    clean = without_server_fields(obj)
    if served:
        to_served_api(clean)
    redact_literal_secrets(clean)
    return clean


def to_served_api(obj: KubeObject) -> list[str]:
    """Rewrite a workload of a removed API version in its replacement; say what changed.

    apps/v1 requires `spec.selector` (taken from the pod template's labels), and a DaemonSet of
    extensions/v1beta1 defaulted to the OnDelete update strategy, which is kept explicitly.
    """
    from meshdoctor.kube.removed_apis import LEGACY_DAEMONSET_UPDATE_STRATEGY, REMOVED_WORKLOAD_APIS

    removed = REMOVED_WORKLOAD_APIS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if removed is None:
        return []
    notes = [f"written as {removed[1]} instead of {obj.get('apiVersion')}"]
    spec = obj.setdefault("spec", {})
    if not spec.get("selector"):
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        spec["selector"] = {"matchLabels": dict(labels)}
        notes.append("added spec.selector from the pod template's labels (required by apps/v1)")
    if obj.get("kind") == "DaemonSet" and "updateStrategy" not in spec:
        spec["updateStrategy"] = {"type": LEGACY_DAEMONSET_UPDATE_STRATEGY}
        notes.append(
            "kept the old default update strategy OnDelete explicitly (apps/v1 would default to RollingUpdate)"
        )
    ordered_spec = {key: spec.pop(key) for key in ("selector", "updateStrategy") if key in spec}
    ordered_spec.update(spec)
    obj["spec"] = ordered_spec
    kind = obj["kind"]
    rest = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    obj.clear()
    obj.update({"apiVersion": removed[1], "kind": kind, **rest})
    return notes


def redact_literal_secrets(obj: Any) -> None:
    """Replace literal values of secret-looking env vars, wherever containers appear."""
    if isinstance(obj, dict):
        env = obj.get("env")
        if isinstance(env, list):
            for var in env:
                if isinstance(var, dict) and "value" in var and SECRET_ENV_NAME.search(str(var.get("name", ""))):
                    # A path to a token file (DD_AUTH_TOKEN_FILE_PATH=/etc/datadog-agent/auth/token,
                    # the Helm chart's) or the name of the Secret holding it
                    # (DD_CLUSTER_AGENT_TOKEN_NAME, the Operator's) names where a secret is, not the secret.
                    if str(var.get("name", "")).endswith(_NAMES_A_SECRET) or str(var["value"]).startswith("/"):
                        continue
                    if var["value"] not in (None, ""):
                        var["value"] = SECRET_PLACEHOLDER
        for value in obj.values():
            redact_literal_secrets(value)
    elif isinstance(obj, list):
        for item in obj:
            redact_literal_secrets(item)


def manifests(objs: Iterable[KubeObject]) -> tuple[str, ...]:
    """YAML documents for a remediation."""
    return tuple(to_yaml(o) for o in objs)


def dry_run_then_apply(file_hint: str = FILE_PLACEHOLDER) -> tuple[str, ...]:
    """Review with a server-side dry run, then apply."""
    return (
        f"kubectl apply --dry-run=server -f {file_hint}",
        f"kubectl apply -f {file_hint}",
    )


def apply_manifests(
    summary: str,
    objects: Iterable[KubeObject],
    *,
    safe: bool,
    before: Iterable[str] = (),
    alternatives: Iterable[str] = (),
    alternative_objects: Iterable[KubeObject] = (),
) -> Remediation:
    """A remediation applying `objects` (as YAML, in order) after the commands `before`.

    Every family's fix made of manifests ends the same way — YAML, a server-side dry run, the
    apply — so it is assembled here. `alternative_objects` are another way out, applied instead.
    """
    return Remediation(
        summary=summary,
        manifests=manifests(objects),
        commands=(*before, *dry_run_then_apply()),
        safe=safe,
        alternatives=tuple(alternatives),
        alternative_manifests=manifests(alternative_objects),
    )
