"""Where the node agent reaches its kubelet: the node's IP, port 10250.

The agent's kubelet client (datadog-agent pkg/util/kubernetes/kubelet, `kubernetes_kubelet_host`,
set from `status.hostIP` in every Datadog manifest, Helm chart and Operator; `kubernetes_https_kubelet_port`
default 10250) calls the kubelet for the pod list, tags and the kubelet check. The node's IP is no
Service and no ServiceEntry, so a sidecar that captures the connection under REGISTRY_ONLY sends it
to the BlackHoleCluster (pilot `buildOutboundCatchAllNetworkFiltersOnly`).
"""

from __future__ import annotations

#: `kubernetes_https_kubelet_port` default (DD_KUBERNETES_HTTPS_KUBELET_PORT).
KUBELET_PORT = 10250
KUBELET_PORT_ENV = "DD_KUBERNETES_HTTPS_KUBELET_PORT"
