"""What the Nodes report about the cluster: the container runtimes and Kubernetes versions they run.

Read from `status.nodeInfo` (`containerRuntimeVersion: containerd://1.7.2`, `kubeletVersion:
v1.28.3`); Nodes that do not report a value are left out, so an input without Nodes reads as
"unknown", never as a guess.
"""

from __future__ import annotations

import re
from typing import Any

from meshdoctor.snapshot import KubeObject, ObjectReader

_MINOR_VERSION = re.compile(r"v?(\d+)\.(\d+)")


def _node_info(node: KubeObject) -> Any:
    return (node.get("status") or {}).get("nodeInfo") or {}


def minor_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a Kubernetes version (`v1.28.3-eks-1` -> (1, 28)), None if it is none."""
    match = _MINOR_VERSION.match(text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def container_runtimes(reader: ObjectReader) -> set[str]:
    """The container runtimes the Nodes run, by name (`containerd`, `docker`, `cri-o`)."""
    return {str(_node_info(n).get("containerRuntimeVersion", "")).split(":")[0] for n in reader.objects("Node")} - {""}


def _kubelet_versions(reader: ObjectReader) -> list[tuple[int, int]]:
    return [v for v in (minor_version(_node_info(n).get("kubeletVersion", "")) for n in reader.objects("Node")) if v]


def newest_kubelet_version(reader: ObjectReader) -> tuple[int, int] | None:
    """The newest (major, minor) Kubernetes version any Node's kubelet reports, None without one."""
    versions = _kubelet_versions(reader)
    return max(versions) if versions else None


def oldest_kubelet_version(reader: ObjectReader) -> tuple[int, int] | None:
    """The oldest (major, minor) Kubernetes version any Node's kubelet reports, None without one."""
    versions = _kubelet_versions(reader)
    return min(versions) if versions else None


def internal_addresses(reader: ObjectReader) -> list[str]:
    """Every Node's `InternalIP` (`status.addresses`), sorted, without duplicates.

    A pod's `status.hostIP` is its node's InternalIP: where a node agent reaches its kubelet.
    """
    found = {
        str(address.get("address"))
        for node in reader.objects("Node")
        for address in (node.get("status") or {}).get("addresses") or []
        if isinstance(address, dict) and address.get("type") == "InternalIP" and address.get("address")
    }
    return sorted(found)
