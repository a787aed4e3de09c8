"""`.meshdoctor.yaml`: a project's defaults for `check`, so CI and people run the same check.

Discovered in the working directory, then its parents up to the repository root (the first folder
holding `.git`) — or given with `--config FILE`. A flag given on the command line beats the file;
`skip` and `suppress` from both are joined. A path in the file (`baseline`) is relative to the
file's folder. A malformed file is one line naming the file and line, exit code 2:

    fail-on: warning          # error | warning | info | never
    skip: [MD504]             # rule ids
    suppress:                 # RULE or RULE=NAMESPACE/NAME, globs allowed
      - MD102=default/datadog
    baseline: .meshdoctor-baseline.json
    output: text              # any -o format
    color: auto               # auto | always | never
    brief: false
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshdoctor.errors import UsageError

#: The file name looked for.
CONFIG_NAME = ".meshdoctor.yaml"


@dataclass(frozen=True)
class CheckConfig:
    """What a config file says; None or empty where it says nothing."""

    path: Path | None = None
    """The file read, or None when there was none."""
    fail_on: str | None = None
    skip: tuple[str, ...] = ()
    suppress: tuple[str, ...] = ()
    baseline: Path | None = None
    output: str | None = None
    color: str | None = None
    brief: bool | None = None
    lines: dict[str, int] = field(default_factory=dict)
    """The line of each setting in the file, for errors found later (an unknown rule in `skip`)."""

    def where(self, key: str) -> str:
        """`FILE:LINE: key` for an error about a setting of this file."""
        return f"{self.path}:{self.lines.get(key, 1)}: {key}"


def discover_config(start: Path) -> Path | None:
    """The `.meshdoctor.yaml` in `start` or its parents, stopping at the repository root."""
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def load_config(
    path: Path, *, outputs: tuple[str, ...], fail_on: tuple[str, ...], colors: tuple[str, ...]
) -> CheckConfig:
    """Read and check a config file against the choices the CLI accepts."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the config: {exc.strerror or exc}") from exc
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UsageError(f"{path}{line}: {problem}") from exc
    if root is None:
        return CheckConfig(path=path)
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:{root.start_mark.line + 1}: the config must be a mapping of settings")
    from meshdoctor.suppressions import parse_suppression

    lines: dict[str, int] = {}
    values: dict[str, Any] = {"path": path, "lines": lines}
    for key_node, value_node in root.value:
        key = key_node.value
        where = f"{path}:{key_node.start_mark.line + 1}"
        lines[str(key)] = key_node.start_mark.line + 1
        value = yaml.safe_load(yaml.serialize(value_node))
        if key == "fail-on":
            values["fail_on"] = _choice(value, fail_on, key, where)
        elif key == "output":
            values["output"] = _choice(value, outputs, key, where)
        elif key == "color":
            values["color"] = _choice(value, colors, key, where)
        elif key in ("skip", "suppress"):
            values[key] = _strings(value, key, where)
            if key == "suppress":
                for item in values[key]:
                    parse_suppression(item, f"{where}: suppress")  # a bad pattern: this file and line
        elif key == "baseline":
            if not isinstance(value, str) or not value:
                raise UsageError(f"{where}: baseline: expected a file path")
            values["baseline"] = path.parent / value
        elif key == "brief":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: brief: expected true or false")
            values["brief"] = value
        else:
            known = "baseline, brief, color, fail-on, output, skip, suppress"
            raise UsageError(f"{where}: unknown setting {key!r} (known: {known})")
    return CheckConfig(**values)


def _choice(value: Any, choices: tuple[str, ...], key: str, where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"{where}: {key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{where}: {key}: expected a list of strings")
    return tuple(value)
