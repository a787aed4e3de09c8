"""What one offline input may cost: regular files only, a size limit, text encodings, YAML aliasing.

Inputs come from anyone (a support bundle, a CI artifact, a pipe), so reading them is bounded:

- a path is opened once, without blocking, and read only if it is a regular file: a FIFO, a
  socket or a device would block or never end (`open` of a FIFO waits for a writer);
- a file, or standard input, larger than `max_file_bytes()` is refused with a one-line error that
  names it and the limit (`MESHDOCTOR_MAX_FILE_MB` raises or lowers it; 0 turns it off);
- text is UTF-8, with or without a byte order mark, or UTF-16 with its mark (what Windows
  PowerShell's `>` writes) — the encodings kubectl reads (k8s.io/cli-runtime
  pkg/resource/visitor.go `FileVisitor.Visit`: `unicode.BOMOverride(unicode.UTF8.NewDecoder())`,
  golang.org/x/text/encoding/unicode, which knows the UTF-8 and UTF-16 marks). A UTF-32 mark is
  read too (Python knows it; it never means anything else); any other bytes are an error naming
  the line;
- a YAML document whose aliases expand too far is refused, by the rule kubectl's YAML decoder
  applies (`excessive aliasing`, `meshdoctor.kube.yaml_aliases`).
"""

from __future__ import annotations

import codecs
import io
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from meshdoctor.errors import InputError
from meshdoctor.kube.yaml_aliases import check_aliasing

__all__ = ["check_aliasing"]  # read with the other bounds by `files`

#: Per-file size limit when `MESHDOCTOR_MAX_FILE_MB` is not set: 512 MiB. Reading costs about
#: 2.5x the input in memory (docs/performance.md), so the default keeps a run near 1.3 GB.
DEFAULT_MAX_FILE_MB = 512

#: The environment variable that sets the per-file limit in MiB (0: no limit).
MAX_FILE_ENV = "MESHDOCTOR_MAX_FILE_MB"


def max_file_bytes() -> int | None:
    """The per-file size limit in bytes, or None for no limit."""
    raw = os.environ.get(MAX_FILE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_FILE_MB * 1024 * 1024
    try:
        megabytes = float(raw)
    except ValueError:
        raise InputError(MAX_FILE_ENV, f"not a number of MiB: {raw!r}") from None
    if megabytes < 0:
        raise InputError(MAX_FILE_ENV, f"not a number of MiB: {raw!r}")
    return None if megabytes == 0 else int(megabytes * 1024 * 1024)


def _too_large(name: str, limit: int) -> InputError:
    return InputError(
        name, f"larger than the {_mib(limit)} limit per input file (set {MAX_FILE_ENV} to raise it, 0 for none)"
    )


def _mib(size: int) -> str:
    mib = size / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{size} bytes"


_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


def open_regular(path: str) -> io.BufferedReader:
    """Open `path` for reading if it is a regular file within the size limit; InputError if not.

    O_NONBLOCK makes opening a FIFO return at once (instead of waiting for a writer), so it can be
    told apart and refused; on a regular file the flag changes nothing.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError(path, "no such file or directory") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(path, "cannot read: Is a directory")
        what = _not_regular(info.st_mode)
        if what is not None:
            raise InputError(path, f"not a regular file ({what})")
        limit = max_file_bytes()
        if limit is not None and info.st_size > limit:
            raise _too_large(path, limit)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str) -> bytes:
    """The bytes of a regular file within the size limit (see `open_regular`)."""
    with open_regular(path) as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror}") from None


def read_stream(stream: BinaryIO, name: str) -> bytes:
    """All bytes of a stream (standard input), refused past the size limit without reading on."""
    limit = max_file_bytes()
    try:
        data = stream.read() if limit is None else stream.read(limit + 1)
    except OSError as exc:
        raise InputError(name, f"cannot read: {exc.strerror}") from None
    if limit is not None and len(data) > limit:
        raise _too_large(name, limit)
    return data


# -- encodings ------------------------------------------------------------------------------------

#: Byte order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

#: Bytes checked at a time when validating UTF-8 without keeping the decoded text.
_CHECK_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class Encoding:
    """How a file's text is encoded."""

    name: str
    """Python codec name: `utf-8`, `utf-16-le`...."""
    bom: int
    """Length of the byte order mark the text starts with (0 without one)."""

    @property
    def utf8(self) -> bool:
        """UTF-8 text: byte offsets in the file are those of the UTF-8 text after the mark."""
        return self.name == "utf-8"


def detect_encoding(raw: bytes) -> Encoding:
    """The encoding a file's byte order mark says, else UTF-8."""
    for mark, codec in _BOMS:
        if raw.startswith(mark):
            return Encoding(codec, len(mark))
    return Encoding("utf-8", 0)


def decode(raw: bytes, name: str, encoding: Encoding) -> str:
    """The text of `raw` after its mark; InputError naming the line of the first invalid byte."""
    try:
        return codecs.decode(memoryview(raw)[encoding.bom :], encoding.name)
    except UnicodeDecodeError as exc:
        raise _not_text(raw, name, encoding, exc.start) from None


def check_utf8(raw: bytes, name: str, start: int = 0) -> None:
    """Raise InputError unless `raw[start:]` is UTF-8, without keeping the decoded text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    done = start
    try:
        for done in range(start, len(raw), _CHECK_CHUNK):
            decoder.decode(view[done : done + _CHECK_CHUNK], final=False)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _not_text(raw, name, Encoding("utf-8", 0), done + exc.start) from None


def _not_text(raw: bytes, name: str, encoding: Encoding, at: int) -> InputError:
    if encoding.utf8:
        line = raw.count(b"\n", 0, at) + 1
        what = "not UTF-8 text"
    else:
        line = None
        what = f"not valid {encoding.name.upper()} text"
    return InputError(name, what, line)


# -- folders --------------------------------------------------------------------------------------


def list_folder(path: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    """A folder's entries sorted by name; InputError naming the folder if it cannot be listed."""
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise InputError(os.fspath(path), f"cannot read: {exc.strerror or exc}") from None


def entry_is_dir(entry: os.DirEntry[str]) -> bool:
    """A folder, or a link to one; False for a link that loops or leads nowhere."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def entry_is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a link to one; False for a link that loops or leads nowhere."""
    try:
        return entry.is_file()
    except OSError:
        return False


def folder_identity(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(device, inode) of a folder, links followed: the same folder reached twice is one folder."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(os.fspath(path), f"cannot read: {exc.strerror or exc}") from None
    return info.st_dev, info.st_ino
