"""The sample browser's data and the exports, from a run's samples document (``bench.samples/1``).

The browser must open from disk, where a page cannot ``fetch()`` files, so its data are JavaScript files that
the page adds as ``<script src>``: one small index (every prompt's instruction, each answer set's verdict and
length: what search and filters need) and one file per prompt with the texts (loaded only for the prompts on
screen, so 805 prompts x 12 policies stays fast). The data are JSON with every ``<``, ``>``, ``&`` and line
separator escaped, so no model text can end a script or be read as markup.

Exports in AlpacaEval's formats: ``leaderboard.csv`` (one row per method, win rates in %) and each answer set's
``model_outputs.json`` (instruction, output, generator, dataset).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .views import slug

VERDICT = {1.0: "win", 0.5: "tie", 0.0: "loss"}


def js_json(value) -> str:
    """JSON that is also safe inside a script (no ``</script>``, no HTML comment, no line separators)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def set_label(s: dict) -> str:
    return s["method"] if s.get("seed") is None else f"{s['method']} seed {s['seed']}"


def write_browser(samples: dict, out: Path) -> int:
    """``out/index.js`` and ``out/p<i>.js``; returns the number of prompts."""
    out.mkdir(parents=True, exist_ok=True)
    sets = samples["sets"]
    index = {"sets": [{"label": set_label(s), "method": s["method"], "seed": s.get("seed")} for s in sets],
             "prompts": []}
    for i, p in enumerate(samples["prompts"]):
        outputs = [s["output"][i] for s in sets]
        index["prompts"].append({"id": p["id"], "instruction": p["instruction"], "ref_len": len(p.get("reference") or ""),
                                 "pref": [s["preference"][i] for s in sets],
                                 "len": [None if o is None else len(o) for o in outputs]})
        (out / f"p{i}.js").write_text(f"BENCH_SAMPLES.prompt({i}, " + js_json(
            {"reference": p.get("reference"), "outputs": outputs,
             "failed": [bool((s.get("failed") or [False] * (i + 1))[i]) for s in sets]}) + ");\n")
    (out / "index.js").write_text("BENCH_SAMPLES.index(" + js_json(index) + ");\n")
    return len(samples["prompts"])


def write_outputs(samples: dict, dataset: str, out: Path) -> dict[str, list[dict]]:
    """Each answer set as AlpacaEval's ``model_outputs.json``; returns {method: [{"seed", "path"}]} (site-relative)."""
    links: dict[str, list[dict]] = {}
    for s in samples["sets"]:
        rows = [{"instruction": p["instruction"], "output": o, "generator": set_label(s), "dataset": dataset}
                for p, o in zip(samples["prompts"], s["output"]) if o is not None]
        rel = Path("outputs") / slug(s["method"]) / (f"seed-{slug(str(s['seed']))}" if s.get("seed") is not None
                                                     else "all") / "model_outputs.json"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(json.dumps(rows, ensure_ascii=False, indent=1))
        links.setdefault(s["method"], []).append({"seed": s.get("seed"), "path": rel.as_posix(), "n": len(rows)})
    return links


def counts(samples: dict | None) -> dict[str, dict]:
    """{method: {"n_wins", "n_draws", "n_losses", "n_total"}} over all of a method's answer sets."""
    out: dict[str, dict] = {}
    for s in (samples or {}).get("sets", []):
        c = out.setdefault(s["method"], {"n_wins": 0, "n_draws": 0, "n_losses": 0, "n_total": 0})
        for pref in s["preference"]:
            if pref is None:
                continue
            c["n_total"] += 1
            c["n_wins" if pref > 0.5 else "n_draws" if pref == 0.5 else "n_losses"] += 1
    return out


CSV_COLUMNS = ["name", "win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
               "discrete_win_rate", "mode", "avg_length", "length_controlled_winrate", "lc_standard_error",
               "win_rate_ci_low", "win_rate_ci_high", "lc_ci_low", "lc_ci_high", "tier", "n_seeds", "run", "judge"]


def leaderboard_csv(runs: list[dict], sample_counts: dict[str, dict]) -> str:
    """AlpacaEval's leaderboard columns (win rates in %, n_wins_base = the reference's wins) plus our intervals,
    tier, seeds, run and judge. ``sample_counts``: {run: counts(samples)}."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS)
    w.writeheader()
    pct = (lambda x: None if x is None else round(100 * x, 4))
    for run in runs:
        methods = ((run.get("verdicts") or {}).get("methods")) or {}
        for row in run["rows"]:
            vm, c = methods.get(row["name"]) or {}, sample_counts.get(run["run"], {}).get(row["name"], {})
            win_ci, lc_ci = row.get("win_ci") or [None, None], row.get("lc_ci") or [None, None]
            total = c.get("n_total")
            w.writerow({"name": row["name"], "win_rate": pct(row["win"]),
                        "standard_error": pct((vm.get("win_rate") or {}).get("se")),
                        "n_wins": c.get("n_wins"), "n_wins_base": c.get("n_losses"), "n_draws": c.get("n_draws"),
                        "n_total": total,
                        "discrete_win_rate": round(100 * (c["n_wins"] + 0.5 * c["n_draws"]) / total, 4) if total else None,
                        "mode": "bench", "avg_length": row.get("avg_length"),
                        "length_controlled_winrate": pct(row["lc"]),
                        "lc_standard_error": pct((vm.get("lc_win_rate") or {}).get("se")),
                        "win_rate_ci_low": pct(win_ci[0]), "win_rate_ci_high": pct(win_ci[1]),
                        "lc_ci_low": pct(lc_ci[0]), "lc_ci_high": pct(lc_ci[1]), "tier": vm.get("tier"),
                        "n_seeds": row.get("n_seeds"), "run": run["run"], "judge": run["judge"]["name"]})
    return buf.getvalue()
