"""Small SVG charts for the run report: grouped bars, horizontal bars and lines.

The report draws a handful of simple charts on every run. Drawing them with matplotlib cost
seconds per run (import and rendering), more than the whole of a small run's data pass, so
the report writes these few shapes itself: plain SVG elements, no scripts, no fonts to embed.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#9D755D", "#BAB0AC"]
W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 34, 80


def number(v) -> str:
    """A number as the report writes it everywhere: thousands separated, floats to 4 significant digits.

    Stage metrics hold raw floats (`0.11566265060240964`); nobody reads the last twelve digits.
    """
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or (abs(v) >= 1000 and v == int(v)):
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _fmt(v: float) -> str:
    """A tick label: short (`1.5k`), and exact for the round values of `_ticks`."""
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _ticks(vmax: float, integer: bool) -> list[float]:
    """Round tick values from 0 to at least `vmax`: about five steps of 1, 2 or 5 times a power of ten.

    A chart of counts gets whole steps only: 0, 1, 2 rows, never 0.5.
    """
    raw = max(vmax, 1 if integer else 1e-12) / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1, round(step))
    n = math.ceil(vmax / step - 1e-9) or 1
    return [round(step * i, 12) for i in range(n + 1)]


def _is_integer(values) -> bool:
    return all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in values if v is not None)


def _frame(title: str, xlabel: str, ylabel: str, ticks: list[float], height: int = H) -> list[str]:
    plot_h = height - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
             f'<text x="{W / 2}" y="{height - 6}" text-anchor="middle">{escape(xlabel)}</text>',
             f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" transform="rotate(-90 14 {TOP + plot_h / 2})">'
             f'{escape(ylabel)}</text>']
    for value in ticks:
        y = TOP + plot_h - plot_h * value / ticks[-1]
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    return parts


def _legend(names: list[str | None]) -> list[str]:
    parts = []
    for i, name in enumerate(n for n in names if n):
        x = LEFT + 10 + i * 150
        parts.append(f'<rect x="{x}" y="24" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="33">{escape(str(name))}</text>')
    return parts


def bars(labels: list, series: list[dict], title: str = "", xlabel: str = "", ylabel: str = "") -> str:
    """Vertical bars, one group per label, one bar per series ({"y": [...], "label": ...}); a series'
    optional "err" list draws an error bar of +-err on each bar (a standard error, say)."""
    values = [v for s in series for v in s["y"]]
    tops = [(v or 0) + (e or 0) for s in series for v, e in zip(s["y"], s.get("err") or [None] * len(s["y"]))]
    ticks = _ticks(max(tops + [0]), _is_integer(values))
    ymax = ticks[-1]
    parts = _frame(title, xlabel, ylabel, ticks)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    group = plot_w / max(len(labels), 1)
    width = group * 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        for i, v in enumerate(s["y"]):
            h = plot_h * (v or 0) / ymax
            x = LEFT + i * group + group * 0.1 + k * width
            parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}">'
                         f'<title>{escape(str(labels[i]))}: {number(v)}</title></rect>')
            err = (s.get("err") or [None] * len(s["y"]))[i]
            if err:
                cx = x + width / 2
                hi = TOP + plot_h - plot_h * ((v or 0) + err) / ymax
                lo = TOP + plot_h - plot_h * max((v or 0) - err, 0) / ymax
                parts.append(f'<path d="M{cx - 4:.1f},{hi:.1f}H{cx + 4:.1f}M{cx:.1f},{hi:.1f}V{lo:.1f}'
                             f'M{cx - 4:.1f},{lo:.1f}H{cx + 4:.1f}" stroke="#222" fill="none"/>')
    for i, label in enumerate(labels):
        x, y = LEFT + (i + 0.5) * group, TOP + plot_h + 12
        parts.append(f'<text x="{x:.1f}" y="{y}" text-anchor="end" transform="rotate(-30 {x:.1f} {y})">'
                     f'{escape(str(label))}</text>')
    parts += _legend([s.get("label") for s in series]) + ["</svg>"]
    return "".join(parts)


def lines(series: list[dict], title: str = "", xlabel: str = "", ylabel: str = "") -> str:
    """Lines through points ({"x": [...], "y": [...], "label": ...}) on shared linear axes."""
    xs = [x for s in series for x in s["x"]] or [0, 1]
    xmin, xmax = min(xs), max(xs)
    values = [y for s in series for y in s["y"]]
    ticks = _ticks(max(values + [0]), _is_integer(values))
    ymax = ticks[-1]
    parts = _frame(title, xlabel, ylabel, ticks)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    sx = lambda x: LEFT + plot_w * (x - xmin) / ((xmax - xmin) or 1)  # noqa: E731
    for k, s in enumerate(series):
        points = " ".join(f"{sx(x):.1f},{TOP + plot_h - plot_h * y / ymax:.1f}" for x, y in zip(s["x"], s["y"]))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{PALETTE[k % len(PALETTE)]}" stroke-width="2"/>')
    for i in range(5):
        x = xmin + (xmax - xmin) * i / 4
        parts.append(f'<text x="{sx(x):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{_fmt(round(x, 3))}</text>')
    parts += _legend([s.get("label") for s in series]) + ["</svg>"]
    return "".join(parts)


def hbars(labels: list[str], values: list[float], title: str = "", xlabel: str = "") -> str:
    """Horizontal bars, for long category names such as `stage: reason`."""
    row = 18
    height = TOP + row * len(labels) + 40
    left = 300
    vmax = max(values + [1])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for i, (label, v) in enumerate(zip(labels, values)):
        y = TOP + i * row
        w = (W - left - 60) * v / vmax
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" fill="{PALETTE[3]}"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + 12}">{number(v)}</text>')
    parts.append(f'<text x="{left + (W - left) / 2}" y="{height - 8}" text-anchor="middle">{escape(xlabel)}</text></svg>')
    return "".join(parts)
