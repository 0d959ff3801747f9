"""Turn run result documents into a static site (one HTML file, no server, no JavaScript needed).

Runs and presentation are joined only by this schema (``bench.results/1``), one ``results.json`` per run:

    {"schema": "bench.results/1", "run": str, "created": iso-time, "model": str, "data": str,
     "budget": {...}, "eval_set": str, "reference": str, "judge": {"name": str, "card": {...}},
     "suite": [metric names in display order],
     "methods": {NAME: {"checkpoint": str,
                        "train": {"wall_s": float, "steps": int, "curve": [[step, value], ...],
                                  "curve_name": str} | null,
                        "winrate": {"win_rate": float, "ci": [lo, hi], "lc_win_rate": float,
                                    "lc_ci": [lo, hi], "n": int, "avg_length": float} | null,
                        "vs_base": {"diff": float, "ci": [lo, hi]} | null,
                        "suite": {METRIC: {"value": float, "stderr": float | null,
                                           "partial": bool?}} | null}}}

Win rates are fractions in [0, 1] (the page shows percentages); suite values are already in %.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from bench.atomic import atomic_write_text

SCHEMA = "bench.results/1"
_TEMPLATES = Path(__file__).parent / "templates"


def load_runs(root: Path) -> list[dict]:
    """Every ``results.json`` under ``root``, newest first; other schemas are refused with the file named."""
    from bench.data import DataError

    runs = []
    for path in sorted(Path(root).rglob("results.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(path, e.lineno, None, f"invalid JSON ({e.msg})") from None
        if doc.get("schema") != SCHEMA:
            raise DataError(path, None, "schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r}")
        doc["_path"] = str(path)
        runs.append(doc)
    return sorted(runs, key=lambda d: d.get("created", ""), reverse=True)


def sparkline(points: list, width: int = 160, height: int = 36) -> str:
    """An inline SVG polyline of a training curve (loss or mean reward)."""
    if not points or len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 4) / ((x1 - x0) or 1)
    sy = (height - 4) / ((y1 - y0) or 1)
    coords = " ".join(f"{2 + (x - x0) * sx:.1f},{height - 2 - (y - y0) * sy:.1f}" for x, y in zip(xs, ys))
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<title>{ys[0]:.3g} → {ys[-1]:.3g}</title><polyline fill="none" stroke="currentColor" '
            f'stroke-width="1.5" points="{coords}"/></svg>')


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(ci) -> str:
    return "" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def rows(run: dict) -> list[dict]:
    """Methods sorted by win rate (missing last), each with display-ready cells."""
    out = []
    for name, m in run["methods"].items():
        wr = m.get("winrate") or {}
        out.append({
            "name": name,
            "win": wr.get("win_rate"),
            "win_s": _pct(wr.get("win_rate")), "win_ci": _ci(wr.get("ci")),
            "lc_s": _pct(wr.get("lc_win_rate")), "lc_ci": _ci(wr.get("lc_ci")),
            "len": "–" if wr.get("avg_length") is None else f"{wr['avg_length']:.0f}",
            "vs_base": m.get("vs_base"),
            "suite": {k: v for k, v in (m.get("suite") or {}).items()},
            "train": m.get("train"),
            "curve": sparkline((m.get("train") or {}).get("curve") or []),
        })
    return sorted(out, key=lambda r: -1 if r["win"] is None else r["win"], reverse=True)


def render(runs: list[dict]) -> str:
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["pct"] = _pct
    env.filters["ci"] = _ci
    return env.get_template("index.html.j2").render(runs=[{**r, "rows": rows(r)} for r in runs])


def build(results_root: str | Path, out_dir: str | Path) -> Path:
    runs = load_runs(Path(results_root))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    atomic_write_text(page, render(runs))  # bench/atomic.py
    return page
