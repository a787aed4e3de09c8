"""`--emit-fixes DIR`: the fix plan as files a person reviews and applies in order.

The folder holds one numbered file per step, named by what it holds
(`01-secret-default-datadog-secret.sh`, `02-serviceentry-default-datadog-intake.yaml`, ...),
the alternatives under `alternatives/`, an `apply.sh` that runs a server-side dry run of every
step and then the steps in order, and `index.md` and `plan.json` saying what each step fixes,
whether it is safe as is, and what it restarts. meshdoctor never applies anything itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshdoctor.errors import UsageError
from meshdoctor.fixes.names import CLUSTER_SCOPE, fix_stem, safe_name
from meshdoctor.fixes.plan import FixPlan, PlanStep
from meshdoctor.model import Report
from meshdoctor.renderers import plural
from meshdoctor.renderers.markdown import code_span, fence, inline, table_cell

__all__ = ["CLUSTER_SCOPE", "emit_fixes", "fix_stem", "plan_files", "plan_text", "safe_name"]

INDEX = "index.md"
PLAN_JSON = "plan.json"
APPLY_SCRIPT = "apply.sh"
ALTERNATIVES = "alternatives"


def plan_of(report: Report) -> FixPlan:
    """The report's plan; an empty one when the report was made without it."""
    return report.plan if isinstance(report.plan, FixPlan) else FixPlan()


def plan_files(report: Report) -> dict[str, str]:
    """Every file of the plan folder by relative path, without touching the disk."""
    plan = plan_of(report)
    files: dict[str, str] = {}
    for step in plan.steps:
        files[step.name] = _step_file(step)
        if step.rendered:
            header = f"# what {step.owner} renders after step {step.number}"
            files[step.rendered_name] = f"{header} (for review: the owner applies it, not the plan)\n{step.rendered}"
    for alternative in plan.alternatives:
        files[f"{ALTERNATIVES}/{alternative.name}"] = alternative.content
    files[APPLY_SCRIPT] = apply_script(report, plan)
    files[INDEX] = plan_index(report, plan)
    files[PLAN_JSON] = json.dumps(plan_json(report, plan), indent=2, ensure_ascii=False) + "\n"
    return files


def emit_fixes(report: Report, directory: Path) -> list[Path]:
    """Write the plan folder; return the step files written, in plan order.

    Creates `directory` when missing; files already there that this run does not write are left
    alone. A folder that cannot be written is a `UsageError` (one line, exit code 2).
    """
    files = plan_files(report)
    steps = {step.name for step in plan_of(report).steps}
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            if name == APPLY_SCRIPT:
                path.chmod(0o755)
            if name in steps:
                written.append(path)
    except OSError as exc:
        raise UsageError(f"cannot write remediation files to {directory}: {exc.strerror or exc}") from exc
    return written


def _step_file(step: PlanStep) -> str:
    safety = "safe to apply as is" if step.safe else "review before applying"
    header = [
        f"# step {step.number}: {step.title} ({safety})",
        f"# resolves: {', '.join(step.resolves) or '-'}",
        f"# restarts: {step.restarts}",
        *(f"# note: {note}" for note in step.notes),
    ]
    if step.name.endswith(".sh"):
        return "#!/usr/bin/env bash\n" + "\n".join(header) + "\nset -euo pipefail\n" + step.content
    return "\n".join(header) + "\n" + step.content


def apply_script(report: Report, plan: FixPlan) -> str:
    """`apply.sh`: a server-side dry run of every step, then the steps in order; stops at the first failure."""
    lines = [
        "#!/usr/bin/env bash",
        f"# Written by meshdoctor {report.version} from {report.source.kind} {report.source.target}.",
        "# Review index.md first. Runs a server-side dry run of every step, then applies them in order;",
        "# `./apply.sh --dry-run` stops after the dry run. KUBECTL (and HELM) may name another binary",
        '# or add flags, e.g. KUBECTL="kubectl --context prod" ./apply.sh',
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'KUBECTL="${KUBECTL:-kubectl}"',
        'HELM="${HELM:-helm}"',
        "# shellcheck disable=SC2086",
        'kubectl() { command $KUBECTL "$@"; }',
        "# shellcheck disable=SC2086",
        'helm() { command $HELM "$@"; }',
        "",
    ]
    if not plan.steps:
        return "\n".join([*lines, 'echo "nothing to apply" >&2', ""])
    lines.append('echo "== dry run (server side) of every step" >&2')
    for step in plan.steps:
        lines += [f"# {step.number:02d} {step.title}", *step.dry_run]
    lines += ['if [ "${1:-}" = "--dry-run" ]; then exit 0; fi', ""]
    for step in plan.steps:
        lines += [f'echo "== {step.number:02d} {step.title}" >&2', *step.apply]
    lines += ['echo "== done: run meshdoctor check again" >&2', ""]
    return "\n".join(lines)


def plan_json(report: Report, plan: FixPlan) -> dict[str, Any]:
    """`plan.json`: the plan as data, for tools."""
    return {
        "meshdoctor": report.version,
        "source": {"kind": report.source.kind, "target": report.source.target},
        "steps": [
            {
                "step": step.number,
                "file": step.name,
                "title": step.title,
                "objects": [{"kind": r.kind, "namespace": r.namespace, "name": r.name} for r in step.objects],
                "resolves": list(step.resolves),
                "safe": step.safe,
                "restarts": step.restarts,
                "owner": step.owner,
                "dry_run": list(step.dry_run),
                "apply": list(step.apply),
                "notes": list(step.notes),
                "checks": list(step.checks),
                "rendered": step.rendered_name if step.rendered else None,
            }
            for step in plan.steps
        ],
        "alternatives": [
            {
                "file": f"{ALTERNATIVES}/{alt.name}",
                "resolves": alt.finding,
                "summary": alt.summary,
                "replaces_steps": list(alt.replaces),
                "makes_unnecessary": list(alt.unnecessary),
            }
            for alt in plan.alternatives
        ],
        "manual": [{"resolves": m.finding, "summary": m.summary, "commands": list(m.commands)} for m in plan.manual],
    }


def plan_index(report: Report, plan: FixPlan) -> str:
    """`index.md`: the steps in order, what each fixes, and the choices and manual fixes."""
    lines = [
        "# meshdoctor fix plan",
        "",
        f"Written by meshdoctor {report.version} from {report.source.kind} "
        f"{code_span(report.source.target)}: {plural(len(plan.steps), 'step')}. "
        f"Review each step, then run `./{APPLY_SCRIPT}` from this folder (a server-side dry run of "
        "every step first, then the steps in order), and check again.",
        "",
    ]
    if not plan.steps and not plan.manual:
        lines.append("No unsuppressed finding comes with a fix to apply.")
        return "\n".join(lines) + "\n"
    if plan.steps:
        lines += ["| Step | File | Changes | Resolves | Apply | Restarts |", "| --- | --- | --- | --- | --- | --- |"]
        for step in plan.steps:
            safety = "safe as is" if step.safe else "needs review"
            lines.append(
                f"| {step.number} | [{step.name}]({step.name}) | {table_cell(step.title)} "
                f"| {table_cell(', '.join(step.resolves))} | {safety} | {table_cell(step.restarts)} |"
            )
        lines.append("")
    for step in plan.steps:
        lines += [f"## {step.number}. {step.title}", ""]
        lines += [f"File {code_span(step.name)}, owner: {inline(step.owner)}.", ""]
        if step.rendered:
            lines += [f"What the owner renders after it, for review: {code_span(step.rendered_name)}.", ""]
        lines += [f"Resolves: {', '.join(code_span(r) for r in step.resolves) or '-'}.", ""]
        lines += [f"Restarts: {inline(step.restarts)}.", ""]
        lines += [f"- {inline(note)}" for note in step.notes]
        if step.notes:
            lines.append("")
        if step.checks:
            lines += ["Look first:", "", *fence("\n".join(step.checks), "sh"), ""]
        lines += [*fence("\n".join(step.apply), "sh"), ""]
    if plan.alternatives:
        lines += ["## Alternatives (a choice: never apply both)", ""]
        for alt in plan.alternatives:
            replaces = ", ".join(str(n) for n in alt.replaces) or "none"
            skip = ", ".join(str(n) for n in alt.unnecessary) or "none"
            lines += [
                f"- [{ALTERNATIVES}/{alt.name}]({ALTERNATIVES}/{alt.name}) for {code_span(alt.finding)}: "
                f"{inline(alt.summary)} Apply it instead of step(s) {replaces}; skip step(s) {skip}.",
            ]
        lines.append("")
    if plan.manual:
        lines += ["## By hand", ""]
        for manual in plan.manual:
            lines += [f"### {inline(manual.finding)}", "", inline(manual.summary), ""]
            if manual.commands:
                lines += [*fence("\n".join(manual.commands), "sh"), ""]
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def plan_text(report: Report) -> str:
    """The plan in a few lines per step, for the terminal (`meshdoctor fix --plan`, stderr after `--emit-fixes`)."""
    plan = plan_of(report)
    if not plan.steps and not plan.manual:
        return "fix plan: nothing to apply\n"
    lines = [f"fix plan: {plural(len(plan.steps), 'step')}, applied in order"]
    for step in plan.steps:
        safety = "safe" if step.safe else "review"
        lines.append(f"  {step.number:2d}. [{safety}] {step.title}: resolves {', '.join(step.resolves) or '-'}")
        lines.append(f"      {step.restarts}")
        lines += [f"      note: {note}" for note in step.notes]
    for alt in plan.alternatives:
        lines.append(
            f"  alternative for {alt.finding}: {alt.summary} (instead of step(s) "
            f"{', '.join(map(str, alt.replaces)) or '-'})"
        )
    for manual in plan.manual:
        lines.append(f"  by hand, {manual.finding}: {manual.summary}")
    return "\n".join(lines) + "\n"
