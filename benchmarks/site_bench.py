"""Build time, size and first paint of the leaderboard site for a large run (synthesised: no such run exists).

    .venv/bin/python benchmarks/site_bench.py [--methods 12] [--prompts 805] [--seeds 2] [--no-browser]

Writes a results document with 12 policies (base, methods, two controls) x 805 prompts (AlpacaEval's size), their
verdicts (bench.verdicts, n_boot 200), training curves, a samples document and hostile names and answers; builds
the site; reports seconds, files and bytes; then opens the index and the sample browser in headless Chromium
(/usr/bin/chromium, through Playwright) and reads first-contentful-paint and the time until the first prompt's
texts are on screen. Results go to results/benchmarks/site_bench.json.

``synthetic_run`` and ``launch`` are also what tests/test_site_browser.py builds and opens its site with.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
METHOD_NAMES = ["sft", "figa", "dpo", "ppo", "fg-ppo", "fg-ppo-terminal", "rm-sweep", "kto", "orpo",
                f"evil{HOSTILE}"]
WORDS = ("the model answers with a careful list of steps and a short summary of why each one matters "
         "for the reader who asked").split()


def _answer(rng, i: int, hostile: bool) -> str:
    text = " ".join(rng.choice(WORDS, size=int(rng.integers(20, 300))))
    return f"{HOSTILE} {text} </script><!-- {i}" if hostile and i % 7 == 0 else text


def synthetic_run(root: Path, n_methods: int = 10, n_prompts: int = 805, seeds=(0, 1), hostile: bool = True,
                  n_boot: int = 200, suite: bool = True, curves: bool = True, run: str | None = None) -> Path:
    """A run directory with ``results.json`` + ``samples.json``: ``base``, ``n_methods`` methods (each at every
    seed) and a null and a positive control; returns the run directory."""
    from bench.verdicts import verdicts

    rng = np.random.default_rng(0)
    run = run or (f"big{HOSTILE}" if hostile else "big")
    names = METHOD_NAMES[:n_methods] if hostile else [m for m in METHOD_NAMES if "<" not in m][:n_methods]
    ids = [f"p{i}" for i in range(n_prompts)]
    prompts = [{"id": pid, "instruction": f"Question {i}: " + " ".join(rng.choice(WORDS, size=12))
                + (f" {HOSTILE}" if hostile and i % 11 == 0 else ""),
                "reference": _answer(rng, i + 1, hostile)} for i, pid in enumerate(ids)]
    units = [("base", None)] + [(m, s) for m in names for s in seeds] + [("null", None), ("positive", None)]
    frames, sets = {}, []
    for name, seed in units:
        order = (["base", *names].index(name) + 1) / (len(names) + 2) if name in ["base", *names] else 0
        rate = {"null": 0.0, "positive": 0.97}.get(name, 0.15 + 0.5 * order + 0.02 * (seed or 0))  # seeds agree
        outputs = (["I don't know."] * n_prompts if name == "null"
                   else [_answer(rng, i, hostile) for i in range(n_prompts)])
        pref = (rng.random(n_prompts) < rate).astype(float)
        pref[rng.random(n_prompts) < 0.05] = 0.5
        frames.setdefault(name, {})[seed or 0] = pd.DataFrame(
            {"id": ids, "preference": pref, "failed": False, "len_model": [len(o) for o in outputs],
             "len_ref": [len(p["reference"]) for p in prompts]})
        sets.append({"method": name, "seed": seed, "output": outputs, "preference": pref.tolist(),
                     "failed": [False] * n_prompts})
    v = verdicts(frames, controls={"null": "null", "positive": "positive"}, n_boot=n_boot)
    methods = {}
    for name in ["base", *names, "null", "positive"]:
        lens = np.concatenate([f["len_model"].to_numpy() for f in frames[name].values()])
        vm = v["methods"][name]
        m = {"checkpoint": None if name in ("null", "positive") else f"checkpoints/{name}",
             "seeds": list(seeds) if name in names else [],
             "winrate": {"win_rate": vm["win_rate"]["value"], "ci": vm["win_rate"]["ci95"],
                         "lc_win_rate": vm["lc_win_rate"]["value"], "lc_ci": vm["lc_win_rate"]["ci95"],
                         "n": n_prompts, "avg_length": float(lens.mean())}}
        if name in names and curves:
            ppo = "ppo" in name
            steps = range(1, 21)
            m["train"] = {"wall_s": 100.0 + len(name), "steps": 20, "curve_name": "reward_mean" if ppo else "loss",
                          "config": {"learning_rate": 1e-5, "name": name}, "provenance": {"versions": {"torch": "2.13"}},
                          "curves": ({"reward_mean": [[s, 0.1 * s] for s in steps], "kl": [[s, 0.02 * s * s] for s in steps],
                                      "entropy": [[s, 2 - 0.01 * s] for s in steps],
                                      "response_length": [[s, 100 + s] for s in steps]} if ppo
                                     else {"loss": [[s, 2.0 / s] for s in steps]}),
                          "sweep": {"chosen": {"learning_rate": 1e-5}, "objective": "held-out NLL",
                                    "grid": [{"learning_rate": 1e-6, "score": 2.2}, {"learning_rate": 1e-5, "score": 2.1}]}}
            m["train"]["curve"] = m["train"]["curves"][m["train"]["curve_name"]]
        if suite and name not in ("null", "positive"):
            m["suite"] = {k: {"value": float(rng.uniform(20, 60)), "stderr": 1.2} for k in ("mmlu", "truthfulqa")}
        m["degeneration"] = {"n": n_prompts * len(frames[name]), "truncated": 0.3, "loop": 0.05, "empty": 0.0,
                             "degenerate": 0.05 if name != "dpo" else 0.6, "mean_tokens": 150.0,
                             "flagged": name == "dpo", "threshold": 0.2}
        methods[name] = m
    doc = {"schema": "bench.results/2", "run": run, "created": "2026-12-05T09:00:00", "model": "smollm2-135m-instruct",
           "data": "expertqa", "budget": {"max_steps": 20}, "eval_set": "alpaca_eval",
           "reference": "alpaca_eval reference outputs", "seeds": list(seeds),
           "judge": {"name": "mimic-gpt4", "validated": True, "reason": None,
                     "summary": {"agreement": {"value": 0.866, "ci95": [0.852, 0.880]},
                                 "near_equal_agreement": {"value": 0.69, "ci95": [0.656, 0.723]},
                                 "longer_wins_agreement": {"value": 0.864},
                                 "system_spearman": {"value": 0.66, "ci95": [0.49, 0.73]},
                                 "null_battery": {"passed": True, "worst_loss_rate": 0.995, "outputs": {"empty": 1.0}},
                                 "labels": "GPT-4's judgements (ae1: AlpacaEval)"}},
           "controls": {"null": {"method": "null", "what": "the constant answer \"I don't know.\""},
                        "positive": {"method": "positive", "what": "the reference answers of alpaca_eval-gpt4turbo"}},
           "suite": ["mmlu", "truthfulqa"] if suite else [], "methods": methods, "verdicts": v,
           "stages": {"train": {"seconds": 3000.0, "finished": "2026-12-05T08:00:00"},
                      "judge": {"seconds": 3.2, "finished": "2026-12-05T08:30:00"}},
           "samples": "samples.json"}
    out = Path(root) / "runs" / ("hostile" if hostile else "plain")
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples.json").write_text(json.dumps({"schema": "bench.samples/1", "run": run, "eval_set": "alpaca_eval",
                                                  "prompts": prompts, "sets": sets}))
    (out / "results.json").write_text(json.dumps(doc, default=float))
    return out


CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it): no browser download
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def launch(playwright):
    """The system Chromium, headless and quiet (no network of its own)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def first_paint(page_url: str, wait_for: str | None = None) -> dict:
    """First contentful paint (ms) of a page in headless Chromium, and when ``wait_for`` first matched."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(page_url)
        ready = None
        if wait_for:
            page.wait_for_selector(wait_for)
            ready = 1000 * (time.perf_counter() - t0)
        fcp = page.evaluate("() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
        browser.close()
    return {"first_contentful_paint_ms": fcp, "ready_ms": ready}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", type=int, default=9, help="methods besides base and the two controls")
    ap.add_argument("--prompts", type=int, default=805)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--out", default="results/benchmarks")
    args = ap.parse_args()
    from leaderboard.build import build

    out = Path(args.out)
    t0 = time.perf_counter()
    run_dir = synthetic_run(out / "site_bench", args.methods, args.prompts, tuple(range(args.seeds)), hostile=False)
    synth = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = build(run_dir.parent, out / "site_bench" / "site")
    seconds = time.perf_counter() - t0
    files = [p for p in index.parent.rglob("*") if p.is_file()]
    result = {"policies": args.methods + 3, "prompts": args.prompts, "seeds": args.seeds,
              "answer_sets": args.methods * args.seeds + 3, "synthesise_s": round(synth, 1),
              "build_s": round(seconds, 2), "files": len(files),
              "bytes": sum(p.stat().st_size for p in files),
              "results_json_bytes": (run_dir / "results.json").stat().st_size,
              "samples_json_bytes": (run_dir / "samples.json").stat().st_size}
    if not args.no_browser:
        samples = next(index.parent.glob("*/samples.html"))
        result["index"] = first_paint(index.resolve().as_uri(), "table.lb")
        result["samples"] = first_paint(samples.resolve().as_uri(), ".sample .answer.reference")
    print(json.dumps(result, indent=1))
    (out / "site_bench.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
