"""Turn run result documents into a static site (one HTML file, no server, no JavaScript needed).

Runs and presentation are joined only by this schema (``bench.results/2``), one ``results.json`` per run; the
site imports nothing from ``bench``. ``leaderboard.schema`` checks every field below; ``?`` = may be null.

    {"schema": "bench.results/2", "run": str, "created": iso-time, "model": str, "data": str,
     "data_built": {"steps", "drops", "reviser", "scorer", "files"}?,   # the build_data stage's report (bench/spa)
     "budget": {...}, "eval_set": str, "reference": str, "seeds": [seed, ...]?,
     "judge": {"name": str, "validated": bool, "reason": str,        # validated false: win rates shown in red
               "summary": {"agreement": {"value", "ci95"}, "near_equal_agreement": {"value", "ci95"},
                           "longer_wins_agreement": {"value"}, "system_spearman": {"value", "ci95"},
                           "null_battery": {"passed", "worst_loss_rate", "outputs": {label: rate}}}?},
     "controls": {ROLE ("null" | "positive"): {"method": NAME, "what": str}}?,
     "suite": [metric names in display order],
     "methods": {NAME: {"checkpoint": str, "seeds": [seed, ...]?,
                        "train": {"wall_s": float, "steps": int, "curve": [[step, value], ...],
                                  "curve_name": str}?,
                        "data": str?,                          # the data spec it trained on
                        "winrate": {"win_rate", "ci": [lo, hi], "lc_win_rate", "lc_ci", "n", "avg_length"}?,
                        "vs_base": {"diff": float, "ci": [lo, hi]}?,
                        "suite": {METRIC: {"value": float, "stderr": float?},
                                  "figa_avg": {"value": float, "stderr": float?,     # terms, of: required
                                               "terms": [terms averaged], "of": [all the paper's terms]}}?,
                        "degeneration": {"n", "truncated"?, "loop", "empty", "degenerate", "mean_tokens",   # shares
                                         "flagged": bool, "threshold": num}?}},       # bench/degeneration.py
     "verdicts": bench.verdicts.verdicts(...)?}   # tiers, pairs, headline, mdd, controls, aa (see bench/verdicts.py)

Win rates are fractions in [0, 1] (the page shows percentages); suite values are already in %. Changes from
``bench.results/1`` (refused, with the command that rewrites it): ``verdicts``, ``controls``, the judge's
``validated``/``reason``/``summary``, FIGA's average names its ``terms``; a "reward" suite column is never shown.

The page groups methods by tier (alphabetical inside a tier: members are not distinguishable), never by point
estimate; FIGA averages over different term sets get different columns, in a run and across runs.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .schema import SCHEMA, ResultsError, load_runs  # noqa: F401  (SCHEMA and ResultsError are this module's API)

_TEMPLATES = Path(__file__).parent / "templates"
HIDDEN_SUITE = {"reward", "figa_avg"}  # reward: scored by the RM PPO optimised, dropped; figa_avg: own columns


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


def _p(p) -> str:
    return "–" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def figa_label(entry: dict) -> str:
    """Column title naming the terms in FIGA's average, e.g. "FIGA avg (4 of 7 terms: no reward, vicuna, wizardlm)"."""
    terms, of = entry["terms"], entry["of"]
    missing = [t for t in of if t not in terms]
    return f"FIGA avg (all {len(of)} terms)" if not missing else \
        f"FIGA avg ({len(terms)} of {len(of)} terms: no {', '.join(missing)})"


def figa_columns(methods: list[dict]) -> list[str]:
    """One column per distinct term set, in order of first appearance."""
    return list(dict.fromkeys(figa_label(m["suite"]["figa_avg"]) for m in methods
                              if (m.get("suite") or {}).get("figa_avg")))


def _row(name: str, m: dict, v: dict | None, run: dict) -> dict:
    wr = m.get("winrate") or {}
    vm = (v or {}).get("methods", {}).get(name)
    head = {h["a"]: h for h in (v or {}).get("headline", []) if h["b"] == "base"}
    if vm:  # the verdicts aggregate every seed: prefer them to the single-seed summary
        win, lc = vm["win_rate"], vm["lc_win_rate"]
        cells = {"win": win["value"], "win_ci": win["ci95"], "lc": lc["value"], "lc_ci": lc["ci95"],
                 "sd": win.get("sd_seeds"), "n_seeds": vm["n_seeds"]}
    else:
        cells = {"win": wr.get("win_rate"), "win_ci": wr.get("ci"), "lc": wr.get("lc_win_rate"),
                 "lc_ci": wr.get("lc_ci"), "sd": None, "n_seeds": len(m.get("seeds") or []) or None}
    if name in head:
        vs = {"diff": head[name]["win_rate"]["value"], "ci": head[name]["win_rate"]["ci95"],
              "p_holm": head[name]["win_rate"].get("p_holm")}
    else:  # a row outside the headline pairs (the controls): its difference vs base has no Holm p
        vs = {"p_holm": None, **m["vs_base"]} if m.get("vs_base") else None
    suite = m.get("suite") or {}
    figa = suite.get("figa_avg")
    return {"name": name, **cells, "vs_base": vs,
            "len": "–" if wr.get("avg_length") is None else f"{wr['avg_length']:.0f}",
            "suite": suite, "figa": {figa_label(figa): figa} if figa else {},
            "control": next((role for role, c in (run.get("controls") or {}).items() if c["method"] == name), None),
            "train": m.get("train"), "curve": sparkline((m.get("train") or {}).get("curve") or [])}


def groups(run: dict) -> list[dict]:
    """Methods grouped by tier (alphabetical inside a tier); without verdicts one group in document order."""
    v = run.get("verdicts")
    rows = {name: _row(name, m, v, run) for name, m in run["methods"].items()}
    if not v:
        return [{"tier": None, "rows": list(rows.values())}]
    out = [{"tier": i + 1, "rows": [rows[n] for n in sorted(t) if n in rows]} for i, t in enumerate(v["tiers"])]
    untiered = [r for n, r in rows.items() if not any(n in t for t in v["tiers"])]
    return out + ([{"tier": "not judged", "rows": untiered}] if untiered else [])


def view(run: dict) -> dict:
    judge = run["judge"]
    methods = list(run["methods"].values())
    return {**run, "groups": groups(run), "figa_cols": figa_columns(methods),
            "suite_cols": [s for s in run.get("suite") or [] if s not in HIDDEN_SUITE],
            "unvalidated": not judge.get("validated", False),
            "unvalidated_reason": judge.get("reason") or "no validation of this judge was recorded"}


def across_runs(runs: list[dict]) -> dict:
    """FIGA averages of every run's methods; runs whose averages cover different terms never share a column."""
    rows = [{"run": r["run"], "method": name, "figa": {figa_label(m["suite"]["figa_avg"]): m["suite"]["figa_avg"]}}
            for r in runs for name, m in r["methods"].items() if (m.get("suite") or {}).get("figa_avg")]
    cols = list(dict.fromkeys(c for row in rows for c in row["figa"]))
    return {"rows": rows, "cols": cols}


def render(runs: list[dict]) -> str:
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters.update(pct=_pct, ci=_ci, p=_p)
    return env.get_template("index.html.j2").render(runs=[view(r) for r in runs], across=across_runs(runs))


def build(results_root: str | Path, out_dir: str | Path) -> Path:
    """Check every results.json under ``results_root`` (ResultsError names file and field) and write the page."""
    runs = load_runs(Path(results_root))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    tmp = page.with_name(f".{page.name}.tmp")  # a reader never sees half a page
    tmp.write_text(render(runs))
    tmp.replace(page)
    return page
