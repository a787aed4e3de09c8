"""A Datadog Agent flare (`agent flare`, a `.zip`) read as evidence, without extracting it.

The layout, from DataDog/datadog-agent:

- `comp/core/flare/helpers/builder.go` (commit 9f82073dc22d): every file lives under one root
  folder named after the agent's hostname (`newBuilder`: `flareDir = tmpDir/<hostname>`, which
  `Save` zips as `datadog-agent-<time>[-<level>].zip`);
- `pkg/flare/archive.go` (commit 9797571b8f9d, `createArchive`): `status.log` (the agent's
  status page), `config-check.log`, `runtime_config_dump.yaml` (`yaml.Marshal(AllSettings())`:
  the resolved configuration), `envvars.log`, `diagnose.log`, `etc/datadog.yaml` (the config
  file used), `etc/confd/...` (conf.d copied with its `<check>.d/*.yaml`), `logs/` (the agent's
  log folder: `logs/agent.log`, `logs/process-agent.log`...);
- `pkg/status/templates/header.tmpl` (commit e2655b0e1d59) under the title `Agent (v<version>)`
  (`pkg/status/render`'s `fmt.Sprintf("Agent (v%s)", stats["version"])`);
- `pkg/status/collector/status_templates/collector.tmpl` (commit fd8ec58370b1): each running
  check is `    <name> (<version>)`, a dashed line, then per instance `Instance ID: ... [STATUS]`
  and, after its last run failed, `Error: <message>` and the traceback;
- `pkg/flare/config_check.go` (commit 5ec83936c988, `PrintConfig`): `=== <name> check ===`,
  `Configuration provider:`, `Configuration source:`, per instance `Instance ID:` and the
  instance's YAML closed by `~`, then `Init Config:`, closed by `===`;
- `pkg/flare/envvars.go` (commit 8c5ac598ffc6): `Found the following envvars:` then ` -  NAME=value`
  (names holding `_KEY` or `_AUTH_TOKEN` are never written).

What the rules consume (docs/architecture.md, "Agent flares"): one agent Pod named after the
hostname, in no namespace and owned by nothing, whose `agent` container carries the version as
its image tag and the resolved site and products as env; `logs/agent.log` as that container's
log; and the istio check's section of `status.log` (its last run's error) as a second log,
container `status.log`. The log rules read a lone agent Pod as they read a workload. The
flare's files are read from the archive, bounded, never written to disk; secrets are not read
(the flare scrubbed them, and no field meshdoctor takes holds one).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import yaml

from meshdoctor.errors import InputError
from meshdoctor.model import Origin
from meshdoctor.snapshot import KubeObject, LogKey, Snapshot
from meshdoctor.sources.logs import stream_lines

#: Bounds on what is read from an archive (a flare is a few MB; logs rotate at 10 MB each).
MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
#: Text files parsed whole (status, config check, runtime config) are read up to this size.
MAX_TEXT_BYTES = 32 * 1024 * 1024

#: The container names the flare's logs are given.
AGENT_CONTAINER = "agent"
STATUS_CONTAINER = "status.log"

#: The image a flare's agent is shown to run (the registry is unknown; the tag is the version).
AGENT_IMAGE = "datadog/agent"

#: The check meshdoctor follows.
ISTIO_CHECK = "istio"

_TITLE = re.compile(r"^Agent \(v(?P<version>\d+\.\d+\.\d+[0-9A-Za-z.+~-]*)\)\s*$")
_CHECK_HEADING = re.compile(r"^    (?P<name>[A-Za-z0-9_.-]+)(?: \((?P<version>[^)]*)\))?\s*$")
_DASHES = re.compile(r"^    -+\s*$")
_SECTION = re.compile(r"^={3,}\s*$")
_ENVVAR = re.compile(r"^ -\s+(?P<name>[A-Z0-9_]+)=(?P<value>.*)$")


def is_flare(path: str) -> bool:
    """Whether a `--from` file is to be read as a flare (named `*.zip`)."""
    return path.lower().endswith(".zip")


@dataclass
class Flare:
    """What a flare says about its agent."""

    path: str
    """The archive."""
    hostname: str
    """The root folder: the agent's hostname."""
    version: str | None = None
    """From `status.log`'s title."""
    settings: dict[str, Any] = field(default_factory=dict)
    """`runtime_config_dump.yaml`, else `etc/datadog.yaml` (keys as the agent spells them)."""
    envvars: dict[str, str] = field(default_factory=dict)
    """`envvars.log`."""
    istio_sources: list[str] = field(default_factory=list)
    """`Configuration source:` of each istio check config in `config-check.log`."""
    members: list[str] = field(default_factory=list)
    """Every file in the archive, relative to the root."""

    def member(self, relative: str) -> str:
        """A file's name in the archive."""
        return f"{self.hostname}/{relative}"


class ZipMemberLog:
    """A log that is a file in a flare archive, streamed from it (never extracted)."""

    def __init__(self, archive: str, member: str) -> None:
        self.archive = archive
        self.member = member
        self.origin = f"{archive}:{member}"

    def open(self) -> BinaryIO:
        """The member's bytes, decompressed as they are read."""
        handle = zipfile.ZipFile(self.archive)
        try:
            stream = handle.open(self.member)
        except BaseException:
            handle.close()
            raise
        return _Closing(stream, handle)  # type: ignore[return-value]

    def lines(self) -> Iterator[str]:
        """Yield the member's lines, streamed."""
        with self.open() as stream:
            yield from stream_lines(stream)


class TextLog:
    """Lines taken from a flare file (`status.log` with only the istio check's block kept)."""

    def __init__(self, origin: str, text: list[str]) -> None:
        self.origin = origin
        self._lines = text

    def lines(self) -> Iterator[str]:
        """Yield the lines."""
        yield from self._lines


class _Closing(io.RawIOBase):
    """A member stream that also closes its archive."""

    def __init__(self, stream: IO[bytes], archive: zipfile.ZipFile) -> None:
        super().__init__()
        self._stream = stream
        self._archive = archive

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        self._archive.close()
        super().close()


def load_flare(snapshot: Snapshot, path: str) -> Flare:
    """Add a flare's agent Pod and logs to the snapshot; return what the flare said.

    A file that is not a zip, or an archive that is not laid out as a flare, unsafe (absolute or
    `..` names, more than one root folder) or too big, is an `InputError` naming the file.
    """
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(path, "no such file or directory") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, f"not a zip archive (an agent flare is one): {exc}") from None
    with archive:
        flare = _read(archive, path)
    snapshot.add(agent_pod(flare), Origin(f"{path}:{flare.member('status.log')}"))
    if flare.member("logs/agent.log") in flare.members:
        key = LogKey("", flare.hostname, AGENT_CONTAINER)
        snapshot.add_log(key, ZipMemberLog(path, flare.member("logs/agent.log")))
    with zipfile.ZipFile(path) as archive:
        errors = _status_check_section(archive, flare, ISTIO_CHECK)
    if errors:
        origin = f"{path}:{flare.member('status.log')}"
        snapshot.add_log(LogKey("", flare.hostname, STATUS_CONTAINER), TextLog(origin, errors))
    return flare


def _read(archive: zipfile.ZipFile, path: str) -> Flare:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise InputError(path, f"{len(infos)} files in the archive, more than a flare holds ({MAX_MEMBERS})")
    roots: set[str] = set()
    total = 0
    names = []
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or ".." in parts or (len(parts[0]) == 2 and parts[0][1] == ":"):
            raise InputError(path, f"unsafe file name in the archive: {name!r}")
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputError(path, f"{name} is {info.file_size} bytes uncompressed, more than {MAX_MEMBER_BYTES}")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise InputError(path, f"more than {MAX_TOTAL_BYTES} bytes uncompressed")
        roots.add(parts[0])
        if not info.is_dir() and len(parts) > 1:
            names.append(name)
    if len(roots) != 1:
        found = ", ".join(sorted(roots)) or "none"
        raise InputError(path, f"not an agent flare: one root folder (the hostname) expected, found {found}")
    hostname = roots.pop()
    flare = Flare(path, hostname, members=sorted(names))
    if flare.member("status.log") not in names:
        raise InputError(path, f"not an agent flare: no {flare.member('status.log')}")
    status = _text(archive, flare, "status.log")
    for line in status.splitlines()[:5]:
        match = _TITLE.match(line)
        if match:
            flare.version = match.group("version")
    for relative in ("runtime_config_dump.yaml", "etc/datadog.yaml"):
        if flare.member(relative) in names:
            flare.settings = _yaml_mapping(_text(archive, flare, relative), path, flare.member(relative))
            break
    if flare.member("envvars.log") in names:
        for line in _text(archive, flare, "envvars.log").splitlines():
            match = _ENVVAR.match(line)
            if match:
                flare.envvars[match.group("name")] = match.group("value").strip()
    if flare.member("config-check.log") in names:
        flare.istio_sources = _config_sources(_text(archive, flare, "config-check.log"), ISTIO_CHECK)
    return flare


def _text(archive: zipfile.ZipFile, flare: Flare, relative: str) -> str:
    with archive.open(flare.member(relative)) as handle:
        return handle.read(MAX_TEXT_BYTES).decode("utf-8", errors="replace")


def _yaml_mapping(text: str, path: str, member: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(path, f"{member}{line}: not YAML") from None
    return data if isinstance(data, dict) else {}


def _config_sources(text: str, check: str) -> list[str]:
    """The `Configuration source:` of each `=== <check> check ===` block of config-check.log."""
    sources = []
    inside = False
    for line in text.splitlines():
        if line.startswith("=== ") and line.endswith(" check ==="):
            inside = line == f"=== {check} check ==="
        elif inside and line.startswith("Configuration source: "):
            sources.append(line.removeprefix("Configuration source: ").strip())
        elif line == "===":
            inside = False
    return sources


def _status_check_section(archive: zipfile.ZipFile, flare: Flare, check: str) -> list[str]:
    """status.log with every line outside one check's block of `Running Checks` blanked.

    Blanked, not dropped: the lines keep their numbers in the file, which evidence names. Empty
    when the block is not there.
    """
    lines = _text(archive, flare, "status.log").splitlines()
    out: list[str] = []
    inside = False
    for index, line in enumerate(lines):
        heading = _CHECK_HEADING.match(line)
        underlined = heading is not None and index + 1 < len(lines) and _DASHES.match(lines[index + 1])
        if underlined and heading is not None:
            inside = heading.group("name") == check
        elif _SECTION.match(line) or (line and not line.startswith(" ")):
            inside = False
        out.append(line if inside else "")
    return out if any(out) else []


def setting(flare: Flare, dotted: str, env: str) -> Any:
    """A setting as the agent resolved it: the runtime config dump, else its env var, else None."""
    node: Any = flare.settings
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    if node is not None and node != "":
        return node
    return flare.envvars.get(env)


#: The settings the rules read, as (the agent's key, the env var the Pod carries it in).
#: Keys: DataDog/datadog-agent `pkg/config/setup/config.go` (`site`, `dd_url`, `logs_enabled`,
#: `apm_config.enabled`, `process_config.process_collection.enabled`).
CARRIED_SETTINGS = (
    ("site", "DD_SITE"),
    ("dd_url", "DD_DD_URL"),
    ("logs_enabled", "DD_LOGS_ENABLED"),
    ("apm_config.enabled", "DD_APM_ENABLED"),
    ("process_config.process_collection.enabled", "DD_PROCESS_AGENT_ENABLED"),
)


def agent_pod(flare: Flare) -> KubeObject:
    """The Pod the flare's agent is shown as: named after the hostname, settings as env."""
    env = []
    for dotted, name in CARRIED_SETTINGS:
        value = setting(flare, dotted, name)
        if value is not None:
            env.append({"name": name, "value": str(value).lower() if isinstance(value, bool) else str(value)})
    image = f"{AGENT_IMAGE}:{flare.version}" if flare.version else AGENT_IMAGE
    container: dict[str, Any] = {"name": AGENT_CONTAINER, "image": image}
    if env:
        container["env"] = env
    annotations = {"meshdoctor.io/flare": flare.path}
    if flare.istio_sources:
        annotations["meshdoctor.io/istio-check-source"] = ", ".join(flare.istio_sources)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": flare.hostname, "namespace": "", "annotations": annotations},
        "spec": {"containers": [container]},
    }
