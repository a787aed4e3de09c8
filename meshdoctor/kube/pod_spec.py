"""A pod template's containers and host volumes, with the field paths that evidence names.

Paths are dotted and relative to the pod template (`spec.initContainers[0]`); join them to the
template's own path in the workload (`kube.workloads.template_path`) with `field_path`.
"""

from __future__ import annotations

from typing import Any


def field_path(*parts: str) -> str:
    """The dotted path of the non-empty parts: `("", "spec.containers[0]", "image")` -> `spec.containers[0].image`."""
    return ".".join(p for p in parts if p)


def containers_with_paths(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field path relative to the template, container) for init and regular containers."""
    spec = template.get("spec") or {}
    found = []
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            found.append((f"spec.{key}[{index}]", container))
    return found


def literal_env_fields(template: dict[str, Any], name: str) -> list[tuple[str, Any]]:
    """(field path relative to the template, value) of every literal `env` entry named `name`.

    Init and regular containers, in order: the places a fix to that variable must change.
    """
    return [
        (f"{path}.env[{index}].value", var.get("value"))
        for path, container in containers_with_paths(template)
        for index, var in enumerate(container.get("env") or [])
        if isinstance(var, dict) and var.get("name") == name and "value" in var
    ]


def host_mount_paths(template: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Mount paths of a container that come from a hostPath volume (without a trailing `/`)."""
    volumes = {v.get("name"): v for v in (template.get("spec") or {}).get("volumes") or []}
    return {
        str(m.get("mountPath", "")).rstrip("/")
        for m in container.get("volumeMounts") or []
        if (volumes.get(m.get("name")) or {}).get("hostPath")
    }
