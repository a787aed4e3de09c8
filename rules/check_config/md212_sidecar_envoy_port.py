"""MD212: the istio check scrapes the sidecars' Envoy port 15090, not the merged 15020."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_container, agent_workloads
from meshdoctor.datadog.check_mounts import mount_of
from meshdoctor.datadog.endpoint_eras import mesh_and_mixer_telemetry
from meshdoctor.datadog.istio_check import CheckEndpoint, confd_path, configured_endpoints, istio_check_configs
from meshdoctor.datadog.sidecar_stats import (
    auto_conf_scrapes_envoy_port,
    merged_url,
    merges_agent_metrics,
    scrapes_envoy_port,
)
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, ObjectRef, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .endpoint_findings import endpoint_evidence, endpoint_remediation
from .references import AD_KINDS, DOCS_CHECK

#: integrations-core issue #13047 (15090 misses the `istio.mesh.agent.*` metrics) and the Istio ports.
REFERENCES = (
    DOCS_CHECK,
    "https://github.com/DataDog/integrations-core/issues/13047",
    "https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio",
)


class SidecarEnvoyPort(Rule):
    """MD212."""

    id = "MD212"
    title = "The istio check scrapes the sidecars' Envoy port 15090, not the merged 15020"
    category = Category.CHECK_CONFIG
    severity = Severity.INFO
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=AD_KINDS)
    docs = RuleDocs(
        what="On Istio 1.7+, an `istio_mesh_endpoint` on a sidecar's `:15090/stats/prometheus` (in a "
        "ConfigMap or an Autodiscovery annotation), or an Agent 7 older than 7.44 whose image's "
        "auto_conf.yaml still scrapes every sidecar on 15090.",
        why="15090 is Envoy's own stats listener, served in every version: the mesh's request and TCP "
        "metrics are there, so nothing the check collected is lost. pilot-agent's 15020 serves the same "
        "plus its own `istio_agent_*` metrics (Istio 1.7+), which the check maps to "
        "`istio.mesh.agent.*`: on 15090 they are never collected. Both ports are kept out of the "
        "sidecar's inbound capture, so mTLS does not change which one answers.",
        fix="Use port 15020 (`http://%%host%%:15020/stats/prometheus`), as the check's auto_conf.yaml "
        "does from Agent 7.44; a NetworkPolicy that admits the agent on 15090 must admit 15020 too. "
        "For the image's auto_conf.yaml, upgrade the agent to 7.44 or later.",
        references=REFERENCES,
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info, telemetry = mesh_and_mixer_telemetry(ctx)
        if info.minor is None:
            raise NotChecked("the mesh's Istio version is unknown")
        if not merges_agent_metrics(info):
            return
        grouped: dict[tuple[ObjectRef, str | None], list[CheckEndpoint]] = {}
        for endpoint in configured_endpoints(ctx):
            if scrapes_envoy_port(endpoint):
                grouped.setdefault((endpoint.config_source, endpoint.file_name), []).append(endpoint)
        version = info.version or ".".join(str(p) for p in info.minor)
        for found in grouped.values():
            first = found[0]
            urls = ", ".join(dict.fromkeys(e.url for e in found))
            remediation = endpoint_remediation(ctx, first, {e.url: merged_url(e.url) for e in found}, info, telemetry)
            yield self.finding(
                f"{first.config_source}: istio_mesh_endpoint {urls} scrapes Envoy's own stats (15090); on "
                f"Istio {version} the merged port 15020 serves them too, with pilot-agent's metrics "
                "(istio.mesh.agent.*), which are not collected. The mesh's request metrics still come.",
                objects=[first.config_source, *([first.agent_ref] if first.agent_ref else [])],
                evidence=[ev for e in found for ev in endpoint_evidence(ctx, e)],
                remediation=dataclasses.replace(remediation, safe=False),
            )
        for workload in agent_workloads(ctx):
            if workload.get("kind") != "DaemonSet" or not auto_conf_scrapes_envoy_port(ctx, workload):
                continue
            ref = ctx.ref(workload)
            if _auto_conf_hidden(ctx, ref, workload):
                continue  # MD211: the auto_conf.yaml does not run at all
            template = pod_template(workload) or {}
            main = agent_container(template) or {}
            image_path = template_path(workload)
            index = ((template.get("spec") or {}).get("containers") or []).index(main)
            yield self.finding(
                f"{ref} runs {main.get('image')}, whose istio auto_conf.yaml scrapes every sidecar on "
                f"15090 (15020 from Agent 7.44): on Istio {version} pilot-agent's metrics "
                "(istio.mesh.agent.*) are not collected. The mesh's request metrics still come.",
                objects=[ref],
                evidence=[ctx.field(workload, f"{image_path}.spec.containers[{index}].image", main.get("image"))],
                remediation=Remediation(
                    summary=f"Upgrade the agent image of {ref} to 7.44 or later (its auto_conf.yaml "
                    "scrapes http://%%host%%:15020/stats/prometheus).",
                ),
            )


def _auto_conf_hidden(ctx: Context, ref: ObjectRef, workload: KubeObject) -> bool:
    """Whether one of the agent's istio ConfigMaps is mounted on the whole istio.d folder (MD211)."""
    main = agent_container(pod_template(workload)) or {}
    folder = posixpath.join(confd_path(main), "istio.d")
    for config in istio_check_configs(ctx, annotations=False):
        mount = mount_of(config) if config.agent == ref else None
        if mount is not None and not mount.init and not mount.sub_path and mount.mount_path.rstrip("/") == folder:
            return True
    return False
