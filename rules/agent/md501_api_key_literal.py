"""MD501: the Datadog API key is written as a literal in the agent manifest."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.fixes.manifests import apply_manifests, clean_copy, dry_run_then_apply, to_yaml
from meshdoctor.kube.pod_spec import containers_with_paths, field_path
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

API_KEY_ENV = ("DD_API_KEY", "DD_APP_KEY")
SECRET_NAME = "datadog-secret"
SECRET_KEYS = {"DD_API_KEY": "api-key", "DD_APP_KEY": "app-key"}


class ApiKeyInManifest(Rule):
    """MD501."""

    id = "MD501"
    title = "Datadog API key written as a literal in the agent manifest"
    category = Category.AGENT
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", optional=["Secret"])
    docs = RuleDocs(
        what="An agent container whose `DD_API_KEY` (or `DD_APP_KEY`) env var holds the key itself "
        "as `value:` instead of a `valueFrom.secretKeyRef`.",
        why="The key then sits in plain text in the manifest, in `kubectl get -o yaml` output, in the "
        "last-applied annotation, in Git and in every support bundle. Anyone who can read the workload "
        "can send data to (and be billed against) the organisation.",
        fix="Create a Secret holding the key (`kubectl create secret generic datadog-secret "
        "--from-literal api-key=...`) and reference it with `valueFrom.secretKeyRef`; then rotate the "
        "exposed key in Datadog. meshdoctor never prints the key.",
        references=(
            "https://docs.datadoghq.com/containers/kubernetes/installation/?tab=helm",
            "https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-environment-variables",
        ),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload in agent_workloads(ctx):
            template, base = pod_template(workload) or {}, template_path(workload)
            literal = []
            for cpath, container in containers_with_paths(template):
                for index, var in enumerate(container.get("env") or []):
                    if var.get("name") in API_KEY_ENV and var.get("value") not in (None, ""):
                        literal.append((field_path(base, cpath, f"env[{index}].value"), container, var["name"]))
            if not literal:
                continue
            ref = ctx.ref(workload)
            names = sorted({name for _, _, name in literal})
            yield self.finding(
                f"{ref} sets {', '.join(names)} as a literal value in "
                f"{len(literal)} place(s); the key is readable by anyone who can read the workload.",
                objects=[ref],
                evidence=[ctx.field(workload, path, "<literal value, not shown>") for path, _, _ in literal],
                remediation=self._remediation(ctx, workload, ref.namespace, names),
            )

    def _remediation(self, ctx: Context, workload: KubeObject, namespace: str, names: list[str]) -> Remediation:
        wanted = {SECRET_KEYS[name] for name in names}
        secret_name, existing = SECRET_NAME, ctx.get("Secret", namespace, SECRET_NAME)
        if existing is not None and not wanted <= set(existing.get("data") or {}) | set(
            existing.get("stringData") or {}
        ):
            # Never overwrite a Secret that holds other keys: use a name of our own.
            secret_name = f"{SECRET_NAME}-keys"
            existing = ctx.get("Secret", namespace, secret_name)
        fixed = clean_copy(workload)
        template = pod_template(fixed) or {}
        for _, container in containers_with_paths(template):
            for var in container.get("env") or []:
                if var.get("name") in names and "value" in var:
                    var.pop("value")
                    var["valueFrom"] = {"secretKeyRef": {"name": secret_name, "key": SECRET_KEYS[var["name"]]}}
        if existing is not None:
            return apply_manifests(
                f"Secret {namespace}/{secret_name} already holds {', '.join(sorted(wanted))}: reference it "
                "with secretKeyRef instead of the literal, then rotate the exposed key in Datadog.",
                [fixed],
                safe=True,
            )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": namespace},
            "type": "Opaque",
            "stringData": {SECRET_KEYS[name]: f"<your {name} here>" for name in names},
        }
        return Remediation(
            summary=f"Store the key in Secret {namespace}/{secret_name} and reference it with secretKeyRef; "
            "fill in the key (or create the Secret with `kubectl create secret generic`), then rotate the "
            "exposed key in Datadog.",
            manifests=(to_yaml(secret), to_yaml(fixed)),
            commands=(
                f"kubectl -n {namespace} create secret generic {secret_name} --from-literal api-key=$DD_API_KEY",
                *dry_run_then_apply(),
            ),
            safe=False,
        )
