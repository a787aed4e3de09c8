"""`--emit-fixes DIR`: each finding's remediation manifests as a file to review and apply.

One YAML file per unsuppressed finding that has manifests, named after the rule and the finding's
primary object, so `kubectl apply -f DIR/<file>` applies exactly one fix; an `index.md` says what
each file fixes and whether it is safe to apply as is. Applying the fixes is left to a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from meshdoctor.errors import UsageError
from meshdoctor.fixes.manifests import FILE_PLACEHOLDER
from meshdoctor.model import Finding, Remediation, Report
from meshdoctor.renderers import plural
from meshdoctor.renderers.markdown import code_span, fence, inline, table_cell

#: Characters allowed in a file name; anything else in a kind, namespace or name becomes `_`.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

#: Stands in for the namespace of a cluster-scoped object in a file name.
CLUSTER_SCOPE = "_cluster"

INDEX = "index.md"


@dataclass(frozen=True)
class FixFile:
    """One remediation file to write: its name, the finding it fixes, and its content."""

    name: str
    """File name inside the fixes folder, e.g. `MD101-daemonset-default-datadog-agent.yaml`."""
    finding: Finding
    """The finding whose remediation it holds."""
    remediation: Remediation
    """That finding's remediation (never None here)."""
    content: str
    """The manifests as one multi-document YAML stream."""


def plan_fixes(report: Report) -> list[FixFile]:
    """Decide which files `emit_fixes` writes, in report order, without touching the disk."""
    planned: list[FixFile] = []
    used: set[str] = set()
    for finding in report.findings:
        remediation = finding.remediation
        if finding.suppressed_by is not None or remediation is None or not remediation.manifests:
            continue
        stem = fix_stem(finding)
        name, repeat = f"{stem}.yaml", 1
        while name in used:
            repeat += 1
            name = f"{stem}-{repeat}.yaml"
        used.add(name)
        planned.append(FixFile(name, finding, remediation, manifest_stream(finding, remediation)))
        if remediation.alternative_manifests:
            other = Remediation(
                summary=f"Instead of {name}: {remediation.summary}",
                manifests=remediation.alternative_manifests,
                commands=remediation.commands,
                safe=remediation.safe,
            )
            alt_name = name.removesuffix(".yaml") + ".alternative.yaml"
            used.add(alt_name)
            planned.append(FixFile(alt_name, finding, other, manifest_stream(finding, other)))
    return planned


def emit_fixes(report: Report, directory: Path) -> list[Path]:
    """Write one YAML file per unsuppressed finding with manifests, and `index.md`.

    Creates `directory` when missing. Returns the YAML files written (not the index), in report
    order. Files already in the folder that this run does not write are left alone. A folder that
    cannot be written is a `UsageError` (one line, exit code 2), not a traceback.
    """
    planned = plan_fixes(report)
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for fix in planned:
            path = directory / fix.name
            path.write_text(fix.content, encoding="utf-8")
            written.append(path)
        (directory / INDEX).write_text(fixes_index(report, planned), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write remediation files to {directory}: {exc.strerror or exc}") from exc
    return written


def fix_stem(finding: Finding) -> str:
    """Name a finding's file: `<rule>-<kind>-<namespace>-<name>` from its primary object."""
    if not finding.objects:
        return _safe(finding.rule)
    primary = finding.objects[0]
    namespace = primary.namespace or CLUSTER_SCOPE
    parts = (finding.rule, primary.kind.lower(), namespace, primary.name)
    return "-".join(_safe(part) for part in parts)


def _safe(part: str) -> str:
    """Keep a name component inside the folder and portable: no `/`, no `..`, no spaces."""
    cleaned = _UNSAFE.sub("_", part).strip(".")
    return cleaned or "_"


def manifest_stream(finding: Finding, remediation: Remediation) -> str:
    """Join the manifests into one YAML stream, `---` between documents, behind a comment header."""
    objects = ", ".join(str(ref) for ref in finding.objects) or "-"
    safety = "safe to apply as is" if remediation.safe else "review before applying"
    header = [
        f"# {finding.rule} ({finding.severity.value}): {finding.title}",
        f"# objects: {objects}",
        f"# {safety}",
    ]
    documents = [_document(manifest) for manifest in remediation.manifests]
    documents = [doc for doc in documents if doc]
    return "\n".join(header) + "\n" + "---\n".join(documents)


def _document(manifest: str) -> str:
    """One manifest as a document of the stream: no leading `---`, one final newline."""
    text = manifest.strip("\n")
    if text.startswith("---"):
        first, _, rest = text.partition("\n")
        if first.strip() == "---":
            text = rest.strip("\n")
    return f"{text}\n" if text.strip() else ""


def apply_commands(fix: FixFile) -> list[str]:
    """List the finding's commands with the file written in place of `<file>`.

    A remediation without commands is applied with a plain `kubectl apply -f`.
    """
    commands = [c.replace(FILE_PLACEHOLDER, fix.name) for c in fix.remediation.commands]
    return commands or [f"kubectl apply -f {fix.name}"]


def fixes_index(report: Report, planned: list[FixFile]) -> str:
    """Write `index.md`: each file, what it fixes, and whether it can be applied as is."""
    lines = [
        "# meshdoctor remediation files",
        "",
        f"Written by meshdoctor {report.version} from {report.source.kind} "
        f"{code_span(report.source.target)}: {plural(len(planned), 'file')}. "
        "Run the commands from this folder.",
        "",
    ]
    if not planned:
        lines.append("No unsuppressed finding comes with a manifest to apply.")
        return "\n".join(lines) + "\n"
    lines += ["| File | Rule | Severity | Objects | Apply |", "| --- | --- | --- | --- | --- |"]
    for fix in planned:
        objects = ", ".join(str(ref) for ref in fix.finding.objects)
        safety = "safe as is" if fix.remediation.safe else "needs review"
        lines.append(
            f"| [{fix.name}]({fix.name}) | {fix.finding.rule} | {fix.finding.severity.value} "
            f"| {table_cell(objects)} | {safety} |"
        )
    lines.append("")
    for fix in planned:
        finding, remediation = fix.finding, fix.remediation
        safety = "Safe to apply as is." if remediation.safe else "Needs review before applying."
        lines += [
            f"## {fix.name}",
            "",
            f"**{finding.rule}** ({finding.severity.value}, {finding.category.value}): {inline(finding.title)}",
            "",
            f"Objects: {', '.join(code_span(str(ref)) for ref in finding.objects) or '-'}",
            "",
            f"{inline(remediation.summary)} {safety}",
            "",
            *fence("\n".join(apply_commands(fix)), "sh"),
            "",
        ]
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
