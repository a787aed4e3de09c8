"""The live source's retry policy (sources/retry.py) against a fake transport and a fake clock."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from meshdoctor.sources.retry import (
    MAX_RETRIES,
    MAX_WAIT,
    Deadline,
    RequestFailed,
    TransportFailure,
    request_bound,
    run_deadline,
    send_with_retries,
    wait_for_status,
)

OK = (200, b"{}", {})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeTransport:
    """Answers from a script: a tuple is an HTTP answer, an exception is raised; each attempt costs `cost` seconds."""

    def __init__(self, clock: FakeClock, script: list[object], cost: float = 0.1) -> None:
        self.clock, self.script, self.cost = clock, list(script), cost
        self.timeouts: list[float] = []

    def __call__(self, timeout: float) -> tuple[int, bytes, Mapping[str, str]]:
        self.timeouts.append(timeout)
        step = self.script.pop(0)
        if isinstance(step, TransportFailure):
            self.clock.now += timeout if "timed out" in step.reason else self.cost
            raise step
        self.clock.now += self.cost
        assert isinstance(step, tuple)
        return step  # type: ignore[return-value]


def run(script: list[object], method: str = "GET", timeout: float = 2.0, deadline: float = 100.0):
    clock = FakeClock()
    transport = FakeTransport(clock, script)
    answer, attempts = send_with_retries(transport, method, timeout, Deadline(deadline, clock), clock.sleep)
    return answer, attempts, clock, transport


def test_429_with_retry_after_waits_that_long_then_succeeds() -> None:
    answer, attempts, clock, _ = run([(429, b"", {"Retry-After": "2"}), OK])
    assert (answer, attempts) == (OK, 2)
    assert clock.now == pytest.approx(0.1 + 2 + 0.1)


def test_5xx_with_retry_after_is_retried_and_without_it_is_not() -> None:
    assert run([(503, b"", {"retry-after": "1"}), OK])[:2] == (OK, 2)
    answer, attempts, _, transport = run([(500, b"boom", {}), OK])
    assert (answer, attempts) == ((500, b"boom", {}), 1)
    assert transport.script == [OK]


def test_4xx_other_than_429_is_never_retried() -> None:
    for status in (400, 403, 404, 410):
        assert run([(status, b"", {"Retry-After": "1"}), OK])[:2] == ((status, b"", {"Retry-After": "1"}), 1)


def test_retry_after_is_cut_to_max_wait_and_a_non_integer_one_is_not_retried() -> None:
    assert wait_for_status(429, {"Retry-After": "3600"}) == MAX_WAIT
    assert wait_for_status(429, {"Retry-After": "0"}) == 0
    assert wait_for_status(503, {"Retry-After": "Fri, 04 Dec 2026 03:00:00 GMT"}) is None
    assert wait_for_status(429, {}) is None
    assert wait_for_status(200, {"Retry-After": "1"}) is None


def test_the_last_answer_is_returned_when_the_retries_run_out() -> None:
    busy = (429, b"slow down", {"Retry-After": "1"})
    answer, attempts, clock, transport = run([busy] * (MAX_RETRIES + 2))
    assert (answer, attempts) == (busy, MAX_RETRIES + 1)
    assert len(transport.script) == 1
    assert clock.now == pytest.approx((MAX_RETRIES + 1) * 0.1 + MAX_RETRIES * 1)


def test_a_reset_get_is_retried_after_one_second() -> None:
    reset = TransportFailure("connection reset by peer", retryable=True)
    answer, attempts, clock, _ = run([reset, OK])
    assert (answer, attempts) == (OK, 2)
    assert clock.now == pytest.approx(0.1 + 1 + 0.1)


def test_a_reset_post_is_not_retried() -> None:
    reset = TransportFailure("connection reset by peer", retryable=True)
    with pytest.raises(RequestFailed) as failed:
        run([reset, OK], method="POST")
    assert (failed.value.reason, failed.value.attempts) == ("connection reset by peer", 1)


def test_a_refused_connection_is_not_retried() -> None:
    with pytest.raises(RequestFailed) as failed:
        run([TransportFailure("connection refused", retryable=False), OK])
    assert (failed.value.reason, failed.value.attempts) == ("connection refused", 1)


def test_timeouts_exhaust_the_budget_and_name_the_attempts() -> None:
    slow = TransportFailure("timed out after 2s", retryable=True)
    with pytest.raises(RequestFailed) as failed:
        run([slow] * (MAX_RETRIES + 1), timeout=2.0)
    assert failed.value.reason == f"timed out after 2s (after {MAX_RETRIES + 1} attempts)"


def test_no_attempt_outlives_the_deadline() -> None:
    slow = TransportFailure("timed out", retryable=True)
    clock = FakeClock()
    transport = FakeTransport(clock, [slow] * 10)
    with pytest.raises(RequestFailed):
        send_with_retries(transport, "GET", 2.0, Deadline(4.5, clock), clock.sleep)
    # 2 s attempt, 1 s wait, then the last attempt gets only the 1.5 s left; no wait fits after it
    assert transport.timeouts == [2.0, pytest.approx(1.5)]
    assert clock.now <= 4.5


def test_nothing_is_sent_after_the_deadline() -> None:
    clock = FakeClock()
    deadline = Deadline(1.0, clock)
    clock.now = 1.0
    transport = FakeTransport(clock, [OK])
    with pytest.raises(RequestFailed) as failed:
        send_with_retries(transport, "GET", 2.0, deadline, clock.sleep)
    assert (failed.value.reason, failed.value.attempts) == ("not read within the run's deadline of 1s", 0)
    assert transport.timeouts == []


def test_a_wait_that_would_pass_the_deadline_returns_the_answer_instead() -> None:
    busy = (429, b"", {"Retry-After": "5"})
    answer, attempts, clock, _ = run([busy, OK], deadline=3.0)
    assert (answer, attempts) == (busy, 1)
    assert clock.now == pytest.approx(0.1)


def test_the_stated_bounds() -> None:
    assert request_bound(30) == 4 * 30 + 3 * 5
    assert run_deadline(30) == 270
    assert run_deadline(2) == 46
