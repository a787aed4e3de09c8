"""The lines of a log that hold one of a few literals, found without decoding the others.

Rules that quote "the first line saying X, and how many" (MD101's forwarder errors) used to
decode every line of the log in Python; this reads the raw bytes in chunks and lets
`LiteralFinder` (one pass, Hyperscan where available) pick the lines, decoding only those. The
lines and their numbers are exactly those of `LogSource.lines()`: line ends stripped (CRLF
too), lines cut to `MAX_LINE` bytes, UTF-8 decoded with replacement.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

from meshdoctor.logs.literal_search import LiteralFinder
from meshdoctor.logs.scanner import candidate_lines
from meshdoctor.snapshot import LogSource


@functools.lru_cache(maxsize=16)
def _finder(literals: tuple[str, ...]) -> LiteralFinder:
    return LiteralFinder([lit.encode("utf-8") for lit in literals])


def lines_holding(log: LogSource, literals: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(1-based number, line) of each line of `log` holding one of `literals`, in order."""
    wanted = tuple(literals)
    opener = getattr(log, "open", None)
    if not callable(opener):
        for number, line in enumerate(log.lines(), start=1):
            if any(lit in line for lit in wanted):
                yield number, line
        return
    with opener() as handle:
        for number, raw in candidate_lines(handle, _finder(wanted)):
            line = raw.decode("utf-8", errors="replace")
            if line.endswith("\r"):
                line = line[:-1]
            if any(lit in line for lit in wanted):  # the literal may lie past the cut
                yield number, line
