"""report.html opened in headless Chromium: the charts' JavaScript runs without an error, no
fetch is attempted, and the page paints. Skipped when no Chromium is installed (Debian:
``apt-get install chromium``; CI installs it). ``LLMSPEC_CHROMIUM`` names another binary.

Chromium writes the page's console messages to stderr with ``--enable-logging=stderr``; a canary
page with a deliberate error proves that channel still works, so a Chromium that changed its
log format fails here instead of silently passing everything.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from llmspec.runtime.reports import write_html_report
from llmspec.runtime.reports.html import KEPT_COLOUR, REJECT_COLOURS
from report_sample import sample_report

CHART_IDS = ("chart-funnel", "chart-lengths", "chart-loss", "chart-pass-rate")
# The top of the page: header, headline figures and the data funnel chart. Taller would only
# slow the pure-Python PNG decoding below.
WIDTH, HEIGHT = 1280, 1000
HEADER_COLOUR = "#1f2933"
TIMEOUT_S = 120


def _chromium() -> str | None:
    explicit = os.environ.get("LLMSPEC_CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if os.access(explicit, os.X_OK) else None)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (install Debian's `chromium`, or set LLMSPEC_CHROMIUM)")


def _run_chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    # Every flag that makes Chromium phone home is off; --no-sandbox because CI runs as root.
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=10000",
           *mode, page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "HOME": str(profile)})
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def _console(stderr: str) -> list[str]:
    """The page's console messages, one per line."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _problems(stderr: str) -> list[str]:
    bad = re.compile(r"uncaught|error|violates|refused|failed to load|blocked", re.I)
    return [line for line in _console(stderr) if bad.search(line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html_report(sample_report(), tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def dom(page: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    proc = _run_chromium(page, tmp_path_factory.mktemp("profile"), "--dump-dom")
    return proc.stdout, proc.stderr


def test_console_error_detection_works(tmp_path: Path) -> None:
    canary = tmp_path / "canary.html"
    canary.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                      "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
                      '<img src="https://example.invalid/x.png"><script>noSuchFunction();'
                      "</script></body></html>", encoding="utf-8")
    proc = _run_chromium(canary, tmp_path / "profile", "--dump-dom")
    problems = "\n".join(_problems(proc.stderr))
    assert "noSuchFunction" in problems, proc.stderr[-3000:]
    assert "Content Security Policy" in problems, proc.stderr[-3000:]


def test_report_runs_its_scripts_without_errors_or_fetches(dom: tuple[str, str]) -> None:
    _, stderr = dom
    assert not _problems(stderr), "\n".join(_problems(stderr))


def test_every_chart_is_drawn(dom: tuple[str, str], page: Path, tmp_path: Path) -> None:
    html, _ = dom
    for chart in CHART_IDS:
        start = html.index(f'id="{chart}"')
        svg = html[html.rindex("<svg", 0, start):html.index("</svg>", start)]
        assert 'class="chart-svg"' in svg, chart
        assert svg.count("<rect") + svg.count("<polyline") >= 2, chart
    # Each chart has a laid-out box of real size: measured by the browser itself.
    probe = tmp_path / "probe.html"
    script = ("<script>window.addEventListener('load',function(){document.title=JSON.stringify("
              + repr(list(CHART_IDS)).replace("'", '"') + ".map(function(id){var b=document.getElementById(id)"
              ".getBoundingClientRect();return [id,Math.round(b.width),Math.round(b.height)]}));});</script>")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    proc = _run_chromium(probe, tmp_path / "profile", "--dump-dom")
    assert not _problems(proc.stderr), "\n".join(_problems(proc.stderr))
    import json
    sizes = json.loads(re.search(r"<title>(\[.*?\])</title>", proc.stdout).group(1).replace("&quot;", '"'))
    for chart_id, width, height in sizes:
        assert width > 600 and height > 100, (chart_id, width, height)


def test_model_output_is_text_not_markup(dom: tuple[str, str]) -> None:
    html, _ = dom
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_screenshot_shows_the_charts(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _run_chromium(page, tmp_path / "profile", f"--screenshot={shot}")
    width, height, pixels = _decode_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    colours = _histogram(pixels)
    assert len(colours) > 200, "a blank or unstyled page has a handful of colours"
    background = max(colours.values())
    assert background < 0.8 * width * height
    assert colours.get(_rgb(HEADER_COLOUR), 0) > 50_000, "the stylesheet was not applied"
    # Solid bar fills in the chart's own colours: a painted chart, not an empty box.
    assert colours.get(_rgb(KEPT_COLOUR), 0) > 20_000
    assert colours.get(_rgb(REJECT_COLOURS[0]), 0) > 200


# --------------------------------------------------------------------------- PNG, stdlib only

def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _histogram(pixels: list[bytes]) -> dict[tuple[int, int, int], int]:
    counts: dict[tuple[int, int, int], int] = {}
    for row in pixels:
        for i in range(0, len(row), 3):
            key = (row[i], row[i + 1], row[i + 2])
            counts[key] = counts.get(key, 0) + 1
    return counts


def _decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Rows of RGB bytes from an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(kind, line, prev, bpp)
        rows.append(bytes(line) if bpp == 3 else
                    bytes(b for i in range(0, stride, 4) for b in line[i:i + 3]))
        prev = line
    return width, height, rows


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    if kind == 0:
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = prev[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            line[i] = (line[i] + pred) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
