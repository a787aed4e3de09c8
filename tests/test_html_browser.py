"""The HTML report in a real browser: headless Chromium loads it, the findings are there and drawn.

`.ci/run` installs Debian's `chromium` when it is missing and CI runs as root; where no browser
exists the test is skipped, saying so. The screenshot is kept as a test artifact in
`$MESHDOCTOR_TEST_ARTIFACTS` (default `test-artifacts/` in the checkout) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.test_cli import BROKEN, ROOT, invoke

BROWSER = next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)
ARTIFACTS = Path(os.environ.get("MESHDOCTOR_TEST_ARTIFACTS", ROOT / "test-artifacts"))

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on PATH (`apt-get install chromium`; .ci/run does it as root)"
)

#: The flags a sandboxed, offline machine needs (as root: no sandbox; no network: nothing in the
#: background that would try to reach Google's hosts), each run with a fresh profile.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: The error colour of the report's CSS (`--error: #b3261e`).
ERROR_RED = (0xB3, 0x26, 0x1E)


def browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [str(BROWSER), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


class VisibleText(HTMLParser):
    """The text of the page outside `<head>`, `<style>` and the bodies of closed `<details>`."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, a <details> without `open`)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "link", "br", "img", "input"):
            self.stack.append((tag, tag == "details" and "open" not in dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for depth, (tag, closed) in enumerate(self.stack):
            if tag in ("head", "style", "title", "script"):
                return
            in_summary = depth + 1 < len(self.stack) and self.stack[depth + 1][0] == "summary"
            if closed and not in_summary:
                return
        self.chunks.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows (RGB or RGBA, 8 bits) of a non-interlaced PNG: enough for a screenshot."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line if channels == 3 else b"".join(line[i : i + 3] for i in range(0, stride, 4))))
        previous = line
    return width, height, rows


def test_the_html_report_loads_in_chromium_with_every_finding_visible(tmp_path):
    code, page, _ = invoke("check", "--from", BROKEN, "-o", "html")
    assert code == 1
    report = tmp_path / "seed-broken.html"
    report.write_text(page, encoding="utf-8")

    dumped = browser(tmp_path, "--dump-dom", report.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert "<table>" in dom and 'id="fix-plan"' in dom
    visible = VisibleText()
    visible.feed(dom)
    text = visible.text()
    for rule, title in (
        ("MD101", "The mesh blocks the agent's traffic to the Datadog intake"),
        ("MD103", "The mesh blocks the agent's calls to the kubelet"),
        ("MD401", None),
        ("MD501", None),
        ("MD503", None),
        ("MD504", None),
    ):
        assert rule in text
        if title:
            assert title in text
    assert "3 errors, 3 warnings, 0 info" in text
    # errors are open, warnings folded: the evidence of MD101 shows, that of MD504 does not
    assert "captured/agent-pods.yaml:70" in text
    assert len(re.findall(r"<details [^>]*open", dom)) == 3

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "html-report-seed-broken.png"
    screenshot.unlink(missing_ok=True)
    shot = browser(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,1600", report.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    width, height, rows = png_pixels(screenshot.read_bytes())
    assert (width, height) == (1280, 1600)
    red = bytes(ERROR_RED)
    # the severity labels of the summary table are drawn in the error colour on the first screen
    red_rows = [y for y, row in enumerate(rows[:900]) if any(row[x : x + 3] == red for x in range(0, len(row), 3))]
    assert len(red_rows) >= 3, "no error label was drawn"
