"""Find the lines of a byte buffer that hold any of a set of literals, in one pass for all of them.

The log scanner's prefilter (`meshdoctor.logs.scanner`): the few lines holding a signature's
literal are the only ones decoded and matched. Two engines give the same lines:

- Hyperscan (the `hyperscan` package, whose wheel ships the library): one database of every
  literal, one pass over the buffer whatever their number (GB/s); used when it imports and
  compiles;
- `bytes.find` per literal, the pure-Python fallback: one C-speed pass per literal.

`benchmarks/logscan.py --compare-prefilter` measures both (and Aho-Corasick, and a `re`
alternation); `docs/performance.md` has the figures that chose this order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

#: Set to `1` to force the pure-Python engine (tests compare the two engines).
PURE_PYTHON_ENV = "MESHDOCTOR_PURE_PYTHON_SCAN"

NEWLINE = b"\n"


class LiteralFinder:
    """Every line of a buffer range that holds at least one of `literals` (non-empty bytes)."""

    def __init__(self, literals: Sequence[bytes]) -> None:
        self.literals = tuple(literals)
        self._database = None if os.environ.get(PURE_PYTHON_ENV) == "1" else _hyperscan_database(self.literals)

    @property
    def engine(self) -> str:
        """`hyperscan` or `bytes.find`."""
        return "hyperscan" if self._database is not None else "bytes.find"

    def spans(self, buf: Any, start: int, end: int) -> dict[int, int]:
        """{line start: line end} of the lines of `buf[start:end]` holding a literal.

        Line ends are the offset of the line's newline, or `end`; a line that begins before
        `start` begins at `start`.
        """
        if self._database is None:
            return _find_spans(buf, start, end, self.literals)
        ends: list[int] = []
        append = ends.append

        def on_match(_id: int, _from: int, to: int, _flags: int, _context: object) -> None:
            append(to)

        view = memoryview(buf)
        try:
            self._database.scan(view[start:end], match_event_handler=on_match)
        finally:
            view.release()
        ends.sort()
        spans: dict[int, int] = {}
        line_end = -1
        find, rfind = buf.find, buf.rfind
        for to in ends:  # in order of end offset; literals never hold a newline
            at = start + to - 1
            if at < line_end:
                continue
            line_start = rfind(NEWLINE, start, at) + 1 or start
            line_end = find(NEWLINE, at, end)
            if line_end == -1:
                line_end = end
            spans[line_start] = line_end
        return spans


def _find_spans(buf: Any, start: int, end: int, literals: Sequence[Any]) -> dict[int, int]:
    """The pure-Python engine: each literal searched with `find`; a hit jumps to its line's end."""
    spans: dict[int, int] = {}
    find, rfind = buf.find, buf.rfind
    nl = NEWLINE if isinstance(buf, (bytes, bytearray, memoryview)) else "\n"
    for lit in literals:
        at = find(lit, start, end)
        while at != -1:
            line_start = rfind(nl, start, at) + 1 or start
            line_end = find(nl, at, end)
            if line_end == -1:
                line_end = end
            spans[line_start] = line_end
            at = find(lit, line_end, end)
    return spans


def find_spans(buf: Any, start: int, end: int, literals: Sequence[Any]) -> dict[int, int]:
    """`LiteralFinder.spans` for `str` buffers (the text scan path) or without a database."""
    return _find_spans(buf, start, end, literals)


def _hyperscan_database(literals: Sequence[bytes]) -> Any:
    """A block-mode Hyperscan database of the literals, or None when Hyperscan is unavailable."""
    if not literals:
        return None
    try:
        import hyperscan  # only here: an optional binary dependency, imported when a log is scanned
    except Exception:  # noqa: BLE001 - missing, or a wheel that does not load on this CPU/OS
        return None
    try:
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=[_escaped(lit) for lit in literals],
            ids=list(range(len(literals))),
            elements=len(literals),
            flags=[0] * len(literals),
        )
    except Exception:  # noqa: BLE001 - e.g. a CPU without the instructions the library needs
        return None
    return database


def _escaped(literal: bytes) -> bytes:
    """A literal as a Hyperscan (PCRE) pattern: every byte but letters and digits hex-escaped."""
    return b"".join(bytes([b]) if chr(b).isalnum() and b < 128 else b"\\x%02x" % b for b in literal)
