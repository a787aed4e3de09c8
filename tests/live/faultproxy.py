"""A fault-injecting HTTPS reverse proxy in front of the live harness's kube-apiserver.

It terminates TLS with the API server's own serving certificate (`DIR/pki/apiserver.{crt,key}`,
SANs 127.0.0.1 and localhost, made by scripts/live-cluster.sh `gen_pki`), so a kubeconfig naming the
proxy keeps the harness CA and the same bearer token. Each request is matched against the faults in
order; a fault whose path pattern (and query) matches and whose count is not used up acts instead of
forwarding: an HTTP status (429/5xx with `Retry-After`, 410 `Expired`), a connection reset (RST,
SO_LINGER 0), or a delay before forwarding (past the client's `--request-timeout`). Everything else
is forwarded to the real API server, with `limit` rewritten where `page_limits` says so, so that
pagination (and a 410 in the middle of it) happens on small test data.

Stdlib only; the proxy never logs headers (the bearer token passes through it).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


@dataclass
class Fault:
    """What to do to requests whose path matches `path` (a regex, `re.search`), `times` times."""

    path: str
    action: str
    """`status` (answer `status`, `retry_after`), `gone` (410 Expired), `reset`, `slow` (wait `delay`, forward)."""
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    method: str = "GET"
    needs_continue: bool = False
    """Only requests that carry a `continue` token (a page after the first)."""
    used: int = 0

    def matches(self, method: str, path: str, query: dict[str, list[str]]) -> bool:
        if self.used >= self.times or method != self.method or not re.search(self.path, path):
            return False
        return not self.needs_continue or bool(query.get("continue", [""])[0])


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, list[str]]
    action: str


@dataclass
class FaultProxy:
    upstream: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    faults: list[Fault] = field(default_factory=list)
    page_limits: dict[str, int] = field(default_factory=dict)
    """Path regex -> the `limit` to send upstream instead of the client's."""
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        up = urllib.parse.urlsplit(self.upstream)
        self._up_host, self._up_port = up.hostname or "127.0.0.1", up.port or 443
        self._up_context = ssl.create_default_context(cafile=str(self.ca_file))
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(str(self.cert_file), str(self.key_file))
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - never log (tokens)
                pass

            def do_GET(self) -> None:  # noqa: N802
                proxy._handle(self)

            do_POST = do_GET  # noqa: N815

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up, an upstream gone at teardown: nothing to report

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = server_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self, faults: list[Fault] | None = None) -> None:
        """New faults, no hits."""
        with self._lock:
            self.faults = list(faults or [])
            self.hits = []

    def hits_of(self, action: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.action == action]

    # -- one request ------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            fault = next((f for f in self.faults if f.matches(handler.command, split.path, query)), None)
            if fault:
                fault.used += 1
            action = fault.action if fault else "forward"
            self.hits.append(Hit(handler.command, split.path, query, action))
        if fault and fault.action == "reset":
            sock = handler.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            sock.close()
            return
        if fault and fault.action == "status":
            self._answer(handler, fault.status, _status_body(fault.status), fault.retry_after)
            return
        if fault and fault.action == "gone":
            self._answer(handler, 410, _expired_body(), None)
            return
        if fault and fault.action == "slow":
            time.sleep(fault.delay)
        self._forward(handler, split, query, body)

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, retry_after: str | None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            handler.send_header("Retry-After", retry_after)
        handler.end_headers()
        handler.wfile.write(body)

    def _forward(
        self, handler: BaseHTTPRequestHandler, split: urllib.parse.SplitResult, query: dict[str, list[str]], body: bytes
    ) -> None:
        for pattern, limit in self.page_limits.items():
            if "limit" in query and re.search(pattern, split.path):
                query["limit"] = [str(limit)]
        target = split.path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        conn = http.client.HTTPSConnection(self._up_host, self._up_port, context=self._up_context, timeout=60)
        try:
            conn.request(handler.command, target, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            try:
                handler.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP:
                        handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
            except OSError:
                handler.close_connection = True  # the client gave up (a slow answer past its timeout)
        finally:
            conn.close()


def _status_body(status: int) -> bytes:
    reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}.get(status, "InternalError")
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"injected {status}",
            "reason": reason,
            "code": status,
        }
    ).encode()


def _expired_body() -> bytes:
    """What the API server answers for an expired continue token: k8s.io/apiserver
    pkg/storage/etcd3/errors.go, `continueExpired`, through apimachinery `NewResourceExpired` (410, Expired).
    """
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter.",
            "reason": "Expired",
            "code": 410,
        }
    ).encode()
