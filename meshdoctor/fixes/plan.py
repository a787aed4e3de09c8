"""The fix plan: every finding's changes combined into steps a person applies in order.

Rules each write whole corrected objects. Applied one file after another they undo each other,
so the plan (DESIGN.md "The fix plan"):

1. merges every fix of one object into one corrected object (`fixes.merge`), starting from the
   object in the cluster, and names any field two fixes disagree on;
2. aims objects that a Helm release or the Datadog Operator renders at that owner, one step per
   owner (`datadog.owner_fixes.aim_remediation`);
3. moves literal secrets without printing them: an env var whose literal value the cluster
   holds becomes a `secretKeyRef`, and a command copies the value from the running object into
   the Secret inside the cluster, so no step carries a placeholder where a running value was;
4. orders the steps so prerequisites come first (a Secret before what reads it, RBAC and the
   ServiceEntry before the rollout), and says what each resolves, whether it is safe as is,
   and what it restarts;
5. keeps each alternative (out of the mesh instead of a ServiceEntry) as a named choice,
   computed on top of the plan's other changes, applied instead of the steps it replaces.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from meshdoctor.datadog.install import HELM, OPERATOR, owner_of
from meshdoctor.datadog.owner_fixes import aim_remediation
from meshdoctor.fixes.manifests import SECRET_PLACEHOLDER, clean_copy, dry_run_then_apply
from meshdoctor.fixes.merge import MISSING, Conflict, merge3, merge_fixes
from meshdoctor.fixes.names import fix_stem, safe_name
from meshdoctor.kube.manifest_yaml import to_yaml
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import Finding, ObjectRef, Remediation, Report
from meshdoctor.secrets_mask import mask_secrets, mask_yaml
from meshdoctor.snapshot import KubeObject, ObjectReader

#: Where the plan moves a literal Datadog key: the Secret the Helm chart and the Datadog docs
#: use (`datadog-secret`, keys `api-key` and `app-key`: helm-charts `charts/datadog/values.yaml`
#: `datadog.apiKeyExistingSecret`, docs "Install the Datadog Agent on Kubernetes").
DATADOG_SECRET = "datadog-secret"
DATADOG_SECRET_KEYS = {"DD_API_KEY": "api-key", "DD_APP_KEY": "app-key"}

#: Text that marks a value a person must fill in; no step may carry one.
PLACEHOLDER_MARKS = (SECRET_PLACEHOLDER, "<your ")

#: Apply order by kind: what others reference first, what restarts pods last.
_KIND_RANK = {
    "Namespace": 0,
    "CustomResourceDefinition": 1,
    "Secret": 2,
    "ConfigMap": 2,
    "ServiceAccount": 3,
    "ClusterRole": 4,
    "Role": 4,
    "ClusterRoleBinding": 5,
    "RoleBinding": 5,
    "Service": 6,
    "Endpoints": 6,
    "ServiceEntry": 6,
    "Sidecar": 6,
    "DestinationRule": 6,
    "PeerAuthentication": 6,
    "AuthorizationPolicy": 6,
    "NetworkPolicy": 6,
}
_WORKLOAD_RANK = 8

_NO_RESTART = {
    "Secret": "nothing restarts; pods read it when they start",
    "ConfigMap": "nothing restarts; the agent reads its check configuration when it starts",
    "ServiceAccount": "nothing restarts",
    "ClusterRole": "nothing restarts; the API server enforces it at once",
    "Role": "nothing restarts; the API server enforces it at once",
    "ClusterRoleBinding": "nothing restarts; the API server enforces it at once",
    "RoleBinding": "nothing restarts; the API server enforces it at once",
    "Service": "nothing restarts",
    "ServiceEntry": "nothing restarts; istiod pushes it to the sidecars within seconds",
    "Sidecar": "nothing restarts; istiod pushes it to the sidecars within seconds",
    "DestinationRule": "nothing restarts; istiod pushes it to the sidecars within seconds",
    "PeerAuthentication": "nothing restarts; istiod pushes it to the sidecars within seconds",
    "NetworkPolicy": "nothing restarts; the network plugin enforces it at once",
}

Key = tuple[str, str, str]


@dataclass(frozen=True)
class PlanStep:
    """One thing to apply: a corrected object, a command, or an owner's change."""

    number: int
    """1-based position in the plan."""
    name: str
    """File name: `03-daemonset-default-datadog-agent.yaml`, or `.sh` for a step made of commands."""
    title: str
    """What it changes, e.g. `DaemonSet default/datadog-agent`."""
    objects: tuple[ObjectRef, ...]
    """The objects it writes."""
    resolves: tuple[str, ...]
    """The findings it fixes (`MD101 DaemonSet default/datadog-agent`)."""
    safe: bool
    """Whether it can be applied as is."""
    restarts: str
    """What applying it restarts, in words."""
    owner: str
    """What renders the objects (`plain manifests`, `Helm release datadog (chart datadog-3.240.0)`)."""
    content: str
    """The file's text: a YAML stream, or the commands of a command step."""
    dry_run: tuple[str, ...]
    """Commands that try the step on the server without changing anything."""
    apply: tuple[str, ...]
    """Commands that apply it, in order."""
    notes: tuple[str, ...] = ()
    """Conflicts between fixes, secrets moved, owner caveats."""
    checks: tuple[str, ...] = ()
    """Read-only commands the fixes suggest running first (rollout status, describe)."""
    rendered: str = ""
    """For a step aimed at Helm or the Operator: the objects as the owner renders them after the
    step (YAML, for review; not applied by the plan)."""

    @property
    def rendered_name(self) -> str:
        """File name of `rendered`: `03-helm-datadog-datadog.rendered.yaml`."""
        return self.name.rsplit(".", 1)[0] + ".rendered.yaml"


@dataclass(frozen=True)
class PlanAlternative:
    """Another way out for one finding: applied instead of some steps, never with them."""

    name: str
    """File name inside `alternatives/`."""
    finding: str
    """The finding it resolves."""
    summary: str
    """What it does instead."""
    content: str
    """The YAML stream: the objects with every other change of the plan kept."""
    replaces: tuple[int, ...]
    """Steps writing the same objects: apply this file instead of them."""
    unnecessary: tuple[int, ...]
    """Steps that serve only this finding: skip them when taking the alternative."""


@dataclass(frozen=True)
class ManualFix:
    """A finding whose fix is not an object: what a person does, and the commands to start with."""

    finding: str
    summary: str
    commands: tuple[str, ...]


@dataclass(frozen=True)
class FixPlan:
    """The whole plan, in apply order."""

    steps: tuple[PlanStep, ...] = ()
    alternatives: tuple[PlanAlternative, ...] = ()
    manual: tuple[ManualFix, ...] = ()

    def step_of(self, finding_label: str) -> list[int]:
        """Numbers of the steps resolving a finding."""
        return [step.number for step in self.steps if finding_label in step.resolves]


def with_plan(report: Report, reader: ObjectReader) -> Report:
    """The report with its fix plan built from the objects it was made from."""
    return dataclasses.replace(report, plan=build_plan(reader, report.findings))


def finding_label(finding: Finding) -> str:
    """`MD101 DaemonSet default/datadog-agent`: how the plan names a finding."""
    objects = ", ".join(str(ref) for ref in finding.objects)
    return f"{finding.rule} {objects}" if objects else finding.rule


@dataclass
class _ObjectFixes:
    """Every fix of one object, before merging."""

    key: Key
    original: KubeObject | None
    docs: list[KubeObject] = field(default_factory=list)
    finding_of_doc: list[Finding] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    safe: bool = True
    checks: list[str] = field(default_factory=list)


@dataclass
class _Draft:
    """A step before it is numbered."""

    rank: int
    key: Key
    title: str
    objects: list[ObjectRef]
    resolves: list[str]
    safe: bool
    restarts: str
    owner: str
    content: str
    dry_run: list[str]
    apply: list[str]
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    stem: str = ""
    is_script: bool = False
    rendered: str = ""
    replaces_existing: bool = False


def build_plan(reader: ObjectReader, findings: Sequence[Finding]) -> FixPlan:
    """The plan for the unsuppressed findings, in report order (the worst first)."""
    by_object: dict[Key, _ObjectFixes] = {}
    manual: list[ManualFix] = []
    alternatives: list[tuple[Finding, list[KubeObject], Remediation]] = []
    for finding in findings:
        remediation = finding.object_fix or finding.remediation
        if finding.suppressed_by is not None or remediation is None:
            continue
        if not remediation.manifests:
            if remediation.commands or remediation.summary:
                manual.append(
                    ManualFix(
                        finding_label(finding),
                        mask_secrets(remediation.summary),
                        tuple(mask_yaml(c) for c in remediation.commands),
                    )
                )
            continue
        for doc in _documents(remediation.manifests):
            key = _key(doc)
            fixes = by_object.get(key)
            if fixes is None:
                fixes = by_object[key] = _ObjectFixes(key, reader.get(*key))
            fixes.docs.append(doc)
            fixes.finding_of_doc.append(finding)
            if finding not in fixes.findings:
                fixes.findings.append(finding)
            fixes.safe = fixes.safe and remediation.safe
            fixes.checks += [
                mask_yaml(c) for c in remediation.commands if _is_check(c) and mask_yaml(c) not in fixes.checks
            ]
        if remediation.alternative_manifests:
            alternatives.append((finding, _documents(remediation.alternative_manifests), remediation))

    merged: dict[Key, KubeObject] = {}
    conflicts: dict[Key, list[Conflict]] = {}
    for key, fixes in by_object.items():
        # several fixes creating the same new object (two ServiceEntries) merge into their union
        base = clean_copy(fixes.original) if fixes.original is not None else {}
        merged[key], conflicts[key] = merge_fixes(base, fixes.docs)

    moves = _move_literal_secrets(reader, by_object, merged)
    drafts = [*_secret_drafts(reader, moves, merged)]
    owned_groups: dict[tuple[str, str, str], list[Key]] = {}
    for key, fixes in by_object.items():
        if key in moves.dropped_secrets:
            continue
        owner = owner_of(fixes.original) if fixes.original is not None else None
        if owner is not None and owner.manager in (HELM, OPERATOR):
            group = (owner.manager, owner.release or owner.release_namespace, str(owner.resource or ""))
            owned_groups.setdefault(group, []).append(key)
            continue
        drafts.append(_object_draft(fixes, merged[key], conflicts[key], moves.notes.get(key, [])))
    for keys in owned_groups.values():
        drafts += _owner_drafts(reader, [by_object[k] for k in keys], merged, conflicts, moves)

    steps = _numbered(drafts)
    return FixPlan(
        steps=tuple(steps),
        alternatives=tuple(_alternatives(reader, alternatives, merged, steps)),
        manual=tuple(manual),
    )


def _documents(manifests: Sequence[str]) -> list[KubeObject]:
    docs = []
    for manifest in manifests:
        for doc in yaml.load_all(manifest, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(doc, dict) and doc.get("kind"):
                docs.append(doc)
    return docs


def _key(doc: KubeObject) -> Key:
    return (str(doc.get("kind", "")), namespace_of(doc), name_of(doc))


def _ref(key: Key) -> ObjectRef:
    return ObjectRef(*key)


def _is_check(command: str) -> bool:
    """A read-only command a fix suggests (status, describe, get), not one that applies it."""
    words = command.split()
    verbs = {"get", "describe", "logs", "rollout", "auth", "exec"}
    return len(words) > 1 and words[0] == "kubectl" and bool(verbs & set(words[1:4])) and "restart" not in words


# --- secrets -------------------------------------------------------------------------------


@dataclass
class _SecretMove:
    """Literal values of one Secret-to-be: where each key's value is read from in the cluster."""

    namespace: str
    name: str
    sources: dict[str, tuple[Key, str, str, str]] = field(default_factory=dict)
    """Secret key -> (workload, container list field, container name, env var name)."""


@dataclass
class _Moves:
    secrets: dict[tuple[str, str], _SecretMove] = field(default_factory=dict)
    notes: dict[Key, list[str]] = field(default_factory=dict)
    dropped_secrets: set[Key] = field(default_factory=set)
    """Secret objects the fixes wrote with placeholders, replaced by a copy command."""
    resolves: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def _move_literal_secrets(
    reader: ObjectReader, by_object: dict[Key, _ObjectFixes], merged: dict[Key, KubeObject]
) -> _Moves:
    """Turn every literal secret env var of a merged workload into a secretKeyRef, and say from where."""
    moves = _Moves()
    for key, fixes in by_object.items():
        if fixes.original is None:
            continue
        template = pod_template(merged[key])
        original_template = pod_template(clean_copy(fixes.original))
        if template is None or original_template is None:
            continue
        literal = _placeholder_vars(original_template)
        for list_field, container_name, var in _env_vars(template):
            name = str(var.get("name", ""))
            if (list_field, container_name, name) not in literal:
                continue
            if var.get("value") == SECRET_PLACEHOLDER:
                var.pop("value")
                secret_name, secret_key = _secret_for(reader, key[1], name)
                var["valueFrom"] = {"secretKeyRef": {"name": secret_name, "key": secret_key}}
                moves.notes.setdefault(key, []).append(
                    f"{name} of container {container_name} now reads Secret {key[1]}/{secret_name} key {secret_key}"
                )
            ref = ((var.get("valueFrom") or {}).get("secretKeyRef")) or {}
            if not ref.get("name") or not ref.get("key"):
                continue
            move = moves.secrets.setdefault((key[1], ref["name"]), _SecretMove(key[1], ref["name"]))
            move.sources.setdefault(ref["key"], (key, list_field, container_name, name))
            moves.resolves.setdefault((key[1], ref["name"]), [])
            for finding, doc in zip(fixes.finding_of_doc, fixes.docs, strict=True):
                label = finding_label(finding)
                if label not in moves.resolves[(key[1], ref["name"])] and _refers_to_secret(
                    doc, list_field, container_name, name
                ):
                    moves.resolves[(key[1], ref["name"])].append(label)
    for (namespace, name), move in list(moves.secrets.items()):
        existing = reader.get("Secret", namespace, name)
        held = set((existing or {}).get("data") or {}) | set((existing or {}).get("stringData") or {})
        if existing is not None and set(move.sources) <= held:
            del moves.secrets[(namespace, name)]
            continue
        secret_object = ("Secret", namespace, name)
        if secret_object in by_object and _holds_placeholder(merged.get(secret_object)):
            moves.dropped_secrets.add(secret_object)
            for finding in by_object[secret_object].findings:
                label = finding_label(finding)
                if label not in moves.resolves[(namespace, name)]:
                    moves.resolves[(namespace, name)].append(label)
    return moves


def _refers_to_secret(doc: KubeObject, list_field: str, container_name: str, env_name: str) -> bool:
    """Whether a fix's copy of a workload reads this env var from a Secret."""
    template = pod_template(doc)
    if template is None:
        return False
    return any(
        field_name == list_field and name == container_name and var.get("name") == env_name and "valueFrom" in var
        for field_name, name, var in _env_vars(template)
    )


def _secret_for(reader: ObjectReader, namespace: str, env_name: str) -> tuple[str, str]:
    key = DATADOG_SECRET_KEYS.get(env_name) or env_name.lower().replace("_", "-")
    existing = reader.get("Secret", namespace, DATADOG_SECRET)
    if existing is None:
        return DATADOG_SECRET, key
    held = set(existing.get("data") or {}) | set(existing.get("stringData") or {})
    # never overwrite a Secret that holds other keys: a name of our own (as MD501 does)
    return (DATADOG_SECRET, key) if key in held else (f"{DATADOG_SECRET}-keys", key)


def _placeholder_vars(template: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (list_field, container_name, str(var.get("name", "")))
        for list_field, container_name, var in _env_vars(template)
        if var.get("value") == SECRET_PLACEHOLDER
    }


def _env_vars(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    spec = template.get("spec") or {}
    found = []
    for list_field in ("initContainers", "containers"):
        for container in spec.get(list_field) or []:
            if not isinstance(container, dict):
                continue
            for var in container.get("env") or []:
                if isinstance(var, dict):
                    found.append((list_field, str(container.get("name", "")), var))
    return found


def _holds_placeholder(obj: Any) -> bool:
    text = to_yaml(obj) if obj is not None else ""
    return any(mark in text for mark in PLACEHOLDER_MARKS)


def _secret_drafts(reader: ObjectReader, moves: _Moves, merged: dict[Key, KubeObject]) -> list[_Draft]:
    drafts = []
    for (namespace, name), move in sorted(moves.secrets.items()):
        exists = f"kubectl -n {namespace} get secret {name} >/dev/null 2>&1"
        create = f"kubectl -n {namespace} create secret generic {name}"
        if len(move.sources) == 1:
            [(secret_key, source)] = move.sources.items()
            command = f"{_read_value(source)} | {create} --from-file={secret_key}=/dev/stdin"
        else:
            files = " ".join(f"--from-file={k}=<({_read_value(s)})" for k, s in sorted(move.sources.items()))
            command = f"{create} {files}"
        what = ", ".join(
            f"{k} from {s[3]} of {s[0][0]} {s[0][1]}/{s[0][2]} (container {s[2]})"
            for k, s in sorted(move.sources.items())
        )
        apply = f"{exists} || {command}"
        content = (
            f"# Copies the literal value(s) the cluster holds into Secret {namespace}/{name}: {what}.\n"
            "# The value goes from the API server to the API server: meshdoctor never reads it,\n"
            "# and it is not printed.\n"
            "# Skipped when the Secret exists (a second run keeps it). Rotate the key in Datadog afterwards.\n"
            f"{apply}\n"
        )
        drafts.append(
            _Draft(
                rank=_KIND_RANK["Secret"],
                key=("Secret", namespace, name),
                title=f"Secret {namespace}/{name}",
                objects=[ObjectRef("Secret", namespace, name)],
                resolves=moves.resolves.get((namespace, name), []),
                safe=True,
                restarts=_NO_RESTART["Secret"],
                owner="created by command",
                content=content,
                dry_run=[f"{exists} || {command} --dry-run=server"],
                apply=[apply],
                notes=[f"holds {what}"],
                stem=f"secret-{namespace}-{name}",
                is_script=True,
            )
        )
    return drafts


def _read_value(source: tuple[Key, str, str, str]) -> str:
    (kind, namespace, name), list_field, container, env_name = source
    path = f'{{.spec.template.spec.{list_field}[?(@.name=="{container}")].env[?(@.name=="{env_name}")].value}}'
    return f"kubectl -n {namespace} get {kind.lower()} {name} -o jsonpath={shlex.quote(path)}"


# --- object steps --------------------------------------------------------------------------


def _object_draft(fixes: _ObjectFixes, obj: KubeObject, conflicts: list[Conflict], moved: list[str]) -> _Draft:
    kind, namespace, name = fixes.key
    ref = _ref(fixes.key)
    notes = [*moved, *(_conflict_note(c) for c in conflicts)]
    if fixes.original is None:
        notes.insert(0, "new object")
    restarts, after = _restart_effect(fixes.original, obj)
    text = to_yaml(obj)
    content = mask_yaml(text)
    if content != text:
        notes.append(
            "a value that reads as a credential is masked in this file: put the value the cluster holds "
            "back before applying, or the object gets the mask"
        )
    placeholder = _holds_placeholder(obj)
    safe = fixes.safe and not conflicts and not after and not placeholder and content == text
    if placeholder:
        notes.append("holds a placeholder: fill it in before applying")
    return _Draft(
        rank=_KIND_RANK.get(kind, _WORKLOAD_RANK if pod_template(obj) is not None else 7),
        key=fixes.key,
        title=str(ref),
        objects=[ref],
        resolves=[finding_label(f) for f in fixes.findings],
        safe=safe,
        restarts=restarts,
        owner="plain manifests" if fixes.original is None else owner_of(fixes.original).describe(),
        content=content,
        dry_run=[],
        apply=list(after),
        notes=notes,
        checks=fixes.checks,
        stem=f"{kind.lower()}-{namespace or '_cluster'}-{name}",
        replaces_existing=fixes.original is not None,
    )


def _conflict_note(conflict: Conflict) -> str:
    return f"two fixes disagree on {conflict.path}: kept {conflict.kept!r}, not {conflict.dropped!r}"


def _restart_effect(original: KubeObject | None, fixed: KubeObject) -> tuple[str, list[str]]:
    """What applying the object restarts, and the commands a rollout then needs."""
    kind = str(fixed.get("kind", ""))
    template = pod_template(fixed)
    if template is None or kind == "Pod":
        return _NO_RESTART.get(kind, "nothing restarts"), []
    before = pod_template(clean_copy(original)) if original is not None else None
    if before == template:
        return "nothing restarts: the pod template is unchanged", []
    namespace, name = namespace_of(fixed), name_of(fixed)
    strategy = ((fixed.get("spec") or {}).get("updateStrategy") or {}).get("type")
    if kind == "DaemonSet" and strategy == "OnDelete":
        selector = ((fixed.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        if not labels:
            return "the pods keep the old template until deleted (updateStrategy OnDelete)", []
        return (
            "the pods keep the old template until deleted (updateStrategy OnDelete): the step deletes "
            "them and the DaemonSet controller recreates them with the new one (each node's agent is "
            "down for a moment)",
            [f"kubectl -n {namespace} delete pod -l {labels}"],
        )
    if kind == "DaemonSet":
        return "rolls the agent pods, node by node (RollingUpdate)", []
    return f"rolls the pods of {kind} {namespace}/{name}", []


def _owner_drafts(
    reader: ObjectReader,
    group: list[_ObjectFixes],
    merged: dict[Key, KubeObject],
    conflicts: dict[Key, list[Conflict]],
    moves: _Moves,
) -> list[_Draft]:
    """One step for everything a Helm release or a DatadogAgent renders, in the owner's terms."""
    assert group[0].original is not None
    owner = owner_of(group[0].original)
    objects = [merged[f.key] for f in group]
    direct = Remediation(
        summary="",
        manifests=tuple(to_yaml(o) for o in objects),
        commands=dry_run_then_apply(),
        safe=all(f.safe for f in group),
    )
    aimed = aim_remediation(reader, direct)
    if aimed.commands == direct.commands:  # no setting of the owner carries the change
        drafts = []
        for fixes in group:
            draft = _object_draft(fixes, merged[fixes.key], conflicts[fixes.key], moves.notes.get(fixes.key, []))
            draft.notes.append(f"rendered by {owner.describe()} ({owner.evidence}): its next render reverts this")
            draft.safe = False
            drafts.append(draft)
        return drafts
    kept_keys = {_key(doc) for doc in _documents(aimed.manifests) if doc.get("kind") != "DatadogAgent"}
    drafts = [
        _object_draft(f, merged[f.key], conflicts[f.key], moves.notes.get(f.key, []))
        for f in group
        if f.key in kept_keys
    ]
    for draft in drafts:
        draft.notes.append(
            f"rendered by {owner.describe()}, which has no setting for this change: its next render reverts it"
        )
        draft.safe = False
    commands = [c for c in aimed.commands if c not in dry_run_then_apply()]
    dry_run = [c for c in commands if "--dry-run" in c or c.startswith("cat >")]
    apply = [c for c in commands if "--dry-run" not in c]
    if owner.manager == HELM:
        title = f"Helm release {owner.release_namespace}/{owner.release}"
        stem = f"helm-{owner.release_namespace}-{owner.release}"
    else:
        assert owner.resource is not None
        title = f"DatadogAgent {owner.resource.namespace}/{owner.resource.name}"
        stem = f"datadogagent-{owner.resource.namespace}-{owner.resource.name}"
    notes = [n for f in group for n in moves.notes.get(f.key, [])]
    notes += [_conflict_note(c) for f in group for c in conflicts[f.key]]
    rendered = ", ".join(str(_ref(f.key)) for f in group if f.key not in kept_keys)
    notes.append(f"{rendered} rendered by {owner.describe()} ({owner.evidence})")
    findings = [finding_label(x) for f in group if f.key not in kept_keys for x in f.findings]
    drafts.append(
        _Draft(
            rank=_WORKLOAD_RANK + 1,
            key=("~owner", owner.manager, title),
            title=title,
            objects=[_ref(f.key) for f in group if f.key not in kept_keys],
            resolves=list(dict.fromkeys(findings)),
            safe=aimed.safe and not any(conflicts[f.key] for f in group),
            restarts="the owner renders the objects again: the agent pods roll with the new template",
            owner=owner.describe(),
            content="".join(f"{mask_yaml(c)}\n" for c in apply),
            dry_run=[mask_yaml(c) for c in dry_run],
            apply=[mask_yaml(c) for c in apply],
            notes=notes,
            checks=[c for f in group for c in f.checks],
            stem=stem,
            is_script=True,
            rendered="---\n".join(mask_yaml(to_yaml(merged[f.key])) for f in group if f.key not in kept_keys),
        )
    )
    return drafts


def _numbered(drafts: list[_Draft]) -> list[PlanStep]:
    ordered = sorted(drafts, key=lambda d: (d.rank, d.key))
    steps = []
    for number, draft in enumerate(ordered, start=1):
        suffix = ".sh" if draft.is_script else ".yaml"
        name = f"{number:02d}-{_safe(draft.stem)}{suffix}"
        if not draft.is_script:
            # A whole corrected object replaces the one in the cluster: `kubectl apply` would keep
            # what the fix removes whenever the object lacks kubectl's last-applied annotation
            # (created by `kubectl create`, Helm or a controller), and server-side apply keeps
            # fields other managers own. A new object is applied.
            verb = "replace" if draft.replaces_existing else "apply"
            dry_run = [f"kubectl {verb} --dry-run=server -f {name}"]
            apply = [f"kubectl {verb} -f {name}", *draft.apply]
        else:
            dry_run, apply = draft.dry_run, draft.apply
        steps.append(
            PlanStep(
                number=number,
                name=name,
                title=draft.title,
                objects=tuple(draft.objects),
                resolves=tuple(draft.resolves),
                safe=draft.safe,
                restarts=draft.restarts,
                owner=draft.owner,
                content=draft.content,
                dry_run=tuple(dry_run),
                apply=tuple(apply),
                notes=tuple(draft.notes),
                checks=tuple(draft.checks),
                rendered=draft.rendered,
            )
        )
    return steps


def _safe(stem: str) -> str:
    return safe_name(stem.lower())


# --- alternatives --------------------------------------------------------------------------


def _alternatives(
    reader: ObjectReader,
    chosen: list[tuple[Finding, list[KubeObject], Remediation]],
    merged: dict[Key, KubeObject],
    steps: list[PlanStep],
) -> list[PlanAlternative]:
    """Each other way out on top of the plan's other changes; the same objects for several findings once."""
    by_content: dict[str, tuple[list[str], list[KubeObject], Finding]] = {}
    for finding, docs, _ in chosen:
        objects = []
        for doc in docs:
            key = _key(doc)
            original = reader.get(*key)
            base = clean_copy(original) if original is not None else MISSING
            objects.append(merge3(base, merged.get(key, base), doc, "", []))
        content = "---\n".join(mask_yaml(to_yaml(o)) for o in objects)
        labels, _, _ = by_content.setdefault(content, ([], objects, finding))
        labels.append(finding_label(finding))
    found = []
    for content, (labels, objects, first) in by_content.items():
        keys = {_key(o) for o in objects}
        replaces = tuple(s.number for s in steps if {(r.kind, r.namespace, r.name) for r in s.objects} & keys)
        unnecessary = tuple(
            s.number for s in steps if s.number not in replaces and s.resolves and set(s.resolves) <= set(labels)
        )
        summary = _describe_alternative(objects)
        owners = {owner_of(o).describe() for o in (reader.get(*k) for k in sorted(keys)) if o is not None}
        owners = {o for o in owners if o != owner_of({}).describe()}
        if owners:
            summary += f" {', '.join(sorted(owners))} renders it: its next render reverts this."
        found.append(
            PlanAlternative(
                name=f"{fix_stem(first)}.yaml",
                finding=", ".join(labels),
                summary=summary,
                content=content,
                replaces=replaces,
                unnecessary=unnecessary,
            )
        )
    return found


def _describe_alternative(objects: list[KubeObject]) -> str:
    """What an alternative does, from what it writes."""
    for obj in objects:
        template = pod_template(obj) or {}
        meta = template.get("metadata") or {}
        marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
        if str(marks.get("sidecar.istio.io/inject", "")).lower() == "false":
            return (
                f'take {_ref(_key(obj))} out of the mesh (sidecar.istio.io/inject: "false" on its pod '
                "template): no sidecar, so nothing in the mesh blocks or inspects its traffic."
            )
    return f"apply {', '.join(str(_ref(_key(o))) for o in objects)} as corrected here instead."
