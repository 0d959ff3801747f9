"""Static SVG plots with axes, tick labels, units and a title: no script, no remote library, text escaped.

Three shapes cover the site: lines (training curves), points with vertical error bars (win rate vs average
length, reward vs KL), and bars with error bars (benchmark scores). Every label passes through ``escape``:
method names are user input.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

W, H = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 28, 46
PALETTE = ["#3367d6", "#d93025", "#188038", "#f29900", "#9334e6", "#12b5cb", "#e52592", "#5f6368", "#b06000",
           "#1a73e8", "#a50e0e", "#0d652d"]


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [round(first + i * step, 12) for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 or x == int(x) else f"{x:.3g}"


class _Frame:
    """Data-to-pixel scales and the axes drawn around them."""

    def __init__(self, xs: list[float], ys: list[float], x_label: str, y_label: str, title: str):
        self.xt, self.yt = ticks(min(xs), max(xs)), ticks(min(ys), max(ys))
        self.x0, self.x1, self.y0, self.y1 = self.xt[0], self.xt[-1], self.yt[0], self.yt[-1]
        self.labels = (x_label, y_label, title)

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / ((self.x1 - self.x0) or 1) * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return H - BOTTOM - (v - self.y0) / ((self.y1 - self.y0) or 1) * (H - TOP - BOTTOM)

    def axes(self) -> list[str]:
        x_label, y_label, title = (escape(s) for s in self.labels)
        out = [f'<text x="{W / 2}" y="16" text-anchor="middle" class="pt">{title}</text>',
               f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" class="ax"/>',
               f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="ax"/>',
               f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle">{x_label}</text>',
               f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{y_label}</text>']
        for t in self.xt:
            out.append(f'<line x1="{self.x(t):.1f}" y1="{H - BOTTOM}" x2="{self.x(t):.1f}" y2="{H - BOTTOM + 4}" class="ax"/>'
                       f'<text x="{self.x(t):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{_fmt(t)}</text>')
        for t in self.yt:
            out.append(f'<line x1="{LEFT}" y1="{self.y(t):.1f}" x2="{W - RIGHT}" y2="{self.y(t):.1f}" class="grid"/>'
                       f'<text x="{LEFT - 6}" y="{self.y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        return out


def _svg(parts: list[str], title: str) -> Markup:
    return Markup(f'<svg class="plot" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">'
                  + "".join(parts) + "</svg>")


def colour_map(labels: list[str]) -> dict[str, str]:
    """One colour per method for every plot of a run (its position in the run's table)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def lines(series: dict[str, list], x_label: str, y_label: str, title: str, colours: dict | None = None) -> Markup:
    """One polyline per named series of [x, y] points, with a legend; empty when no series has two points."""
    series = {k: v for k, v in series.items() if v and len(v) >= 2}
    if not series:
        return Markup("")
    pts = [p for v in series.values() for p in v]
    f = _Frame([p[0] for p in pts], [p[1] for p in pts], x_label, y_label, title)
    parts = f.axes()
    for i, (name, v) in enumerate(series.items()):
        color = (colours or {}).get(name) or PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in v)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{coords}">'
                     f'<title>{escape(name)}</title></polyline>')
        if len(series) > 1:
            parts.append(f'<text x="{W - RIGHT - 4}" y="{TOP + 12 + 13 * i}" text-anchor="end" fill="{color}">'
                         f'{escape(name)}</text>')
    return _svg(parts, title)


def points(items: list[dict], x_label: str, y_label: str, title: str, colours: dict | None = None) -> Markup:
    """Labelled points {"label", "x", "y", "lo"?, "hi"?} with vertical error bars; empty with fewer than one point."""
    items = [p for p in items if p.get("x") is not None and p.get("y") is not None]
    if not items:
        return Markup("")
    ys = [p["y"] for p in items] + [p[k] for p in items for k in ("lo", "hi") if p.get(k) is not None]
    f = _Frame([p["x"] for p in items], ys, x_label, y_label, title)
    parts = f.axes()
    for i, p in enumerate(items):
        color, cx, cy = (colours or {}).get(p["label"]) or PALETTE[i % len(PALETTE)], f.x(p["x"]), f.y(p["y"])
        if p.get("lo") is not None and p.get("hi") is not None:
            parts.append(f'<line x1="{cx:.1f}" y1="{f.y(p["lo"]):.1f}" x2="{cx:.1f}" y2="{f.y(p["hi"]):.1f}" '
                         f'stroke="{color}" stroke-width="1.2"/>')
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}"><title>{escape(p["label"])}: '
                     f'{_fmt(p["x"])}, {_fmt(p["y"])}</title></circle>'
                     f'<text x="{cx + 6:.1f}" y="{cy - 6:.1f}" fill="{color}">{escape(p["label"])}</text>')
    return _svg(parts, title)


def bars(groups: dict[str, list[dict]], y_label: str, title: str, colours: dict | None = None) -> Markup:
    """Grouped bars: {group (a metric): [{"label" (a method), "value", "err"?}]}, error bars of +- err."""
    groups = {g: [b for b in v if b.get("value") is not None] for g, v in groups.items()}
    groups = {g: v for g, v in groups.items() if v}
    if not groups:
        return Markup("")
    vals = [b["value"] + s * (b.get("err") or 0) for v in groups.values() for b in v for s in (-1, 1)]
    f = _Frame([0, len(groups)], [0.0, *vals], "", y_label, title)
    f.xt = []  # categorical x axis: group names instead of ticks
    parts = f.axes()
    labels = list(dict.fromkeys(b["label"] for v in groups.values() for b in v))
    width = (W - LEFT - RIGHT) / len(groups)
    for gi, (g, v) in enumerate(groups.items()):
        bw = (width * 0.8) / len(labels)
        parts.append(f'<text x="{LEFT + width * (gi + 0.5):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{escape(g)}</text>')
        for b in v:
            li = labels.index(b["label"])
            x = LEFT + width * gi + width * 0.1 + bw * li
            color = (colours or {}).get(b["label"]) or PALETTE[li % len(PALETTE)]
            top = f.y(b["value"])
            parts.append(f'<rect x="{x:.1f}" y="{min(top, f.y(0)):.1f}" width="{bw * 0.9:.1f}" '
                         f'height="{abs(f.y(0) - top):.1f}" fill="{color}"><title>{escape(b["label"])} {escape(g)}: '
                         f'{b["value"]:.1f}</title></rect>')
            if b.get("err"):
                cx = x + bw * 0.45
                parts.append(f'<line x1="{cx:.1f}" y1="{f.y(b["value"] - b["err"]):.1f}" x2="{cx:.1f}" '
                             f'y2="{f.y(b["value"] + b["err"]):.1f}" stroke="#222" stroke-width="1"/>')
    for li, label in enumerate(labels):
        parts.append(f'<text x="{W - RIGHT - 4}" y="{TOP + 12 + 13 * li}" text-anchor="end" '
                     f'fill="{(colours or {}).get(label) or PALETTE[li % len(PALETTE)]}">{escape(label)}</text>')
    return _svg(parts, title)
