"""Kubernetes objects from YAML and JSON files, as `kubectl apply -f` reads them.

A file holds one or more documents (YAML `---`, or JSON values one after another); a document is
an object or a list of objects (`kind: List`, or a typed list such as `PodList` whose items may
lack `kind`). Folders are read recursively in sorted order, `.yaml`, `.yml` and `.json` only,
hidden files and folders skipped. `-` is standard input.

Every object keeps the file and 1-based line it starts on, and a `FieldLines` that maps a dotted
field path to its line. That map is computed only when a rule asks for it (evidence is rare, files
can be large): YAML is composed again from the file, JSON is re-read from the object's byte range.
Nothing is kept from a Secret but what `Snapshot.add` keeps (its key names).

Every error is an `InputError` naming the file and line, said in one line.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from meshdoctor.errors import InputError
from meshdoctor.model import Origin
from meshdoctor.snapshot import KubeObject
from meshdoctor.sources.bounds import (
    check_aliasing,
    check_utf8,
    decode,
    detect_encoding,
    entry_is_dir,
    entry_is_file,
    folder_identity,
    list_folder,
    open_regular,
    read_regular,
)
from meshdoctor.sources.bounds import read_stream as read_stream_bytes

#: File name endings read as manifests in a folder (those `kubectl apply -f DIR` reads).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

#: The name a `--from -` source is shown with.
STDIN_NAME = "<stdin>"

FieldLines = Callable[[str], int | None]
PathSegment = str | int

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader (libyaml when available) without YAML 1.1 timestamps.

    Kubernetes decodes `2024-01-01T00:00:00Z` as a string (sigs.k8s.io/yaml into JSON); SafeLoader
    would give a `datetime`, which is not what the API server serves.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


#: Strings up to this length are shared (interned): the keys and the common values (`name`,
#: `TCP`, `Running`) repeat in every object, and a separate copy of each held a third of the memory
#: of a large List (benchmarks/read_memory.py). JSON's decoder shares keys by itself.
_SHARED_STRING = 64


def _construct_str(loader: Any, node: yaml.ScalarNode) -> str:
    value: str = loader.construct_scalar(node)
    return sys.intern(value) if len(value) <= _SHARED_STRING else value


ManifestLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)


@dataclass
class Loaded:
    """An object read from a file, with where it came from."""

    obj: KubeObject
    """The object, as a plain dict."""
    origin: Origin
    """File and 1-based line of the object's first line."""
    field_lines: FieldLines | None = None
    """Line of a field path, computed on demand; None where it cannot be told."""


# -- finding the files ----------------------------------------------------------------------------


def manifest_files(folder: str | os.PathLike[str], skip: tuple[str, ...] = ()) -> list[Path]:
    """Every manifest file under `folder`, recursively, sorted; `skip`: top-level names to omit.

    The walk is iterative (a tree thousands of folders deep is walked like any other) and enters
    each folder once: a symbolic link back to a folder already walked (a loop) is not followed
    again. A folder that cannot be listed is an InputError naming it.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    pending: list[tuple[str, bool]] = [(os.fspath(folder), True)]
    while pending:
        directory, top = pending.pop()
        identity = folder_identity(directory)
        if identity in seen:
            continue
        seen.add(identity)
        below: list[str] = []
        for entry in list_folder(directory):
            if entry.name.startswith(".") or (top and entry.name in skip):
                continue
            if entry_is_dir(entry):
                below.append(entry.path)
            elif entry.name.endswith(MANIFEST_SUFFIXES) and entry_is_file(entry):
                found.append(Path(entry.path))
        pending.extend((path, False) for path in reversed(below))
    return sorted(found, key=_walk_order(os.fspath(folder)))


def _walk_order(root: str) -> Callable[[Path], tuple[str, ...]]:
    """Sort key giving a recursive walk's order: by path components, a folder's files with it."""

    def key(path: Path) -> tuple[str, ...]:
        return tuple(os.path.relpath(path, root).split(os.sep))

    return key


# -- reading a file -------------------------------------------------------------------------------


def read_file(path: str | os.PathLike[str], item_type: tuple[str, str] | None = None) -> list[Loaded]:
    """The objects in one file. `.json` is read as JSON, anything else as YAML.

    `item_type` (kind, apiVersion) is given to list items that carry no `kind` (a dump's lists).
    The file is opened once, and only if it is a regular file within the size limit (`bounds`).
    """
    name = os.fspath(path)
    return _read_bytes(read_regular(name), name, item_type, in_file=True)


def read_stream(stream: BinaryIO, name: str = STDIN_NAME, item_type: tuple[str, str] | None = None) -> list[Loaded]:
    """The objects in a byte stream that is not a file (standard input): JSON if it starts like JSON."""
    return _read_bytes(read_stream_bytes(stream, name), name, item_type, in_file=False)


def read_text(text: str, name: str = STDIN_NAME, item_type: tuple[str, str] | None = None) -> list[Loaded]:
    """The objects in a text that is not a file: JSON if it starts like JSON.

    Undecodable bytes a text stream kept as lone surrogates (`surrogateescape`) are bytes again
    here, so they are reported like a file's, by line.
    """
    return _read_bytes(text.encode("utf-8", "surrogateescape"), name, item_type, in_file=False)


def _read_bytes(raw: bytes, name: str, item_type: tuple[str, str] | None, in_file: bool) -> list[Loaded]:
    encoding = detect_encoding(raw)
    if in_file:
        as_json = name.endswith(".json")
    else:
        head = raw[encoding.bom : encoding.bom + 4096]
        as_json = head.decode(encoding.name, "ignore").lstrip()[:1] in ("{", "[")
    if as_json:
        text = decode(raw, name, encoding)
        del raw
        # Field lines of a UTF-8 file are read again from its byte ranges; other text is kept.
        return _read_json(text, name, item_type, encoding.bom if in_file and encoding.utf8 else None)
    data: str | bytes
    if encoding.utf8:
        check_utf8(raw, name, encoding.bom)
        data = raw  # libyaml reads UTF-8 bytes (and skips the mark) without a decoded copy
    else:
        data = decode(raw, name, encoding)
    source: _YamlSource = _YamlFile(name) if in_file and encoding.utf8 else _YamlText(data)
    if isinstance(data, bytes):
        chunked = _read_yaml_list_items(data, name, item_type, source)
        if chunked is not None:
            return chunked
    return _read_yaml(data, name, item_type, source)


# -- validation -----------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__


def is_list(obj: KubeObject) -> bool:
    """`kind: List` or a typed list (`PodList`) with `items`.

    An empty list may say `"items": null`: kubectl writes that for an empty typed list (Go's nil
    slice; `kubectl cluster-info dump` of a namespace without pods, `kubectl get -o json`), so
    such a list is normalised to `items: []` here rather than rejected.
    """
    kind = obj.get("kind")
    if not (isinstance(kind, str) and kind.endswith("List")):
        return False
    if "items" in obj and obj["items"] is None:
        obj["items"] = []
    return isinstance(obj.get("items"), list)


def check_object(obj: Any, name: str, line: int | None) -> None:
    """Raise InputError unless `obj` is a Kubernetes object (kind, apiVersion, metadata.name)."""
    if not isinstance(obj, dict):
        raise InputError(name, f"not a Kubernetes object: expected a mapping, found {_type_name(obj)}", line)
    for field_name in ("kind", "apiVersion"):
        value = obj.get(field_name)
        if not isinstance(value, str) or not value:
            raise InputError(name, f"not a Kubernetes object: no {field_name}", line)
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InputError(name, "not a Kubernetes object: no metadata.name", line)


def _list_item_type(doc: KubeObject, item_type: tuple[str, str] | None) -> tuple[str, str] | None:
    """What kind and apiVersion the items of a list have when they do not say."""
    if item_type is not None:
        return item_type
    kind = doc.get("kind", "")
    if kind != "List" and isinstance(doc.get("apiVersion"), str):
        return kind[: -len("List")], doc["apiVersion"]
    return None


def _typed(item: Any, item_type: tuple[str, str] | None) -> Any:
    if item_type is not None and isinstance(item, dict) and "kind" not in item:
        item["kind"] = item_type[0]
        item.setdefault("apiVersion", item_type[1])
    return item


# -- YAML -----------------------------------------------------------------------------------------


#: An anchor (`&name` after a space, a flow indicator or at a line start): without one, a YAML
#: text has no alias, and its documents need no aliasing check.
_ANCHOR_TEXT = re.compile(r"(?:^|[\s\[{,])&", re.MULTILINE)
_ANCHOR_BYTES = re.compile(rb"(?:^|[\s\[{,])&", re.MULTILINE)


def _has_anchor(data: str | bytes) -> bool:
    if isinstance(data, bytes):
        return _ANCHOR_BYTES.search(data) is not None
    return _ANCHOR_TEXT.search(data) is not None


def _read_yaml(data: str | bytes, name: str, item_type: tuple[str, str] | None, source: _YamlSource) -> list[Loaded]:
    out: list[Loaded] = []
    loader = ManifestLoader(data)
    anchored = _has_anchor(data)
    doc_index = -1
    try:
        while loader.check_node():
            node = loader.get_node()
            doc_index += 1
            if anchored:
                check_aliasing(node, name, node.start_mark.line + 1)
            doc = loader.construct_document(node)
            if doc is None:
                continue
            line = node.start_mark.line + 1
            if isinstance(doc, dict) and is_list(doc):
                items_node = _yaml_child(node, "items")
                item_nodes = items_node.value if isinstance(items_node, yaml.SequenceNode) else []
                types = _list_item_type(doc, item_type)
                for index, item in enumerate(doc["items"]):
                    item_line = item_nodes[index].start_mark.line + 1 if index < len(item_nodes) else line
                    check_object(_typed(item, types), name, item_line)
                    out.append(
                        Loaded(
                            item,
                            Origin(name, item_line),
                            _yaml_lines(item, source, doc_index, index, item_line),
                        )
                    )
            else:
                check_object(doc, name, line)
                out.append(Loaded(doc, Origin(name, line), _yaml_lines(doc, source, doc_index, None, line)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(
            name,
            f"YAML syntax error: {problem}",
            _clamp_line(data, mark.line + 1) if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        line = _newlines(data, position) + 1 if isinstance(position, int) else None
        raise InputError(name, f"YAML syntax error: {str(exc).splitlines()[0]}", line) from None
    except RecursionError:
        raise InputError(name, "YAML nested too deeply") from None
    finally:
        loader.dispose()
    return out


#: Where a line starts at column 0 with something other than a comment (kubectl's layout of a
#: List puts only the List's own keys and each item's `- ` there).
_TOP_LINE = re.compile(rb"^[^ \t\r\n#]", re.MULTILINE)
_ITEMS_KEY = re.compile(rb"^items:[ \t]*\r?\n", re.MULTILINE)


def _list_item_spans(data: bytes) -> tuple[list[tuple[int, int]], bytes] | None:
    """Byte ranges of the items of a one-document YAML List in kubectl's layout, and the rest.

    `kubectl get -o yaml` writes `apiVersion`, `items`, `kind` and `metadata` at column 0 and each
    item as a `- ` line at column 0 with its fields indented under it. Anything else (document
    markers, flow style, items indented) gives None, and the file is read as one document.
    """
    found = _ITEMS_KEY.search(data)
    if found is None:
        return None
    starts: list[int] = []
    region_end = len(data)
    for match in _TOP_LINE.finditer(data, found.end()):
        at = match.start()
        if data.startswith((b"- ", b"-\n", b"-\r\n"), at):
            starts.append(at)
            continue
        region_end = at
        break
    if len(starts) < 2 or starts[0] != _TOP_LINE.search(data, found.end()).start():  # type: ignore[union-attr]
        return None
    rest = data[: found.end() - 1] + b" []\n" + data[region_end:]
    if re.search(rb"^(---|\.\.\.)", rest, re.MULTILINE):
        return None  # several documents: read as such
    spans = [(start, end) for start, end in zip(starts, [*starts[1:], region_end], strict=True)]
    return spans, rest


def _read_yaml_list_items(
    data: bytes, name: str, item_type: tuple[str, str] | None, source: _YamlSource
) -> list[Loaded] | None:
    """The items of a large kubectl-style YAML List read item by item, or None to read it whole.

    Composing a whole List holds a node (with two marks) for every scalar of every item next to
    the objects built from them: tens of times the file in memory. Item by item, only one item's
    nodes live at a time. Any item that does not read on its own (an alias to another item, a
    syntax error) sends the file back to the whole-document reader, which reports errors exactly.
    """
    layout = _list_item_spans(data)
    if layout is None:
        return None
    spans, rest = layout
    try:
        header = yaml.load(rest, Loader=ManifestLoader)  # noqa: S506 - ManifestLoader is a safe loader
    except yaml.YAMLError:
        return None
    if not (isinstance(header, dict) and is_list(header) and header["items"] == []):
        return None
    types = _list_item_type(header, item_type)
    out: list[Loaded] = []
    anchored = _has_anchor(data)
    line = 1
    position = 0
    for index, (start, end) in enumerate(spans):
        line += data.count(b"\n", position, start)
        position = start
        chunk = data[start:end]
        loader = ManifestLoader(chunk)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if anchored:
                check_aliasing(node, name, line)
            parsed = loader.construct_document(node)
        except (yaml.YAMLError, RecursionError):
            return None
        finally:
            loader.dispose()
        if not (isinstance(parsed, list) and len(parsed) == 1):
            return None
        item = _typed(parsed[0], types)
        check_object(item, name, line)
        field_lines = None if item.get("kind") == "Secret" else _YamlItemLines(source, start, end, index, line)
        out.append(Loaded(item, Origin(name, line), field_lines))
    return out


class _YamlItemLines:
    """Line of a field path of one item of a List read item by item: its bytes composed again."""

    __slots__ = ("source", "start", "end", "index", "line")

    def __init__(self, source: _YamlSource, start: int, end: int, index: int, line: int) -> None:
        self.source = source
        self.start = start
        self.end = end
        self.index = index
        self.line = line

    def __call__(self, path: str) -> int | None:
        chunk = self.source.span(self.start, self.end)
        if chunk is None:
            return None
        try:
            node = ManifestLoader(chunk).get_single_node()
        except yaml.YAMLError:
            return None
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            return None
        return self.line - 1 + yaml_field_line(node.value[0], parse_field_path(path))


def _newlines(data: str | bytes, end: int | None = None) -> int:
    if isinstance(data, bytes):
        return data.count(b"\n", 0, end)
    return data.count("\n", 0, end)


def _clamp_line(data: str | bytes, line: int) -> int:
    """A line that exists: libyaml reports an error at the end of the text on the line after it."""
    ends_with_newline = data.endswith(b"\n") if isinstance(data, bytes) else data.endswith("\n")
    last = _newlines(data) + (0 if ends_with_newline else 1)
    return max(1, min(line, last))


def _yaml_lines(obj: KubeObject, source: _YamlSource, doc: int, item: int | None, line: int) -> FieldLines | None:
    if obj.get("kind") == "Secret":
        return None
    return _YamlFieldLines(source, doc, item, line)


class _YamlSource:
    """Where a YAML text can be read again to find field lines."""

    def text(self) -> str | bytes:
        raise NotImplementedError

    def span(self, start: int, end: int) -> bytes | None:
        """Bytes `[start, end)` of the source, None if it cannot be read again."""
        data = self.text()
        return data[start:end] if isinstance(data, bytes) else None

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a few sources, dropped with the cache
    def documents(self) -> list[yaml.Node | None]:
        """The documents' nodes, Secrets left out, in the order `_read_yaml` counted them."""
        try:
            loader = ManifestLoader(self.text())
        except InputError:
            return []  # the file changed since it was loaded (gone, no longer a regular file)
        nodes: list[yaml.Node | None] = []
        try:
            while loader.check_node():
                nodes.append(_without_secrets(loader.get_node()))
        except yaml.YAMLError:
            pass  # the file changed since it was loaded: no field lines
        finally:
            loader.dispose()
        return nodes


class _YamlFile(_YamlSource):
    def __init__(self, path: str) -> None:
        self.path = path

    def text(self) -> str | bytes:
        return read_regular(self.path)  # never blocks: a path that became a FIFO is refused

    def span(self, start: int, end: int) -> bytes | None:
        try:
            with open_regular(self.path) as handle:  # never blocks: a FIFO is refused
                handle.seek(start)
                return handle.read(end - start)
        except (InputError, OSError):
            return None


class _YamlText(_YamlSource):
    def __init__(self, text: str | bytes) -> None:
        self._text = text

    def text(self) -> str | bytes:
        return self._text


def _without_secrets(node: yaml.Node) -> yaml.Node | None:
    """The node with Secret documents and Secret list items replaced (they hold values)."""
    if _is_secret_node(node):
        return None
    items = _yaml_child(node, "items")
    if isinstance(items, yaml.SequenceNode):
        items.value = [
            yaml.ScalarNode("tag:yaml.org,2002:null", "", n.start_mark, n.end_mark) if _is_secret_node(n) else n
            for n in items.value
        ]
    return node


def _is_secret_node(node: yaml.Node) -> bool:
    kind = _yaml_child(node, "kind")
    return isinstance(kind, yaml.ScalarNode) and kind.value == "Secret"


def _yaml_child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node  # type: ignore[no-any-return]
    return None


class _YamlFieldLines:
    """Line of a field path of one YAML object, composed again from its source on demand."""

    __slots__ = ("source", "doc", "item", "line")

    def __init__(self, source: _YamlSource, doc: int, item: int | None, line: int) -> None:
        self.source = source
        self.doc = doc
        self.item = item
        self.line = line

    def __call__(self, path: str) -> int | None:
        documents = self.source.documents()
        node = documents[self.doc] if self.doc < len(documents) else None
        if node is not None and self.item is not None:
            items = _yaml_child(node, "items")
            node = (
                items.value[self.item]
                if isinstance(items, yaml.SequenceNode) and self.item < len(items.value)
                else None
            )
        if node is None:
            return None
        return yaml_field_line(node, parse_field_path(path))


def yaml_field_line(node: yaml.Node, segments: list[PathSegment]) -> int:
    """1-based line of the deepest part of `segments` under `node` (a key's line for a field)."""
    line = node.start_mark.line + 1
    i = 0
    while i < len(segments):
        segment = segments[i]
        if isinstance(segment, int):
            if not isinstance(node, yaml.SequenceNode) or segment >= len(node.value):
                break
            node = node.value[segment]
            line = node.start_mark.line + 1
            i += 1
            continue
        if not isinstance(node, yaml.MappingNode):
            break
        members = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        found = _dotted_key(members, segments, i)
        if found is None:
            break
        key, i = found
        key_node, node = members[key]
        line = key_node.start_mark.line + 1
    return line


# -- JSON -----------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _json_error(name: str, exc: json.JSONDecodeError) -> InputError:
    return InputError(name, f"JSON syntax error at column {exc.colno}: {exc.msg}", exc.lineno)


#: A `\\uD800`-`\\uDFFF` escape: JSON can spell a lone surrogate, which is no character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD.

    That is what Go's encoding/json does ("invalid UTF-16 surrogate pairs are replaced by
    U+FFFD", golang.org/pkg/encoding/json Unmarshal), so the API server never holds one; Python
    keeps them, and they fail later wherever text is encoded (a report, a fix file).
    """
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            for key in list(current):
                item = current[key]
                if isinstance(key, str) and _LONE_SURROGATE.search(key):
                    del current[key]
                    key = _LONE_SURROGATE.sub("\ufffd", key)
                    current[key] = item
                if isinstance(item, str):
                    if _LONE_SURROGATE.search(item):
                        current[key] = _LONE_SURROGATE.sub("\ufffd", item)
                else:
                    pending.append(item)
        elif isinstance(current, list):
            for index, item in enumerate(current):
                if isinstance(item, str):
                    if _LONE_SURROGATE.search(item):
                        current[index] = _LONE_SURROGATE.sub("\ufffd", item)
                else:
                    pending.append(item)
    return value


def _read_json(text: str, name: str, item_type: tuple[str, str] | None, bom: int | None) -> list[Loaded]:
    """Objects of a JSON text: one or more values; list items decoded one by one for their lines.

    `bom` is None for text that is not a file (it is kept for field lines), else the byte offset
    of the text in its file (3 after a UTF-8 byte order mark).
    """
    out = _read_json_values(text, name, item_type, bom)
    if _SURROGATE_ESCAPE.search(text):
        for loaded in out:
            _replace_lone_surrogates(loaded.obj)
    return out


def _read_json_values(text: str, name: str, item_type: tuple[str, str] | None, bom: int | None) -> list[Loaded]:
    out: list[Loaded] = []
    ascii_text = text.isascii()
    lines = _LineCounter(text)
    bytes_at = _ByteCounter(text, bom or 0, ascii_text)
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    try:
        while pos < len(text):
            start = pos
            if text[pos] == "{":
                doc, end, spans = _decode_top_object(text, pos)
            else:
                doc, end = _DECODER.raw_decode(text, pos)
                spans = []
            line = lines.at(start)
            if isinstance(doc, dict) and is_list(doc) and len(spans) == len(doc["items"]):
                types = _list_item_type(doc, item_type)
                for item, (item_start, item_end) in zip(doc["items"], spans, strict=True):
                    item_line = lines.at(item_start)
                    check_object(_typed(item, types), name, item_line)
                    out.append(
                        Loaded(
                            item,
                            Origin(name, item_line),
                            _json_lines(item, text, name, bom, bytes_at, item_start, item_end, item_line),
                        )
                    )
            else:
                check_object(doc, name, line)
                out.append(
                    Loaded(
                        doc,
                        Origin(name, line),
                        _json_lines(doc, text, name, bom, bytes_at, start, end, line),
                    )
                )
            pos = _WS.match(text, end).end()  # type: ignore[union-attr]
    except json.JSONDecodeError as exc:
        raise _json_error(name, exc) from None
    except RecursionError:
        raise InputError(name, "JSON nested too deeply", lines.at(pos)) from None
    return out


def _json_lines(
    obj: KubeObject,
    text: str,
    name: str,
    bom: int | None,
    bytes_at: _ByteCounter,
    start: int,
    end: int,
    line: int,
) -> FieldLines | None:
    if obj.get("kind") == "Secret":
        return None
    if bom is None:
        return _JsonTextFieldLines(text, start, end, line)
    return _JsonFileFieldLines(name, bytes_at.at(start), bytes_at.at(end), line)


def _decode_top_object(text: str, pos: int) -> tuple[dict[str, Any], int, list[tuple[int, int]]]:
    """Decode the object at `pos` like json does, but its `items` array item by item.

    Returns the object, the end offset, and the (start, end) offsets of each `items` element.
    """
    ws = _WS.match
    decode = _DECODER.raw_decode
    obj: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", pos):
        return obj, pos + 1, spans
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
        key, pos = scanstring(text, pos + 1)
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
        value: Any
        if key == "items" and text.startswith("[", pos):
            value, pos, spans = _decode_items(text, pos)
        else:
            value, pos = decode(text, pos)
        obj[key] = value
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
        elif text.startswith("}", pos):
            return obj, pos + 1, spans
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)


@functools.lru_cache(maxsize=16)
def _item_start(indent: str) -> re.Pattern[str]:
    """Where the next element of a pretty-printed array of objects indented by `indent` starts."""
    return re.compile(",\n" + re.escape(indent) + "{")


def _decode_items(text: str, pos: int) -> tuple[list[Any], int, list[tuple[int, int]]]:
    """Decode the array at `pos` and find where each element starts and ends.

    Pretty-printed JSON (kubectl prints with four-space indents) is decoded in one call, so that
    the decoder shares key strings between items (per-item decoding would hold a copy of every
    key of every item: 80 MB on a 10,000-pod dump); each element then starts at the only lines
    indented exactly like the first one and opening with `{`. Other layouts are decoded element
    by element.
    """
    ws = _WS.match
    first = ws(text, pos + 1).end()  # type: ignore[union-attr]
    line_start = text.rfind("\n", pos, first) + 1
    if line_start and text.startswith("{", first):
        indent = text[line_start:first]
        whole, end = _DECODER.raw_decode(text, pos)
        starts = [first]
        starts.extend(match.end() - 1 for match in _item_start(indent).finditer(text, first, end))
        if len(starts) == len(whole) and all(isinstance(item, dict) for item in whole):
            ends = [text.rfind("}", 0, following) + 1 for following in starts[1:]] + [
                text.rfind("}", 0, text.rfind("]", 0, end)) + 1
            ]
            return whole, end, list(zip(starts, ends, strict=True))
    decode = _DECODER.raw_decode
    items: list[Any] = []
    spans: list[tuple[int, int]] = []
    pos = first
    if text.startswith("]", pos):
        return items, pos + 1, spans
    while True:
        item, end = decode(text, pos)
        items.append(item)
        spans.append((pos, end))
        pos = ws(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", pos):
            return items, pos + 1, spans
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)


class _LineCounter:
    """1-based line of increasing offsets in a text, counting each newline once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, pos: int) -> int:
        if pos < self.pos:
            return self.text.count("\n", 0, pos) + 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


class _ByteCounter:
    """Byte offset in the file of increasing character offsets of its UTF-8 text."""

    def __init__(self, text: str, base: int, ascii_text: bool) -> None:
        self.text = text
        self.base = base
        self.ascii = ascii_text
        self.pos = 0
        self.bytes = base

    def at(self, pos: int) -> int:
        if self.ascii:
            return self.base + pos
        if pos < self.pos:
            return self.base + len(self.text[:pos].encode("utf-8"))
        self.bytes += len(self.text[self.pos : pos].encode("utf-8"))
        self.pos = pos
        return self.bytes


class _JsonFileFieldLines:
    """Line of a field path of one JSON object, read again from its byte range on demand."""

    __slots__ = ("path", "start", "end", "line")

    def __init__(self, path: str, start: int, end: int, line: int) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.line = line

    def __call__(self, path: str) -> int | None:
        try:
            with open_regular(self.path) as handle:  # never blocks: a FIFO is refused
                handle.seek(self.start)
                text = handle.read(self.end - self.start).decode("utf-8")
        except (InputError, OSError, UnicodeDecodeError):
            return None
        return json_field_line(text, 0, len(text), self.line, parse_field_path(path))


class _JsonTextFieldLines:
    """Line of a field path of one JSON object of a text kept in memory (standard input)."""

    __slots__ = ("text", "start", "end", "line")

    def __init__(self, text: str, start: int, end: int, line: int) -> None:
        self.text = text
        self.start = start
        self.end = end
        self.line = line

    def __call__(self, path: str) -> int | None:
        return json_field_line(self.text, self.start, self.end, self.line, parse_field_path(path))


def json_field_line(text: str, start: int, end: int, line: int, segments: list[PathSegment]) -> int | None:
    """1-based line of the deepest part of `segments` found in the JSON value at `text[start:end]`.

    `line` is the line `start` is on. None if the text is not the JSON it was.
    """
    try:
        pos = _json_path_offset(text, start, segments)
    except (json.JSONDecodeError, IndexError, RecursionError):
        return None
    return line + text.count("\n", start, min(pos, end))


def _json_path_offset(text: str, pos: int, segments: list[PathSegment]) -> int:
    ws = _WS.match
    best = pos = ws(text, pos).end()  # type: ignore[union-attr]
    i = 0
    while i < len(segments):
        segment = segments[i]
        if isinstance(segment, int):
            if not text.startswith("[", pos):
                break
            elements = list(_json_elements(text, pos))
            if segment >= len(elements):
                break
            best = pos = elements[segment]
            i += 1
            continue
        if not text.startswith("{", pos):
            break
        members = dict(_json_members(text, pos))
        found = _dotted_key(members, segments, i)
        if found is None:
            break
        key, i = found
        best, pos = members[key]
    return best


def _json_members(text: str, pos: int) -> Iterator[tuple[str, tuple[int, int]]]:
    """(key, (offset of the key, offset of the value)) of the JSON object at `pos`."""
    ws = _WS.match
    pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
    while text.startswith('"', pos):
        key_at = pos
        key, pos = scanstring(text, pos + 1)
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        pos = ws(text, pos + 1).end()  # type: ignore[union-attr]  # past ':'
        yield key, (key_at, pos)
        _, pos = _DECODER.raw_decode(text, pos)
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(",", pos):
            return
        pos = ws(text, pos + 1).end()  # type: ignore[union-attr]


def _json_elements(text: str, pos: int) -> Iterator[int]:
    """Offsets of the elements of the JSON array at `pos`."""
    ws = _WS.match
    pos = ws(text, pos + 1).end()  # type: ignore[union-attr]
    while pos < len(text) and not text.startswith("]", pos):
        yield pos
        _, pos = _DECODER.raw_decode(text, pos)
        pos = ws(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(",", pos):
            return
        pos = ws(text, pos + 1).end()  # type: ignore[union-attr]


# -- field paths ----------------------------------------------------------------------------------

_SEGMENT = re.compile(r"""\[(\d+)\]|\[(?:"([^"]*)"|'([^']*)')\]|\.?([^.\[\]]+)""")


def parse_field_path(path: str) -> list[PathSegment]:
    """`spec.containers[0].env[1].value` -> ['spec', 'containers', 0, 'env', 1, 'value'].

    A key holding dots may be written `metadata.annotations["sidecar.istio.io/inject"]`; written
    with plain dots it is still found (see `_dotted_key`).
    """
    segments: list[PathSegment] = []
    for index, double, single, plain in _SEGMENT.findall(path):
        if index:
            segments.append(int(index))
        elif plain:
            segments.append(plain)
        else:
            segments.append(_Quoted(double or single))
    return segments


class _Quoted(str):
    """A key given in brackets: taken whole, never joined with the next segments."""


def _dotted_key(members: dict[str, Any], segments: list[PathSegment], i: int) -> tuple[str, int] | None:
    """The key at segment i, joining following plain segments with dots when the key holds dots.

    Returns the key and the index of the segment after it, or None when no such key exists.
    """
    key = segments[i]
    assert isinstance(key, str)
    if key in members:
        return key, i + 1
    if isinstance(key, _Quoted):
        return None
    joined = key
    for j in range(i + 1, len(segments)):
        following = segments[j]
        if not isinstance(following, str) or isinstance(following, _Quoted):
            break
        joined = f"{joined}.{following}"
        if joined in members:
            return joined, j + 1
    return None
