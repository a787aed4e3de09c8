"""MD502: log collection is on but the agent does not mount the node's container logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.agent import agent_container, agent_workloads, env_value
from meshdoctor.datadog.log_mounts import POINTER_DIR, HostMount, needed_log_mounts
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.nodes import container_runtimes
from meshdoctor.kube.pod_spec import field_path, host_mount_paths
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject


class LogCollectionWithoutHostMounts(Rule):
    """MD502."""

    id = "MD502"
    title = "Log collection is on but the agent cannot read the node's container logs"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", optional=["Node", "ConfigMap"])
    docs = RuleDocs(
        what="An agent DaemonSet with `DD_LOGS_ENABLED=true` that does not mount the host paths where "
        "the node's container runtime writes container logs (`/var/log/pods`; with Docker also "
        "`/var/lib/docker/containers`, which the files under /var/log/pods link to), or that has no "
        "pointer directory (`/opt/datadog-agent/run` from the host) to remember its position.",
        why="The agent tails container log files from the node. Without the mounts it finds no file and "
        "sends no log, silently. Without the pointer directory it loses its place at every restart and "
        "sends duplicates or gaps. Agents that collect from the Docker socket (old Agent 6 on Docker "
        "nodes) do not need the file mounts.",
        fix="Add hostPath volumes for /var/log/pods (and /var/lib/docker/containers on Docker nodes) "
        "mounted read-only at the same paths, and /var/lib/datadog-agent/logs mounted at "
        "/opt/datadog-agent/run.",
        references=("https://docs.datadoghq.com/containers/kubernetes/log/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        runtimes = container_runtimes(ctx)
        for workload in agent_workloads(ctx):
            if workload.get("kind") != "DaemonSet":
                continue
            template, base = pod_template(workload) or {}, template_path(workload)
            container = agent_container(template)
            if container is None:
                continue
            if (
                str(
                    env_value(ctx, template, container, "DD_LOGS_ENABLED", namespace=ctx.ref(workload).namespace) or ""
                ).lower()
                != "true"
            ):
                continue
            host_mounts = host_mount_paths(template, container)
            use_file = str(
                env_value(
                    ctx,
                    template,
                    container,
                    "DD_LOGS_CONFIG_K8S_CONTAINER_USE_FILE",
                    namespace=ctx.ref(workload).namespace,
                )
                or ""
            ).lower()
            needed = needed_log_mounts(runtimes, host_mounts, use_file == "true")
            missing = [m for m in needed if m[2] not in host_mounts]
            pointer_missing = POINTER_DIR[2] not in host_mounts
            if not missing and not pointer_missing:
                continue
            ref = ctx.ref(workload)
            cindex = ((template.get("spec") or {}).get("containers") or []).index(container)
            cpath = field_path(base, f"spec.containers[{cindex}]")
            evidence = [ctx.field(workload, field_path(cpath, "env"), "DD_LOGS_ENABLED=true")]
            evidence += [ctx.field(workload, field_path(cpath, "volumeMounts"), None) for _ in missing[:1]]
            lacking = [m[2] for m in missing] + ([POINTER_DIR[2]] if pointer_missing else [])
            severity = Severity.ERROR if missing else Severity.WARNING
            runtime_note = f" (nodes run {', '.join(sorted(runtimes))})" if runtimes else ""
            yield self.finding(
                f"{ref} collects logs but does not mount {', '.join(lacking)} from the host{runtime_note}; "
                + (
                    "the agent finds no container log to tail."
                    if missing
                    else "log positions are lost at every restart."
                ),
                objects=[ref],
                evidence=evidence,
                remediation=self._remediation(workload, cindex, missing + ([POINTER_DIR] if pointer_missing else [])),
                severity=severity,
            )

    def _remediation(self, workload: KubeObject, cindex: int, add: list[HostMount]) -> Remediation:
        fixed = clean_copy(workload)
        spec = (pod_template(fixed) or {}).setdefault("spec", {})
        container = spec["containers"][cindex]
        volumes = spec.setdefault("volumes", [])
        mounts = container.setdefault("volumeMounts", [])
        taken = {v.get("name") for v in volumes}
        for name, host_path, mount_path in add:
            volume_name = name if name not in taken else f"{name}-host"
            volume: dict[str, Any] = {"name": volume_name, "hostPath": {"path": host_path}}
            if (name, host_path, mount_path) == POINTER_DIR:
                volume["hostPath"]["type"] = "DirectoryOrCreate"
            volumes.append(volume)
            mount: dict[str, Any] = {"name": volume_name, "mountPath": mount_path}
            if (name, host_path, mount_path) != POINTER_DIR:
                mount["readOnly"] = True
            mounts.append(mount)
        return apply_manifests(
            "Mount the node's container log directories (read-only) and a host pointer directory "
            "into the agent container.",
            [fixed],
            safe=False,
        )
