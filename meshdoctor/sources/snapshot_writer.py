"""Write a snapshot as a folder that `meshdoctor check --from DIR` reads back unchanged.

`meshdoctor snapshot -o DIR` captures a live cluster once, so that it can be checked again
offline, attached to a ticket, or turned into a scenario fixture. The layout is the `--from`
layout (DESIGN.md, "Offline inputs"): one YAML file per kind holding a `List`, and the container
logs under `logs/<namespace>/<pod>/<container>.log` (`<container>.previous.log` for the previous
instance). Secrets are left out entirely: not even their key names leave the cluster this way.
Everything else goes through the one scrubber (`meshdoctor.secrets_mask`): each object through
`scrub_object` (literal secret env values, annotations such as last-applied-configuration,
ConfigMap data) and each log line through `mask_secrets`, so the folder can be handed over.
`snapshot.txt` says where the snapshot came from and what could not be collected; loaders skip it
(only `.yaml`, `.yml` and `.json` files are manifests).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from meshdoctor.errors import UsageError
from meshdoctor.kube.kinds import KINDS
from meshdoctor.model import SourceInfo
from meshdoctor.secrets_mask import mask_secrets, scrub_object
from meshdoctor.snapshot import LogKey, Snapshot

#: Kinds never written.
LEFT_OUT = frozenset({"Secret"})

INFO_FILE = "snapshot.txt"
LOGS_DIR = "logs"

try:  # the C dumper is several times faster on large clusters
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Dumper = yaml.SafeDumper


def kind_file_name(kind: str) -> str:
    """`pods.core.yaml`, `daemonsets.apps.yaml`, `serviceentries.networking.istio.io.yaml`.

    Core kinds say `.core`: a bare `nodes.yaml` or `pods.yaml` is the layout of
    `kubectl cluster-info dump -o yaml`, and the folder would be read back as a partial dump.
    """
    info = KINDS.get(kind)
    if info is None:
        return f"{kind.lower()}.yaml"
    return f"{info.resource}.yaml" if info.group else f"{info.resource}.core.yaml"


def log_path(key: LogKey) -> Path:
    """`logs/<ns>/<pod>/<container>.log`, or `.previous.log` for the previous instance."""
    suffix = ".previous.log" if key.previous else ".log"
    return Path(LOGS_DIR) / key.namespace / key.pod / f"{key.container}{suffix}"


def write_snapshot(
    snapshot: Snapshot,
    directory: str | os.PathLike[str],
    source: SourceInfo | None = None,
    *,
    secret_names: bool = False,
) -> list[Path]:
    """Write every object (but Secrets) and every log of the snapshot, scrubbed; return the files.

    The folder must not exist or be empty, so a capture never mixes with an older one. With
    `secret_names` the Secrets are written too, their values replaced (a bundle keeps their key
    names, which rules read, so that replaying it gives the same report).
    """
    root = Path(directory)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not an empty folder: give a new folder to -o")
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for kind in snapshot.kinds():
        if kind in LEFT_OUT and not secret_names:
            continue
        items = [scrub_object(obj) for obj in snapshot.objects(kind)]
        path = root / kind_file_name(kind)
        document = {"apiVersion": "v1", "kind": "List", "items": items}
        with path.open("w", encoding="utf-8") as out:
            yaml.dump(
                document,
                out,
                Dumper=_Dumper,
                sort_keys=False,
                default_flow_style=False,
                allow_unicode=True,
                width=1 << 20,
            )
        written.append(path)
    for key in sorted(snapshot.logs):
        path = root / log_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", errors="replace", newline="\n") as out:
            _write_lines(out, (mask_secrets(line) for line in snapshot.logs[key].lines()))
        written.append(path)
    info = root / INFO_FILE
    info.write_text(mask_secrets(_describe(snapshot, source)), encoding="utf-8")
    written.append(info)
    return written


def _write_lines(out: Any, lines: Iterable[str]) -> None:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 4096:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")


def _describe(snapshot: Snapshot, source: SourceInfo | None) -> str:
    lines = ["meshdoctor snapshot", ""]
    if source is not None:
        lines.append(f"source: {source.kind} {source.target}")
    lines.append(f"objects: {len(snapshot) - len(snapshot.objects('Secret'))} (Secrets left out)")
    lines.append(f"logs: {len(snapshot.logs)}")
    missing = snapshot.missing()
    if missing:
        lines += ["", "not collected (a check of this folder sees these kinds as empty):"]
        lines += [f"  {kind}: {reason}" for kind, reason in missing.items()]
    scope = snapshot.scope_lines()
    if scope:
        lines += ["", "read in some namespaces only (check this folder with the same -n to keep that):"]
        lines += [f"  {line}" for line in scope]
    return "\n".join(lines) + "\n"
