"""Turn run result documents into a static site that opens from disk (no server; small first-party scripts).

Runs and presentation are joined only by this schema (``bench.results/2``), one ``results.json`` per run; the
site imports nothing from ``bench``. ``leaderboard.schema`` checks every field below; ``?`` = may be null.

    {"schema": "bench.results/2", "run": str, "created": iso-time, "model": str, "data": str,
     "data_built": {"steps", "drops", "reviser", "scorer", "files"}?,   # the build_data stage's report (bench/spa)
     "budget": {...}, "eval_set": str, "reference": str, "seeds": [seed, ...]?,
     "judge": {"name": str, "validated": bool, "reason": str,        # validated false: win rates shown in red
               "summary": {"agreement": {"value", "ci95"}, "near_equal_agreement": {"value", "ci95"},
                           "longer_wins_agreement": {"value"}, "system_spearman": {"value", "ci95"},
                           "null_battery": {"passed", "worst_loss_rate", "outputs": {label: rate}},
                           "labels": str?}?},      # whose labels the agreement is with ("GPT-4's judgements ...")
     "controls": {ROLE ("null" | "positive"): {"method": NAME, "what": str}}?,
     "suite": [metric names in display order],
     "methods": {NAME: {"checkpoint": str, "seeds": [seed, ...]?,
                        "train": {"wall_s": float, "steps": int, "curve": [[step, value], ...],
                                  "curve_name": str, "curves": {NAME: [[step, value], ...]}?,  # loss; PPO:
                                  "config": {...}?, "provenance": {...}?,     # reward_mean, kl, entropy, ...
                                  "sweep": {"chosen": {...}, "objective": str, "grid": [{...}]}?}?,
                        "data": str?,                          # the data spec it trained on
                        "winrate": {"win_rate", "ci": [lo, hi], "lc_win_rate", "lc_ci", "n", "avg_length"}?,
                        "vs_base": {"diff": float, "ci": [lo, hi]}?,
                        "suite": {METRIC: {"value": float, "stderr": float?},
                                  "figa_avg": {"value": float, "stderr": float?,     # terms, of: required
                                               "terms": [terms averaged], "of": [all the paper's terms]}}?,
                        "degeneration": {"n", "truncated"?, "loop", "empty", "degenerate", "mean_tokens",   # shares
                                         "flagged": bool, "threshold": num,           # bench/degeneration.py
                                         "flag_basis": "base" | "absolute"?,   # a trained method: vs base
                                         "flag_reason": str?,   # "+12.0 points [+5.0, +19.0] over base (...)"
                                         "vs_base": {"diff", "ci95", "p", "p_holm", "base"}?}?}},
     "verdicts": bench.verdicts.verdicts(...)?,   # tiers, pairs, headline, mdd, controls, aa (see bench/verdicts.py)
     "stages": {STAGE: {"seconds": float, "finished": iso-time}}?,
     "samples": "samples.json"?}      # path, relative to results.json, of the run's samples document:

    {"schema": "bench.samples/1", "run": str, "eval_set": str,
     "prompts": [{"id", "instruction": str, "reference": str}, ...],
     "sets": [{"method": NAME, "seed": seed?, "output": [str | null per prompt],      # one per answer set
               "preference": [1 win / 0.5 tie / 0 loss / soft / null per prompt], "failed": [bool, ...]}]}

The samples document carries what the sample browser and the ``model_outputs.json`` exports need (every answer,
its verdict); it is a second file so that ``results.json`` stays small enough to read for every run.

Win rates are fractions in [0, 1] (the page shows percentages); suite values are already in %. Changes from
``bench.results/1`` (refused, with the command that rewrites it): ``verdicts``, ``controls``, the judge's
``validated``/``reason``/``summary``, FIGA's average names its ``terms``; a "reward" suite column is never shown.

Site: ``index.html`` (every run), and per run ``<run>/run.html`` (head-to-head matrix, plots, stage times),
``<run>/<method>.html``, ``<run>/samples.html`` (+ ``samples/*.js`` data), ``<run>/leaderboard.csv``,
``<run>/outputs/<method>/seed-<s>/model_outputs.json``; ``leaderboard.csv`` over all runs. File names are cleaned
names (``views.slug``). Every page carries a Content-Security-Policy that allows only the site's own scripts and
styles; model text is escaped by jinja2's autoescape in pages and by ``samples.js_json`` in data files.

The page groups methods by tier (alphabetical inside a tier: members are not distinguishable), never by point
estimate; FIGA averages over different term sets get different columns, in a run and across runs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from . import plots
from .samples import counts, leaderboard_csv, write_browser, write_outputs
from .schema import SCHEMA, ResultsError, load_runs, load_samples  # noqa: F401  (SCHEMA, ResultsError: API)
from .views import HIDDEN_SUITE, TOO_WIDE, WIDE_RULE, across_runs, estimable, figa_label, view  # noqa: F401

_HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
       "form-action 'none'")
PPO_CURVES = ("reward_mean", "kl", "entropy", "response_length")
UNITS = {"loss": "loss", "reward_mean": "mean reward (RM units)", "kl": "KL to reference (nats per response)",
         "entropy": "entropy (nats per token)", "response_length": "response length (tokens)"}


def sparkline(points: list | None, width: int = 160, height: int = 36) -> str:
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


def _points(x: float) -> float:
    """A fraction in percentage points to one decimal, with rounding noise's "-0.0" shown as 0.0."""
    return round(100 * x, 1) + 0.0


def _pct(x) -> str:
    return "–" if x is None else f"{_points(x):.1f}"


def _signed(x) -> str:
    return "–" if x is None else f"{_points(x):+.1f}"


def _ci(ci) -> str:
    return "" if not ci else f"[{_points(ci[0]):.1f}, {_points(ci[1]):.1f}]"


def _p(p) -> str:
    return "–" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def environment() -> Environment:
    from markupsafe import Markup

    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters.update(pct=_pct, signed=_signed, ci=_ci, p=_p, estimable=estimable,
                       sparkline=lambda pts: Markup(sparkline(pts)))
    env.globals.update(csp=Markup(CSP), wide_rule=WIDE_RULE, too_wide_points=f"{100 * TOO_WIDE:.0f}")
    return env


def curves(m: dict) -> dict[str, list]:
    """A method's named training curves (older documents: the single ``curve``)."""
    t = m.get("train") or {}
    return dict(t.get("curves") or {}) or ({t.get("curve_name") or "loss": t["curve"]} if t.get("curve") else {})


def run_plots(run: dict) -> list[dict]:
    """The run page's figures: win rate vs length, reward vs KL (PPO), benchmarks, loss curves."""
    rows, out = run["rows"], []
    colours = plots.colour_map([r["name"] for r in rows])
    pts = [{"label": r["name"], "x": r["avg_length"], "y": 100 * r["win"],
            **({"lo": 100 * r["win_ci"][0], "hi": 100 * r["win_ci"][1]} if r.get("win_ci") else {})}
           for r in rows if r["win"] is not None and r.get("avg_length") is not None]
    out.append({"svg": plots.points(pts, "average answer length (characters)", "win rate vs reference (%)",
                                    "Win rate vs average length", colours),
                "caption": "Each method's win rate (95% interval) against its answers' mean length: a judge that "
                           "reads length puts these on a rising line."})
    ppo = {name: list(zip(c["kl"], c["reward_mean"])) for name, m in run["methods"].items()
           if {"kl", "reward_mean"} <= set(c := curves(m))}
    out.append({"svg": plots.lines({n: [[a[1], b[1]] for a, b in v] for n, v in ppo.items()},
                                   UNITS["kl"], UNITS["reward_mean"], "PPO: reward vs KL over iterations", colours),
                "caption": "Each PPO method's mean reward against its KL to the reference model, one point per iteration."})
    metrics = [s for s in run["suite_cols"] if s not in HIDDEN_SUITE]
    out.append({"svg": plots.bars({k: [{"label": r["name"], "value": (r["suite"].get(k) or {}).get("value"),
                                        "err": (r["suite"].get(k) or {}).get("stderr")} for r in rows] for k in metrics},
                                  "score (%)", "Benchmarks (± standard error)", colours),
                "caption": "lm-eval scores in % with their standard errors."})
    loss = {name: c["loss"] for name, m in run["methods"].items() if "loss" in (c := curves(m))}
    out.append({"svg": plots.lines(loss, "optimiser step", UNITS["loss"], "Training loss", colours),
                "caption": "Training loss per logged step (each method's own objective: not comparable across methods)."})
    return [p for p in out if p["svg"]]


def method_plots(m: dict) -> list[dict]:
    return [{"svg": plots.lines({name: pts}, "iteration" if name in PPO_CURVES else "optimiser step",
                                UNITS.get(name, name), name), "caption": f"{name} per logged step"}
            for name, pts in curves(m).items()]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # a reader never sees half a page
    tmp.write_text(text)
    tmp.replace(path)


def build(results_root: str | Path, out_dir: str | Path) -> Path:
    """Check every results.json under ``results_root`` (ResultsError names file and field) and write the site."""
    runs = load_runs(Path(results_root))
    out, env = Path(out_dir), environment()
    shutil.copytree(_HERE / "static", out / "static", dirs_exist_ok=True)
    views, sample_counts = [], {}
    for doc in runs:
        run = view(doc)
        samples = load_samples(doc)
        run["has_samples"], d, outputs = samples is not None, out / run["slug"], {}
        if samples:
            outputs = write_outputs(samples, doc.get("eval_set") or "", d)
            n = write_browser(samples, d / "samples")
            _write(d / "samples.html", env.get_template("samples.html.j2").render(run=run, n_prompts=n, root="../"))
            sample_counts[doc["run"]] = counts(samples)
        _write(d / "run.html", env.get_template("run.html.j2").render(run=run, plots=run_plots(run), outputs=outputs,
                                                                      root="../"))
        for row in run["rows"]:
            _write(d / f"{row['slug']}.html", env.get_template("method.html.j2").render(
                run=run, row=row, plots=method_plots(doc["methods"][row["name"]]),
                outputs=outputs.get(row["name"], []), root="../"))
        _write(d / "leaderboard.csv", leaderboard_csv([run], sample_counts))
        views.append(run)
    _write(out / "leaderboard.csv", leaderboard_csv(views, sample_counts))
    page = out / "index.html"
    _write(page, env.get_template("index.html.j2").render(runs=views, across=across_runs(runs), root="",
                                                          built=time.strftime("%Y-%m-%d %H:%M:%S")))
    return page
