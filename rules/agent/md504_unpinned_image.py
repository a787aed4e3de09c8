"""MD504: the agent image is not pinned to a version."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_container, agent_release, agent_workloads
from meshdoctor.datadog.agent_version import AgentRelease, release_evidence
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.image_pins import pinned_to_digest, running_digests, unpinned
from meshdoctor.kube.images import split_image
from meshdoctor.kube.meta import labels_of, metadata
from meshdoctor.kube.pod_spec import containers_with_paths, field_path
from meshdoctor.kube.workloads import pod_template, template_path
from meshdoctor.model import Category, Evidence, Finding, Remediation, Severity
from meshdoctor.rule import Context, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject


class UnpinnedAgentImage(Rule):
    """MD504."""

    id = "MD504"
    title = "Agent image is not pinned to a version"
    category = Category.AGENT
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", optional=["Pod", "ReplicaSet"], logs=["agent"])
    docs = RuleDocs(
        what="An agent container whose image has no tag or the `latest` tag, and no digest.",
        why="Each node pulls whatever `latest` is when its pod starts, so one DaemonSet runs several "
        "agent versions at once, and a restart can jump past a changed default (6.19/7.19 moved the logs "
        "transport to HTTPS; 7.47 turned Remote Configuration on, 7.50 and 7.57 added new intakes) "
        "or to another major version. Support cannot tell which version runs.",
        fix="Pin the image to a release tag (or the digest that runs now), and upgrade on purpose.",
        references=("https://docs.datadoghq.com/agent/versions/upgrade_to_agent_v7/",),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        for workload in agent_workloads(ctx):
            template, base = pod_template(workload) or {}, template_path(workload)
            loose = [(cpath, c) for cpath, c in containers_with_paths(template) if unpinned(str(c.get("image", "")))]
            if not loose:
                continue
            running = running_digests(ctx, workload)
            release = agent_release(ctx, workload)
            ref = ctx.ref(workload)
            evidence: list[Evidence] = [
                ctx.field(workload, field_path(base, cpath, "image"), c.get("image")) for cpath, c in loose
            ]
            runs = ""
            if release.from_runtime:
                runs = f" Its newest pod runs {release.version} ({release.evidence_words})."
                found = release_evidence(ctx, workload, release)
                evidence.extend([found] if found is not None else [])
            yield self.finding(
                f"{ref} runs {', '.join(sorted({str(c.get('image')) for _, c in loose}))} without a version: "
                f"nodes can run different agent versions.{runs}",
                objects=[ref],
                evidence=evidence,
                remediation=self._remediation(workload, running, release),
            )

    def _remediation(self, workload: KubeObject, running: dict[str, str], release: AgentRelease) -> Remediation:
        fixed = clean_copy(workload)
        pinned = []
        for _, container in containers_with_paths(pod_template(fixed) or {}):
            image = str(container.get("image", ""))
            digest = running.get(container.get("name", ""))
            if unpinned(image) and digest:
                container["image"] = pinned_to_digest(image, digest)
                pinned.append(container["name"])
        if pinned:
            summary = (
                f"Pin {', '.join(pinned)} to the digest the pods run now (nothing changes on the "
                "nodes); replace it with a release tag when you next upgrade."
            )
            return apply_manifests(summary, [fixed], safe=True)
        if release.from_runtime and release.version is not None:
            return _pin_to_release(workload, release)
        match_labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels")
        labels = match_labels or labels_of(pod_template(workload))
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return Remediation(
            summary="Set the image to an explicit release tag, e.g. gcr.io/datadoghq/agent:7.<minor>.<patch> "
            "(see the Agent release notes), on every agent container; the pods do not show which digest "
            "runs now, so meshdoctor cannot choose it for you.",
            commands=(
                f"kubectl -n {metadata(workload).get('namespace', 'default')} get pods -l {selector} "
                "-o jsonpath='{..imageID}'  # the digests that run now",
            ),
        )


def _pinned_to_release(image: str, version: str) -> str:
    """`datadog/agent:latest-jmx` at 6.10.0 -> `datadog/agent:6.10.0-jmx` (the variant kept)."""
    repository, tag, _ = split_image(image)
    return f"{repository}:{version}{'-jmx' if (tag or '').endswith('-jmx') else ''}"


def _pin_to_release(workload: KubeObject, release: AgentRelease) -> Remediation:
    """The workload with its unpinned agent image set to the release its newest pod runs."""
    fixed = clean_copy(workload)
    main = agent_container(pod_template(workload)) or {}
    image = str(main.get("image") or "")
    pinned = []
    for _, container in containers_with_paths(pod_template(fixed) or {}):
        if container.get("image") == image and unpinned(image) and release.version is not None:
            container["image"] = _pinned_to_release(image, release.version)
            pinned.append(str(container.get("name")))
    summary = (
        f"Pin {', '.join(pinned)} to {_pinned_to_release(image, str(release.version))}, the release its newest "
        f"pod runs ({release.evidence_words}); pods that pulled another release roll to it. Upgrade on purpose "
        "from there."
    )
    return apply_manifests(summary, [fixed], safe=False)
