"""MD506: DD_SITE holds a host or an unknown value, not a Datadog site."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import FROM_SECRET, agent_container, agent_workloads, env_value
from meshdoctor.datadog.sites import SITES, site_meant, site_value_problem
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.meta import namespace_of
from meshdoctor.kube.pod_spec import containers_with_paths, field_path, literal_env_fields
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

SITE_ENV = "DD_SITE"


class SiteIsNotASite(Rule):
    """MD506."""

    id = "MD506"
    title = "DD_SITE is not a Datadog site"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", optional=["ConfigMap"])
    docs = RuleDocs(
        what="An agent container whose DD_SITE is a host (`api.datadoghq.com`, `app.datadoghq.eu`), a "
        "URL, or a value that is no Datadog site, instead of a site (`datadoghq.com`, "
        "`datadoghq.eu`, `us3.datadoghq.com`...).",
        why="The agent validates no site: it builds every intake as a prefix plus the value as it is "
        "(datadog-agent `BuildURLWithPrefix`: `app.` + `api.datadoghq.com`, `agent-http-intake.logs.` "
        "+ ...), so metrics, logs and traces go to hosts that do not exist, while the API-key check "
        "(`getAPIDomain`, which extracts the site by regexp) can still report the key valid.",
        fix="Set DD_SITE to the site itself, the one the host belongs to.",
        references=("https://docs.datadoghq.com/getting_started/site/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload in agent_workloads(ctx):
            template = pod_template(workload) or {}
            container = agent_container(template)
            value = env_value(ctx, template, container, SITE_ENV, namespace_of(workload) or None)
            if value in (None, "", FROM_SECRET):
                continue
            problem = site_value_problem(str(value))
            if problem is None:
                continue
            ref = ctx.ref(workload)
            evidence = [
                ctx.field(workload, field_path(template_path(workload), path), literal)
                for path, literal in literal_env_fields(template, SITE_ENV)
            ]
            for var in (container or {}).get("env") or []:
                key_ref = ((var.get("valueFrom") or {}).get("configMapKeyRef") or {}) if isinstance(var, dict) else {}
                if var.get("name") == SITE_ENV and key_ref:
                    source = ctx.get("ConfigMap", namespace_of(workload), str(key_ref.get("name", "")))
                    if source is not None:
                        evidence.append(ctx.field(source, f"data.{key_ref.get('key', '')}", value))
            # A host of a Datadog site certainly sends nowhere; an unknown value might be a domain
            # meshdoctor does not know, so it is a warning.
            known_host = site_meant(str(value)) is not None
            yield self.finding(
                f"{ref}: {problem}; "
                + (
                    "no metrics, logs or traces reach Datadog."
                    if known_host
                    else "unless it is, nothing reaches Datadog."
                ),
                objects=[ref],
                evidence=evidence,
                remediation=self._remediation(workload, str(value)),
                severity=Severity.ERROR if known_host else Severity.WARNING,
            )

    @staticmethod
    def _remediation(workload: KubeObject, value: str) -> Remediation:
        meant = site_meant(value)
        if meant is None:
            return Remediation(summary=f"Set {SITE_ENV} to your organisation's site, one of {', '.join(SITES)}.")
        fixed = clean_copy(workload)
        changed = False
        for _, container in containers_with_paths(pod_template(fixed) or {}):
            for var in container.get("env") or []:
                if isinstance(var, dict) and var.get("name") == SITE_ENV and "value" in var:
                    var["value"] = meant
                    changed = True
        summary = f"Set {SITE_ENV} to {meant}, the site {value.strip()} belongs to."
        if not changed:
            return Remediation(summary=summary + " The value comes from a ConfigMap: change it there.")
        return apply_manifests(summary + " The pods restart with the new value.", [fixed], safe=True)
