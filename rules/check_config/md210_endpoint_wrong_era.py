"""MD210: an istio check endpoint belongs to another Istio version."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.endpoint_eras import era_problem, mesh_and_mixer_telemetry
from meshdoctor.datadog.istio_check import CheckEndpoint, configured_endpoints
from meshdoctor.istio.mesh import ISTIOD, MIXER
from meshdoctor.model import Category, Finding, ObjectRef, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs

from .endpoint_findings import endpoint_evidence, endpoint_remediation
from .references import AD_KINDS, DOCS_CHECK


class IstioCheckEndpointWrongEra(Rule):
    """MD210."""

    id = "MD210"
    title = "An istio check endpoint belongs to another Istio version"
    category = Category.CHECK_CONFIG
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap", optional=AD_KINDS)
    docs = RuleDocs(
        what="An istio check option or port that the mesh's Istio version does not serve: Mixer "
        "options "
        "(`mixer_endpoint`, `istio_mesh_endpoint` on istio-telemetry:42422) on an istiod mesh "
        "that runs "
        "no istio-telemetry (1.5-1.7 may still run Mixer telemetry v1: then they are right); "
        "`galley_endpoint` / `pilot_endpoint` / `citadel_endpoint` from 1.5 (merged into istiod); "
        "`istiod_endpoint` before 1.5, or on the `istiod` Service on 1.5; monitoring ports of the "
        "wrong version (9093 on 1.1-1.4, "
        "which "
        "serve 15014; 15014 on 1.0, which serves 9093).",
        why="The configuration was copied from documentation of another Istio version, or "
        "survived an "
        "upgrade: the endpoint does not exist, the check fails on every run and the metrics of the "
        "component are missing.",
        fix="Use the endpoints of the running version: 1.0 `istio_mesh_endpoint` "
        "istio-telemetry:42422 and "
        "`mixer_endpoint` istio-telemetry:9093; 1.1-1.4 the same with 15014; 1.5 "
        "`istiod_endpoint` istio-pilot:15014 (the 1.5 istiod Service has no 15014; istio-pilot "
        "selects the istiod pods); 1.6+ `istiod_endpoint` istiod:15014, with `use_openmetrics: true` "
        "(sidecar metrics come from the agent's auto_conf).",
        references=(
            DOCS_CHECK,
            "https://istio.io/latest/news/releases/1.5.x/announcing-1.5/upgrade-notes/",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        info, telemetry = mesh_and_mixer_telemetry(ctx)
        if info.era not in (MIXER, ISTIOD):
            if info.not_read is not None:
                raise NotChecked(info.unknown_reason())
            raise NotChecked("the mesh's Istio version and era are unknown")
        problems: dict[tuple[ObjectRef, str | None], list[tuple[CheckEndpoint, str, str | None]]] = {}
        for endpoint in configured_endpoints(ctx):
            problem = era_problem(endpoint, info, telemetry)
            if problem is not None:
                problems.setdefault((endpoint.config_source, endpoint.file_name), []).append((endpoint, *problem))
        for (_source, _file), found in problems.items():
            first = found[0][0]
            replace = {e.url: right for e, _, right in found if right is not None}
            drop = tuple(e.key for e, _, right in found if right is None)
            by_reason: dict[str, list[str]] = {}
            for e, why, _ in found:
                by_reason.setdefault(why, []).append(f"{e.key} {e.url}")
            yield self.finding(
                f"{first.config_source}: "
                + "; ".join(f"{' and '.join(urls)}: {why}" for why, urls in by_reason.items())
                + ".",
                objects=[first.config_source, *([first.agent_ref] if first.agent_ref else [])],
                evidence=[ev for e, _, _ in found for ev in endpoint_evidence(ctx, e)],
                remediation=endpoint_remediation(ctx, first, replace, info, telemetry, drop),
            )
