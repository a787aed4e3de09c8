"""Container logs read from files: a whole file (`--logs DIR`) or a section of one (`logs.txt`).

Logs can be gigabytes, so nothing here reads a file whole: lines are streamed in binary, decoded one
by one with replacement (a log is not guaranteed to be UTF-8), and a line longer than `MAX_LINE`
bytes is cut to its first `MAX_LINE` bytes (the rest of it is skipped, still without holding it).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from meshdoctor.errors import InputError
from meshdoctor.snapshot import LogKey, Snapshot
from meshdoctor.sources.bounds import entry_is_dir, entry_is_file, list_folder

#: Lines are cut to this many bytes (the same bound as `meshdoctor.logs.scanner.MAX_LINE`).
MAX_LINE = 64 * 1024

#: Suffix of a log file in a `--logs` folder, and of the previous instance's log.
LOG_SUFFIX = ".log"
PREVIOUS_SUFFIX = ".previous.log"


def stream_lines(handle: BinaryIO, limit: int | None = None) -> Iterator[str]:
    """Lines of a binary stream without their line ends, at most `limit` bytes read (None: to EOF).

    Each line is decoded as UTF-8 with replacement and cut to `MAX_LINE` bytes.
    """
    remaining = limit
    readline = handle.readline
    while remaining is None or remaining > 0:
        want = MAX_LINE + 1 if remaining is None else min(MAX_LINE + 1, remaining)
        raw = readline(want)
        if not raw:
            return
        if remaining is not None:
            remaining -= len(raw)
        if not raw.endswith(b"\n") and len(raw) == MAX_LINE + 1:
            # A line longer than MAX_LINE: keep its head, drop the rest up to the line end.
            raw = raw[:MAX_LINE]
            while remaining is None or remaining > 0:
                want = MAX_LINE if remaining is None else min(MAX_LINE, remaining)
                rest = readline(want)
                if not rest:
                    break
                if remaining is not None:
                    remaining -= len(rest)
                if rest.endswith(b"\n"):
                    break
        elif raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield raw.decode("utf-8", errors="replace")


class FileLog:
    """A container log that is a whole file (`--logs DIR/<ns>/<pod>/<container>.log`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.origin = self.path

    def lines(self) -> Iterator[str]:
        """Yield the file's lines, streamed."""
        with open_log(self.path) as handle:
            yield from stream_lines(handle)

    def open(self) -> BinaryIO:
        """The raw bytes of the log, for scanners that read large chunks themselves."""
        return open_log(self.path)

    def __repr__(self) -> str:
        return f"FileLog({self.path!r})"


class SectionLog:
    """A container log that is the byte range `[start, end)` of a file (a `logs.txt` section)."""

    def __init__(self, path: str | os.PathLike[str], start: int, end: int, origin: str | None = None) -> None:
        self.path = os.fspath(path)
        self.start = start
        self.end = end
        self.origin = origin or f"{self.path}@{start}-{end}"

    def lines(self) -> Iterator[str]:
        """Yield the section's lines, streamed."""
        with open_log(self.path) as handle:
            handle.seek(self.start)
            yield from stream_lines(handle, self.end - self.start)

    def open(self) -> BinaryIO:
        """The raw bytes of the section, for scanners that read large chunks themselves."""
        return _RangeReader(self.path, self.start, self.end)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"SectionLog({self.path!r}, {self.start}, {self.end})"


class _RangeReader(io.RawIOBase):
    """A read-only binary stream over a byte range of a file."""

    def __init__(self, path: str, start: int, end: int) -> None:
        super().__init__()
        self._file = open_log(path)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        got = self._file.readinto(view)
        self._left -= got or 0
        return got or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def open_log(path: str) -> io.BufferedReader:
    """A log file opened for reading: a regular file (a FIFO would block), any size (it is streamed).

    InputError naming the file when it cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(path, "not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_readable(path: str) -> None:
    """Raise InputError now if a log cannot be read, rather than when a rule reads it.

    A log that turned unreadable between here and its rule still fails that rule (an `error`
    result), but an input given unreadable is bad input, said in one line with exit code 2.
    """
    open_log(path).close()


def log_key(namespace: str, pod: str, file_name: str) -> LogKey | None:
    """The LogKey a `--logs` file name stands for, or None for a file that is not a log."""
    if file_name.endswith(PREVIOUS_SUFFIX) and len(file_name) > len(PREVIOUS_SUFFIX):
        return LogKey(namespace, pod, file_name[: -len(PREVIOUS_SUFFIX)], True)
    if file_name.endswith(LOG_SUFFIX) and len(file_name) > len(LOG_SUFFIX):
        return LogKey(namespace, pod, file_name[: -len(LOG_SUFFIX)], False)
    return None


#: Suffix of a plain log file given to `--from` (an agent's log saved as a file, `agent.log`).
PLAIN_LOG_SUFFIX = ".log"

#: The container a plain log file is taken for: the sidecar's when named so, else the agent's.
SIDECAR_LOG_NAME = "istio-proxy"
AGENT_CONTAINER = "agent"


def is_plain_log(path: str) -> bool:
    """Whether a `--from` file is a log rather than manifests (named `*.log`)."""
    return os.path.basename(path).endswith(PLAIN_LOG_SUFFIX)


def add_plain_log(snapshot: Snapshot, path: str) -> LogKey:
    """Register a plain log file as the log of a pod named after the file, in no namespace.

    Nothing says whose log it is, so it is attributed to the file: pod `agent.log`, container
    `agent` (`istio-proxy` for `istio-proxy.log`), scanned as the agent's or sidecar's.
    """
    if not os.path.isfile(path):
        raise InputError(path, "not a log file")
    name = os.path.basename(path)
    container = SIDECAR_LOG_NAME if name == SIDECAR_LOG_NAME + PLAIN_LOG_SUFFIX else AGENT_CONTAINER
    key = LogKey("", name, container)
    snapshot.add_log(key, FileLog(path))
    return key


def load_logs_dir(snapshot: Snapshot, path: str | os.PathLike[str]) -> int:
    """Register every `<path>/<namespace>/<pod>/<container>[.previous].log`; return how many.

    Hidden files and folders, and files at other depths, are not logs and are ignored.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(str(path), "no such file or directory")
    if not root.is_dir():
        raise InputError(str(path), "not a folder of logs (<namespace>/<pod>/<container>.log)")
    count = 0
    for ns_dir in _visible_dirs(root):
        for pod_dir in _visible_dirs(ns_dir):
            for entry in list_folder(pod_dir):
                if entry.name.startswith(".") or not entry_is_file(entry):
                    continue
                key = log_key(ns_dir.name, pod_dir.name, entry.name)
                if key is not None:
                    check_readable(entry.path)
                    snapshot.add_log(key, FileLog(entry.path))
                    count += 1
    return count


def _visible_dirs(folder: Path) -> list[Path]:
    return [Path(e.path) for e in list_folder(folder) if not e.name.startswith(".") and entry_is_dir(e)]
