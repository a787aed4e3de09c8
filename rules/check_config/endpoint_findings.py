"""Evidence and remediation for an istio check endpoint that is wrong (MD209, MD210).

The evidence names the ConfigMap key or Autodiscovery annotation the URL is written in; the
remediation replaces URLs in place (comments kept) or, when options must go, rebuilds the
instances from the configuration recommended for the mesh's version.
"""

from __future__ import annotations

import yaml

from meshdoctor.datadog.istio_check import CheckEndpoint, recommended_instance
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.istio.mesh import MeshInfo
from meshdoctor.kube.workloads import template_path
from meshdoctor.model import Evidence, Remediation
from meshdoctor.rule import Context


def endpoint_evidence(ctx: Context, endpoint: CheckEndpoint) -> list[Evidence]:
    """Where the endpoint is written: the ConfigMap key, or the Autodiscovery annotations."""
    source = ctx.get(endpoint.config_source.kind, endpoint.config_source.namespace, endpoint.config_source.name)
    if source is None:
        return []
    if endpoint.config_source.kind == "ConfigMap":
        return [ctx.field(source, f"data.{endpoint.file_name}", f"{endpoint.key}: {endpoint.url}")]
    annotations_path = (
        f"{template_path(source)}.metadata.annotations" if template_path(source) else "metadata.annotations"
    )
    return [ctx.field(source, annotations_path, f"{endpoint.key}: {endpoint.url}")]


def endpoint_remediation(
    ctx: Context,
    endpoint: CheckEndpoint,
    replace: dict[str, str],
    info: MeshInfo,
    telemetry: bool,
    drop: tuple[str, ...] = (),
) -> Remediation:
    """The ConfigMap with URLs replaced in place (comments kept) or, when keys must go, rebuilt."""
    if endpoint.config_source.kind != "ConfigMap":
        return Remediation(
            summary=f"Correct {endpoint.key} in the Autodiscovery annotation {endpoint.file_name} "
            "of "
            f"{endpoint.config_source}: "
            + (f"use {next(iter(replace.values()))}." if replace else "name a Service that exists."),
        )
    configmap = ctx.get("ConfigMap", endpoint.config_source.namespace, endpoint.config_source.name) or {}
    fixed = clean_copy(configmap)
    data = fixed.setdefault("data", {})
    key = endpoint.file_name or "conf.yaml"
    text = str(data.get(key, ""))
    if drop:
        parsed = yaml.safe_load(text) or {}
        right = recommended_instance(info, telemetry)
        new_instances = []
        for instance in parsed.get("instances") or []:
            if not isinstance(instance, dict):
                new_instances.append(instance)
                continue
            kept = {k: v for k, v in instance.items() if k not in drop and k not in right}
            new_instances.append({**right, **kept})
        parsed["instances"] = new_instances
        body = yaml.safe_dump({"instances": parsed["instances"]}, sort_keys=False, default_flow_style=False)
        data[key] = "init_config:\n\n" + body
        summary = (
            f"Use the endpoints of Istio {info.version or info.era} in {endpoint.config_source} "
            f"({', '.join(sorted(set(drop)))} removed); other options are kept, comments are not."
        )
        return apply_manifests(summary, [fixed], safe=False)
    if not replace:
        return Remediation(
            summary=f"Correct {endpoint.key} in {endpoint.config_source} key {key}: name a "
            "Service that "
            "exists (`<service>.<namespace>:<port>`).",
        )
    for old, new in replace.items():
        text = text.replace(old, new)
    data[key] = text
    return apply_manifests(
        "; ".join(f"use {new} instead of {old}" for old, new in replace.items()) + ".",
        [fixed],
        safe=True,
    )
