"""A cluster that cannot be reached, or credentials it rejects: one line, exit code 2."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_cli import invoke, one_line_error


def _kubeconfig(path: Path, server: str, token: str, ca_file: str | None) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca_file:
        cluster["certificate-authority"] = ca_file
    else:
        cluster["insecure-skip-tls-verify"] = True
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    config = _kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{port}", "t", None)
    err = one_line_error(*invoke("check", "--kubeconfig", str(config), "-q", "--request-timeout", "5s"))
    assert err.startswith(f"meshdoctor: error: cannot reach the cluster at https://127.0.0.1:{port}"), err


@pytest.mark.live
def test_rejected_credentials_are_one_line(live_cluster: Any, tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path / "kubeconfig", live_cluster.server, "not-a-valid-token", str(live_cluster.ca_file))
    err = one_line_error(*invoke("check", "--kubeconfig", str(config), "-q"))
    assert err.startswith(f"meshdoctor: error: credentials rejected by {live_cluster.server}"), err
