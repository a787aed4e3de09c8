"""When to send an API request again, how long to wait, and when the whole run must stop.

Pure logic (no network, no Kubernetes client): `sources/live.py` hands `send_with_retries` a
function that sends one attempt, and the unit tests hand it a fake one.

What is retried follows client-go, the library kubectl is built on (github.com/kubernetes/client-go):
- a 429 or any 5xx answer that carries an integer `Retry-After` header, after waiting that many
  seconds (`rest/with_retry.go`, `checkWait` and `IsNextRetry`; `rest/request.go`,
  `retryAfterSeconds`); a 5xx without `Retry-After` is a real server error and is NOT retried;
- a connection reset or an early EOF on a GET (never on a POST: it is not idempotent), after one
  second, the artificial `Retry-After: 1` client-go makes for them (`rest/request.go`,
  `Request.request`'s `isErrRetryableFunc`; `rest/with_retry.go`, `retryAfterResponse`).
Where meshdoctor differs, on purpose, to stay a bounded diagnostic:
- at most `MAX_RETRIES` = 3 retries per request (client-go: 10, `rest/request.go`, `NewRequest`);
- a `Retry-After` longer than `MAX_WAIT` = 5 s is cut to 5 s;
- a GET that timed out (`--request-timeout`) is retried too (client-go retries a timeout only on
  watches); every meshdoctor request is a bounded read, so sending it again is safe;
- one deadline for the whole run (`run_deadline`): no attempt starts after it, and no attempt may
  run past it, so a cluster that answers slowly or not at all ends the run in a known time, with
  what could not be read reported as not checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Retries per request after the first attempt (so at most 4 attempts).
MAX_RETRIES = 3
#: The longest wait before a retry, whatever `Retry-After` says (seconds).
MAX_WAIT = 5.0
#: The wait before retrying a reset connection or a timed-out GET: client-go's artificial `Retry-After: 1`.
TRANSPORT_WAIT = 1.0


def request_bound(request_timeout: float) -> float:
    """The longest one request can take with its retries: every attempt times out, every wait is the longest."""
    return (1 + MAX_RETRIES) * request_timeout + MAX_RETRIES * MAX_WAIT


def run_deadline(request_timeout: float) -> float:
    """The time the network part of a live run may take: twice one request's bound.

    With the default `--request-timeout 30s`: 2 x (4 x 30 + 3 x 5) = 270 s; with `2s`: 46 s.
    Twice, because a run has sequential phases (version, discovery, lists, logs, access reviews) and
    a single failing request in one must still leave time for the others.
    """
    return 2 * request_bound(request_timeout)


class TransportFailure(Exception):
    """One attempt got no HTTP answer (reset, EOF, timeout, refused, TLS)."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class RequestFailed(Exception):
    """No HTTP answer after every attempt, or the run's deadline passed; `reason` is one line."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


@dataclass
class Deadline:
    """The run's deadline on a monotonic clock (injectable for tests)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.ends = self.clock() + self.seconds

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.ends - self.clock()


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The integer `Retry-After` seconds, as client-go reads it (`retryAfterSeconds`); None if absent or not one."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return float(max(int(str(value).strip()), 0))
            except ValueError:
                return None
    return None


def wait_for_status(status: int, headers: Mapping[str, str]) -> float | None:
    """Seconds to wait before retrying this answer; None when it is not retried (client-go's `checkWait`)."""
    if status != 429 and status < 500:
        return None
    seconds = retry_after(headers)
    if seconds is None:
        return None
    return min(seconds, MAX_WAIT)


Answer = tuple[int, bytes, Mapping[str, str]]


def send_with_retries(
    send: Callable[[float], Answer],
    method: str,
    timeout: float,
    deadline: Deadline,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Answer, int]:
    """(answer, attempts): the first answer that is not retried, or the last one when retries run out.

    `send(timeout)` sends one attempt and returns (status, body, headers) or raises TransportFailure.
    Raises RequestFailed when no attempt got an answer or the deadline passed first.
    """
    attempts = 0
    while True:
        left = deadline.remaining()
        if left <= 0:
            raise RequestFailed(f"not read within the run's deadline of {deadline.seconds:g}s", attempts)
        attempts += 1
        wait: float | None
        try:
            answer = send(min(timeout, left))
        except TransportFailure as failure:
            wait = TRANSPORT_WAIT if failure.retryable and method == "GET" else None
            if wait is None or attempts > MAX_RETRIES or deadline.remaining() <= wait:
                suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                raise RequestFailed(failure.reason + suffix, attempts) from None
        else:
            status, _, headers = answer
            wait = wait_for_status(status, headers)
            if wait is None or attempts > MAX_RETRIES or deadline.remaining() <= wait:
                return answer, attempts
        sleep(wait)
