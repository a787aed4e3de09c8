"""MD505: the agent DaemonSet is not running and ready on every node."""

from __future__ import annotations

from collections.abc import Iterator

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.kube.meta import name_of
from meshdoctor.kube.workloads import pods_of
from meshdoctor.model import Category, Finding, Remediation, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs

#: DaemonSet status counts, in the order a message names the short ones.
_COUNT_WORDS = (
    ("currentNumberScheduled", "scheduled"),
    ("numberReady", "ready"),
    ("numberAvailable", "available"),
    ("updatedNumberScheduled", "updated"),
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
        "in ContainerCreating, a missing Secret in CreateContainerConfigError). A rollout that is only behind "
        "(every pod ready, some not yet on the new template) loses nothing: a warning.",
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
                    reasons.append(f"{name_of(pod)}/{cstatus.get('name')}: {detail}")
                    evidence.append(ctx.field(pod, f"status.containerStatuses[{index}]", detail))
            said = [f"{counts[key]} of {desired} pods {word}" for key, word in _COUNT_WORDS if key in short]
            if status.get("numberMisscheduled"):
                said.append(f"{status['numberMisscheduled']} running where they should not (misscheduled)")
            # Severity means consequence: a node without a ready agent sends nothing; a rollout that
            # is only behind (not yet updated everywhere, misscheduled) loses no data.
            losing = "numberReady" in short or "numberAvailable" in short
            message = (
                f"{ref}: {', '.join(said)}"
                + (f" ({'; '.join(reasons[:4])})" if reasons else "")
                + ("." if losing else f"; all {desired} pods are ready, so no data is lost.")
            )
            namespace = ref.namespace
            yield self.finding(
                message,
                severity=Severity.ERROR if losing else Severity.WARNING,
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
