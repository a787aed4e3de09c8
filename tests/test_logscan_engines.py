"""The one-pass prefilter engines and the Envoy intake-failure rewrite give the same matches as before.

- Hyperscan and the pure-Python `bytes.find` engine (`meshdoctor.logs.literal_search`) find the
  same candidate lines, so the scan's matches are identical, across chunk boundaries too.
- LOG-EGRESS-ENVOY-(JSON-)INTAKE-FAILED lost their `outbound|` literal and leading unanchored
  lookahead: a differential test scans generated sidecar logs with the old definitions (kept here
  verbatim) and the new ones and compares every match and every captured group.
"""

from __future__ import annotations

import dataclasses
import io
import random
import re

import pytest

import meshdoctor.logs.scanner as logscan
from meshdoctor.logs import literal_search
from meshdoctor.logs.scanner import Scanner, load_signatures

OLD_TEXT_PATTERN = (
    r"(?=.*(?:datadoghq\.|ddog-gov\.com))\[(?P<time>[^\]]+)\] \"(?P<request>[^\"]*)\" (?P<code>\d{1,3}) "
    r"(?P<flags>(?:UH|UF|URX|NR|UO|UC|UT|UMSDR)(?:,[A-Z]+)*) .*?\"(?P<authority>[^\"]*)\" "
    r"\"(?P<upstream_host>[^\"]*)\" (?P<cluster>outbound\|\S*) \S+ (?P<downstream_local>\S+) \S+ "
    r"(?P<sni>\S+)(?: \S+)?\s*$"
)
OLD_JSON_PATTERN = (
    r"^(?=.*\"response_flags\":\s*\"(?P<flags>(?:UH|UF|URX|NR|UO|UC|UT|UMSDR)(?:,[A-Z]+)*)\")"
    r"(?=.*(?:datadoghq\.|ddog-gov\.com))(?=.*\"upstream_cluster\":\s*\"(?P<cluster>outbound\|[^\"]*)\")"
    r"(?=.*\"authority\":\s*(?:\"(?P<authority>[^\"]*)\"|null))?"
    r"(?=.*\"requested_server_name\":\s*(?:\"(?P<sni>[^\"]*)\"|null))?"
)
OLD = {
    "LOG-EGRESS-ENVOY-INTAKE-FAILED": OLD_TEXT_PATTERN,
    "LOG-EGRESS-ENVOY-JSON-INTAKE-FAILED": OLD_JSON_PATTERN,
}

FLAGS = ["-", "UH", "UF", "UF,URX", "URX", "NR", "UO", "UC", "UT", "UMSDR", "DC", "UAEX", "NC", "UF,UO", "DPE"]
HOSTS = [
    "7-52-0-app.agent.datadoghq.com",
    "agent-intake.logs.datadoghq.eu",
    "trace.agent.ddog-gov.com",
    "istiod.istio-system.svc.cluster.local",
    "api.example.com",
    "-",
]
CLUSTERS = ["outbound|443||{h}", "PassthroughCluster", "BlackHoleCluster", "inbound|8126||", "outbound|80||{h}"]
REQUESTS = ["- - -", "POST /api/v2/series HTTP/1.1", "GET /metrics HTTP/1.1", "POST /intake/ HTTP/2"]


def _envoy_lines(count: int, seed: int) -> list[str]:
    """Text and JSON access-log lines of a sidecar, every field drawn at random."""
    rnd = random.Random(seed)
    lines = []
    for index in range(count):
        host = rnd.choice(HOSTS)
        flags = rnd.choice(FLAGS)
        code = rnd.choice(["0", "200", "202", "503", "504", "404"])
        cluster = rnd.choice(CLUSTERS).format(h=host)
        time = f"2024-05-06T07:08:{index % 60:02d}.123Z"
        if rnd.random() < 0.6:
            lines.append(
                f'[{time}] "{rnd.choice(REQUESTS)}" {code} {flags} via_upstream - "-" 0 {rnd.randrange(9999)} '
                f'{rnd.randrange(999)} - "-" "datadog-agent/7.52.0" "{rnd.getrandbits(64):016x}" '
                f'"{host}" "3.233.146.17:443" {cluster} 10.244.1.17:43222 3.233.146.17:443 '
                f"10.244.1.17:43210 {host} {rnd.choice(['-', 'default', ''])}".rstrip()
            )
        else:
            authority = "null" if rnd.random() < 0.3 else f'"{host}"'
            sep = rnd.choice(["", " "])
            lines.append(
                "{"
                + f'"authority":{sep}{authority},"downstream_local_address":"3.233.146.17:443",'
                + f'"requested_server_name":{sep}"{host}","response_code":{code},'
                + f'"response_flags":{sep}"{flags}","start_time":"{time}",'
                + f'"upstream_cluster":{sep}"{cluster}","upstream_host":"3.233.146.17:443"'
                + "}"
            )
    return lines


def _signatures(old: bool) -> list[logscan.Signature]:
    chosen = [s for s in load_signatures() if s.id in OLD]
    if not old:
        return chosen
    return [dataclasses.replace(s, pattern=re.compile(OLD[s.id]), literals=("outbound|",)) for s in chosen]


def _key(matches: list[logscan.Match]) -> list[tuple[str, int, str, dict[str, str | None]]]:
    return [(m.signature.id, m.line, m.text, dict(m.groups)) for m in matches]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_envoy_intake_failure_matches_what_the_old_definition_matched(seed: int) -> None:
    data = ("\n".join(_envoy_lines(3000, seed)) + "\n").encode()
    old = _key(Scanner(_signatures(old=True)).scan_file(io.BytesIO(data)))
    new = _key(Scanner(_signatures(old=False)).scan_file(io.BytesIO(data)))
    assert new == old
    assert len({m[0] for m in new}) == 2  # both signatures matched lines: the test compares something


def test_envoy_intake_failure_patterns_match_each_line_as_before() -> None:
    """Line by line, without the prefilter: same match, same groups."""
    new = {s.id: s.pattern for s in _signatures(old=False)}
    for line in _envoy_lines(2000, 9):
        for sid, old_pattern in OLD.items():
            a, b = re.search(old_pattern, line), new[sid].search(line)
            assert (a and a.groupdict()) == (b and b.groupdict()), line


def _mixed_log() -> bytes:
    """Every sample line of the catalogue among sidecar lines, some JSON, CRLF and over-long lines."""
    rnd = random.Random(5)
    lines = _envoy_lines(1500, 4)
    for sig in load_signatures():
        for sample in sig.samples_match:
            lines.insert(rnd.randrange(len(lines)), sample.line)
    lines.insert(700, "x" * (logscan.MAX_LINE + 500) + " while sending transaction")
    lines.insert(900, "Too many errors for endpoint 'x'\r")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("chunk", [4096, 100_000, 8 * 1024 * 1024])
def test_hyperscan_and_pure_python_engines_give_the_same_matches(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hyperscan")
    monkeypatch.setattr(logscan, "CHUNK_SIZE", chunk)
    data = _mixed_log()
    fast = Scanner()
    fast_matches = _key(fast.scan_file(io.BytesIO(data)))
    assert fast._finder is not None and fast._finder.engine == "hyperscan"
    monkeypatch.setenv(literal_search.PURE_PYTHON_ENV, "1")
    pure = Scanner()
    pure_matches = _key(pure.scan_file(io.BytesIO(data)))
    assert pure._finder is not None and pure._finder.engine == "bytes.find"
    assert fast_matches == pure_matches
    assert len(fast_matches) > 50


def test_pure_python_engine_when_hyperscan_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_hyperscan(name: str, *args: object, **kwargs: object) -> object:
        if name == "hyperscan":
            raise ImportError("no hyperscan")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_hyperscan)
    finder = literal_search.LiteralFinder([b"dial tcp ", b"BlackHoleCluster"])
    assert finder.engine == "bytes.find"
    buf = bytearray(b"a\nx dial tcp 1\nb\nBlackHoleCluster dial tcp \nc")
    assert finder.spans(buf, 0, len(buf)) == {2: 14, 17: 43}


def test_read_buffers_are_reused_across_logs() -> None:
    scanner = Scanner()
    scanner.scan_file(io.BytesIO(b"a\nb\n"))
    pooled = [id(b) for b in logscan._BUFFERS]
    scanner.scan_file(io.BytesIO(b"c\n"))
    assert [id(b) for b in logscan._BUFFERS] == pooled and len(pooled) >= 1
