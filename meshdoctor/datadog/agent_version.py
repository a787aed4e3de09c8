r"""Which Agent version a workload runs, and which evidence says so.

DESIGN.md: "the agent version from runtime evidence first (imageID, versioned hosts in logs,
start-up line) and the tag second". The tag says what a pod template asks for; `latest`, `7` or a
digest say nothing about the release (the tutorial's `latest` was 6.10 in 2019, 7.x today), and
the pods may run something else than the tag suggests. Evidence is read from the newest pod that
runs the template's agent image, in this order (first found wins):

1. **Start-up line** of the agent container's current log (never the previous instance's): the
   binary's own statement. datadog-agent `cmd/agent/subcommands/run/command.go` `startAgent`
   (7.x) and `cmd/agent/app/start.go` `StartAgent` (6.x):
   `log.Infof("Starting Datadog Agent v%v", version.AgentVersion)`, e.g.
   `2026-11-20 08:05:01 UTC | CORE | INFO | (.../command.go:280 in startAgent) | Starting Datadog
   Agent v7.60.1`. The IoT flavour logs `Starting Datadog IoT Agent v%v` and is not read.
2. **Container status image**: `status.containerStatuses[].image` of the agent container, "the
   name of container image that the container is running ... it may have been resolved by the
   runtime" (Kubernetes API, `ContainerStatus.image`): a node's Docker reports a tag of the image
   it runs, so `datadog/agent:latest` in the spec may show as `datadog/agent:7.50.3` there
   (kubernetes/kubernetes#51017). Only a version tag there counts. `imageID` is not read: the
   kubelet puts the digest there (`docker-pullable://gcr.io/datadoghq/agent@sha256:...`,
   `gcr.io/datadoghq/agent@sha256:...` on containerd), which names no version.
3. **Versioned host** in the agent's current log: the forwarder posts to a host the version makes.
   datadog-agent `pkg/config/utils/endpoints.go` `getDomainPrefix`:
   `fmt.Sprintf("%d-%d-%d-%s.agent", v.Major, v.Minor, v.Patch, app)`, which
   `AddAgentVersionToDomain` puts in place of the `app` subdomain of `dd_url`
   (`https://app.datadoghq.com` -> `https://7-50-3-app.agent.datadoghq.com`). Its lines:
   `comp/forwarder/defaultforwarder/transaction/transaction.go` (6.x `pkg/forwarder/transaction.go`)
   `Successfully posted payload to %q`, `worker.go` `process`
   `Too many errors for endpoint '%s': retrying later`, `Forwarder started, sending to ...`.
   It comes after the start-up line because a `dd_url` set by hand to such a host says nothing
   about the running binary.
4. **Image tag** of the pod template: `7.49.1`, `6.9.0-jmx` -> that version; `latest`, `7`,
   `7-jmx`, `6`, `latest-py2` (and no tag) -> the newest release of that major ("current");
   a digest or another tag -> unknown.

Only the newest pod counts (by `creationTimestamp`, then name): during a rollout older pods run
the previous template. A pod whose agent container runs another image than the template is
skipped; pods known only from their logs (no Pod object) come after those with one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meshdoctor.kube.images import split_image
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.pod_names import is_generated_pod_name
from meshdoctor.kube.workloads import containers, pod_template, pods_of, template_path
from meshdoctor.model import Evidence, FieldEvidence, LogEvidence, ObjectRef
from meshdoctor.snapshot import KubeObject, LogKey, LogSource, ObjectReader

#: Which evidence decided, most telling first.
STARTUP_LINE = "start-up line"
CONTAINER_STATUS = "container status"
VERSIONED_HOST = "versioned host"
IMAGE_TAG = "image tag"
UNPINNED_TAG = "unpinned tag"
UNKNOWN = "unknown"

#: Evidence read from a running pod (the rest is the pod template's tag).
RUNTIME_EVIDENCE = (STARTUP_LINE, CONTAINER_STATUS, VERSIONED_HOST)

#: `Starting Datadog Agent v%v` (`startAgent` / `StartAgent`), as the message of a log line: at
#: the start of the line, after the ` | ` of the agent's text format, or after a JSON `"msg":"`.
_STARTUP = re.compile(r'(?:^|\| |")Starting Datadog Agent v(\d+)\.(\d+)\.(\d+)(?![\d.]*\d)')

#: `<major>-<minor>-<patch>-<app>.agent.` (`getDomainPrefix`) as a URL's host: after `//`.
_HOST = re.compile(r"//(\d+)-(\d+)-(\d+)-[a-z]+\.agent\.[a-z0-9.-]+")

#: Literal prefilters: a line holding neither is not read further.
_STARTUP_LITERAL = "Starting Datadog Agent v"
_HOST_LITERAL = ".agent."

#: The release an unpinned tag pulls today, as (major, minor): `latest`, `7`, `7-jmx` float to the
#: newest 7.x, `6` and `latest-py2` to the newest 6.x (Agent 6 moved to `latest-py2` with 7.16).
CURRENT_MINOR = 999
FLOATING_TAGS: dict[str, tuple[int, int]] = {
    "latest": (7, CURRENT_MINOR),
    "7": (7, CURRENT_MINOR),
    "6": (6, CURRENT_MINOR),
    "latest-py2": (6, CURRENT_MINOR),
}


def tag_version(image: str) -> str | None:
    """The version a tag pins (`7.49.1`, `6.9.0-jmx` -> `6.9.0`); None for `latest`, `7`, digests."""
    tag = split_image(image)[1] or ""
    parts = tag.split("-", 1)[0].split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return ".".join(str(int(p)) for p in parts)
    return None


def startup_line_version(line: str) -> str | None:
    """`... | Starting Datadog Agent v7.50.3` -> `7.50.3`; None for any other line."""
    if _STARTUP_LITERAL not in line:
        return None
    match = _STARTUP.search(line)
    return ".".join(str(int(g)) for g in match.groups()) if match else None


def versioned_host_version(line: str) -> str | None:
    """`... "https://6-10-0-app.agent.datadoghq.com/api/v1/series" ...` -> `6.10.0`; else None."""
    if _HOST_LITERAL not in line:
        return None
    match = _HOST.search(line)
    return ".".join(str(int(g)) for g in match.groups()) if match else None


class LogReader(ObjectReader, Protocol):
    """A reader that also serves container logs (`meshdoctor.rule.Context`)."""

    def logs(self, namespace: str, pod: str, container: str, previous: bool = False) -> LogSource | None:
        """A container log, or None."""
        ...

    def log_keys(self) -> list[LogKey]:
        """Every container log of the input."""
        ...


@dataclass(frozen=True)
class AgentRelease:
    """The release an agent workload runs, and the evidence that decided it."""

    release: tuple[int, int] | None
    """(major, minor); the minor is `CURRENT_MINOR` for an unpinned tag; None when unknown."""
    version: str | None
    """`major.minor.patch` when the evidence names one; None for an unpinned tag or unknown."""
    decided_by: str
    """`STARTUP_LINE`, `CONTAINER_STATUS`, `VERSIONED_HOST`, `IMAGE_TAG`, `UNPINNED_TAG` or `UNKNOWN`."""
    image: str
    """The template's agent image (what the tag says)."""
    pod: str = ""
    """`namespace/name` of the pod whose evidence decided (runtime evidence only)."""
    container: str = ""
    """The agent container's name."""
    line_number: int = 0
    """1-based line of the log line that decided (log evidence only)."""
    line: str = ""
    """That line, or the container status image."""
    status_index: int = -1
    """Index in `status.containerStatuses` (container status evidence only)."""

    @property
    def from_runtime(self) -> bool:
        """Whether a running pod decided (not the pod template's tag)."""
        return self.decided_by in RUNTIME_EVIDENCE

    @property
    def text(self) -> str:
        """How messages name it: `agent 6.10.0 (its start-up log line, pod datadog/x)`."""
        if self.from_runtime:
            return f"agent {self.version} ({self.evidence_words})"
        if self.decided_by == IMAGE_TAG:
            return f"agent {self.version}"
        if self.release is not None:
            tag = split_image(self.image)[1] or "latest"
            return f"the unpinned tag {tag} (a current {self.release[0]}.x)"
        return "an agent whose version the image does not show"

    @property
    def evidence_words(self) -> str:
        """Which evidence decided, in words: `its start-up log line, pod datadog/x`."""
        return {
            STARTUP_LINE: f"its start-up log line, pod {self.pod}",
            CONTAINER_STATUS: f"the image pod {self.pod} reports running, {self.line}",
            VERSIONED_HOST: f"the versioned intake host in its forwarder log, pod {self.pod}",
            IMAGE_TAG: f"its image tag, {self.image}",
            UNPINNED_TAG: f"its unpinned image {self.image}, assumed current",
            UNKNOWN: f"unknown: neither its pods nor its image {self.image} show it",
        }[self.decided_by]

    def since(self, first: tuple[int, int] | Mapping[int, tuple[int, int]]) -> bool | None:
        """Whether the release is at least `first` (one version, or per major); None if unknown."""
        if self.release is None:
            return None
        wanted = first.get(self.release[0]) if isinstance(first, Mapping) else first
        return wanted is not None and self.release >= wanted


def _release_of(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def from_tag(image: str) -> AgentRelease:
    """What the image tag alone says (step 4)."""
    version = tag_version(image)
    if version is not None:
        return AgentRelease(_release_of(version), version, IMAGE_TAG, image)
    _, tag, digest = split_image(image)
    if tag is None and digest is None:
        tag = "latest"
    base = (tag or "").split("-jmx", 1)[0]
    if base in FLOATING_TAGS:
        return AgentRelease(FLOATING_TAGS[base], None, UNPINNED_TAG, image)
    return AgentRelease(None, None, UNKNOWN, image)


def _creation(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def _newest_first(pods: Iterable[KubeObject]) -> list[KubeObject]:
    """By creationTimestamp, newest first (RFC 3339 UTC compares as text), then by name."""
    by_name = sorted(pods, key=name_of)
    return sorted(by_name, key=_creation, reverse=True)


def _runs_image(pod: Mapping[str, Any], container: str, image: str) -> bool:
    """Whether a pod's agent container runs the template's image (a pod left from a rollout does not)."""
    for spec in containers(pod, include_init=False):
        if spec.get("name") == container:
            return str(spec.get("image") or "") == image
    return True


def _from_status(pod: Mapping[str, Any], container: str) -> tuple[int, str, str] | None:
    """(index, image, version) of the agent container's status image when it carries a version tag."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for index, status in enumerate(statuses):
        if isinstance(status, Mapping) and status.get("name") == container:
            image = str(status.get("image") or "")
            version = tag_version(image)
            return (index, image, version) if version else None
    return None


def _from_log(log: LogSource) -> tuple[str, int, str, str] | None:
    """(evidence, line number, line, version) from a current log, or None.

    The start-up line, else the first versioned host; reading stops at the start-up line.
    """
    host: tuple[str, int, str, str] | None = None
    for number, line in enumerate(log.lines(), start=1):
        version = startup_line_version(line)
        if version is not None:
            return STARTUP_LINE, number, line, version
        if host is None:
            version = versioned_host_version(line)
            if version is not None:
                host = (VERSIONED_HOST, number, line, version)
    return host


def _log_reader(reader: ObjectReader) -> LogReader | None:
    logs, keys = getattr(reader, "logs", None), getattr(reader, "log_keys", None)
    return reader if callable(logs) and callable(keys) else None  # type: ignore[return-value]


def resolve_release(reader: ObjectReader, workload: KubeObject, main: Mapping[str, Any] | None) -> AgentRelease:
    """The release `workload` runs, whose agent container is `main`, and what decided it.

    Runtime evidence of the newest pod first (module docstring), then the tag. Logs are read only
    when `reader` serves them (a rule's `Context`); memoised in its run cache when it has one.
    """
    cache = getattr(reader, "cache", None)
    key = ("datadog.agent_version", str(workload.get("kind")), namespace_of(workload), name_of(workload))
    if isinstance(cache, dict) and key in cache:
        return cache[key]  # type: ignore[no-any-return]
    resolved = _resolve(reader, workload, main)
    if isinstance(cache, dict):
        cache[key] = resolved
    return resolved


def _resolve(reader: ObjectReader, workload: KubeObject, main: Mapping[str, Any] | None) -> AgentRelease:
    image = str((main or {}).get("image") or "")
    name = str((main or {}).get("name") or "")
    tagged = dataclasses.replace(from_tag(image), container=name)
    if not main:
        return tagged
    namespace = namespace_of(workload)
    logs = _log_reader(reader)
    pods: list[tuple[str, KubeObject | None]] = [
        (name_of(p), p) for p in _newest_first(pods_of(reader, workload)) if _runs_image(p, name, image)
    ]
    if logs is not None:
        known = {pod_name for pod_name, _ in pods} | {name_of(p) for p in pods_of(reader, workload)}
        orphans = sorted(
            {
                k.pod
                for k in logs.log_keys()
                if k.namespace == namespace
                and k.container == name
                and not k.previous
                and k.pod not in known
                and is_generated_pod_name(workload, k.pod)
                and reader.get("Pod", namespace, k.pod) is None
            }
        )
        pods.extend((pod_name, None) for pod_name in orphans)
    for pod_name, pod in pods:
        found = _pod_evidence(logs, namespace, pod_name, pod, name)
        if found is not None:
            return AgentRelease(
                _release_of(found["version"]),
                found["version"],
                found["decided_by"],
                image,
                pod=f"{namespace}/{pod_name}",
                container=name,
                line_number=found.get("line_number", 0),
                line=found["line"],
                status_index=found.get("status_index", -1),
            )
    return tagged


def _pod_evidence(
    logs: LogReader | None, namespace: str, pod_name: str, pod: KubeObject | None, container: str
) -> dict[str, Any] | None:
    """One pod's evidence, start-up line over container status over versioned host; None if none."""
    from_log = None
    if logs is not None:
        log = logs.logs(namespace, pod_name, container)
        from_log = _from_log(log) if log is not None else None
    if from_log is not None and from_log[0] == STARTUP_LINE:
        return {"decided_by": STARTUP_LINE, "line_number": from_log[1], "line": from_log[2], "version": from_log[3]}
    status = _from_status(pod, container) if pod is not None else None
    if status is not None:
        return {"decided_by": CONTAINER_STATUS, "status_index": status[0], "line": status[1], "version": status[2]}
    if from_log is not None:
        return {"decided_by": VERSIONED_HOST, "line_number": from_log[1], "line": from_log[2], "version": from_log[3]}
    return None


def release_evidence(reader: ObjectReader, workload: KubeObject, resolved: AgentRelease) -> Evidence | None:
    """The evidence item that decided: the log line, the pod's status field, or the template's image.

    Field evidence carries its file and line when `reader` is a rule `Context`.
    """
    field = getattr(reader, "field", None)
    if resolved.decided_by in (STARTUP_LINE, VERSIONED_HOST):
        namespace, _, pod_name = resolved.pod.partition("/")
        return LogEvidence(namespace, pod_name, resolved.container, resolved.line_number, resolved.line)
    if resolved.decided_by == CONTAINER_STATUS:
        namespace, _, pod_name = resolved.pod.partition("/")
        path = f"status.containerStatuses[{resolved.status_index}].image"
        status_pod = reader.get("Pod", namespace, pod_name)
        if status_pod is not None and callable(field):
            return field(status_pod, path, resolved.line)  # type: ignore[no-any-return]
        return FieldEvidence(ObjectRef("Pod", namespace, pod_name), path, resolved.line)
    template = pod_template(workload) or {}
    for index, spec in enumerate(containers(template, include_init=False)):
        if spec.get("name") == resolved.container:
            path = f"{template_path(workload)}.spec.containers[{index}].image"
            if callable(field):
                return field(workload, path, resolved.image)  # type: ignore[no-any-return]
            ref = ObjectRef(str(workload.get("kind")), namespace_of(workload), name_of(workload))
            return FieldEvidence(ref, path, resolved.image)
    return None
