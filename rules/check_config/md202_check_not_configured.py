"""MD202: Istio runs, but nothing configures the agent's istio check."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.datadog.istio_check import (
    agent_has_auto_conf,
    configmap_volumes,
    istio_check_configs,
    istio_configmap_keys,
    mixer_telemetry_deployed,
    recommended_conf_yaml,
)
from meshdoctor.fixes.manifests import apply_manifests
from meshdoctor.istio.mesh import ISTIOD, mesh_info
from meshdoctor.kube.meta import metadata
from meshdoctor.kube.workloads import template_path
from meshdoctor.model import Category, Finding, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs

from .istio_volume import CONFIGMAP_NAME, MOUNT_PATH, configmap_manifest, with_istio_volume
from .references import AD_KINDS, DOCS_AGENT_CONFD, DOCS_CHECK


class IstioCheckNotConfigured(Rule):
    """MD202."""

    id = "MD202"
    title = "Istio is installed but the agent's istio check is not configured"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=AD_KINDS, logs=["agent"])
    docs = RuleDocs(
        what="The cluster runs an Istio control plane and a Datadog agent, but no istio check "
        "configuration exists anywhere: no ConfigMap file the agent reads as `istio.d/*.yaml` or "
        "`istio.yaml`, no file meant for it (mounted elsewhere, or a volume whose ConfigMap is "
        "missing: other rules report those), no Autodiscovery annotation naming `istio`, and no "
        "auto-configuration from the image (Agent 6.20/7.20+ ships an `auto_conf.yaml` that "
        "scrapes "
        "every istio-proxy sidecar, which only helps istiod-era meshes).",
        why="Without it the agent collects no Istio metric: mesh request rates, latencies and the "
        "control plane's health are missing from Datadog, silently.",
        fix="Create a ConfigMap with a `conf.yaml` for the mesh's version and mount it at "
        "`/etc/datadog-agent/conf.d/istio.d` (the remediation gives both), or annotate the "
        "control-plane pods for Autodiscovery.",
        references=(DOCS_CHECK, DOCS_AGENT_CONFD),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info = mesh_info(ctx)
        agents = agent_workloads(ctx)
        if info.namespace is None:
            raise NotChecked(info.unknown_reason())
        if not agents:
            raise NotChecked("no Datadog agent workload in the input")
        configs = istio_check_configs(ctx)
        meant = {c.agent for c in configs}
        for workload in agents:
            ref = ctx.ref(workload)
            if ref in meant or None in meant:
                continue
            if any(v.istio for v in configmap_volumes(ctx, workload)):
                continue  # wired to something meant for the check: MD201/MD204-MD207 say what
            if any(
                istio_configmap_keys(c)
                for c in ctx.objects("ConfigMap")
                if metadata(c).get("namespace") == ref.namespace
            ):
                continue  # the configuration exists but is not mounted: MD203
            if info.era == ISTIOD and agent_has_auto_conf(ctx, workload):
                continue
            if workload.get("kind") != "DaemonSet":
                continue
            telemetry = mixer_telemetry_deployed(ctx, info)
            name = CONFIGMAP_NAME
            if ctx.get("ConfigMap", ref.namespace, name) is not None:
                name = f"{CONFIGMAP_NAME}-conf"
            configmap = configmap_manifest(ref.namespace, name, {"conf.yaml": recommended_conf_yaml(info, telemetry)})
            fixed = with_istio_volume(workload, name)
            version = info.version or info.era
            yield self.finding(
                f"Istio {version} runs in {info.namespace}, but {ref} has no istio check "
                "configuration "
                "(no ConfigMap in conf.d/istio.d, no Autodiscovery annotation"
                + (", and the agent image predates the istio auto_conf.yaml" if info.era == ISTIOD else "")
                + "): no Istio metric reaches Datadog.",
                objects=[ref],
                evidence=[ctx.field(workload, f"{template_path(workload)}.spec.volumes", None)],
                remediation=apply_manifests(
                    f"Create ConfigMap {ref.namespace}/{name} with a conf.yaml for Istio "
                    f"{version} "
                    f"and mount it at {MOUNT_PATH} in {ref}.",
                    [configmap, fixed],
                    safe=False,
                ),
            )
