"""The scanner: text and binary paths, line numbers, long lines, JSON lines, grouping, masking."""

from __future__ import annotations

import io
import json

import pytest

import meshdoctor.logs.scanner as logscan
from meshdoctor.logs.scanner import (
    MAX_LINE,
    Match,
    Scanner,
    group_matches,
    line_timestamp,
    load_signatures,
)
from meshdoctor.model import LogEvidence

SCANNER = Scanner()
CANARY = "0123456789abcdef0123456789abcdef"

INFO = "2019-02-18 10:11:12 UTC | CORE | INFO | (pkg/collector/runner/runner.go:327 in work) | Done running check cpu"


def too_many(host: str, when: str = "2019-02-18 10:11:12") -> str:
    return (
        f"{when} UTC | CORE | ERROR | (pkg/forwarder/worker.go:156 in process) | Too many errors "
        f"for endpoint 'https://{host}/api/v1/series?api_key={CANARY}': retrying later"
    )


def refused(host: str, when: str) -> str:
    return (
        f"{when} UTC | CORE | ERROR | (pkg/forwarder/worker.go:166 in process) | Error while "
        "processing transaction: error while sending transaction, rescheduling it: Post "
        f'"https://{host}/api/v1/series": dial tcp 3.233.146.17:443: connect: connection refused'
    )


FORBIDDEN = (
    "2019-02-18 10:20:00 UTC | CORE | ERROR | (pkg/util/kubernetes/apiserver/apiserver.go:325 "
    "in GetPodsByNode) | Could not list pods: pods is forbidden: User "
    '"system:serviceaccount:default:datadog-agent" cannot list resource "pods" in API group "" '
    "at the cluster scope"
)

LOG = [
    INFO,
    too_many("app.datadoghq.com", "2019-02-18 10:11:12"),
    INFO,
    refused("app.datadoghq.com", "2019-02-18 10:11:13"),
    too_many("app.datadoghq.com", "2019-02-18 10:11:20"),
    too_many("7-0-0-app.agent.datadoghq.eu", "2019-02-18 10:11:21"),
    FORBIDDEN,
    too_many("app.datadoghq.com", "2019-02-18 10:12:00"),
    INFO,
]


def _summary(matches: list[Match]) -> list[tuple[str, int]]:
    return [(m.signature.id, m.line) for m in matches]


EXPECTED = [
    ("LOG-EGRESS-TOO-MANY-ERRORS", 2),
    ("LOG-EGRESS-TX-CONNECTION-REFUSED", 4),
    ("LOG-EGRESS-TOO-MANY-ERRORS", 5),
    ("LOG-EGRESS-TOO-MANY-ERRORS", 6),
    ("LOG-RBAC-APISERVER-FORBIDDEN", 7),
    ("LOG-EGRESS-TOO-MANY-ERRORS", 8),
]


def test_scan_lines_numbers_and_where() -> None:
    matches = SCANNER.scan(LOG, namespace="default", pod="datadog-agent-x7k2p", container="agent")
    assert _summary(matches) == EXPECTED
    first = matches[0]
    assert (first.namespace, first.pod, first.container) == (
        "default",
        "datadog-agent-x7k2p",
        "agent",
    )
    assert first.groups["host"] == "app.datadoghq.com"
    assert first.timestamp == "2019-02-18T10:11:12Z"
    assert first.message.startswith("The agent keeps failing to send to app.datadoghq.com and now")


def test_scan_lines_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logscan, "BATCH_LINES", 2)
    assert _summary(SCANNER.scan(LOG)) == EXPECTED


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 8 * 1024 * 1024])
def test_scan_file_matches_the_text_path(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(logscan, "CHUNK_SIZE", chunk)
    data = ("\n".join(LOG) + "\n").encode()
    matches = SCANNER.scan_file(io.BytesIO(data), namespace="ns", pod="p", container="c")
    assert _summary(matches) == EXPECTED
    assert [m.text for m in matches] == [m.text for m in SCANNER.scan(LOG)]


def test_scan_file_by_path_with_crlf_and_no_final_newline(tmp_path) -> None:
    path = tmp_path / "agent.log"
    path.write_bytes("\r\n".join(LOG).encode())
    matches = SCANNER.scan_file(path)
    assert _summary(matches) == EXPECTED
    assert not matches[-1].text.endswith("\r")
    assert matches[-2].text.endswith("at the cluster scope")


def test_scan_file_in_parallel_gives_the_same_result(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logscan, "PARALLEL_MIN_BYTES", 0)
    path = tmp_path / "agent.log"
    path.write_text("\n".join(LOG * 50) + "\n")
    single = SCANNER.scan_file(path)
    parallel = SCANNER.scan_file(path, workers=3)
    assert len(single) == 300
    assert [(m.signature.id, m.line, m.text) for m in parallel] == [(m.signature.id, m.line, m.text) for m in single]


def test_non_utf8_bytes_are_replaced() -> None:
    raw = b"\xff\xfe garbage " + too_many("app.datadoghq.com").encode() + b"\n"
    [match] = SCANNER.scan_file(io.BytesIO(raw))
    assert match.text.startswith("\ufffd\ufffd garbage ")
    assert match.groups["host"] == "app.datadoghq.com"


class _Recording(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        self.sizes.append(len(buffer))
        return super().readinto(buffer)


class _ReadOnly:
    """A file object with `read` only (no `readinto`)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(size)


def test_binary_file_is_read_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logscan, "CHUNK_SIZE", 4096)
    data = ("\n".join([INFO] * 2000 + [FORBIDDEN]) + "\n").encode()
    handle = _Recording(data)
    [match] = SCANNER.scan_file(handle)
    assert match.line == 2001
    assert set(handle.sizes) == {4096}


def test_file_object_without_readinto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logscan, "CHUNK_SIZE", 100)
    data = ("\n".join(LOG) + "\n").encode()
    assert _summary(SCANNER.scan_file(_ReadOnly(data))) == EXPECTED  # type: ignore[arg-type]


# -- long lines -------------------------------------------------------------------------------


def test_long_line_is_cut_and_numbering_goes_on() -> None:
    long_hit = too_many("app.datadoghq.com") + " " + "x" * (3 * MAX_LINE)
    hidden = "y" * (MAX_LINE + 10) + too_many("hidden.datadoghq.com")
    lines = [INFO, long_hit, hidden, FORBIDDEN]
    for matches in (SCANNER.scan(lines), SCANNER.scan_file(io.BytesIO("\n".join(lines).encode()))):
        assert _summary(matches) == [
            ("LOG-EGRESS-TOO-MANY-ERRORS", 2),
            ("LOG-RBAC-APISERVER-FORBIDDEN", 4),
        ]
        assert len(matches[0].text) == MAX_LINE


@pytest.mark.parametrize("chunk", [100, 4096, 70_000])
def test_long_lines_across_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(logscan, "CHUNK_SIZE", chunk)
    monkeypatch.setattr(logscan, "MAX_LINE", 1000)
    lines = [INFO, "z" * 5000, FORBIDDEN + " " + "w" * 3000, "q" * 999, FORBIDDEN, "v" * 2500]
    data = "\n".join(lines).encode()
    matches = SCANNER.scan_file(io.BytesIO(data))
    assert _summary(matches) == [
        ("LOG-RBAC-APISERVER-FORBIDDEN", 3),
        ("LOG-RBAC-APISERVER-FORBIDDEN", 5),
    ]
    assert len(matches[0].text) == 1000
    assert _summary(SCANNER.scan(lines)) == _summary(matches)


# -- JSON agent logs --------------------------------------------------------------------------


def test_json_agent_line_matches_on_its_msg() -> None:
    msg = too_many("app.datadoghq.com").split(" | ", 4)[4]
    line = json.dumps(
        {
            "agent": "core",
            "time": "2019-02-18 10:11:12 UTC",
            "level": "ERROR",
            "file": "pkg/forwarder/worker.go",
            "line": "156",
            "func": "process",
            "msg": msg,
        },
        separators=(",", ":"),
    )
    [match] = SCANNER.scan(["", line])
    assert match.signature.id == "LOG-EGRESS-TOO-MANY-ERRORS"
    assert match.line == 2
    assert match.timestamp == "2019-02-18T10:11:12Z"
    assert CANARY not in match.text


def test_json_line_with_kubectl_timestamp_prefix() -> None:
    line = (
        '2019-02-18T10:11:12.123456789Z {"agent":"core","time":"2019-02-18 10:11:12 UTC",'
        '"level":"ERROR","msg":"No valid api key found, reporting the forwarder as unhealthy."}'
    )
    [match] = SCANNER.scan([line])
    assert match.signature.id == "LOG-AGENT-NO-VALID-API-KEY"


def test_malformed_json_is_matched_as_text() -> None:
    line = '{"msg": "Too many errors for endpoint \'https://app.datadoghq.com/x\': retrying later"'
    [match] = SCANNER.scan([line])
    assert match.groups["host"] == "app.datadoghq.com"


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2019-02-18 10:11:12 UTC | CORE | ERROR | x", "2019-02-18T10:11:12Z"),
        ("2019-02-18 10:11:12 CEST | CORE | ERROR | x", "2019-02-18T10:11:12 CEST"),
        (
            "2018-11-02 10:11:12 UTC | ERROR | (apiserver.go:246 in connect) | x",
            "2018-11-02T10:11:12Z",
        ),
        ("2023-05-06T07:08:09Z | CORE | ERROR | x", "2023-05-06T07:08:09Z"),
        ("2023-05-06T07:08:09+02:00 | CORE | ERROR | x", "2023-05-06T07:08:09+02:00"),
        ('[2021-03-04T05:06:07.891Z] "- - -" 0 UH', "2021-03-04T05:06:07.891Z"),
        (
            "2021-03-04T05:06:07.123456789Z 2021-03-04 05:06:00 UTC | CORE | INFO | x",
            "2021-03-04T05:06:00Z",
        ),
        ("2021-03-04T05:06:07.123456789Z plain text", "2021-03-04T05:06:07.123456789Z"),
        ("no time here", None),
    ],
)
def test_line_timestamp(line: str, expected: str | None) -> None:
    assert line_timestamp(line) == expected


def test_line_timestamp_from_json_record() -> None:
    assert line_timestamp("{}", {"time": "2019-02-18 10:11:12 UTC"}) == "2019-02-18T10:11:12Z"
    assert line_timestamp("{}", {"start_time": "2021-03-04T05:06:07.891Z"}) == "2021-03-04T05:06:07.891Z"


# -- grouping ---------------------------------------------------------------------------------


def test_group_matches_counts_and_first_last_seen() -> None:
    a = SCANNER.scan(LOG, namespace="default", pod="agent-a", container="agent")
    b = SCANNER.scan(
        [too_many("app.datadoghq.com", "2019-02-18 11:00:00")],
        namespace="default",
        pod="agent-b",
        container="agent",
    )
    groups = group_matches(a + b)
    summary = [(g.signature.id, g.values, g.count, g.first_seen, g.last_seen) for g in groups]
    assert summary == [
        (
            "LOG-EGRESS-TOO-MANY-ERRORS",
            {"host": "app.datadoghq.com"},
            4,
            "2019-02-18T10:11:12Z",
            "2019-02-18T11:00:00Z",
        ),
        (
            "LOG-EGRESS-TX-CONNECTION-REFUSED",
            {"host": "app.datadoghq.com"},
            1,
            "2019-02-18T10:11:13Z",
            "2019-02-18T10:11:13Z",
        ),
        (
            "LOG-EGRESS-TOO-MANY-ERRORS",
            {"host": "7-0-0-app.agent.datadoghq.eu"},
            1,
            "2019-02-18T10:11:21Z",
            "2019-02-18T10:11:21Z",
        ),
        (
            "LOG-RBAC-APISERVER-FORBIDDEN",
            {
                "user": "system:serviceaccount:default:datadog-agent",
                "verb": "list",
                "resource": "pods",
                "api_group": "",
                "namespace": None,
            },
            1,
            "2019-02-18T10:20:00Z",
            "2019-02-18T10:20:00Z",
        ),
    ]
    first = groups[0]
    assert [(m.pod, m.line) for m in first.samples] == [("agent-a", 2), ("agent-a", 5)]
    assert first.pods == (("default", "agent-a", "agent"), ("default", "agent-b", "agent"))
    evidence = first.evidence()
    assert evidence[0] == LogEvidence(
        "default",
        "agent-a",
        "agent",
        2,
        first.samples[0].text,
        count=4,
        first_seen="2019-02-18T10:11:12Z",
        last_seen="2019-02-18T11:00:00Z",
    )
    assert len(evidence) == 2


def test_group_without_timestamps() -> None:
    sig = load_signatures()[0]
    line = "Too many errors for endpoint 'https://app.datadoghq.com/x': retrying later"
    [group] = group_matches(Scanner([sig]).scan([line, line, line]))
    assert (group.count, group.first_seen, group.last_seen, len(group.samples)) == (
        3,
        None,
        None,
        2,
    )


# -- masking ----------------------------------------------------------------------------------


def test_sample_lines_and_groups_are_masked() -> None:
    [match] = SCANNER.scan([too_many("app.datadoghq.com")])
    assert CANARY not in match.text
    assert "api_key=" + "*" * 28 + "cdef" in match.text
    assert CANARY not in str(match.groups["url"])
    ev = match.evidence()
    assert CANARY not in ev.text and ev.line == 1


def test_bearer_and_jwt_masked_in_evidence() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlY2FuYXJ5"
    line = FORBIDDEN + f" (request had Authorization: Bearer {jwt})"
    [match] = SCANNER.scan([line])
    assert jwt not in match.text
    assert "Bearer ********" in match.text


def test_select_signatures() -> None:
    proxy = logscan.select_signatures(source="istio-proxy")
    assert [s.id for s in proxy] == [
        "LOG-EGRESS-ENVOY-BLACKHOLE",
        "LOG-EGRESS-ENVOY-INTAKE-FAILED",
        "LOG-EGRESS-ENVOY-PASSTHROUGH",
        "LOG-EGRESS-ENVOY-JSON-BLACKHOLE",
        "LOG-EGRESS-ENVOY-JSON-INTAKE-FAILED",
    ]
    api_key = logscan.select_signatures(supports="agent-api-key", category="agent")
    assert [s.id for s in api_key] == [
        "LOG-AGENT-API-KEY-INVALID",
        "LOG-AGENT-NO-VALID-API-KEY",
        "LOG-AGENT-NO-API-KEY",
    ]
    assert logscan.select_signatures(proxy, source="agent") == ()


def test_line_with_an_embedded_newline_keeps_numbering() -> None:
    assert _summary(SCANNER.scan(["a\nb", *LOG])) == [(sig, line + 1) for sig, line in EXPECTED]
