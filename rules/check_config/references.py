"""What the check-config rules cite and declare: documentation links, and the kinds read for annotations."""

from __future__ import annotations

from meshdoctor.kube.workloads import WORKLOAD_KINDS

DOCS_CHECK = "https://docs.datadoghq.com/integrations/istio/"
DOCS_CONFIGMAP_VOLUME = "https://kubernetes.io/docs/concepts/storage/volumes/#configmap"
DOCS_AD_ANNOTATIONS = "https://docs.datadoghq.com/containers/kubernetes/integrations/?tab=annotations"
DOCS_AGENT_CONFD = "https://github.com/DataDog/datadog-agent/tree/main/Dockerfiles/agent#optional-volumes"

#: Workload kinds whose pod templates can carry Autodiscovery annotations (read when present).
AD_KINDS = [k for k in WORKLOAD_KINDS if k not in ("DaemonSet", "Deployment")]
