"""Fixes aimed at what owns the object: Helm values, a DatadogAgent patch, or the object itself.

A rule writes the corrected object. When a Helm release or the Datadog Operator renders that
object, applying it lasts until the next `helm upgrade` or reconcile, so the change is turned into
the owner's terms: the difference between the object in the cluster and the corrected one (env
vars, pod annotations, images, volumes, the check configuration) becomes values for
`helm upgrade --reuse-values -f` or a merge patch of the `DatadogAgent`. The corrected object stays
as the alternative (applied directly, it holds until the owner renders again). A change with no
known owner field keeps the object fix and says that the owner will revert it.

Value paths, by source:
- Helm: DataDog/helm-charts `charts/datadog/values.yaml` (2.x to 3.240): `datadog.site`,
  `datadog.logs.enabled`, `datadog.logs.containerCollectAll`, `datadog.env`,
  `agents.containers.<agent|traceAgent|processAgent|systemProbe|securityAgent>.env`,
  `agents.podAnnotations`, `agents.image.tag`, `agents.volumes`, `agents.volumeMounts`,
  `clusterAgent.env`, `clusterAgent.podAnnotations`, `clusterAgent.image.tag`, and
  `datadog.confd.<file>` (rendered as the `<release>-confd` ConfigMap, mounted at `/conf.d` and
  copied into `conf.d/` by the image's entrypoint).
- Operator: DataDog/datadog-operator `api/datadoghq/v2alpha1/datadogagent_types.go`:
  `spec.global.site`, `spec.override.<nodeAgent|clusterAgent>.{env, annotations, image.tag,
  volumes, containers.<name>.{env, volumeMounts}, extraConfd.configDataMap}`.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from meshdoctor.datadog.install import (
    DATADOG_CHART_REF,
    HELM,
    MANIFESTS,
    OPERATOR,
    Owner,
    is_cluster_agent_workload,
    owner_of,
)
from meshdoctor.kube.manifest_yaml import to_yaml, without_server_fields
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import Finding, Remediation
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Chart keys of the node agent's containers (values.yaml `agents.containers`).
HELM_CONTAINER_KEYS = {
    "agent": "agent",
    "trace-agent": "traceAgent",
    "process-agent": "processAgent",
    "system-probe": "systemProbe",
    "security-agent": "securityAgent",
}

#: Env vars with a values key of their own: set there, the chart renders them in every container.
HELM_ENV_VALUES: dict[str, tuple[str, ...]] = {
    "DD_SITE": ("datadog", "site"),
    "DD_LOGS_ENABLED": ("datadog", "logs", "enabled"),
    "DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL": ("datadog", "logs", "containerCollectAll"),
}
_BOOLEAN_VALUES = {"DD_LOGS_ENABLED", "DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL"}

#: The same for the DatadogAgent.
OPERATOR_ENV_FIELDS: dict[str, tuple[str, ...]] = {"DD_SITE": ("spec", "global", "site")}

#: The confd ConfigMap the chart renders from `datadog.confd` (templates/confd-configmap.yaml).
HELM_CONFD_SUFFIX = "-confd"


@dataclass
class _Change:
    """What differs between an owned object and its corrected copy, in owner terms."""

    values: dict[str, Any] = field(default_factory=dict)
    """The owner's document (Helm values, or the DatadogAgent merge patch)."""
    said: list[str] = field(default_factory=list)
    """Each change in words."""
    unmapped: list[str] = field(default_factory=list)
    """Changed fields the owner has no setting for."""


def _put(doc: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = doc
    for step in path[:-1]:
        node = node.setdefault(step, {})
    node[path[-1]] = value


def _append(doc: dict[str, Any], path: Sequence[str], item: Any) -> None:
    node = doc
    for step in path[:-1]:
        node = node.setdefault(step, {})
    node.setdefault(path[-1], []).append(item)


def _by_name(items: Any) -> dict[str, Any]:
    return {str(i.get("name")): i for i in items or [] if isinstance(i, Mapping)}


def _component(obj: Mapping[str, Any]) -> str:
    """`agent` (the node agent DaemonSet) or `cluster-agent`."""
    return "cluster-agent" if is_cluster_agent_workload(obj) else "agent"


def _workload_change(owner: Owner, before: KubeObject, after: KubeObject) -> _Change:
    change = _Change()
    helm = owner.manager == HELM
    component = _component(before)
    old_t, new_t = pod_template(before) or {}, pod_template(after) or {}
    if helm:
        prefix: tuple[str, ...] = ("clusterAgent",) if component == "cluster-agent" else ("agents",)
    else:
        prefix = ("spec", "override", "clusterAgent" if component == "cluster-agent" else "nodeAgent")
    # Pod annotations.
    old_a = (old_t.get("metadata") or {}).get("annotations") or {}
    new_a = (new_t.get("metadata") or {}).get("annotations") or {}
    for key in sorted(set(old_a) | set(new_a)):
        if old_a.get(key) != new_a.get(key):
            path = (*prefix, "podAnnotations" if helm else "annotations", key)
            _put(change.values, path, new_a.get(key))
            change.said.append(f"pod annotation {key}={new_a.get(key)}")
    old_s, new_s = old_t.get("spec") or {}, new_t.get("spec") or {}
    # Volumes added or changed.
    old_v, new_v = _by_name(old_s.get("volumes")), _by_name(new_s.get("volumes"))
    for name in sorted(new_v):
        if old_v.get(name) != new_v[name]:
            _append(change.values, (*prefix, "volumes"), new_v[name])
            change.said.append(f"volume {name}")
    for name in sorted(set(old_v) - set(new_v)):
        change.unmapped.append(f"volume {name} removed")
    for list_key in ("initContainers", "containers"):
        old_c, new_c = _by_name(old_s.get(list_key)), _by_name(new_s.get(list_key))
        for cname in sorted(new_c):
            _container_change(change, owner, prefix, component, cname, old_c.get(cname) or {}, new_c[cname])
    for key in sorted(set(old_s) | set(new_s)):
        if key in ("volumes", "containers", "initContainers"):
            continue
        if old_s.get(key) != new_s.get(key):
            change.unmapped.append(f"spec.template.spec.{key}")
    return change


def _container_change(
    change: _Change,
    owner: Owner,
    prefix: tuple[str, ...],
    component: str,
    cname: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
) -> None:
    helm = owner.manager == HELM
    if helm and component == "agent":
        key = HELM_CONTAINER_KEYS.get(cname)
        env_path: tuple[str, ...] | None = (*prefix, "containers", key, "env") if key else None
    elif helm:
        env_path = (*prefix, "env")
    else:
        env_path = (*prefix, "containers", cname, "env")
    old_e, new_e = _by_name(old.get("env")), _by_name(new.get("env"))
    for name in sorted(set(old_e) | set(new_e)):
        if old_e.get(name) == new_e.get(name):
            continue
        var = new_e.get(name)
        if var is not None and "<redacted" in str(var.get("value", "")):
            continue  # a literal secret left out of the fix, not a change to make
        special = (HELM_ENV_VALUES if helm else OPERATOR_ENV_FIELDS).get(name)
        if var is not None and special and "value" in var and component == "agent":
            value: Any = var["value"]
            if name in _BOOLEAN_VALUES:
                value = str(value).lower() == "true"
            if value not in _values_at(change.values, special):
                _put(change.values, special, value)
                change.said.append(f"{'.'.join(special)}={value}")
            continue
        if var is None:
            change.unmapped.append(f"env {name} removed from container {cname}")
        elif env_path is None:
            change.unmapped.append(f"env {name} of container {cname}")
        else:
            _append(change.values, env_path, var)
            change.said.append(f"env {name} on container {cname}")
    if old.get("image") != new.get("image"):
        tag = str(new.get("image") or "").rpartition(":")[2]
        image_path = (*prefix, "image", "tag")
        if _values_at(change.values, image_path) != [tag]:
            _put(change.values, image_path, tag)
            change.said.append(f"image tag {tag}")
    old_m, new_m = _by_name(old.get("volumeMounts")), _by_name(new.get("volumeMounts"))
    for name in sorted(new_m):
        if old_m.get(name) != new_m[name]:
            path = (*prefix, "volumeMounts") if helm else (*prefix, "containers", cname, "volumeMounts")
            _append(change.values, path, new_m[name])
            change.said.append(f"volumeMount {name} on container {cname}")
    for key in sorted(set(old) | set(new)):
        if key not in ("env", "image", "volumeMounts", "name") and old.get(key) != new.get(key):
            change.unmapped.append(f"container {cname} {key}")


def _values_at(doc: Mapping[str, Any], path: Sequence[str]) -> list[Any]:
    node: Any = doc
    for step in path:
        if not isinstance(node, Mapping) or step not in node:
            return []
        node = node[step]
    return [node]


def _configmap_change(owner: Owner, before: KubeObject, after: KubeObject) -> _Change | None:
    """The chart's confd ConfigMap (or any check ConfigMap) as `datadog.confd` / `extraConfd`."""
    if owner.manager == HELM and not name_of(before).endswith(HELM_CONFD_SUFFIX):
        return None
    change = _Change()
    old, new = before.get("data") or {}, after.get("data") or {}
    path = ("datadog", "confd") if owner.manager == HELM else ("spec", "override", "nodeAgent", "extraConfd")
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if owner.manager == HELM:
                _put(change.values, (*path, key), new.get(key))
            else:
                _put(change.values, (*path, "configDataMap", key), new.get(key))
            change.said.append(f"check file {key}" + (" removed" if new.get(key) is None else ""))
    return change


def _docs(manifest: str) -> list[KubeObject]:
    try:
        return [d for d in yaml.safe_load_all(manifest) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


def _helm_commands(owner: Owner, values: Mapping[str, Any]) -> tuple[str, ...]:
    version = f" --version {owner.chart_version}" if owner.chart_version else ""
    release = owner.release or "<release>"
    upgrade = (
        f"helm upgrade {release} {DATADOG_CHART_REF} --namespace {owner.release_namespace}{version} "
        "--reuse-values -f meshdoctor-values.yaml"
    )
    return (
        f"cat > meshdoctor-values.yaml <<'EOF'\n{to_yaml(values)}EOF",
        f"{upgrade} --dry-run",
        upgrade,
    )


def _operator_commands(owner: Owner, patch: Mapping[str, Any]) -> tuple[str, ...]:
    assert owner.resource is not None
    body = shlex.quote(json.dumps(patch, sort_keys=True, separators=(",", ":")))
    base = f"kubectl patch datadogagent {owner.resource.name} -n {owner.resource.namespace} --type merge -p {body}"
    return (f"{base} --dry-run=server", base)


def _merged(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) applied: what `kubectl patch --type merge` does."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merged(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _owned(reader: ObjectReader, doc: KubeObject) -> tuple[KubeObject, Owner] | None:
    original = reader.get(str(doc.get("kind", "")), namespace_of(doc), name_of(doc))
    if original is None:
        return None
    owner = owner_of(original)
    if owner.manager == MANIFESTS or (owner.manager == HELM and not owner.is_datadog_chart):
        return None
    if owner.manager == OPERATOR and owner.resource is None:
        return None
    return original, owner


def aim_remediation(reader: ObjectReader, remediation: Remediation) -> Remediation:
    """The remediation in the owner's terms when its objects are rendered by Helm or the Operator."""
    owned: list[tuple[Owner, _Change, KubeObject]] = []
    kept: list[str] = []
    for manifest in remediation.manifests:
        docs = _docs(manifest)
        found = _owned(reader, docs[0]) if len(docs) == 1 else None
        if found is None:
            kept.append(manifest)
            continue
        original, owner = found
        if original.get("kind") == "ConfigMap":
            change = _configmap_change(owner, original, docs[0])
        elif pod_template(original) is not None:
            change = _workload_change(owner, original, docs[0])
        else:
            change = None
        if change is None or change.unmapped or not change.said:
            kept.append(manifest)
            if change is not None and change.unmapped:
                summary = (
                    f"{remediation.summary} {original.get('kind')} {namespace_of(original)}/"
                    f"{name_of(original)} is rendered by {owner.describe()} ({owner.evidence}), which "
                    f"has no setting for {', '.join(change.unmapped)}: the next render reverts it."
                )
                remediation = replace(remediation, summary=summary, safe=False)
            continue
        owned.append((owner, change, docs[0]))
    if not owned:
        return remediation
    owners = {(o.manager, o.release, o.resource) for o, _, _ in owned}
    if len(owners) > 1:
        return remediation
    owner = owned[0][0]
    values: dict[str, Any] = {}
    said: list[str] = []
    for _, change, _ in owned:
        _merged(values, change.values)
        said += change.said
    what = ", ".join(f"{d.get('kind')} {namespace_of(d)}/{name_of(d)}" for _, _, d in owned)
    if owner.manager == HELM:
        commands = _helm_commands(owner, values)
        how = "through the release's values (`helm upgrade --reuse-values -f`, chart version kept)"
        lasting = "the next `helm upgrade` reverts"
    else:
        commands = _operator_commands(owner, values)
        how = "with a merge patch of the DatadogAgent"
        lasting = "the Operator's next reconcile reverts"
    summary = (
        f"{remediation.summary} {what} is rendered by {owner.describe()} ({owner.evidence}): "
        f"change it {how}: {'; '.join(said)}."
    )
    manifests: tuple[str, ...] = tuple(kept)
    if owner.manager == OPERATOR and owner.resource is not None:
        agent = reader.get("DatadogAgent", owner.resource.namespace, owner.resource.name)
        credentials = ((agent or {}).get("spec") or {}).get("global", {}).get("credentials") or {}
        # A DatadogAgent holding a literal key is never written back: the patch command suffices.
        if agent is not None and not any(credentials.get(k) for k in ("apiKey", "appKey")):
            fixed = _merged(without_server_fields(agent), values)
            manifests = (*manifests, to_yaml(fixed))
    alternative = f"or apply the corrected {what} directly (shown as the alternative): it holds until {lasting} it."
    return Remediation(
        summary=summary,
        manifests=manifests,
        commands=commands if not kept else (*commands, *remediation.commands),
        safe=remediation.safe and not kept,
        alternatives=(*remediation.alternatives, alternative),
        alternative_manifests=(*remediation.alternative_manifests, *(to_yaml(d) for _, _, d in owned)),
    )


def aim_at_owners(reader: ObjectReader, findings: Sequence[Finding]) -> list[Finding]:
    """Every finding with its remediation aimed at the owner of the objects it changes."""
    aimed = []
    for finding in findings:
        if finding.remediation is not None and finding.remediation.manifests:
            finding = replace(finding, remediation=aim_remediation(reader, finding.remediation))
        aimed.append(finding)
    return aimed
