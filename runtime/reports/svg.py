"""The report's four charts as inline SVG, drawn in Python: no script, no library in the page.

Plotly inlined 4.7 MB of JavaScript into every report for four static charts; these are a few
kilobytes each, paint without JavaScript (so also in a mail client's preview or on paper) and
are byte-for-byte deterministic. Hover details are SVG ``<title>`` elements, which every browser
shows as a tooltip. Every label is XML-escaped here, so data cannot inject markup.

Each chart is drawn in a fixed coordinate system (``viewBox``) and scaled to the page's width.
"""

from __future__ import annotations

import math
from html import escape
from typing import Callable, Iterable, Sequence

WIDTH = 1000
INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#e6e9ee"
AXIS = "#cfd5dd"
# Average glyph width of the page's 13px sans-serif, to decide whether a label fits a bar.
CHAR_W = 7.0


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def coord(x: float) -> str:
    """A coordinate with at most one decimal: small, stable output."""
    r = round(x, 1)
    return str(int(r)) if r == int(r) else f"{r:.1f}"


def svg(chart_id: str, height: float, body: Iterable[str], label: str) -> str:
    return (f'<svg id="{_e(chart_id)}" class="chart-svg" viewBox="0 0 {WIDTH} {coord(height)}" '
            f'width="100%" role="img" aria-label="{_e(label)}" '
            f'xmlns="http://www.w3.org/2000/svg" font-size="13" fill="{INK}">'
            f'<title>{_e(label)}</title>' + "".join(body) + "</svg>")


def rect(x: float, y: float, w: float, h: float, fill: str, tip: str | None = None,
         cls: str = "bar") -> str:
    inner = f"<title>{_e(tip)}</title>" if tip else ""
    return (f'<rect class="{cls}" x="{coord(x)}" y="{coord(y)}" width="{coord(max(w, 0))}" '
            f'height="{coord(h)}" fill="{fill}">{inner}</rect>')


def text(x: float, y: float, s: object, *, anchor: str = "start", fill: str | None = None,
         weight: str | None = None, size: int | None = None, baseline: str = "middle") -> str:
    attrs = [f'x="{coord(x)}"', f'y="{coord(y)}"', f'text-anchor="{anchor}"',
             f'dominant-baseline="{baseline}"']
    if fill:
        attrs.append(f'fill="{fill}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if size:
        attrs.append(f'font-size="{size}"')
    return f"<text {' '.join(attrs)}>{_e(s)}</text>"


def line(x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1,
         dash: str | None = None) -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{coord(x1)}" y1="{coord(y1)}" x2="{coord(x2)}" y2="{coord(y2)}" stroke="{stroke}" '
            f'stroke-width="{width}"{d}/>')


def polyline(points: Sequence[tuple[float, float]], stroke: str, width: float = 2,
             dash: str | None = None, cls: str = "series") -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    pts = " ".join(f"{coord(x)},{coord(y)}" for x, y in points)
    return (f'<polyline class="{cls}" points="{pts}" fill="none" stroke="{stroke}" '
            f'stroke-width="{width}" stroke-linejoin="round"{d}/>')


def fits(label: str, width: float) -> bool:
    return len(label) * CHAR_W + 8 <= width


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 12))
    return ticks


def tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) < 0.01:
        mantissa, exp = f"{v:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
    return f"{v:g}"


def legend(items: Sequence[tuple[str, str, str]], right: float, y: float) -> list[str]:
    """Right-aligned legend entries (label, colour, kind: 'box', 'line' or 'dot')."""
    out, x = [], right
    for label, colour, kind in reversed(items):
        x -= len(label) * CHAR_W
        out.append(text(x, y, label))
        if kind == "box":
            out.append(rect(x - 18, y - 6, 12, 12, colour, cls="key"))
        else:
            dash = "4 3" if kind == "dash" else None
            out.append(line(x - 24, y, x - 6, y, colour, 2, dash))
            if kind == "dot":
                out.append(f'<circle cx="{coord(x - 15)}" cy="{coord(y)}" r="3.5" fill="{colour}"/>')
        x -= 40
    return out


def xy_axes(left: float, right: float, top: float, base_y: float, x_lo: float, x_hi: float,
            y_ticks: Sequence[float]) -> tuple[Callable[[float], float], Callable[[float], float], list[str]]:
    """Scales for x in [x_lo, x_hi] and y in [0, y_ticks[-1]], with the y grid, the y tick
    labels and round x tick labels drawn."""
    def sx(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * (right - left)

    def sy(v: float) -> float:
        return base_y - v / y_ticks[-1] * (base_y - top)

    body: list[str] = []
    for t in y_ticks:
        body.append(line(left, sy(t), right, sy(t), GRID))
        body.append(text(left - 8, sy(t), tick_label(t), anchor="end", fill=MUTED, size=12))
    for t in nice_ticks(x_lo, x_hi, 8):
        if x_lo <= t <= x_hi:
            body.append(text(sx(t), base_y + 14, tick_label(t), anchor="middle", fill=MUTED, size=12))
    return sx, sy, body


def vertical_text(x: float, y: float, s: object, *, angle: int = -90, fill: str | None = None) -> str:
    colour = f' fill="{fill}"' if fill else ""
    return (f'<text transform="translate({coord(x)} {coord(y)}) rotate({angle})" text-anchor="middle" '
            f'dominant-baseline="middle"{colour}>{_e(s)}</text>')
