"""The rule catalogue as text, JSON or Markdown: `meshdoctor rules`, `explain` and the README.

Plain string building on purpose: `meshdoctor rules` must start fast, so no rich here.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from meshdoctor.rule import Rule


def rule_to_dict(rule: type[Rule]) -> dict[str, object]:
    """A rule's metadata as plain data."""
    return {
        "id": rule.id,
        "title": rule.title,
        "category": rule.category.value,
        "severity": rule.severity.value,
        "inputs": {
            "kinds": sorted(rule.inputs.kinds),
            "optional_kinds": sorted(rule.inputs.optional_kinds),
            "logs": sorted(rule.inputs.logs),
            "probes": rule.inputs.probes,
        },
        "docs": {
            "what": rule.docs.what,
            "why": rule.docs.why,
            "fix": rule.docs.fix,
            "references": list(rule.docs.references),
        },
    }


def rules_json(rules: Sequence[type[Rule]]) -> str:
    """Every rule's metadata as a JSON document."""
    return json.dumps({"rules": [rule_to_dict(r) for r in rules]}, indent=2, ensure_ascii=False) + "\n"


def rules_text(rules: Sequence[type[Rule]]) -> str:
    """One line per rule: id, category, severity, title."""
    if not rules:
        return "no rules loaded\n"
    width = max(len(r.category.value) for r in rules)
    lines = [f"{'ID':<6} {'CATEGORY':<{width}} {'SEVERITY':<8} TITLE"]
    for rule in rules:
        lines.append(f"{rule.id:<6} {rule.category.value:<{width}} {rule.severity.value:<8} {rule.title}")
    lines.append(f"{len(rules)} rules · `meshdoctor explain MDnnn` shows a rule's documentation")
    return "\n".join(lines) + "\n"


def rules_markdown(rules: Sequence[type[Rule]]) -> str:
    """A Markdown table of the rules, then each rule's documentation (the README's rule reference)."""
    lines = ["| Rule | Category | Severity | Title |", "| --- | --- | --- | --- |"]
    for rule in rules:
        lines.append(
            f"| [{rule.id}](#{rule.id.lower()}) | {rule.category.value} | {rule.severity.value} | {_cell(rule.title)} |"
        )
    for rule in rules:
        lines += ["", f"### {rule.id}", "", f"**{rule.title}** ({rule.category.value}, {rule.severity.value})", ""]
        lines += _doc_sections(rule, markdown=True)
    return "\n".join(lines) + "\n"


def explain_text(rule: type[Rule], width: int = 100) -> str:
    """A rule's documentation with its fixed sections."""
    lines = [f"{rule.id} · {rule.title}", f"category: {rule.category.value} · default severity: {rule.severity.value}"]
    inputs = rule.inputs
    reads = ", ".join(sorted(inputs.kinds)) or "-"
    if inputs.optional_kinds:
        reads += f" (and when present: {', '.join(sorted(inputs.optional_kinds))})"
    lines.append(f"reads: {reads}")
    if inputs.logs:
        lines.append(f"logs: {', '.join(sorted(inputs.logs))}")
    lines.append("")
    for section in _doc_sections(rule, markdown=False):
        if section and not section.endswith(":") and not section.startswith("  - "):
            lines.extend(textwrap.wrap(section, width=width, initial_indent="  ", subsequent_indent="  ") or [""])
        else:
            lines.append(section)
    return "\n".join(lines).rstrip() + "\n"


def rule_help_markdown(rule: type[Rule]) -> str:
    """A rule's documentation as Markdown, as the README's rule reference shows it (SARIF `help`)."""
    head = f"**{rule.id} · {rule.title}** ({rule.category.value}, {rule.severity.value})"
    return "\n".join([head, "", *_doc_sections(rule, markdown=True)]).rstrip() + "\n"


def _doc_sections(rule: type[Rule], *, markdown: bool) -> list[str]:
    docs = rule.docs
    out: list[str] = []
    for heading, body in (("What it checks", docs.what), ("Why it matters", docs.why), ("How to fix", docs.fix)):
        out += (
            [f"**{heading}**" if markdown else f"{heading}:", "", body.strip(), ""]
            if markdown
            else [f"{heading}:", body.strip(), ""]
        )
    if docs.references:
        out.append("**References**" if markdown else "References:")
        if markdown:
            out.append("")
        out += [f"- {ref}" if markdown else f"  - {ref}" for ref in docs.references]
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
