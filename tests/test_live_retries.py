"""The live source's LISTs through a fake connection pool: retries, 410 relists, not-checked reasons.

No server: `Connection.request` runs for real (retry policy, deadline, status errors) over a fake
urllib3 pool that answers from a script, so the fast suite covers what the live fault tests
(tests/live/test_live_faults.py) prove against a real API server.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from meshdoctor.errors import UsageError
from meshdoctor.kube.kinds import KINDS
from meshdoctor.sources.kubeconfig import ClusterConfig
from meshdoctor.sources.live import Connection, LiveCollector, LiveOptions
from meshdoctor.sources.progress import Progress
from meshdoctor.sources.retry import MAX_RETRIES, Deadline, run_deadline

SERVER = "https://cluster.test"


class Answer:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {}


def page(names: list[str], token: str | None = None) -> Answer:
    items = [{"metadata": {"name": n, "namespace": "ns"}} for n in names]
    return Answer(200, {"kind": "ConfigMapList", "metadata": {"continue": token} if token else {}, "items": items})


def status(code: int, reason: str, message: str, retry_after: str | None = None) -> Answer:
    body = {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}
    return Answer(code, body, {"Retry-After": retry_after} if retry_after is not None else {})


Step = Answer | Exception | Callable[[float], Answer]


class FakePool:
    """Answers requests in order from `script`; records (method, path, query, timeout)."""

    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, str, dict[str, list[str]], float]] = []

    def request(self, method: str, url: str, **kw: Any) -> Answer:
        split = urlsplit(url)
        timeout = kw["timeout"].total
        self.sent.append((method, split.path, parse_qs(split.query), timeout))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(timeout) if callable(step) else step

    def clear(self) -> None:
        pass


def collector(script: list[Step], timeout: float = 2.0) -> tuple[LiveCollector, FakePool, list[float]]:
    conn = Connection(ClusterConfig(server=SERVER, context="ctx"), timeout)
    pool = FakePool(script)
    conn._pool = pool  # type: ignore[assignment]
    waits: list[float] = []
    conn.sleep = waits.append
    return LiveCollector(conn, LiveOptions(page_size=1), Progress()), pool, waits


def list_configmaps(script: list[Step]) -> tuple[LiveCollector, FakePool, list[float], Any]:
    live, pool, waits = collector(script)
    return live, pool, waits, live._list_kind(KINDS["ConfigMap"], "v1")


def names(items: Any) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def reset() -> Exception:
    return urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
    )


def test_a_429_page_is_waited_for_and_retried() -> None:
    live, pool, waits, items = list_configmaps(
        [page(["a"], "t1"), status(429, "TooManyRequests", "x", "2"), page(["b"])]
    )
    assert names(items) == ["a", "b"]
    assert waits == [2.0]
    assert [q.get("continue") for _, _, q, _ in pool.sent] == [None, ["t1"], ["t1"]]
    assert live.missing == {}


def test_a_reset_get_is_retried_after_one_second() -> None:
    live, _, waits, items = list_configmaps([reset(), page(["a"])])
    assert (names(items), waits, live.missing) == (["a"], [1.0], {})


def test_a_500_without_retry_after_is_the_kinds_reason_at_once() -> None:
    live, pool, _, items = list_configmaps([status(500, "InternalError", "etcd is sad")])
    assert items is None and len(pool.sent) == 1
    assert live.missing == {"ConfigMap": "error: HTTP 500 listing configmaps: etcd is sad"}


def test_an_exhausted_budget_names_the_status_and_the_attempts() -> None:
    busy = status(503, "ServiceUnavailable", "busy", "1")
    live, pool, waits, items = list_configmaps([busy] * (MAX_RETRIES + 1))
    assert items is None and waits == [1.0] * MAX_RETRIES
    assert live.missing == {"ConfigMap": f"error: HTTP 503 listing configmaps: busy (after {MAX_RETRIES + 1} attempts)"}


def test_resets_past_the_budget_are_the_kinds_reason_not_a_crash() -> None:
    live, _, _, items = list_configmaps([reset()] * (MAX_RETRIES + 1))
    assert items is None
    after = f"(after {MAX_RETRIES + 1} attempts)"
    assert live.missing == {"ConfigMap": f"error: connection reset by peer {after} listing configmaps"}


def test_410_expired_mid_pagination_lists_again_from_the_start() -> None:
    gone = status(410, "Expired", "The provided continue parameter is too old")
    script: list[Step] = [page(["a"], "t1"), gone, page(["a"], "t2"), page(["b"])]
    live, pool, _, items = list_configmaps(script)
    assert names(items) == ["a", "b"]
    assert [q.get("continue") for _, _, q, _ in pool.sent] == [None, ["t1"], None, ["t2"]]
    assert live.listed["ConfigMap"] == {"apiVersion": "v1", "items": 2, "pages": 2, "restarted": True}


def test_410_twice_is_the_kinds_reason() -> None:
    gone = status(410, "Expired", "too old")
    live, _, _, items = list_configmaps([page(["a"], "t1"), gone, page(["a"], "t2"), gone])
    assert items is None
    assert live.missing == {"ConfigMap": "the list expired twice while paging (410 Gone)"}


def test_410_on_the_first_page_is_not_a_relist() -> None:
    live, pool, _, items = list_configmaps([status(410, "Gone", "gone")])
    assert items is None and len(pool.sent) == 1


def test_past_the_deadline_nothing_is_sent_and_the_kind_says_so() -> None:
    live, pool, _ = collector([page(["a"])])
    live.conn.deadline = Deadline(0.0)
    assert live._list_kind(KINDS["ConfigMap"], "v1") is None
    assert pool.sent == []
    assert live.missing == {"ConfigMap": "error: not read within the run's deadline of 0s listing configmaps"}


def test_the_connection_deadline_is_derived_from_the_request_timeout() -> None:
    live, _, _ = collector([], timeout=7.0)
    assert live.conn.deadline.seconds == run_deadline(7.0) == 2 * (4 * 7 + 3 * 5)


def test_an_early_eof_is_retried_like_a_reset() -> None:
    eof = urllib3.exceptions.ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed"))
    live, _, waits, items = list_configmaps([eof, page(["a"])])
    assert (names(items), waits) == (["a"], [1.0])


def test_an_unreachable_version_is_one_usage_error() -> None:
    live, _, _ = collector([reset()] * (MAX_RETRIES + 1))
    with pytest.raises(UsageError) as error:
        live.conn.get_json("/version")
    assert str(error.value).startswith(f"cannot reach the cluster at {SERVER}: ")
    assert str(error.value).endswith(f"(after {MAX_RETRIES + 1} attempts)")
