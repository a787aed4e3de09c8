"""What a live collection is doing, on stderr, while the on-call engineer waits.

A rich status line (kinds listed, objects and logs fetched, elapsed time) when stderr is a
terminal; nothing at all with `-q` or when stderr is redirected, so logs and CI output stay clean.
rich is imported only when the display is actually shown.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any


class Progress:
    """Counters a collector reports into; this base class shows nothing (quiet, or not a TTY)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.kinds_total = 0
        self.kinds_done = 0
        self.objects = 0
        self.logs = 0
        self.log_bytes = 0
        self.stage = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def begin(self, stage: str, kinds_total: int | None = None) -> None:
        """A new stage (`listing`, `logs`, `access reviews`, `probes`)."""
        with self._lock:
            self.stage = stage
            if kinds_total is not None:
                self.kinds_total = kinds_total
        self.refresh()

    def kind_listed(self, kind: str, count: int) -> None:
        """One kind fully listed with `count` objects."""
        with self._lock:
            self.kinds_done += 1
            self.objects += count
        self.refresh()

    def log_fetched(self, size: int) -> None:
        """One container log of `size` bytes fetched."""
        with self._lock:
            self.logs += 1
            self.log_bytes += size
        self.refresh()

    def describe(self) -> str:
        """One line: what is being done and how far it got."""
        elapsed = time.monotonic() - self.started
        text = f"{self.stage}: {self.kinds_done}/{self.kinds_total} kinds, {self.objects} objects"
        if self.logs:
            text += f", {self.logs} logs ({self.log_bytes / 1048576:.1f} MiB)"
        return f"{text}, {elapsed:.1f}s"

    def refresh(self) -> None:
        """Redraw (nothing here)."""

    def close(self) -> None:
        """Remove the display (nothing here)."""


class RichProgress(Progress):
    """A rich spinner with `describe()` as its text, on the given stream."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        from rich.console import Console

        self._console = Console(file=stream, stderr=stream is sys.stderr)
        self._status: Any = self._console.status(self.describe())
        self._status.start()

    def refresh(self) -> None:
        """Update the spinner's text."""
        self._status.update(self.describe())

    def close(self) -> None:
        """Stop the spinner and leave the terminal as it was."""
        self._status.stop()


def make_progress(quiet: bool, stream: IO[str] | None = None) -> Progress:
    """A visible progress display only when not quiet and the stream is a terminal."""
    stream = stream if stream is not None else sys.stderr
    if quiet or not _is_tty(stream):
        return Progress()
    return RichProgress(stream)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
