"""The live source: one snapshot of a running cluster, read-only, as cheaply as possible.

This is the only module that imports the Kubernetes client, and only inside functions (so
`meshdoctor --help` does not pay for it). The client builds the TLS connection pool from the
kubeconfig meshdoctor resolved itself (`meshdoctor.sources.kubeconfig`); requests go through that pool as
plain HTTP with JSON bodies parsed into dicts, so objects are exactly what the API server serves
and no generated model class is involved (the client's generated API changed shape between
releases; its connection pool did not).

What is fetched, and nothing more (DESIGN.md, "Budgets"):
- `/version` and the API discovery document (`/apis`, aggregated discovery when the server has it);
- ONE paginated LIST (limit 500, `continue`) per kind the selected rules declare, across all
  namespaces or one (`-n`), 4 at a time; a custom resource that is not installed is an empty kind,
  a 403 is recorded as missing (`forbidden: cannot list ...`), never a crash;
- the logs of the pods the rules ask for (`agent`, `istio-proxy`, `telemetry` groups), bounded in
  lines, bytes and age, with the previous instance's where the container restarted;
- SubjectAccessReviews for the agent's permissions (they persist nothing), when rbac kinds are
  wanted and the runner may create them;
- with `--probe`, the telemetry endpoints through the API server's service proxy.
Nothing is ever written to the cluster except SubjectAccessReviews.

Every request goes through `sources/retry.py` (429/5xx with Retry-After, resets and timeouts on GETs,
at most 3 retries, one deadline for the run); a LIST that still fails makes its kind missing with
the reason (the rules that need it are not_checked); only `/version` failing ends the run (exit 2).
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from meshdoctor.errors import UsageError
from meshdoctor.istio.versions import TELEMETRY_POD_LABELS
from meshdoctor.kube.kinds import KINDS, KindInfo, with_type
from meshdoctor.kube.meta import labels_of
from meshdoctor.model import SourceInfo
from meshdoctor.rule import Inputs
from meshdoctor.snapshot import REDACTED, KubeObject, LogKey, Snapshot
from meshdoctor.sources.kubeconfig import ClusterConfig, resolve, with_exec_credentials
from meshdoctor.sources.progress import Progress
from meshdoctor.sources.retry import Deadline, RequestFailed, TransportFailure, run_deadline, send_with_retries

#: Objects per LIST page (kubectl uses 500 too: `--chunk-size` default).
PAGE_SIZE = 500
#: Concurrent requests (kinds listed, logs fetched) at a time.
WORKERS = 4
#: Log bounds: lines from the end, bytes, and age (`--since`).
LOG_TAIL_LINES = 5000
LOG_LIMIT_BYTES = 5 * 1024 * 1024
LOG_SINCE_SECONDS = 3600

#: Container name of the injected sidecar (istio/istio injection templates, every version).
SIDECAR = "istio-proxy"

#: Kinds the agent-permission SubjectAccessReviews are asked for (the rbac rules read these).
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})

#: Kinds needed to find the pods whose logs the rules ask for (agent workloads and their pods).
LOG_SELECTION_KINDS = frozenset({"Pod", "DaemonSet", "Deployment", "ReplicaSet"})


@dataclass(frozen=True)
class LiveOptions:
    """How to reach the cluster and how much to read from it (the CLI's flags)."""

    kubeconfig: str | None = None
    """`--kubeconfig`."""
    context: str | None = None
    """`--context`."""
    namespace: str | None = None
    """`-n`: list namespaced kinds in this namespace only; None: all namespaces (`-A`, the default)."""
    request_timeout: float = 30.0
    """`--request-timeout` in seconds, per request."""
    probe: bool = False
    """`--probe`: fetch the telemetry endpoints through the API server's service proxy."""
    log_tail_lines: int = LOG_TAIL_LINES
    log_limit_bytes: int = LOG_LIMIT_BYTES
    log_since_seconds: int | None = LOG_SINCE_SECONDS
    """`--since`: only log lines newer than this; None for the whole (tail-bounded) log."""
    workers: int = WORKERS
    page_size: int = PAGE_SIZE
    environ: Mapping[str, str] | None = None
    """Environment to resolve the kubeconfig from (tests); None: os.environ."""


class ApiStatusError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, reason: str, message: str, attempts: int = 1) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.attempts = attempts

    def after(self) -> str:
        """` (after 4 attempts)` when the answer was retried, else empty."""
        return f" (after {self.attempts} attempts)" if self.attempts > 1 else ""


class ClusterUnreachable(UsageError):
    """No answer from the API server, after the retries or past the run's deadline.

    Before anything was read: one line, exit 2; later: the not-checked reason of what was being read.
    """

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"cannot reach the cluster at {server}: {reason}")
        self.reason = reason


#: Internal header `Connection.request` adds to a retried answer: how many attempts it took.
ATTEMPTS_HEADER = "X-Meshdoctor-Attempts"


class MemoryLog:
    """A container log fetched from the API server, held in memory (bounded by `limitBytes`)."""

    def __init__(self, origin: str, data: bytes) -> None:
        self.origin = origin
        self._data = data

    @property
    def size(self) -> int:
        """Bytes held."""
        return len(self._data)

    def raw(self) -> bytes:
        """The bytes as served."""
        return self._data

    def lines(self) -> Iterator[str]:
        """The lines, without line ends, decoded as UTF-8 with replacement."""
        text = self._data.decode("utf-8", errors="replace")
        if not text:
            return
        if text.endswith("\n"):
            text = text[:-1]
        for line in text.split("\n"):
            yield line[:-1] if line.endswith("\r") else line


# -- the connection --------------------------------------------------------------------------


class Connection:
    """Plain JSON requests to one API server, through the Kubernetes client's TLS pool."""

    def __init__(self, config: ClusterConfig, timeout: float, pool_size: int = WORKERS * 2) -> None:
        from kubernetes import client  # the only place the client is imported

        self.config = config
        self.server = config.server
        self.timeout = timeout
        self.deadline = Deadline(run_deadline(timeout))
        """One deadline for every request of the run (`sources/retry.py`, `run_deadline`)."""
        self.sleep: Callable[[float], None] = time.sleep
        """How to wait before a retry (tests replace it)."""
        configuration = client.Configuration()
        configuration.host = config.server
        configuration.verify_ssl = not config.insecure_skip_tls_verify
        if config.ca_file:
            configuration.ssl_ca_cert = config.ca_file
        elif config.ca_data:
            configuration.ssl_ca_cert = _temp_file(config.ca_data, "ca.crt")
        if config.client_cert_file or config.client_cert_data:
            configuration.cert_file = config.client_cert_file or _temp_file(
                config.client_cert_data or b"", "client.crt"
            )
            configuration.key_file = config.client_key_file or _temp_file(config.client_key_data or b"", "client.key")
        if config.tls_server_name and hasattr(configuration, "tls_server_name"):
            configuration.tls_server_name = config.tls_server_name
        if config.proxy_url:
            configuration.proxy = config.proxy_url
        configuration.connection_pool_maxsize = pool_size
        self._api_client = client.ApiClient(configuration)
        self._pool = self._api_client.rest_client.pool_manager
        from meshdoctor import __version__

        self._headers = {"Accept": "application/json", "User-Agent": f"meshdoctor/{__version__}"}
        token = config.bearer_token()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif config.username is not None:
            import base64

            basic = base64.b64encode(f"{config.username}:{config.password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"

    def close(self) -> None:
        """Release the connection pool."""
        try:
            self._pool.clear()
        except Exception:  # pragma: no cover - closing must never fail the run
            pass

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        accept: str | None = None,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """One request with its retries (`sources/retry.py`); (status, body, headers).

        No answer after every attempt (or past the run's deadline) raises ClusterUnreachable.
        """
        import urllib3

        url = self.server + path
        if query:
            url += ("&" if "?" in url else "?") + urlencode({k: v for k, v in query.items() if v is not None})
        headers = dict(self._headers)
        if accept:
            headers["Accept"] = accept
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"

        def send(timeout: float) -> tuple[int, bytes, Mapping[str, str]]:
            try:
                response = self._pool.request(
                    method,
                    url,
                    body=data,
                    headers=headers,
                    retries=False,
                    timeout=urllib3.Timeout(total=timeout),
                    preload_content=True,
                )
            except urllib3.exceptions.HTTPError as exc:
                reason = _transport_reason(exc, timeout)
                raise TransportFailure(reason, retryable=_retryable(reason)) from None
            return int(response.status), bytes(response.data or b""), dict(response.headers)

        try:
            (status, payload, answer_headers), attempts = send_with_retries(
                send, method, self.timeout, self.deadline, self.sleep
            )
        except RequestFailed as exc:
            raise ClusterUnreachable(self.server, exc.reason) from None
        if status == 401:
            what = "expired or invalid token" if "Authorization" in self._headers else "no valid credentials"
            raise UsageError(f"credentials rejected by {self.server}: {what}")
        if attempts > 1:
            answer_headers = {**answer_headers, ATTEMPTS_HEADER: str(attempts)}
        return status, payload, answer_headers

    def get_json(self, path: str, query: Mapping[str, Any] | None = None, accept: str | None = None) -> dict[str, Any]:
        """GET a JSON document; ApiStatusError on non-2xx."""
        status, data, headers = self.request("GET", path, query, accept=accept)
        if not 200 <= status < 300:
            raise _status_error(status, data, headers)
        return json.loads(data)

    def post_json(self, path: str, body: Any) -> dict[str, Any]:
        """POST a JSON document (only SubjectAccessReviews are ever posted); ApiStatusError on non-2xx."""
        status, data, headers = self.request("POST", path, body=body)
        if not 200 <= status < 300:
            raise _status_error(status, data, headers)
        return json.loads(data)

    def get_bytes(self, path: str, query: Mapping[str, Any] | None = None) -> bytes:
        """GET raw bytes (logs); ApiStatusError on non-2xx."""
        status, data, headers = self.request("GET", path, query, accept="*/*")
        if not 200 <= status < 300:
            raise _status_error(status, data, headers)
        return data


_TEMP_FILES: list[str] = []


def _temp_file(data: bytes, name: str) -> str:
    """Write PEM data the TLS layer can only read from a file; removed when meshdoctor exits."""
    handle, path = tempfile.mkstemp(prefix="meshdoctor-", suffix=f"-{name}")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    if not _TEMP_FILES:
        atexit.register(_remove_temp_files)
    _TEMP_FILES.append(path)
    return path


def _remove_temp_files() -> None:
    for path in _TEMP_FILES:
        try:
            os.unlink(path)
        except OSError:
            pass


def _transport_reason(exc: Exception, timeout: float) -> str:
    """`connection refused`, `timed out after 30s`, `TLS: certificate verify failed`..."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(current, (ConnectionAbortedError, http.client.RemoteDisconnected, http.client.IncompleteRead)):
            return "the server closed the connection before answering"
        if isinstance(current, (socket.timeout, TimeoutError)) or "timed out" in str(current).lower():
            return f"timed out after {timeout:g}s"
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({current.verify_message})"
        if isinstance(current, ssl.SSLError):
            return f"TLS error ({current.reason or current})"
        if isinstance(current, socket.gaierror):
            return "cannot resolve the host name"
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):  # urllib3's ProtocolError carries its cause in args
            nxt = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = nxt if isinstance(nxt, BaseException) else (current.__cause__ or current.__context__)
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return text.split(": ", 1)[-1][:200]


def _retryable(reason: str) -> bool:
    """A reset, an early EOF or a timeout may pass; a refused connection, a TLS or name failure will not."""
    return not (reason == "connection refused" or reason.startswith(("TLS", "cannot resolve")))


def _status_error(status: int, data: bytes, headers: Mapping[str, str] | None = None) -> ApiStatusError:
    attempts = int((headers or {}).get(ATTEMPTS_HEADER) or 1)
    try:
        body = json.loads(data)
        return ApiStatusError(status, str(body.get("reason") or ""), str(body.get("message") or ""), attempts)
    except (ValueError, AttributeError):
        return ApiStatusError(status, "", data[:200].decode("utf-8", "replace").strip(), attempts)


# -- discovery -------------------------------------------------------------------------------

_AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


@dataclass
class Discovery:
    """Which version of each group serves which resources (plural names)."""

    served: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """group -> version -> plurals; a version with an empty set is served but its resources unknown."""
    preferred: dict[str, list[str]] = field(default_factory=dict)
    """group -> versions, the server's preferred first."""

    def version_for(self, info: KindInfo, resources_of: Callable[[str, str], set[str]]) -> str | None:
        """The version to list a kind at: the first of ours the server serves it in; None if not served."""
        if not info.group:
            return info.version
        versions = self.served.get(info.group)
        if not versions:
            return None
        order = list(info.versions) + [v for v in self.preferred.get(info.group, []) if v not in info.versions]
        for version in order:
            if version not in versions:
                continue
            plurals = versions[version]
            if not plurals:
                plurals = versions[version] = resources_of(info.group, version)
            if info.plural in plurals:
                return version
        return None


def discover(conn: Connection) -> Discovery:
    """One GET of `/apis`: aggregated discovery (Kubernetes >= 1.26) lists resources per version."""
    doc = conn.get_json("/apis", accept=_AGGREGATED)
    found = Discovery()
    if doc.get("kind") == "APIGroupDiscoveryList":
        for group in doc.get("items") or []:
            name = str((group.get("metadata") or {}).get("name") or "")
            versions = group.get("versions") or []
            found.preferred[name] = [str(v.get("version")) for v in versions]
            found.served[name] = {
                str(v.get("version")): {str(r.get("resource")) for r in v.get("resources") or []} for v in versions
            }
        return found
    for group in doc.get("groups") or []:
        name = str(group.get("name") or "")
        preferred = str((group.get("preferredVersion") or {}).get("version") or "")
        versions = [str(v.get("version")) for v in group.get("versions") or []]
        found.preferred[name] = [preferred] + [v for v in versions if v != preferred] if preferred else versions
        found.served[name] = {v: set() for v in versions}
    return found


# -- collection ------------------------------------------------------------------------------


def collect_live(options: LiveOptions, inputs: Inputs, progress: Progress | None = None) -> tuple[Snapshot, SourceInfo]:
    """Read what the selected rules need from the cluster the kubeconfig names."""
    config = resolve(options.kubeconfig, options.context, environ=options.environ)
    config = with_exec_credentials(config, environ=options.environ)
    progress = progress or Progress()
    conn = Connection(config, options.request_timeout, pool_size=max(options.workers * 2, 4))
    try:
        return LiveCollector(conn, options, progress).collect(inputs)
    finally:
        conn.close()
        progress.close()


def kinds_to_list(inputs: Inputs, probe: bool = False) -> set[str]:
    """The kinds the rules declare, plus those needed to select the logs and access reviews asked for."""
    kinds = set(inputs.kinds | inputs.optional_kinds)
    if inputs.logs:
        kinds |= LOG_SELECTION_KINDS
    if kinds & RBAC_KINDS:
        kinds |= {"DaemonSet", "Deployment"}
    if probe:
        kinds |= {"ConfigMap", "Pod"}
    return kinds


class LiveCollector:
    """One collection run over one connection."""

    def __init__(self, conn: Connection, options: LiveOptions, progress: Progress) -> None:
        self.conn = conn
        self.options = options
        self.progress = progress
        self.snapshot = Snapshot()
        self.missing: dict[str, str] = {}
        self.not_installed: list[str] = []
        self.listed: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def collect(self, inputs: Inputs) -> tuple[Snapshot, SourceInfo]:
        """Version, discovery, lists, then logs, access reviews and probes."""
        snapshot = self.snapshot
        try:
            version = self.conn.get_json("/version")
        except ApiStatusError as exc:
            raise UsageError(
                f"cannot read the version of the cluster at {self.conn.server}: HTTP {exc.status} "
                f"{exc.message[:200]}{exc.after()}"
            ) from None
        snapshot.probes["server"] = {k: version.get(k) for k in ("major", "minor", "gitVersion", "platform")}
        wanted = kinds_to_list(inputs, self.options.probe)
        with ThreadPoolExecutor(max_workers=max(1, self.options.workers), thread_name_prefix="meshdoctor") as pool:
            self._list_all(wanted, pool)
            if inputs.logs:
                self._fetch_logs(inputs.logs, pool)
            if wanted & RBAC_KINDS:
                self._review_agent_access(pool)
            if self.options.probe:
                self._probe(pool)
        snapshot.probes["live"] = {
            "server": self.conn.server,
            "context": self.conn.config.context,
            "namespace": self.options.namespace,
            "not_installed": sorted(self.not_installed),
            "lists": dict(sorted(self.listed.items())),
        }
        for kind, reason in self.missing.items():
            snapshot.mark_missing(kind, reason)
        if self.options.namespace:
            # namespaced kinds were listed in this namespace only (`_list_kind`): objects any rule
            # looks for elsewhere (istio-system's control plane, mesh config) are not known
            snapshot.limit_namespaces([self.options.namespace], f"-n {self.options.namespace}")
        target = f"{self.conn.config.context} ({self.conn.server})"
        if self.options.namespace:
            target += f" namespace {self.options.namespace}"
        declared = inputs.kinds | inputs.optional_kinds
        missing = tuple(
            f"{kind}: {reason}"
            for kind, reason in sorted(self.missing.items())
            if kind in declared or kind not in KINDS
        ) + tuple(snapshot.scope_lines())
        return snapshot, SourceInfo("live", target, missing)

    # -- lists ------------------------------------------------------------------------------

    def _list_all(self, wanted: set[str], pool: ThreadPoolExecutor) -> None:
        rows = [KINDS[k] for k in sorted(wanted) if k in KINDS]
        for kind in sorted(wanted - set(KINDS)):
            self.missing[kind] = "meshdoctor does not know where the API serves this kind"
        self.progress.begin("listing", len(rows))
        discovery = Discovery()
        if any(r.group for r in rows):
            try:
                discovery = discover(self.conn)
            except (ApiStatusError, ClusterUnreachable) as exc:
                # without discovery no grouped kind can be listed; the core ones still can
                if isinstance(exc, ApiStatusError):
                    why = f"HTTP {exc.status} {exc.message[:200]}{exc.after()}"
                else:
                    why = exc.reason
                for info in rows:
                    if info.group:
                        self.missing[info.kind] = f"error: API discovery (/apis) failed: {why}"
                rows = [r for r in rows if not r.group]
        jobs: dict[str, Future[list[KubeObject] | None]] = {}
        for info in rows:
            try:
                version = discovery.version_for(info, self._resources_of)
            except ClusterUnreachable as exc:  # a group's resource list (servers without aggregated discovery)
                self.missing[info.kind] = f"error: {exc.reason} reading API discovery for {info.group}"
                self.progress.kind_listed(info.kind, 0)
                continue
            if version is None:
                if info.custom:
                    self.not_installed.append(info.kind)
                    self.snapshot.mark_collected([info.kind])
                else:
                    self.missing[info.kind] = f"not served by this API server ({info.group})"
                self.progress.kind_listed(info.kind, 0)
                continue
            jobs[info.kind] = pool.submit(self._list_kind, info, version)
        for kind, job in jobs.items():
            items = job.result()
            if items is None:
                self.progress.kind_listed(kind, 0)
                continue
            for obj in items:
                self.snapshot.add(obj)
            self.snapshot.mark_collected([kind])
            self.progress.kind_listed(kind, len(items))

    def _resources_of(self, group: str, version: str) -> set[str]:
        try:
            doc = self.conn.get_json(f"/apis/{group}/{version}")
        except ApiStatusError:
            return set()
        return {str(r.get("name")) for r in doc.get("resources") or [] if "/" not in str(r.get("name"))}

    def _list_kind(self, info: KindInfo, version: str) -> list[KubeObject] | None:
        """Every object of a kind, page by page; None (and a `missing` reason) when not allowed."""
        namespace = self.options.namespace if info.namespaced else None
        path = info.list_path(version, namespace)
        restarted = False
        while True:
            items: list[KubeObject] = []
            token: str | None = None
            pages = 0
            try:
                while True:
                    page = self.conn.get_json(path, {"limit": self.options.page_size, "continue": token})
                    pages += 1
                    items.extend(page.get("items") or [])
                    token = (page.get("metadata") or {}).get("continue") or None
                    if not token:
                        break
            except ApiStatusError as exc:
                if exc.status == 410 and token and not restarted:
                    # the continue token expired (410 Gone, reason Expired): list again from the
                    # start, once, as client-go's reflector does (tools/cache/reflector.go,
                    # isExpiredError -> relist; tools/pager/pager.go, ListPager.list falls back to
                    # a fresh list when the error is Expired and a continue token was sent)
                    restarted = True
                    continue
                self._record_failure(info, namespace, exc)
                return None
            except ClusterUnreachable as exc:
                where = f" in namespace {namespace}" if namespace else ""
                with self._lock:
                    self.missing[info.kind] = f"error: {exc.reason} listing {info.plural}{where}"
                return None
            break
        with self._lock:
            self.listed[info.kind] = {
                "apiVersion": info.api_version(version),
                "items": len(items),
                "pages": pages,
                "restarted": restarted,
            }
        typed = with_type(items, info.kind, info.api_version(version))
        for obj in typed:
            _trim(obj)
        return typed

    def _record_failure(self, info: KindInfo, namespace: str | None, exc: ApiStatusError) -> None:
        where = f" in namespace {namespace}" if namespace else ""
        if exc.status == 403:
            reason = f"forbidden: cannot list {info.plural}{where}"
        elif exc.status == 404:
            reason = f"not served by this API server ({info.list_path()})"
        elif exc.status == 410:
            reason = "the list expired twice while paging (410 Gone)"
        else:
            reason = f"error: HTTP {exc.status} listing {info.plural}{where}: {exc.message[:200]}{exc.after()}"
        with self._lock:
            self.missing[info.kind] = reason

    # -- logs -------------------------------------------------------------------------------

    def _fetch_logs(self, groups: Iterable[str], pool: ThreadPoolExecutor) -> None:
        targets = log_targets(self.snapshot, groups)
        self.progress.begin("logs")
        jobs = [pool.submit(self._fetch_log, key) for key in targets]
        failures: dict[str, int] = {}
        for key, job in zip(targets, jobs, strict=True):
            outcome = job.result()
            if isinstance(outcome, MemoryLog):
                self.snapshot.add_log(key, outcome)
                self.progress.log_fetched(outcome.size)
            elif outcome:
                failures[outcome] = failures.get(outcome, 0) + 1
        for reason, count in sorted(failures.items()):
            self.missing.setdefault(f"pods/log ({count} log{'s' if count > 1 else ''})", reason)

    def _fetch_log(self, key: LogKey) -> MemoryLog | str | None:
        query: dict[str, Any] = {
            "container": key.container,
            "tailLines": self.options.log_tail_lines,
            "limitBytes": self.options.log_limit_bytes,
        }
        if self.options.log_since_seconds:
            query["sinceSeconds"] = self.options.log_since_seconds
        if key.previous:
            query["previous"] = "true"
        path = f"/api/v1/namespaces/{key.namespace}/pods/{key.pod}/log"
        try:
            data = self.conn.get_bytes(path, query)
        except ApiStatusError as exc:
            if exc.status == 403:
                return f"forbidden: cannot get pods/log in namespace {key.namespace}"
            if exc.status in (400, 404) and key.previous:
                return None  # no previous instance kept by the kubelet
            return f"error: HTTP {exc.status} fetching logs: {exc.message[:200]}{exc.after()}"
        except ClusterUnreachable as exc:
            return f"error: {exc.reason} fetching logs"
        origin = f"live:{key.namespace}/{key.pod}/{key.container}" + (" (previous)" if key.previous else "")
        return MemoryLog(origin, data)

    # -- access reviews ---------------------------------------------------------------------

    def _review_agent_access(self, pool: ThreadPoolExecutor) -> None:
        self.progress.begin("access reviews")
        requests = agent_requests(self.snapshot)
        record: dict[str, Any] = {"available": False, "reason": None, "answers": []}
        self.snapshot.probes["rbac"] = record
        if not requests:
            record["reason"] = "no agent service account found"
            return
        first = self._review(requests[0])
        if isinstance(first, str):
            record["reason"] = first
            return
        answers = [first] + [job.result() for job in [pool.submit(self._review, r) for r in requests[1:]]]
        record["available"] = True
        record["answers"] = [a for a in answers if isinstance(a, dict)]
        errors = sorted({a for a in answers if isinstance(a, str)})
        if errors:
            record["reason"] = "; ".join(errors)

    def _review(self, request: Any) -> dict[str, Any] | str:
        from meshdoctor.kube.rbac import request_record

        body = request.access_review()
        try:
            answer = self.conn.post_json("/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
        except ApiStatusError as exc:
            if exc.status == 403:
                return "forbidden: cannot create subjectaccessreviews"
            return f"error: HTTP {exc.status} creating a SubjectAccessReview: {exc.message[:200]}{exc.after()}"
        except ClusterUnreachable as exc:
            return f"error: {exc.reason} creating a SubjectAccessReview"
        status = answer.get("status") or {}
        return {
            "request": request_record(request),
            "allowed": bool(status.get("allowed")),
            "denied": bool(status.get("denied")),
            "reason": str(status.get("reason") or ""),
            "evaluation_error": str(status.get("evaluationError") or ""),
        }

    # -- probes -----------------------------------------------------------------------------

    def _probe(self, pool: ThreadPoolExecutor) -> None:
        from meshdoctor.sources.probes import run_http_probes

        self.progress.begin("probes")

        def fetch(path: str) -> tuple[int, bytes]:
            status, data, _ = self.conn.request("GET", path, accept="text/plain, */*")
            return status, data

        self.snapshot.probes["http"] = run_http_probes(self.snapshot, fetch, pool.map)


def _trim(obj: KubeObject) -> None:
    """Drop what no rule reads and would only weigh: managedFields; Secret values, at once."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    if obj.get("kind") == "Secret":
        for field_name in ("data", "stringData"):
            values = obj.get(field_name)
            if isinstance(values, dict):
                obj[field_name] = {key: REDACTED for key in values}


# -- what to fetch for the rules ---------------------------------------------------------------


def _agent_pods(snapshot: Snapshot) -> list[KubeObject]:
    from meshdoctor.datadog.agent import agent_workloads, lone_agent_pods
    from meshdoctor.kube.workloads import pods_of

    pods: dict[tuple[str, str], KubeObject] = {}
    # agent Pods no controller owns are read by the log rules too (`lone_agent_pods`)
    for workload in [*agent_workloads(snapshot), *lone_agent_pods(snapshot)]:
        for pod in pods_of(snapshot, workload):
            meta = pod.get("metadata") or {}
            pods[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = pod
    return [pods[key] for key in sorted(pods)]


def _telemetry_pods(snapshot: Snapshot) -> list[KubeObject]:
    return [
        pod
        for pod in snapshot.objects("Pod")
        if any(labels_of(pod).get(key) == value for key, value in TELEMETRY_POD_LABELS)
    ]


def _restarted(pod: Mapping[str, Any], container: str) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return int(status.get("restartCount") or 0) > 0
    return False


def log_targets(snapshot: Snapshot, groups: Iterable[str]) -> list[LogKey]:
    """The container logs of the groups asked for, with previous instances where a container restarted.

    `agent`: every container of the agent's pods except the sidecar; `istio-proxy`: the sidecar of
    the agent's pods; `telemetry`: every container of the istio-telemetry / istiod / pilot pods
    except their sidecar.
    """
    groups = set(groups)
    wanted: list[tuple[KubeObject, str]] = []
    if groups & {"agent", "istio-proxy"}:
        for pod in _agent_pods(snapshot):
            for container in (pod.get("spec") or {}).get("containers") or []:
                name = str(container.get("name") or "")
                if (name == SIDECAR and "istio-proxy" in groups) or (name != SIDECAR and "agent" in groups):
                    wanted.append((pod, name))
    if "telemetry" in groups:
        for pod in _telemetry_pods(snapshot):
            for container in (pod.get("spec") or {}).get("containers") or []:
                name = str(container.get("name") or "")
                if name != SIDECAR:
                    wanted.append((pod, name))
    keys: set[LogKey] = set()
    for pod, container in wanted:
        meta = pod.get("metadata") or {}
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Pending":
            continue
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        keys.add(LogKey(ns, name, container))
        if _restarted(pod, container):
            keys.add(LogKey(ns, name, container, previous=True))
    return sorted(keys)


def agent_requests(snapshot: Snapshot) -> list[Any]:
    """Every permission question of every feature, for each agent workload's service account.

    All features are asked (not only those the env turns on) so that any rule's question has an
    answer; resource names and the agent's own namespace follow each agent's env.
    """
    from meshdoctor.datadog.agent import agent_container, agent_workloads, cluster_agent_container, env_value
    from meshdoctor.datadog.install import cluster_agent_workloads
    from meshdoctor.datadog.permissions import FEATURES, PERMISSION_ENV, requests_for
    from meshdoctor.kube.workloads import pod_template

    seen: set[Any] = set()
    requests: list[Any] = []
    for workload in [*agent_workloads(snapshot), *cluster_agent_workloads(snapshot)]:
        template = pod_template(workload) or {}
        spec = template.get("spec") or {}
        namespace = str((workload.get("metadata") or {}).get("namespace") or "default")
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        container = agent_container(template) or cluster_agent_container(template)
        env = {}
        for name in PERMISSION_ENV:
            value = env_value(snapshot, template, container, name, namespace)
            if value is not None:
                env[name] = value
        for request in requests_for(FEATURES, namespace, account, env=env):
            if request not in seen:
                seen.add(request)
                requests.append(request)
    return requests
