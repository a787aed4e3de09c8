"""`lines_holding` gives exactly the (number, line) pairs a scan of `LogSource.lines()` gives."""

from __future__ import annotations

import pytest

import meshdoctor.logs.scanner as logscan
from meshdoctor.logs.literal_lines import lines_holding
from meshdoctor.sources.logs import MAX_LINE, FileLog

LITERALS = ("Too many errors for endpoint", "Error while processing transaction")


class LinesOnly:
    """A log source without `open()`: the fallback path."""

    def __init__(self, log: FileLog) -> None:
        self._log = log

    def lines(self):  # type: ignore[no-untyped-def]
        return self._log.lines()


@pytest.mark.parametrize("chunk", [64, 4096, 8 * 1024 * 1024])
def test_same_lines_and_numbers_as_lines(tmp_path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(logscan, "CHUNK_SIZE", max(chunk, 64))
    body = [
        b"2019-02-20 10:12:33 UTC | CORE | ERROR | Too many errors for endpoint 'x'",
        b"plain line",
        b"Error while processing transaction\r",
        b"\xff\xfe broken utf-8 Too many errors for endpoint",
        b"y" * (MAX_LINE + 10) + b" Too many errors for endpoint",  # literal past the cut: not kept
        b"Too many errors for endpoint" + b"z" * (MAX_LINE + 10),  # kept, cut
        b"",
        b"last Error while processing transaction",
    ]
    path = tmp_path / "agent.log"
    path.write_bytes(b"\n".join(body) + b"\n")
    log = FileLog(path)
    expected = [(n, line) for n, line in enumerate(log.lines(), start=1) if any(s in line for s in LITERALS)]
    assert [n for n, _ in expected] == [1, 3, 4, 6, 8]
    assert list(lines_holding(log, LITERALS)) == expected
    assert list(lines_holding(LinesOnly(log), LITERALS)) == expected  # type: ignore[arg-type]
