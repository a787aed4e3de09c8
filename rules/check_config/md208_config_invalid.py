"""MD208: the istio check's configuration is not valid YAML or has no instances."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.endpoint_eras import mesh_and_mixer_telemetry
from meshdoctor.datadog.istio_check import (
    IstioCheckConfig,
    annotation_configs,
    istio_check_configs,
    recommended_conf_yaml,
)
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.mesh import MeshInfo
from meshdoctor.kube.workloads import template_path
from meshdoctor.model import Category, Finding, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .references import AD_KINDS, DOCS_AD_ANNOTATIONS, DOCS_CHECK


class IstioCheckConfigInvalid(Rule):
    """MD208."""

    id = "MD208"
    title = "The istio check's configuration is not valid YAML or JSON, or has no instances"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=AD_KINDS)
    docs = RuleDocs(
        what="A file the agent reads as the istio check's configuration does not parse as YAML (a "
        "tab, "
        "a bad indent, an unquoted `%%host%%`...), or parses but has no `instances` list; or an "
        "Autodiscovery annotation naming the istio check (`ad.datadoghq.com/<container>.checks`, or "
        "`.check_names` with `.instances`) that the agent cannot use: JSON that does not parse, no "
        "instances, lists of different lengths, a container the pod does not have, a v2 `.checks` "
        "annotation on agents older than 7.36, or annotations on a workload's own metadata instead of "
        "its pod template.",
        why="The agent logs `... is not a valid config file` once at start and skips the file: "
        "the check "
        "does not run, and nothing else tells you. An annotation it cannot parse is logged once per "
        "pod (`cannot parse check configuration`) and configures nothing for that container.",
        fix="Correct the YAML at the reported line (or replace the file with the configuration the "
        "remediation gives for the mesh's version); correct the annotation's JSON, or move it to the "
        "pod template.",
        references=(DOCS_CHECK, DOCS_AD_ANNOTATIONS),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from self._check_files(ctx)
        yield from self._annotation_findings(ctx)

    def _check_files(self, ctx: Context) -> Iterator[Finding]:
        seen: set[tuple[ObjectRef, str]] = set()
        info: tuple[MeshInfo, bool] | None = None
        for config in istio_check_configs(ctx, annotations=False):
            if config.read_path is None or config.effective or (config.source_ref, config.file_name or "") in seen:
                continue
            if config.parsed is not None and config.instances:
                continue  # a shadowed .default, not invalid
            seen.add((config.source_ref, config.file_name or ""))
            configmap = ctx.get("ConfigMap", config.source_ref.namespace, config.source_ref.name) or _stub(
                config.source_ref
            )
            key = config.file_name or "conf.yaml"
            lines = (config.text or "").splitlines()
            if config.yaml_error_line is not None and 0 < config.yaml_error_line <= len(lines):
                value: Any = f"line {config.yaml_error_line}: {lines[config.yaml_error_line - 1].strip()}"
            else:
                value = "no instances"
            if info is None:
                info = mesh_and_mixer_telemetry(ctx)
            fixed = clean_copy(configmap)
            fixed.setdefault("data", {})[key] = recommended_conf_yaml(*info)
            yield self.finding(
                f"{config.source_ref} key {key}, read by {config.agent} as {config.read_path}, "
                f"{config.problems[0]}; the agent skips it.",
                objects=[config.source_ref, *([config.agent] if config.agent else [])],
                evidence=[ctx.field(configmap, f"data.{key}", value)],
                remediation=apply_manifests(
                    f"Replace {key} with a valid istio check configuration for the mesh's "
                    "version "
                    "(or correct the reported line); review it, your other options are not kept.",
                    [fixed],
                    safe=False,
                ),
            )

    def _annotation_findings(self, ctx: Context) -> Iterator[Finding]:
        for config in annotation_configs(ctx):
            if not config.problems:
                continue
            yield self.finding(
                f"{config.source_ref}: the Autodiscovery annotation {config.file_name} "
                f"{'; '.join(config.problems)}: the agent runs no istio check from it.",
                objects=[config.source_ref],
                evidence=[_annotation_evidence(ctx, config)],
                remediation=Remediation(
                    summary=f"Correct the annotation {config.file_name} of {config.source_ref}: valid JSON, "
                    'e.g. {"istio": {"init_config": {}, "instances": [{...}]}} for `.checks`, on the pod '
                    "template (spec.template.metadata.annotations) and naming one of its containers.",
                ),
            )


def _annotation_evidence(ctx: Context, config: IstioCheckConfig) -> Any:
    """The annotation's field: on the pod template, or on the object's own metadata."""
    ref = config.source_ref
    source = ctx.get(ref.kind, ref.namespace, ref.name) or _stub(ref)
    on_template = (((source.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    prefix = template_path(source) if config.file_name in on_template else ""
    path = ".".join(p for p in (prefix, f"metadata.annotations['{config.file_name}']") if p)
    return ctx.field(source, path, config.text)


def _stub(ref: ObjectRef) -> dict[str, Any]:
    """An object that only names `ref`.

    Evidence about an object this rule cannot read still names it (an empty object would give
    evidence with no kind, which the report schema refuses).
    """
    return {"kind": ref.kind, "metadata": {"name": ref.name, "namespace": ref.namespace}}
