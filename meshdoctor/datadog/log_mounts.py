"""The host paths the agent's container log collection reads, by container runtime.

Source: Datadog "Kubernetes log collection" docs and the helm chart's _daemonset-volumes-linux.yaml
(logpodpath /var/log/pods, logscontainerspath /var/log/containers, logdockercontainerpath
/var/lib/docker/containers, pointerdir /var/lib/datadog-agent/logs mounted at
/opt/datadog-agent/run).
"""

from __future__ import annotations

#: A host directory the agent mounts: (the chart's volume name, host path, mount path).
HostMount = tuple[str, str, str]

POD_LOGS: HostMount = ("logpodpath", "/var/log/pods", "/var/log/pods")
DOCKER_CONTAINER_LOGS: HostMount = (
    "logdockercontainerpath",
    "/var/lib/docker/containers",
    "/var/lib/docker/containers",
)
POINTER_DIR: HostMount = ("pointerdir", "/var/lib/datadog-agent/logs", "/opt/datadog-agent/run")
DOCKER_SOCKET = "/var/run/docker.sock"


def needed_log_mounts(runtimes: set[str], host_mounts: set[str], use_file: bool) -> list[HostMount]:
    """The container log directories the agent must mount from the host to tail log files.

    `runtimes` are the nodes' container runtimes (empty when unknown), `host_mounts` the agent
    container's hostPath mount paths, `use_file` whether `DD_LOGS_CONFIG_K8S_CONTAINER_USE_FILE`
    is `true`. None when the agent collects from the Docker socket instead (socket mounted, files
    not forced, every known node on Docker); else /var/log/pods, and /var/lib/docker/containers
    (which the files under /var/log/pods link to) where nodes run Docker, or, nodes unknown, when
    the Docker socket is mounted. The pointer directory is needed in every case (`POINTER_DIR`).
    """
    socket = DOCKER_SOCKET in host_mounts
    via_socket = socket and not use_file and runtimes <= {"docker"}
    needed: list[HostMount] = []
    if not via_socket:
        needed.append(POD_LOGS)
        if "docker" in runtimes or (not runtimes and socket):
            needed.append(DOCKER_CONTAINER_LOGS)
    return needed
