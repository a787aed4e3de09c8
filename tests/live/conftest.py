"""Live-cluster fixtures: a real kube-apiserver (+ etcd, controller-manager, scheduler, kwok).

The control plane is built and started by ``scripts/live-cluster.sh`` (see docs/live-tests.md).
Only the Python stdlib, pytest and PyYAML are used here: tests talk to the API server with
``urllib`` and the bearer tokens below, never with a Kubernetes client library.

Fixtures:

``live_cluster`` (session)
    A :class:`LiveCluster`: ``.server``, ``.ca_file``, ``.admin_token``, ``.restricted_token``,
    ``.admin_kubeconfig``, ``.restricted_kubeconfig``, ``.audit_log``, ``.node_names``, plus
    helpers ``.request()``, ``.get()/.post()/...``, ``.wait_for()``, ``.wait_pod_ready()``,
    ``.ensure_namespace()``, ``.set_pod_log()`` and ``.audit_events()``.
``live_namespace`` (function)
    A fresh namespace (name returned) with its ``default`` ServiceAccount, deleted after the test.

Environment knobs: ``MESHDOCTOR_LIVE_CACHE`` (binary cache, see the script),
``MESHDOCTOR_LIVE_KEEP=1`` (leave the cluster running after the session; its directory, a
``meshdoctor-live-*`` temp dir, is printed; it is deleted otherwise, but kept if ``start``
fails), ``LIVE_*`` variables of the script (ports, number of kwok nodes...).
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "live-cluster.sh"
BUILD_TIMEOUT = 3600  # first build on a 2-core machine takes minutes, not hours
START_TIMEOUT = 600


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeating it here keeps tests/live self-contained.
    config.addinivalue_line(
        "markers",
        "live: runs against a real kube-apiserver started by scripts/live-cluster.sh (pytest -m live)",
    )


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, method: str, path: str, status: int, body: Any):
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path} -> HTTP {status}: {body!r}"[:2000])


@dataclass
class Response:
    status: int
    body: Any  # parsed JSON when the answer is JSON, else str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class LiveCluster:
    dir: Path
    env: dict[str, str]

    # -- connection facts -------------------------------------------------------------------
    @property
    def server(self) -> str:
        return self.env["APISERVER_URL"]

    @property
    def ca_file(self) -> Path:
        return Path(self.env["CA_FILE"])

    @property
    def admin_token(self) -> str:
        return self.env["ADMIN_TOKEN"]

    @property
    def restricted_token(self) -> str:
        return self.env["RESTRICTED_TOKEN"]

    @property
    def admin_kubeconfig(self) -> Path:
        return Path(self.env["ADMIN_KUBECONFIG"])

    @property
    def restricted_kubeconfig(self) -> Path:
        return Path(self.env["RESTRICTED_KUBECONFIG"])

    @property
    def audit_log(self) -> Path:
        return Path(self.env["AUDIT_LOG"])

    @property
    def pod_log_dir(self) -> Path:
        return Path(self.env["POD_LOG_DIR"])

    @property
    def node_names(self) -> list[str]:
        return [f"kwok-node-{i}" for i in range(int(self.env.get("KWOK_NODES", "1")))]

    @property
    def versions(self) -> dict[str, str]:
        return {k: self.env[k] for k in ("K8S_VERSION", "ETCD_VERSION", "KWOK_VERSION")}

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- plain HTTP -------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
        check: bool = False,
    ) -> Response:
        """Send one request; ``token`` defaults to the admin token. Never raises on HTTP
        errors unless ``check`` (then :class:`ApiError`)."""
        url = self.server + path
        if query:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        data = None
        if body is not None:
            data = (
                body
                if isinstance(body, bytes)
                else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
            )
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        req.add_header("Accept", "application/json, */*")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:
                status, raw, headers = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, raw, headers = e.code, e.read(), dict(e.headers or {})
        text = raw.decode("utf-8", "replace")
        parsed: Any = text
        if headers.get("Content-Type", "").startswith("application/json"):
            try:
                parsed = json.loads(text)
            except ValueError:
                pass
        resp = Response(status, parsed, headers)
        if check and not resp.ok:
            raise ApiError(method, path, status, parsed)
        return resp

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    # -- waiting ----------------------------------------------------------------------------
    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5, what: str = "") -> Any:
        """Poll ``predicate`` until it returns something truthy; return it. TimeoutError after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = predicate()
            if last:
                return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            time.sleep(interval)

    def wait_pod_ready(self, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the pod is Running with condition Ready=True; return the pod."""

        def ready() -> dict[str, Any] | None:
            r = self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
            if not r.ok:
                return None
            status = r.body.get("status") or {}
            conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if status.get("phase") == "Running" and conds.get("Ready") == "True":
                return r.body
            return None

        return self.wait_for(ready, timeout, what=f"pod {namespace}/{name} Running/Ready")

    def ensure_namespace(self, name: str, timeout: float = 30) -> None:
        """Create namespace ``name`` if missing and wait for its ``default`` ServiceAccount
        (made asynchronously by kube-controller-manager; until then the ServiceAccount admission
        plugin rejects pods: "error looking up service account NS/default")."""
        r = self.post(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        if not r.ok and r.status != 409:
            raise ApiError("POST", "/api/v1/namespaces", r.status, r.body)
        if self.env.get("CONTROLLERS", "1") == "1":
            self.wait_for(
                lambda: self.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").ok,
                timeout,
                interval=0.2,
                what=f"serviceaccount {name}/default",
            )

    # -- pod logs (served by kwok) ----------------------------------------------------------
    def pod_log_path(self, namespace: str, pod: str, container: str, previous: bool) -> Path:
        suffix = ".previous.log" if previous else ".log"
        return self.pod_log_dir / namespace / pod / f"{container}{suffix}"

    def set_pod_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        text: str,
        previous: bool = False,
        *,
        stream: str = "stdout",
        wait: bool = True,
        timeout: float = 30,
    ) -> Path:
        """Make ``GET .../pods/POD/log?container=CONTAINER[&previous=true]`` return ``text``.

        Writes ``text`` in CRI log format to a file under ``pod_log_dir`` and points a kwok
        ``Logs`` object (kwok.x-k8s.io/v1alpha1, same namespace and name as the pod) at it.
        Can be called before or after the pod exists. If the pod is already Running and
        ``wait`` is true, waits until the API server actually serves the new text (kwok picks
        up ``Logs`` objects through a watch, so there is a short delay).
        Without a previous log set, ``previous=true`` answers HTTP 400 as on a real kubelet.
        """
        path = self.pod_log_path(namespace, pod, container, previous)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = text.splitlines()
        now = _dt.datetime.now(_dt.timezone.utc)
        with path.open("w", encoding="utf-8") as f:
            for i, line in enumerate(lines):
                ts = now + _dt.timedelta(microseconds=i)
                stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
                f.write(f"{stamp} {stream} F {line}\n")
        current = self.pod_log_path(namespace, pod, container, False)
        if not current.exists():
            current.touch()
        prev = self.pod_log_path(namespace, pod, container, True)
        entry: dict[str, Any] = {"containers": [container], "logsFile": str(current)}
        if prev.exists():
            entry["previousLogsFile"] = str(prev)

        # containers without an entry keep getting an empty log (a per-pod Logs object
        # hides the cluster-wide default ClusterLogs of scripts/live-cluster.sh)
        default = {"logsFile": str(self.pod_log_dir / "empty.log")}
        base = f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{namespace}/logs"
        for _ in range(5):
            r = self.get(f"{base}/{pod}")
            if r.status == 404:
                obj = {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": "Logs",
                    "metadata": {"name": pod, "namespace": namespace},
                    "spec": {"logs": [entry, default]},
                }
                w = self.post(base, obj)
            elif r.ok:
                obj = r.body
                logs = [
                    e
                    for e in obj.get("spec", {}).get("logs", [])
                    if e.get("containers") and container not in e["containers"]
                ]
                obj.setdefault("spec", {})["logs"] = logs + [entry, default]
                w = self.put(f"{base}/{pod}", obj)
            else:
                raise ApiError("GET", f"{base}/{pod}", r.status, r.body)
            if w.ok:
                break
            if w.status != 409:  # 409: lost a race, read again
                raise ApiError("WRITE", f"{base}/{pod}", w.status, w.body)
        else:
            raise RuntimeError(f"could not write kwok Logs {namespace}/{pod}")

        if wait:
            pod_r = self.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
            if pod_r.ok and (pod_r.body.get("status") or {}).get("phase") == "Running":
                expected = "".join(line + "\n" for line in lines)
                query = {"container": container}
                if previous:
                    query["previous"] = "true"
                log_path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"

                def served() -> bool:
                    r = self.get(log_path, query=query)
                    return r.ok and r.body == expected

                self.wait_for(
                    served,
                    timeout,
                    interval=0.2,
                    what=f"kwok to serve the new log of {namespace}/{pod}/{container}",
                )
        return path

    # -- audit ------------------------------------------------------------------------------
    def audit_events(self) -> list[dict[str, Any]]:
        """All audit events written so far (one JSON object per line)."""
        events = []
        if self.audit_log.exists():
            for line in self.audit_log.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    events.append(json.loads(line))
        return events


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def _run_script(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="session")
def live_cluster() -> Iterator[LiveCluster]:
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} not found")
    go = shutil.which("go")
    t0 = time.monotonic()
    build = _run_script("build", timeout=BUILD_TIMEOUT)
    if build.returncode != 0:
        if go is None:
            # the script only needs go when binaries are missing from the cache
            pytest.skip(
                "go toolchain not found: scripts/live-cluster.sh build needs Go (>= 1.26) on "
                f"PATH to build kube-apiserver/etcd/kwok; PATH={os.environ.get('PATH', '')}"
            )
        pytest.fail(f"scripts/live-cluster.sh build failed:\n{_tail(build.stderr)}")
    build_s = time.monotonic() - t0

    # Not under pytest's basetemp: every pytest session on the machine prunes old
    # /tmp/pytest-of-USER/pytest-N dirs, which would delete a cluster running in another session.
    cluster_dir = Path(tempfile.mkdtemp(prefix="meshdoctor-live-"))
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            _run_script("stop", str(cluster_dir), timeout=120)

    t1 = time.monotonic()
    keep = os.environ.get("MESHDOCTOR_LIVE_KEEP") == "1"
    # the script's watchdog stops the cluster if this process dies without a teardown
    watch = {} if keep else {"LIVE_WATCH_PID": str(os.getpid())}
    start = _run_script("start", str(cluster_dir), timeout=START_TIMEOUT, env=watch)
    if start.returncode != 0:
        stop()
        pytest.fail(
            f"scripts/live-cluster.sh start failed:\n{_tail(start.stderr)}\n(component logs in {cluster_dir}/logs)"
        )
    start_s = time.monotonic() - t1
    if not keep:
        atexit.register(stop)  # belt and braces if the session dies before teardown
    cluster = LiveCluster(dir=cluster_dir, env=_read_env(cluster_dir / "env"))
    print(
        f"\nlive cluster {cluster.server} in {cluster_dir} "
        f"(build check {build_s:.1f}s, start {start_s:.1f}s, versions {cluster.versions})"
    )
    try:
        yield cluster
    finally:
        if keep:
            print(f"\nMESHDOCTOR_LIVE_KEEP=1: cluster left running in {cluster_dir}")
        else:
            stop()
            shutil.rmtree(cluster_dir, ignore_errors=True)


@pytest.fixture
def live_namespace(live_cluster: LiveCluster) -> Iterator[str]:
    name = f"live-{uuid.uuid4().hex[:8]}"
    live_cluster.ensure_namespace(name)
    try:
        yield name
    finally:
        live_cluster.delete(f"/api/v1/namespaces/{name}")
        # wait until it is gone: a namespace still terminating is seen by the next test's live check
        # (its objects become findings, and nothing can be created in it)
        live_cluster.wait_for(
            lambda: live_cluster.get(f"/api/v1/namespaces/{name}").status == 404,
            120,
            what=f"namespace {name} deleted",
        )
