"""Which volumeMount carries an istio check configuration, and where it must be for the agent to read it.

The agent reads `<confd_path>/istio.d/*.yaml`; the image's entrypoint also copies
`/conf.d/**/*.yaml` there, but only when the container runs that entrypoint (`runs_cont_init`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from meshdoctor.datadog import paths
from meshdoctor.datadog.istio_check import IstioCheckConfig, VolumeMount, confd_path, runs_cont_init


def mount_of(config: IstioCheckConfig) -> VolumeMount | None:
    """The volumeMount through which the configuration's container sees its file, or None."""
    if config.volume is None:
        return None
    for mount in config.volume.mounts:
        if (
            mount.container == config.container
            and config.mount_path
            and (
                config.mount_path == mount.mount_path
                or config.mount_path.startswith(mount.mount_path.rstrip("/") + "/")
            )
        ):
            return mount
    return None


def check_folder(container: Mapping[str, Any]) -> str:
    """Where a container should get the istio check's files.

    `/conf.d/istio.d` when its entrypoint copies /conf.d (the files then sit beside the image's
    auto_conf.yaml), else `<confd>/istio.d`.
    """
    if runs_cont_init(container):
        return posixpath.join(paths.COPIED_CONFD, "istio.d")
    return posixpath.join(confd_path(container), "istio.d")


def right_mount_path(config: IstioCheckConfig, main: Mapping[str, Any]) -> str:
    """Where the mount should be: `/conf.d/istio.d` when the entrypoint copies, else confd."""
    volume_mount = mount_of(config)
    if volume_mount is not None and runs_cont_init(main) and not volume_mount.init:
        folder = posixpath.join(paths.COPIED_CONFD, "istio.d")
    else:
        folder = posixpath.join(confd_path(main), "istio.d")
    if volume_mount is not None and volume_mount.sub_path:
        name = posixpath.basename(volume_mount.mount_path)
        if not name.endswith(paths.CONFIG_SUFFIXES):
            name = "conf.yaml"
        return posixpath.join(folder, name)
    return folder
