"""MD208: the istio check's configuration is not valid YAML or has no instances."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.endpoint_eras import mesh_and_mixer_telemetry
from meshdoctor.datadog.istio_check import istio_check_configs, recommended_conf_yaml
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.mesh import MeshInfo
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs

from .references import DOCS_CHECK


class IstioCheckConfigInvalid(Rule):
    """MD208."""

    id = "MD208"
    title = "The istio check's configuration is not valid YAML or has no instances"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap")
    docs = RuleDocs(
        what="A file the agent reads as the istio check's configuration does not parse as YAML (a "
        "tab, "
        "a bad indent, an unquoted `%%host%%`...), or parses but has no `instances` list.",
        why="The agent logs `... is not a valid config file` once at start and skips the file: "
        "the check "
        "does not run, and nothing else tells you.",
        fix="Correct the YAML at the reported line (or replace the file with the configuration the "
        "remediation gives for the mesh's version).",
        references=(DOCS_CHECK,),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        seen: set[tuple[ObjectRef, str]] = set()
        info: tuple[MeshInfo, bool] | None = None
        for config in istio_check_configs(ctx, annotations=False):
            if config.read_path is None or config.effective or (config.source_ref, config.file_name or "") in seen:
                continue
            if config.parsed is not None and config.instances:
                continue  # a shadowed .default, not invalid
            seen.add((config.source_ref, config.file_name or ""))
            configmap = ctx.get("ConfigMap", config.source_ref.namespace, config.source_ref.name) or {}
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
