"""The report as YAML (`-o yaml`): the same data as the JSON report, easier to read by eye.

Manifests and other multi-line strings are written as literal block scalars (`|`), so a manifest
in the report reads exactly like the file it would be.
"""

from __future__ import annotations

from typing import Any

import yaml

from meshdoctor.model import Report
from meshdoctor.renderers import report_to_dict

#: Wide enough that PyYAML never folds a long message or log line across lines.
_NO_FOLDING = 1 << 30


class ReportDumper(yaml.SafeDumper):
    """A SafeDumper writing multi-line strings as `|` blocks; the global SafeDumper is untouched."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        # PyYAML falls back to a quoted scalar by itself when a block cannot hold the value
        # (trailing spaces on a line, control characters), so this never changes the content.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


ReportDumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """Dump plain data as block-style YAML, keys in their given order, multi-line strings as `|`."""
    text: str = yaml.dump(
        data,
        Dumper=ReportDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=_NO_FOLDING,
    )
    return text


def render_yaml(report: Report) -> str:
    """Render the report as YAML, with the same content as `render_json`."""
    return dump_yaml(report_to_dict(report))


class YamlRenderer:
    """`Renderer` for `-o yaml`."""

    def render(self, report: Report) -> str:
        """See `render_yaml`."""
        return render_yaml(report)
