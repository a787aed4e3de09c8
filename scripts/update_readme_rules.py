#!/usr/bin/env python3
"""Regenerate the README's rule reference from the rules' metadata (`meshdoctor rules -o markdown`).

python scripts/update_readme_rules.py          # rewrite README.md
python scripts/update_readme_rules.py --check  # exit 1 when README.md is stale (a test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

from meshdoctor.registry import load_rules
from meshdoctor.renderers.catalogue import rules_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- rules:begin -->", "<!-- rules:end -->"


def updated(text: str) -> str:
    """README text with the block between the markers replaced by the generated reference."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = rules_markdown(load_rules()).replace("\n### ", "\n#### ")
    return f"{head}{BEGIN}\n{body}{END}{tail}"


def main(argv: list[str]) -> int:
    """Rewrite, or with --check compare."""
    current = README.read_text(encoding="utf-8")
    fresh = updated(current)
    if "--check" in argv:
        if fresh != current:
            print("README.md rule reference is stale: run python scripts/update_readme_rules.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
