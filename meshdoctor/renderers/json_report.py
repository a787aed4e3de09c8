"""The report as JSON (`-o json`): schema 1, byte-identical for the same report."""

from __future__ import annotations

import json

from meshdoctor.model import Report
from meshdoctor.renderers import report_to_dict


def render_json(report: Report) -> str:
    """Render the report as indented JSON in schema 1's fixed key order, ending in a newline."""
    return json.dumps(report_to_dict(report), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


class JsonRenderer:
    """`Renderer` for `-o json`."""

    def render(self, report: Report) -> str:
        """See `render_json`."""
        return render_json(report)
