"""MD203: a ConfigMap holds an istio check configuration that no agent mounts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from meshdoctor.datadog.agent import agent_workloads
from meshdoctor.datadog.istio_check import configmap_volumes, istio_configmap_keys
from meshdoctor.fixes.manifests import apply_manifests, clean_copy
from meshdoctor.kube.meta import name_of, namespace_of
from meshdoctor.kube.workloads import pod_template
from meshdoctor.model import Category, Finding, Severity
from meshdoctor.rule import Context, NotChecked, Rule, RuleDocs, inputs
from meshdoctor.snapshot import KubeObject

from .istio_volume import MOUNT_PATH, with_istio_volume
from .references import DOCS_AGENT_CONFD, DOCS_CHECK


class IstioCheckConfigMapNotReferenced(Rule):
    """MD203."""

    id = "MD203"
    title = "An istio check ConfigMap is not used by any agent"
    category = Category.CHECK_CONFIG
    severity = Severity.WARNING
    inputs = inputs("DaemonSet", "Deployment", "ConfigMap")
    docs = RuleDocs(
        what="A ConfigMap whose content is an istio check configuration (`instances` with "
        "`istio_mesh_endpoint`, `mixer_endpoint`, `istiod_endpoint`...) that no agent (nor Cluster "
        "Agent) pod template references as a volume in its own namespace. (A volume naming it "
        "from another namespace "
        "is "
        "MD207.)",
        why="Someone wrote the check's configuration and believes it is in effect, but the agent "
        "never "
        "sees it: the Istio metrics are missing and nothing fails loudly.",
        fix="Add a ConfigMap volume for it to the agent DaemonSet and mount it at "
        "`/etc/datadog-agent/conf.d/istio.d`, or delete the ConfigMap if it is stale.",
        references=(DOCS_CHECK, DOCS_AGENT_CONFD),
    )

    def check(self, ctx: Context) -> Iterator[Finding]:
        agents = agent_workloads(ctx)
        if not agents:
            raise NotChecked("no Datadog agent workload in the input")
        referenced: set[tuple[str, str]] = set()
        wanted_elsewhere: set[str] = set()
        for workload in agents:
            ref = ctx.ref(workload)
            for volume in configmap_volumes(ctx, workload):
                referenced.add((ref.namespace, volume.configmap))
                if not volume.exists:
                    wanted_elsewhere.add(volume.configmap)
        # The Cluster Agent runs cluster checks (`cluster_check: true`) from its own mounts.
        for kind in ("DaemonSet", "Deployment"):
            for other in ctx.objects(kind):
                other_ns = ctx.ref(other).namespace
                spec = (pod_template(other) or {}).get("spec") or {}
                for volume in spec.get("volumes") or []:
                    sources = [volume.get("configMap")] + [
                        s.get("configMap") for s in (volume.get("projected") or {}).get("sources") or []
                    ]
                    for source in sources:
                        if isinstance(source, Mapping) and source.get("name"):
                            referenced.add((other_ns, str(source["name"])))
        for configmap in ctx.objects("ConfigMap"):
            namespace, name = namespace_of(configmap), name_of(configmap)
            keys = istio_configmap_keys(configmap)
            if not keys or (namespace, name) in referenced or name in wanted_elsewhere:
                continue
            cm_ref = ctx.ref(configmap)
            target = next(
                (w for w in agents if ctx.ref(w).namespace == namespace and w.get("kind") == "DaemonSet"),
                None,
            )
            objects: list[KubeObject] = []
            if target is not None:
                objects.append(with_istio_volume(target, name))
                summary = f"Mount {cm_ref} into {ctx.ref(target)} at {MOUNT_PATH}."
            else:
                target = next((w for w in agents if w.get("kind") == "DaemonSet"), agents[0])
                tns = ctx.ref(target).namespace
                copy = clean_copy(configmap)
                copy["metadata"]["namespace"] = tns
                objects += [copy, with_istio_volume(target, name)]
                summary = (
                    f"A ConfigMap volume can only use its own namespace: copy {cm_ref} to {tns} "
                    "and "
                    f"mount it into {ctx.ref(target)} at {MOUNT_PATH}."
                )
            yield self.finding(
                f"{cm_ref} holds an istio check configuration ({', '.join(keys)}) that no agent mounts.",
                objects=[cm_ref],
                evidence=[ctx.field(configmap, f"data.{keys[0]}", "istio check instances")],
                remediation=apply_manifests(
                    summary,
                    objects,
                    safe=False,
                    alternatives=("or delete the ConfigMap if it is stale",),
                ),
            )
