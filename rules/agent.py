"""Agent hygiene: how the agent workload itself is deployed.

Ids: MD501 literal API key, MD502 log collection without host log mounts, MD503 removed workload
API, MD504 unpinned image, MD505 rollout not complete.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.fixes.manifests import apply_manifests, clean_copy, dry_run_then_apply, to_served_api, to_yaml
from meshdoctor.kube.removed_apis import REMOVED_WORKLOAD_APIS
from meshdoctor.kube.workloads import pod_template, pods_of, template_path
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

API_KEY_ENV = ("DD_API_KEY", "DD_APP_KEY")
SECRET_NAME = "datadog-secret"
SECRET_KEYS = {"DD_API_KEY": "api-key", "DD_APP_KEY": "app-key"}


def _path(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _template_and_path(workload: KubeObject) -> tuple[dict[str, Any], str]:
    template = pod_template(workload) or {}
    return template, template_path(workload)


def _containers(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field path relative to the template, container) for init and regular containers."""
    spec = template.get("spec") or {}
    found = []
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            found.append((f"spec.{key}[{index}]", container))
    return found


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
            template, base = _template_and_path(workload)
            literal = []
            for cpath, container in _containers(template):
                for index, var in enumerate(container.get("env") or []):
                    if var.get("name") in API_KEY_ENV and var.get("value") not in (None, ""):
                        literal.append((_path(base, cpath, f"env[{index}].value"), container, var["name"]))
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
        for _, container in _containers(template):
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


#: Host paths the agent reads container logs from, by container runtime. Source: Datadog
#: "Kubernetes log collection" docs and the helm chart's _daemonset-volumes-linux.yaml
#: (logpodpath /var/log/pods, logscontainerspath /var/log/containers,
#: logdockercontainerpath /var/lib/docker/containers, pointerdir /var/lib/datadog-agent/logs
#: mounted at /opt/datadog-agent/run).
POD_LOGS = ("logpodpath", "/var/log/pods", "/var/log/pods")
DOCKER_CONTAINER_LOGS = ("logdockercontainerpath", "/var/lib/docker/containers", "/var/lib/docker/containers")
POINTER_DIR = ("pointerdir", "/var/lib/datadog-agent/logs", "/opt/datadog-agent/run")
DOCKER_SOCKET = "/var/run/docker.sock"


def _host_mounts(template: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """Mount paths of a container that come from a hostPath volume."""
    volumes = {v.get("name"): v for v in (template.get("spec") or {}).get("volumes") or []}
    return {
        str(m.get("mountPath", "")).rstrip("/")
        for m in container.get("volumeMounts") or []
        if (volumes.get(m.get("name")) or {}).get("hostPath")
    }


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
        from meshdoctor.datadog.agent import agent_container, env_value

        runtimes = {
            str(((n.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion", "")).split(":")[0]
            for n in ctx.objects("Node")
        } - {""}
        for workload in agent_workloads(ctx):
            if workload.get("kind") != "DaemonSet":
                continue
            template, base = _template_and_path(workload)
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
            host_mounted = _host_mounts(template, container).__contains__

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
            via_socket = host_mounted(DOCKER_SOCKET) and use_file != "true" and runtimes <= {"docker"}
            needed = []
            if not via_socket:
                needed.append(POD_LOGS)
                if "docker" in runtimes or (not runtimes and host_mounted(DOCKER_SOCKET)):
                    needed.append(DOCKER_CONTAINER_LOGS)
            missing = [m for m in needed if not host_mounted(m[2])]
            pointer_missing = not host_mounted(POINTER_DIR[2])
            if not missing and not pointer_missing:
                continue
            ref = ctx.ref(workload)
            cindex = ((template.get("spec") or {}).get("containers") or []).index(container)
            cpath = _path(base, f"spec.containers[{cindex}]")
            evidence = [ctx.field(workload, _path(cpath, "env"), "DD_LOGS_ENABLED=true")]
            evidence += [ctx.field(workload, _path(cpath, "volumeMounts"), None) for _ in missing[:1]]
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

    def _remediation(self, workload: KubeObject, cindex: int, add: list[tuple[str, str, str]]) -> Remediation:
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


def _version(text: str) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class RemovedWorkloadApi(Rule):
    """MD503."""

    id = "MD503"
    title = "Agent workload uses an API version Kubernetes no longer serves"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", optional=["Node"])
    docs = RuleDocs(
        what="An agent DaemonSet or Deployment written as `extensions/v1beta1`, `apps/v1beta1` or "
        "`apps/v1beta2` (removed in Kubernetes 1.16). Error when the nodes show a Kubernetes version "
        "that no longer serves it; warning otherwise.",
        why="`kubectl apply` of the manifest fails on a cluster that no longer serves the version, so "
        "the fixes for everything else cannot be applied either. `apps/v1` also requires "
        "`spec.selector` and changes the DaemonSet default update strategy.",
        fix="Rewrite the manifest as `apps/v1` with `spec.selector.matchLabels` equal to the pod "
        "template's labels; keep the old `OnDelete` update strategy explicitly or choose RollingUpdate.",
        references=("https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-16",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        versions = [
            v
            for v in (
                _version(((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""))
                for n in ctx.objects("Node")
            )
            if v
        ]
        cluster = max(versions) if versions else None
        for workload in agent_workloads(ctx):
            api = (workload.get("apiVersion"), workload.get("kind"))
            if api not in REMOVED_WORKLOAD_APIS:
                continue
            removed_in, replacement = REMOVED_WORKLOAD_APIS[api]
            ref = ctx.ref(workload)
            gone = cluster is not None and cluster >= removed_in
            if cluster is not None and gone:
                where = f"the nodes run Kubernetes {cluster[0]}.{cluster[1]}, which no longer serves it"
            else:
                where = f"Kubernetes {removed_in[0]}.{removed_in[1]} stopped serving it"
            yield self.finding(
                f"{ref} is written as {api[0]} {api[1]}; {where}. Use {replacement}.",
                objects=[ref],
                evidence=[ctx.field(workload, "apiVersion", api[0])],
                remediation=self._remediation(workload, replacement),
                severity=Severity.ERROR if gone else Severity.WARNING,
            )

    def _remediation(self, workload: KubeObject, replacement: str) -> Remediation:
        fixed = clean_copy(workload, served=False)
        notes = to_served_api(fixed)
        return apply_manifests(
            f"The same {fixed['kind']} as {replacement}: " + "; ".join(notes[1:] or ["no other change"]) + ".",
            [fixed],
            safe=False,
        )


#: An image reference: [registry/]repository[:tag][@digest].
_IMAGE = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[^:/@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def unpinned(image: str) -> bool:
    """True for an image with no tag, or `latest`, and no digest."""
    match = _IMAGE.match(image)
    if not match:
        return False
    return not match.group("digest") and match.group("tag") in (None, "latest")


class UnpinnedAgentImage(Rule):
    """MD504."""

    id = "MD504"
    title = "Agent image is not pinned to a version"
    category = Category.AGENT
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", optional=["Pod", "ReplicaSet"])
    docs = RuleDocs(
        what="An agent container whose image has no tag or the `latest` tag, and no digest.",
        why="Each node pulls whatever `latest` is when its pod starts, so one DaemonSet runs several "
        "agent versions at once, and a restart can jump a major version (Agent 6 to 7 changed the logs "
        "transport and the check configuration). Support cannot tell which version runs.",
        fix="Pin the image to a release tag (or the digest that runs now), and upgrade on purpose.",
        references=("https://docs.datadoghq.com/agent/versions/upgrade_to_agent_v7/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload in agent_workloads(ctx):
            template, base = _template_and_path(workload)
            loose = [(cpath, c) for cpath, c in _containers(template) if unpinned(str(c.get("image", "")))]
            if not loose:
                continue
            running = self._running_digests(ctx, workload)
            ref = ctx.ref(workload)
            yield self.finding(
                f"{ref} runs {', '.join(sorted({str(c.get('image')) for _, c in loose}))} without a version: "
                "nodes can run different agent versions.",
                objects=[ref],
                evidence=[ctx.field(workload, _path(base, cpath, "image"), c.get("image")) for cpath, c in loose],
                remediation=self._remediation(workload, running),
            )

    def _running_digests(self, ctx: Context, workload: KubeObject) -> dict[str, str]:
        """Container name -> the digest its pods run now, where all pods agree."""
        seen: dict[str, set[str]] = {}
        for pod in pods_of(ctx, workload):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                image_id = str(status.get("imageID", ""))
                if "@sha256:" in image_id:
                    seen.setdefault(status.get("name", ""), set()).add(image_id.split("@", 1)[1])
        return {name: digests.pop() for name, digests in seen.items() if len(digests) == 1}

    def _remediation(self, workload: KubeObject, running: dict[str, str]) -> Remediation:
        fixed = clean_copy(workload)
        pinned = []
        for _, container in _containers(pod_template(fixed) or {}):
            image = str(container.get("image", ""))
            digest = running.get(container.get("name", ""))
            if unpinned(image) and digest:
                repo = _IMAGE.match(image).group("repo")  # type: ignore[union-attr]
                container["image"] = f"{repo}@{digest}"
                pinned.append(container["name"])
        if pinned:
            summary = (
                f"Pin {', '.join(pinned)} to the digest the pods run now (nothing changes on the "
                "nodes); replace it with a release tag when you next upgrade."
            )
            return apply_manifests(summary, [fixed], safe=True)
        meta = workload.get("metadata") or {}
        labels = (
            ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels")
            or ((pod_template(workload) or {}).get("metadata") or {}).get("labels")
            or {}
        )
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return Remediation(
            summary="Set the image to an explicit release tag, e.g. gcr.io/datadoghq/agent:7.<minor>.<patch> "
            "(see the Agent release notes), on every agent container; the pods do not show which digest "
            "runs now, so meshdoctor cannot choose it for you.",
            commands=(
                f"kubectl -n {meta.get('namespace', 'default')} get pods -l {selector} "
                "-o jsonpath='{..imageID}'  # the digests that run now",
            ),
        )


class AgentRolloutIncomplete(Rule):
    """MD505."""

    id = "MD505"
    title = "Agent DaemonSet is not running and ready on every node"
    category = Category.AGENT
    severity = Severity.ERROR
    inputs = inputs("DaemonSet", "Deployment", optional=["Pod"])
    docs = RuleDocs(
        what="An agent DaemonSet whose status shows fewer pods scheduled, ready or up to date than "
        "desired, with the pods that are not ready and why (waiting reason, restarts).",
        why="Nodes without a ready agent send no metrics, traces or logs, and the Istio check does not "
        "run there. The reason is usually one of the other findings (a missing ConfigMap key keeps pods "
        "in ContainerCreating, a missing Secret in CreateContainerConfigError).",
        fix="Look at the not-ready pods' events (`kubectl describe pod`), fix the cause, and let the "
        "DaemonSet roll out.",
        references=("https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        with_status = 0
        for workload in agent_workloads(ctx):
            if workload.get("kind") != "DaemonSet":
                continue
            status = workload.get("status") or {}
            if "desiredNumberScheduled" not in status:
                continue
            with_status += 1
            desired = int(status.get("desiredNumberScheduled") or 0)
            counts = {
                key: int(status.get(key) or 0)
                for key in ("currentNumberScheduled", "numberReady", "updatedNumberScheduled", "numberAvailable")
            }
            short = {key: value for key, value in counts.items() if value < desired}
            if not short and not status.get("numberMisscheduled"):
                continue
            ref = ctx.ref(workload)
            evidence = [ctx.field(workload, "status.desiredNumberScheduled", desired)]
            evidence += [ctx.field(workload, f"status.{key}", value) for key, value in sorted(short.items())]
            reasons = []
            for pod in pods_of(ctx, workload):
                for index, cstatus in enumerate((pod.get("status") or {}).get("containerStatuses") or []):
                    if cstatus.get("ready"):
                        continue
                    waiting = ((cstatus.get("state") or {}).get("waiting") or {}).get("reason")
                    detail = waiting or "not ready"
                    if cstatus.get("restartCount"):
                        detail += f", {cstatus['restartCount']} restarts"
                    reasons.append(f"{pod['metadata']['name']}/{cstatus.get('name')}: {detail}")
                    evidence.append(ctx.field(pod, f"status.containerStatuses[{index}]", detail))
            message = (
                f"{ref}: {counts['numberReady']} of {desired} pods ready"
                + (f" ({'; '.join(reasons[:4])})" if reasons else "")
                + "."
            )
            namespace = ref.namespace
            yield self.finding(
                message,
                objects=[ref],
                evidence=evidence,
                remediation=Remediation(
                    summary="Find why the pods are not ready (events, waiting reasons) and fix that cause; "
                    "the other findings of this report usually name it.",
                    commands=(
                        f"kubectl -n {namespace} rollout status daemonset/{ref.name}",
                        f"kubectl -n {namespace} get pods -o wide -l "
                        + ",".join(
                            f"{k}={v}"
                            for k, v in sorted(
                                (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items()
                            )
                        ),
                        f"kubectl -n {namespace} get events --field-selector involvedObject.kind=Pod",
                    ),
                ),
            )
        if not with_status and agent_workloads(ctx):
            raise NotChecked("no agent DaemonSet status in the input (manifests that are not applied yet)")


RULES = [
    ApiKeyInManifest,
    LogCollectionWithoutHostMounts,
    RemovedWorkloadApi,
    UnpinnedAgentImage,
    AgentRolloutIncomplete,
]
