"""Find known fault signatures in agent and istio-proxy logs, fast and in flat memory.

The signatures are data (`signatures.yaml`, loaded by `load_signatures`). A `Scanner` compiles
them once. Scanning never runs a signature's regex on every line: a literal prefilter (substrings of
which at least one must occur for the signature to match) finds the few candidate lines in large
buffers, and only those lines are decoded and matched. Logs are read in large chunks (binary
files) or batches of lines (any iterable of `str`), never whole.

Lines longer than `MAX_LINE` are cut to their first `MAX_LINE` bytes (binary input) or characters
(text input) before matching. Binary input is decoded as UTF-8 with replacement. Agent logs in JSON
format (`log_format_json: true`) are matched on their `msg` field.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import IO, Any, Protocol

import yaml

from meshdoctor.logs.literal_search import LiteralFinder, find_spans
from meshdoctor.model import Category, LogEvidence, Severity
from meshdoctor.secrets_mask import mask_secrets

try:  # Python >= 3.11 deprecates the public names of the regex parser
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

#: Lines are cut to this many bytes (binary input) or characters (text input) before matching.
MAX_LINE = 64 * 1024

#: Bytes read at a time from a binary log.
CHUNK_SIZE = 8 * 1024 * 1024

#: Files smaller than this are scanned in one process whatever `workers` says.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024

#: Lines joined into one buffer when scanning an iterable of `str`.
BATCH_LINES = 4096

#: Where a signature's lines come from.
SOURCES = frozenset({"agent", "istio-proxy", "istiod", "mixer"})

#: Evidence lines kept per group of matches.
SAMPLES_PER_GROUP = 2


@dataclass(frozen=True)
class MatchSample:
    """A line a signature must match, with the values its named groups must capture."""

    line: str
    """The log line."""
    groups: Mapping[str, str | None]
    """Expected value of each named group listed (a group not listed is not checked)."""


@dataclass(frozen=True)
class Signature:
    """One known log line that points to a fault."""

    id: str
    """Stable id, e.g. `LOG-EGRESS-TOO-MANY-ERRORS`; never reused."""
    category: Category
    """The fault family it points to (DESIGN.md categories)."""
    severity: Severity
    """How bad the fault usually is."""
    source: str
    """Which container logs it: `agent`, `istio-proxy`, `istiod` or `mixer`."""
    pattern: re.Pattern[str]
    """Compiled pattern with named groups."""
    literals: tuple[str, ...]
    """Substrings of which at least one occurs in every matching line (declared or derived)."""
    message: str
    """`str.format` template over the named groups (absent groups render as `-`)."""
    supports: str
    """The rule family this evidence supports: `egress`, `check-config`, `agent-api-key`..."""
    key: tuple[str, ...]
    """Named groups that identify one distinct problem; matches are grouped on them."""
    title: str = ""
    """One line saying what the signature means."""
    samples_match: tuple[MatchSample, ...] = ()
    """Lines it must match."""
    samples_no_match: tuple[str, ...] = ()
    """Lines it must not match."""

    def render(self, groups: Mapping[str, str | None]) -> str:
        """Render the message with the captured values filled in."""
        return self.message.format_map(_Absent(groups))


class _Absent(dict[str, str]):
    """Format mapping that renders a group that did not participate as `-`."""

    def __init__(self, groups: Mapping[str, str | None]) -> None:
        super().__init__({k: v for k, v in groups.items() if v is not None})

    def __missing__(self, key: str) -> str:
        return "-"


@dataclass(frozen=True)
class Match:
    """One line that matched one signature."""

    signature: Signature
    """What matched."""
    namespace: str
    """Namespace of the pod whose log it is."""
    pod: str
    """Pod name."""
    container: str
    """Container name."""
    line: int
    """1-based line number in that log."""
    text: str
    """The line (cut to `MAX_LINE`), secrets masked."""
    groups: Mapping[str, str | None]
    """Named groups captured, secrets masked."""
    timestamp: str | None = None
    """When the line was logged (ISO 8601 when the format says UTC), where the line says."""

    @property
    def message(self) -> str:
        """The signature's message for this line."""
        return self.signature.render(self.groups)

    def evidence(self) -> LogEvidence:
        """Return the line as finding evidence."""
        return LogEvidence(
            self.namespace,
            self.pod,
            self.container,
            self.line,
            self.text,
            first_seen=self.timestamp,
            last_seen=self.timestamp,
        )


@dataclass(frozen=True)
class MatchGroup:
    """Matches of one signature with the same key values, counted, with a couple of samples."""

    signature: Signature
    """What matched."""
    key: tuple[tuple[str, str | None], ...]
    """The key groups and their values, in the signature's key order."""
    count: int
    """How many lines matched."""
    first_seen: str | None
    """Timestamp of the first matching line that has one."""
    last_seen: str | None
    """Timestamp of the last matching line that has one."""
    samples: tuple[Match, ...] = field(default_factory=tuple)
    """At most `SAMPLES_PER_GROUP` matches (the first ones), with pod, container and line."""
    pods: tuple[tuple[str, str, str], ...] = ()
    """Every (namespace, pod, container) where it matched, sorted."""
    last_lines: tuple[tuple[tuple[str, str, str], int], ...] = ()
    """The number of the last matching line in each (namespace, pod, container) log, sorted:
    what came after it in the same log (`meshdoctor.logs.recovery`)."""

    def last_line(self, where: tuple[str, str, str]) -> int | None:
        """The last matching line of one log, or None where the group has none."""
        for log, line in self.last_lines:
            if log == where:
                return line
        return None

    @property
    def values(self) -> dict[str, str | None]:
        """The key groups as a dict."""
        return dict(self.key)

    @property
    def message(self) -> str:
        """The signature's message for the first sample."""
        return self.samples[0].message if self.samples else self.signature.render(self.values)

    def evidence(self) -> tuple[LogEvidence, ...]:
        """Return the samples as evidence, each with the group's count and first/last seen."""
        return tuple(
            LogEvidence(
                m.namespace,
                m.pod,
                m.container,
                m.line,
                m.text,
                count=self.count,
                first_seen=self.first_seen,
                last_seen=self.last_seen,
            )
            for m in self.samples
        )


# -- loading the catalogue --------------------------------------------------------------------


class _Readable(Protocol):
    """What the binary scan reads from: a file object, or a range of one.

    `readinto` is used instead of `read` when the object has it.
    """

    def read(self, size: int, /) -> bytes:
        """Return up to `size` bytes; b"" at the end."""
        ...


class SignatureError(ValueError):
    """The signature catalogue is malformed; the message names the signature."""


def load_signatures(path: str | os.PathLike[str] | None = None) -> tuple[Signature, ...]:
    """Signatures from a YAML catalogue; the built-in `signatures.yaml` by default (cached)."""
    if path is None:
        return _builtin_signatures()
    with open(path, encoding="utf-8") as handle:
        return parse_signatures(handle.read())


@functools.lru_cache(maxsize=1)
def _builtin_signatures() -> tuple[Signature, ...]:
    text = resources.files("meshdoctor.logs").joinpath("signatures.yaml").read_text("utf-8")
    return parse_signatures(text)


def select_signatures(
    signatures: Iterable[Signature] | None = None,
    *,
    source: str | None = None,
    supports: str | None = None,
    category: Category | str | None = None,
) -> tuple[Signature, ...]:
    """Pick the signatures (built-in by default) of one source, rule family and/or category."""
    chosen = load_signatures() if signatures is None else tuple(signatures)
    wanted = Category(category) if category is not None else None
    return tuple(
        sig
        for sig in chosen
        if (source is None or sig.source == source)
        and (supports is None or sig.supports == supports)
        and (wanted is None or sig.category is wanted)
    )


def parse_signatures(text: str) -> tuple[Signature, ...]:
    """Signatures from the text of a YAML catalogue (a top-level `signatures:` list)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    entries = data.get("signatures") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SignatureError("catalogue has no `signatures:` list")
    out: list[Signature] = []
    seen: set[str] = set()
    for entry in entries:
        sig = _signature(entry)
        if sig.id in seen:
            raise SignatureError(f"{sig.id}: duplicate id")
        seen.add(sig.id)
        out.append(sig)
    return tuple(out)


def _signature(entry: Any) -> Signature:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise SignatureError(f"signature without an id: {entry!r:.80}")
    sid = entry["id"]
    try:
        pattern = re.compile(str(entry["pattern"]).strip())
        source = str(entry["source"])
        if source not in SOURCES:
            raise SignatureError(f"{sid}: source {source!r} is not one of {sorted(SOURCES)}")
        declared = entry.get("literals")
        literals = tuple(declared) if declared else derive_literals(pattern.pattern)
        if not literals or not all(isinstance(lit, str) and lit for lit in literals):
            raise SignatureError(f"{sid}: no literal can be derived; declare `literals`")
        names = tuple(pattern.groupindex)
        key = tuple(entry["key"]) if entry.get("key") is not None else names
        unknown = [name for name in key if name not in pattern.groupindex]
        if unknown:
            raise SignatureError(f"{sid}: key names unknown groups {unknown}")
        samples = entry.get("samples") or {}
        matches = tuple(MatchSample(str(s["line"]), dict(s.get("groups") or {})) for s in samples.get("match") or ())
        return Signature(
            id=sid,
            category=Category(entry["category"]),
            severity=Severity(entry["severity"]),
            source=source,
            pattern=pattern,
            literals=literals,
            message=str(entry["message"]).strip(),
            supports=str(entry["supports"]),
            key=key,
            title=str(entry.get("title", "")).strip(),
            samples_match=matches,
            samples_no_match=tuple(str(s) for s in samples.get("no_match") or ()),
        )
    except SignatureError:
        raise
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise SignatureError(f"{sid}: {exc}") from exc


def derive_literals(pattern: str) -> tuple[str, ...]:
    """Substrings of which at least one occurs in every string `pattern` matches; () if none.

    Walks the parsed pattern: a run of literal characters that must appear is one requirement;
    an alternation whose every branch has a requirement yields those alternatives. The longest
    single requirement wins (the longer the literal, the rarer the candidate lines). Patterns that
    ignore case yield nothing: declare their literals.
    """
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & sre_constants.SRE_FLAG_IGNORECASE:
        return ()
    options = _requirements(list(parsed))
    if not options:
        return ()
    return max(options, key=lambda alts: (min(len(a) for a in alts), -len(alts)))


def _flat(items: Iterable[Any]) -> Iterator[Any]:
    """Yield parsed items with groups opened inline, so literal runs continue across them."""
    for op, arg in items:
        if op is sre_constants.SUBPATTERN and not arg[1] & sre_constants.SRE_FLAG_IGNORECASE:
            yield from _flat(arg[-1])
        else:
            yield op, arg


def _requirements(items: list[Any]) -> list[tuple[str, ...]]:
    """Every requirement (tuple of alternative literals) of a parsed sequence."""
    found: list[tuple[str, ...]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            found.append(("".join(run),))
            run.clear()

    for op, arg in _flat(items):
        if op is sre_constants.LITERAL:
            run.append(chr(arg))
            continue
        flush()
        if op is sre_constants.ASSERT and arg[0] == 1:
            found.extend(_requirements(list(arg[1])))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and arg[0] >= 1:
            found.extend(_requirements(list(arg[2])))
        elif op is sre_constants.BRANCH:
            alternatives: list[str] = []
            for branch in arg[1]:
                reqs = _requirements(list(branch))
                if not reqs:
                    alternatives = []
                    break
                alternatives.extend(max(reqs, key=lambda alts: min(len(a) for a in alts)))
            if alternatives:
                found.append(tuple(dict.fromkeys(alternatives)))
    flush()
    return found


def _prefilter_literals(literals: Iterable[str]) -> tuple[str, ...]:
    """Return the literals and their JSON-escaped forms, dropping any that holds another."""
    variants: set[str] = set()
    for lit in literals:
        variants.add(lit)
        escaped = lit.replace("\\", "\\\\").replace('"', '\\"')
        variants.add(escaped)
        html = escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        variants.add(html)
    # A line holding a literal holds every shorter literal it contains: keep the shortest ones.
    ordered = sorted(variants, key=len)
    kept: list[str] = []
    for lit in ordered:
        if not any(small in lit for small in kept):
            kept.append(lit)
    return tuple(sorted(kept))


# -- timestamps and JSON lines ----------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"(?:(?P<k8s>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)[ \t])?"
    r"(?:(?P<agent>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?: (?P<tz>[A-Za-z]{2,5}|[+-]\d{4}))? \|"
    r"|(?P<rfc>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) \|"
    r"|\[(?P<envoy>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)\])?"
)
#: What may precede a JSON record on its line: blanks, or a `kubectl logs --timestamps` time.
_JSON_PREFIX = re.compile(r"[ \t]*(?:\d{4}-\d\d-\d\dT\S+ )?")
_JSON_TIME_KEYS = ("time", "start_time", "timestamp", "ts", "@timestamp")


def line_timestamp(line: str, record: Mapping[str, Any] | None = None) -> str | None:
    """When a log line was written: agent, Envoy, JSON, Istio (time, tab, level) or `kubectl --timestamps`.

    The agent's `2019-02-18 10:11:12 UTC` becomes `2019-02-18T10:11:12Z`; other forms are kept
    as written.
    """
    if record is not None:
        for key in _JSON_TIME_KEYS:
            value = record.get(key)
            if isinstance(value, str) and value:
                return _normalize_time(value)
    found = _TIMESTAMP.match(line)
    if not found:
        return None
    if found["agent"]:
        tz = found["tz"]
        if tz in (None, "UTC", "GMT", "Z"):
            return found["agent"].replace(" ", "T") + "Z"
        return f"{found['agent'].replace(' ', 'T')} {tz}"
    return found["rfc"] or found["envoy"] or found["k8s"]


def _normalize_time(value: str) -> str:
    found = _TIMESTAMP.fullmatch(value + " |")
    if found and found["agent"] and found["tz"] in (None, "UTC", "GMT"):
        return found["agent"].replace(" ", "T") + "Z"
    return value


def _json_record(line: str) -> dict[str, Any] | None:
    """Parse the line when it is a JSON log record; None otherwise."""
    start = line.find("{")
    if start == -1 or (start and not _JSON_PREFIX.fullmatch(line[:start])):
        return None
    try:
        record = json.loads(line[start:])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


# -- scanning ---------------------------------------------------------------------------------


class Scanner:
    """Signatures compiled once; scans text lines or binary logs for them."""

    def __init__(self, signatures: Sequence[Signature] | None = None) -> None:
        self.signatures: tuple[Signature, ...] = tuple(load_signatures() if signatures is None else signatures)
        by_literal: dict[str, set[int]] = {}
        for index, sig in enumerate(self.signatures):
            for lit in sig.literals:
                by_literal.setdefault(lit, set()).add(index)
        self._by_literal = {lit: tuple(sorted(ids)) for lit, ids in sorted(by_literal.items())}
        self.literals: tuple[str, ...] = _prefilter_literals(by_literal)
        """The prefilter: a line holding none of these cannot match any signature."""
        self._literals_bytes = tuple(lit.encode("utf-8") for lit in self.literals)
        self._finder: LiteralFinder | None = None  # compiled on the first binary scan

    def __getstate__(self) -> dict[str, Any]:
        # A compiled Hyperscan database does not pickle (parallel scans send the scanner to
        # worker processes): each process compiles its own.
        return {**self.__dict__, "_finder": None}

    # public entry points

    def scan(self, lines: Iterable[str], *, namespace: str = "", pod: str = "", container: str = "") -> list[Match]:
        """Every match in a log given as lines without line ends (e.g. `LogSource.lines()`)."""
        where = (namespace, pod, container)
        out: list[Match] = []
        batch: list[str] = []
        first = 1
        for line in lines:
            if "\n" in line:  # a source that left a line end in would shift every number after it
                line = line.replace("\n", " ")
            batch.append(line[:MAX_LINE])
            if len(batch) >= BATCH_LINES:
                out.extend(self._scan_text("\n".join(batch), first, where))
                first += len(batch)
                batch.clear()
        if batch:
            out.extend(self._scan_text("\n".join(batch), first, where))
        return out

    def scan_file(
        self,
        log: str | os.PathLike[str] | IO[bytes],
        *,
        namespace: str = "",
        pod: str = "",
        container: str = "",
        workers: int = 1,
    ) -> list[Match]:
        """Every match in a binary log (path or file object), read in `CHUNK_SIZE` chunks.

        With `workers` > 1 and a path to a file of at least `PARALLEL_MIN_BYTES`, the file is cut
        at line boundaries into that many ranges scanned by as many processes; the result is the
        same, in the same order, with the same line numbers.
        """
        where = (namespace, pod, container)
        if isinstance(log, (str, os.PathLike)):
            path = os.fspath(log)
            size = os.path.getsize(path)
            if workers > 1 and size >= PARALLEL_MIN_BYTES:
                return self._scan_parallel(path, size, workers, where)
            with open(path, "rb") as handle:
                return list(self._scan_binary(handle, where))
        return list(self._scan_binary(log, where))

    def _scan_parallel(self, path: str, size: int, workers: int, where: tuple[str, str, str]) -> list[Match]:
        import multiprocessing  # only here: the parallel path is rare, the imports are not free
        from concurrent.futures import ProcessPoolExecutor

        bounds = _line_bounds(path, size, workers)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=len(bounds) - 1, mp_context=context) as pool:
            count = len(bounds) - 1
            parts = list(
                pool.map(
                    _scan_range,
                    [self] * count,
                    [path] * count,
                    bounds[:-1],
                    bounds[1:],
                    [where] * count,
                )
            )
        out: list[Match] = []
        offset = 0
        for matches, newlines in parts:
            out.extend(dataclasses.replace(m, line=m.line + offset) for m in matches)
            offset += newlines
        return out

    def match_line(self, line: str) -> list[tuple[Signature, dict[str, str | None]]]:
        """Match one line against every signature (no prefilter); groups are not masked."""
        record = _json_record(line) if "{" in line else None
        subject = _subject(line, record)
        out = []
        for sig in self.signatures:
            found = sig.pattern.search(subject)
            if found:
                out.append((sig, found.groupdict()))
        return out

    # internals

    def _scan_text(self, buf: str, first: int, where: tuple[str, str, str]) -> Iterator[Match]:
        found, _, _ = _candidates(buf, 0, len(buf), first, self.literals, "\n")
        for line_no, line in found:
            yield from self._match_candidate(line, line_no, where)

    def _scan_binary(self, handle: _Readable, where: tuple[str, str, str]) -> Iterator[Match]:
        if self._finder is None:
            self._finder = LiteralFinder(self._literals_bytes)
        for at, raw in candidate_lines(handle, self._finder):
            yield from self._match_candidate(_decode(raw), at, where)

    def _match_candidate(self, line: str, line_no: int, where: tuple[str, str, str]) -> Iterator[Match]:
        if line.endswith("\r"):
            line = line[:-1]
        record = _json_record(line) if "{" in line else None
        subject = _subject(line, record)
        tried: set[int] = set()
        timestamp: str | None = None
        text: str | None = None
        for lit, ids in self._by_literal.items():
            if lit not in subject:
                continue
            for index in ids:
                if index in tried:
                    continue
                tried.add(index)
                sig = self.signatures[index]
                found = sig.pattern.search(subject)
                if not found:
                    continue
                if text is None:
                    text = mask_secrets(line)
                    timestamp = line_timestamp(line, record)
                groups = {k: (mask_secrets(v) if v else v) for k, v in found.groupdict().items()}
                yield Match(sig, where[0], where[1], where[2], line_no, text, groups, timestamp)


def candidate_lines(handle: _Readable, finder: LiteralFinder) -> Iterator[tuple[int, bytes | bytearray]]:
    """(number, raw line without its newline, cut to `MAX_LINE`) of each line holding a literal.

    The binary scan: chunks of `CHUNK_SIZE` read into one pooled buffer after the carried-over
    start of an unfinished line (no chunk is copied whole; the carry is at most `MAX_LINE`
    bytes); `finder` finds the candidate lines of a chunk in one pass; line numbers come from
    counting newlines in C, no line is decoded here. A line longer than the buffer is cut, offered
    once, and the rest of it skipped without being kept.
    """
    literals = finder.literals
    buf = _take_buffer()
    view = memoryview(buf)
    readinto = getattr(handle, "readinto", None)
    carry = 0  # bytes of an unfinished line at the start of `buf`
    line_no = 1  # number of the line starting at buf[0]
    skipping = False  # the current line was already cut and offered; drop until newline
    try:
        while True:
            if readinto is not None:
                got = readinto(view[carry : carry + CHUNK_SIZE])
            else:
                block = handle.read(CHUNK_SIZE)
                got = len(block)
                view[carry : carry + got] = block
            if not got:
                break
            end = carry + got
            start = 0
            if skipping:
                nl = buf.find(b"\n", 0, end)
                if nl == -1:
                    carry = 0
                    continue
                start = nl + 1
                line_no += 1
                skipping = False
            last_nl = buf.rfind(b"\n", start, end)
            if last_nl != -1:
                spans = finder.spans(buf, start, last_nl)
                found, number, counted = _numbered(buf, spans, start, line_no, b"\n")
                yield from found
                line_no = number + buf.count(b"\n", counted, last_nl) + 1
                start = last_nl + 1
            carry = end - start
            if carry > MAX_LINE:
                raw = bytes(buf[start : start + MAX_LINE])
                if any(lit in raw for lit in literals):
                    yield line_no, raw
                carry = 0
                skipping = True
            elif carry:
                buf[0:carry] = buf[start:end]
        if carry and not skipping:
            raw = bytes(buf[:carry])
            if any(lit in raw for lit in literals):
                yield line_no, raw
    finally:
        view.release()
        _BUFFERS.append(buf)


def _line_bounds(path: str, size: int, parts: int) -> list[int]:
    """Offsets cutting a file into about `parts` ranges, each starting at a line start."""
    bounds = [0]
    with open(path, "rb") as handle:
        for index in range(1, parts):
            handle.seek(size * index // parts)
            handle.readline()
            at = handle.tell()
            if bounds[-1] < at < size:
                bounds.append(at)
    bounds.append(size)
    return bounds


class _Range:
    """A binary file read from `start` up to `end` only, counting the newlines it hands out."""

    def __init__(self, handle: IO[bytes], start: int, end: int) -> None:
        handle.seek(start)
        self._handle = handle
        self._left = end - start
        self.newlines = 0

    def read(self, size: int) -> bytes:
        data = self._handle.read(min(size, self._left)) if self._left > 0 else b""
        self._left -= len(data)
        self.newlines += data.count(b"\n")
        return data


def _scan_range(
    scanner: Scanner, path: str, start: int, end: int, where: tuple[str, str, str]
) -> tuple[list[Match], int]:
    """Scan one byte range of a file: matches (lines numbered from 1) and its newline count."""
    with open(path, "rb") as handle:
        part = _Range(handle, start, end)
        matches = list(scanner._scan_binary(part, where))  # noqa: SLF001 - same module
        return matches, part.newlines


def _subject(line: str, record: Mapping[str, Any] | None) -> str:
    """Pick what signatures match: the `msg` of a JSON log record, else the line itself."""
    if record is not None:
        message = record.get("msg", record.get("message"))
        if isinstance(message, str):
            return message
    return line


def _decode(raw: bytes | bytearray) -> str:
    return raw.decode("utf-8", errors="replace")


def _take_buffer() -> bytearray:
    """A read buffer of `CHUNK_SIZE` plus a line's carry: a free one, else a new one.

    Buffers go back to `_BUFFERS` after a scan, so scanning many logs allocates (and zeroes) one
    buffer, not one per log; concurrent scans each hold their own.
    """
    size = CHUNK_SIZE + MAX_LINE + 1
    while _BUFFERS:
        buf = _BUFFERS.pop()
        if len(buf) == size:
            return buf
    return bytearray(size)


#: Free read buffers (see `_take_buffer`).
_BUFFERS: list[bytearray] = []


def _candidates(
    buf: Any, start: int, end: int, first: int, literals: Sequence[Any], nl: Any
) -> tuple[list[tuple[int, Any]], int, int]:
    """Lines of `buf[start:end]` holding at least one literal, with their numbers, in order.

    `first` is the number of the line starting at `start`. Each literal is searched with
    `find` over the whole buffer (C speed); a hit jumps to the end of its line (the text path;
    binary buffers go through `LiteralFinder`, one pass for every literal).
    """
    return _numbered(buf, find_spans(buf, start, end, literals), start, first, nl)


def _numbered(
    buf: Any, spans: Mapping[int, int], start: int, first: int, nl: Any
) -> tuple[list[tuple[int, Any]], int, int]:
    """The candidate lines `spans` ({start: end}) numbered, in order, cut to `MAX_LINE`.

    `first` is the number of the line starting at `start`; numbers come from counting newlines
    between consecutive candidates (C speed, no line decoded). Also returns the number of the line
    starting at the last candidate and that position, so the caller counts the rest only.
    """
    out: list[tuple[int, Any]] = []
    number = first
    counted = start
    for line_start in sorted(spans):
        number += buf.count(nl, counted, line_start)
        counted = line_start
        line_end = spans[line_start]
        out.append((number, buf[line_start : min(line_end, line_start + MAX_LINE)]))
    return out, number, counted


def group_matches(matches: Iterable[Match]) -> list[MatchGroup]:
    """Group matches by signature and key values, in order of first appearance.

    Each group counts its lines, keeps the first and last timestamps seen and at most
    `SAMPLES_PER_GROUP` sample lines.
    """
    groups: dict[tuple[str, tuple[tuple[str, str | None], ...]], dict[str, Any]] = {}
    for match in matches:
        sig = match.signature
        key = tuple((name, match.groups.get(name)) for name in sig.key)
        state = groups.get((sig.id, key))
        if state is None:
            state = {
                "sig": sig,
                "key": key,
                "count": 0,
                "first": None,
                "last": None,
                "samples": [],
                "pods": set(),
                "last_lines": {},
            }
            groups[(sig.id, key)] = state
        state["count"] += 1
        if match.timestamp:
            if state["first"] is None:
                state["first"] = match.timestamp
            state["last"] = match.timestamp
        if len(state["samples"]) < SAMPLES_PER_GROUP:
            state["samples"].append(match)
        where = (match.namespace, match.pod, match.container)
        state["pods"].add(where)
        state["last_lines"][where] = max(match.line, state["last_lines"].get(where, 0))
    return [
        MatchGroup(
            s["sig"],
            s["key"],
            s["count"],
            s["first"],
            s["last"],
            tuple(s["samples"]),
            tuple(sorted(s["pods"])),
            tuple(sorted(s["last_lines"].items())),
        )
        for s in groups.values()
    ]
