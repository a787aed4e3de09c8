"""`meshdoctor bundle -o FILE.tar.gz`: one file to attach to a support ticket, scrubbed, replayable.

The archive holds the report in every format (`report/`), the snapshot it was made from
(`snapshot/`, written by the snapshot writer: every object scrubbed by `scrub_object`, Secrets
with their key names only, every log line through `mask_secrets`), the fix plan (`fixes/`, what
`--emit-fixes` writes, scrubbed again as YAML) and `manifest.json`: meshdoctor's version, the
source, what was collected and what was not, every file with its size and SHA-256, and what a
replay needs beyond the objects (coverage, namespaces read, probes, each object's file and line).
`check --from FILE.tar.gz` (`meshdoctor.sources.bundle`) reads it back to the same report.

The archive is deterministic, so the same input gives a byte-identical bundle: entries sorted by
name, mtime 0, uid/gid 0 without names, mode 0644, no directory entries, gzip header mtime 0 and
no file name in it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from meshdoctor import __version__
from meshdoctor.errors import UsageError
from meshdoctor.kube.kinds import KINDS
from meshdoctor.model import FieldEvidence, Report, SourceInfo
from meshdoctor.secrets_mask import mask_yaml, scrub_object
from meshdoctor.snapshot import Snapshot, object_ref
from meshdoctor.sources.bundle import BUNDLE_VERSION, FIXES_DIR, MANIFEST, REPORT_DIR, SNAPSHOT_DIR, object_key

#: File names of the report formats in `report/`; a format not named here is `report.<format>`.
REPORT_FILES = {
    "text": "report.txt",
    "json": "report.json",
    "yaml": "report.yaml",
    "markdown": "report.md",
    "html": "report.html",
    "sarif": "report.sarif",
    "junit": "report.junit.xml",
}

#: Width of the text report in the bundle (fixed: the bundle must not depend on the terminal).
TEXT_WIDTH = 100


def bundle_files(report: Report, snapshot: Snapshot, source: SourceInfo) -> dict[str, bytes]:
    """Every file of the bundle by its name in the archive, `manifest.json` included."""
    from meshdoctor.fixes.emit import emit_fixes
    from meshdoctor.fixes.plan import with_plan
    from meshdoctor.renderers import Format, render
    from meshdoctor.sources.snapshot_writer import write_snapshot

    files: dict[str, bytes] = {}
    for fmt in Format:
        name = REPORT_FILES.get(fmt.value, f"report.{fmt.value}")
        files[f"{REPORT_DIR}/{name}"] = render(report, fmt, width=TEXT_WIDTH, color=False).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="meshdoctor-bundle-") as work:
        root = Path(work)
        write_snapshot(snapshot, root / SNAPSHOT_DIR, source, secret_names=True)
        emit_fixes(report if report.plan is not None else with_plan(report, snapshot), root / FIXES_DIR)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                name = path.relative_to(root).as_posix()
                data = path.read_bytes()
                if name.startswith(f"{FIXES_DIR}/"):
                    data = mask_yaml(data.decode("utf-8")).encode("utf-8")
                files[name] = data
    files[MANIFEST] = _manifest(report, snapshot, source, files).encode("utf-8")
    return files


def write_bundle(report: Report, snapshot: Snapshot, source: SourceInfo, target: str | os.PathLike[str]) -> int:
    """Write the bundle to `target` (a new `.tar.gz`); return the number of files in it."""
    path = Path(target)
    if not path.name.endswith((".tar.gz", ".tgz")):
        raise UsageError(f"{path}: a bundle is a .tar.gz (or .tgz) file")
    files = bundle_files(report, snapshot, source)
    data = archive(files)
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write the bundle to {path}: {exc.strerror or exc}") from exc
    return len(files)


def archive(files: dict[str, bytes]) -> bytes:
    """A deterministic `.tar.gz` of `files` (see the module docstring)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _manifest(report: Report, snapshot: Snapshot, source: SourceInfo, files: dict[str, bytes]) -> str:
    """`manifest.json`: what the bundle holds, what was not collected, and what a replay needs."""
    kinds = {kind: len(snapshot.objects(kind)) for kind in snapshot.kinds()}
    not_collected = dict(snapshot.missing())
    manifest: dict[str, Any] = {
        "bundle": BUNDLE_VERSION,
        "meshdoctor": __version__,
        "source": {"kind": report.source.kind, "target": report.source.target, "missing": list(report.source.missing)},
        "collected": {"objects": kinds, "logs": len(snapshot.logs), "probes": sorted(snapshot.probes)},
        "not_collected": not_collected,
        "namespaces_limited": snapshot.scope_lines(),
        "redacted": (
            "every object through meshdoctor.secrets_mask.scrub_object (Secrets keep their key names only), "
            "every log line through mask_secrets, the fix plan through mask_yaml"
        ),
        "files": [
            {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        ],
        "replay": _replay(report, snapshot),
    }
    return json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def _replay(report: Report, snapshot: Snapshot) -> dict[str, Any]:
    """What the snapshot knew beyond its objects and logs, as `sources.bundle` restores it."""
    known = sorted(set(KINDS) | set(snapshot.kinds()) | set(snapshot.missing()))
    origins: dict[str, list[Any]] = {}
    for kind in snapshot.kinds():
        for obj in snapshot.objects(kind):
            origin = snapshot.origin(obj)
            if origin is not None:
                ref = object_ref(obj)
                origins[object_key(ref.kind, ref.namespace, ref.name)] = [origin.file, origin.line]
    field_lines: dict[str, dict[str, int | None]] = {}
    for finding in report.findings:
        for item in finding.evidence:
            if isinstance(item, FieldEvidence) and item.origin is not None:
                ref = item.object
                field_lines.setdefault(object_key(ref.kind, ref.namespace, ref.name), {})[item.path] = item.origin.line
    return {
        # `unavailable("")`: no kind is named "", so only "every kind was collected" answers None
        "all_kinds_collected": snapshot.unavailable("") is None,
        "collected": [kind for kind in known if snapshot.unavailable(kind) is None],
        "missing": snapshot.missing(),
        "default_missing_reason": snapshot.default_missing_reason,
        "scopes": {
            kind: {"namespaces": sorted(scope.namespaces), "how": scope.how}
            for kind, scope in snapshot.namespace_scopes().items()
        },
        "probes": scrub_object(_plain(snapshot.probes)),
        "origins": dict(sorted(origins.items())),
        "field_lines": {key: dict(sorted(lines.items())) for key, lines in sorted(field_lines.items())},
    }


def _plain(value: Any) -> Any:
    """Probe results as JSON data (they are plain data; tuples become lists, as JSON has them)."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))
