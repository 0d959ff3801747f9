"""Each sweep point's answers judged head-to-head against the untrained model's own answers.

    .venv/bin/python benchmarks/sweep_head_to_head.py [--root results/sweeps] [--methods sft,figa,dpo]

The sweep objective judges answers against the held-out prompts' reference answers (expert revisions on
ExpertQA), where the untrained model already loses nine prompts in ten: a gain has little room to show. This
check re-judges the answers a sweep cached (``<root>/answers/<method>/<point>``) against the untrained model's
answers to the same prompts, where the untrained model scores 50 % by construction, to see whether any rate
helps that the reference-based objective could not resolve. A degenerate answer (``bench.degeneration``) loses
to a sound one. Run it after the sweeps, with the same ``val_fraction`` and seed as they used (defaults: the
default run's). Results go to results/benchmarks/sweep_head_to_head.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.degeneration import is_degenerate
from bench.generation import read_rows
from bench.heldout_winrate import N_BOOT, heldout_prompts
from bench.judges import get
from bench.metrics import interval, resample_weights


def answers(folder: Path, ids: list[str]) -> list[dict]:
    by_id = {r["id"]: r for r in read_rows(folder / "generations.jsonl")}
    return [by_id[i] for i in ids]


def head_to_head(judge, prompts, rows: list[dict], base: list[dict]) -> dict:
    verdicts = judge.compare([p.prompt for p in prompts], [r["output"] for r in rows], [b["output"] for b in base])
    prefs = np.array([0.5 if v.preference is None else v.preference for v in verdicts], float)
    for k, (r, b) in enumerate(zip(rows, base)):
        bad, base_bad = is_degenerate(r["output"], r["token_ids"]), is_degenerate(b["output"], b["token_ids"])
        if bad != base_bad:
            prefs[k] = 0.0 if bad else 1.0
    w = resample_weights(len(prefs), N_BOOT, 0)  # the resamples the sweep's own intervals use
    return {"win_rate_vs_untrained": float(prefs.mean()), "ci95": interval(w @ prefs / w.sum(1)),
            "identical_answers": sum(r["output"] == b["output"] for r, b in zip(rows, base)), "n": len(prefs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("results/sweeps"))
    ap.add_argument("--methods", default="sft,figa,dpo,ppo,fg-ppo")
    ap.add_argument("--data", default="expertqa")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge", default="mimic-gpt4")
    args = ap.parse_args()

    prompts = heldout_prompts(args.data, args.val_fraction, args.seed)
    ids = [p.id for p in prompts]
    judge = get(args.judge)
    base = answers(args.root / "answers" / "untrained", ids)
    out = {}
    for method in args.methods.split(","):
        for folder in sorted((args.root / "answers" / method).glob("*")):
            result = head_to_head(judge, prompts, answers(folder, ids), base)
            out[f"{method} {folder.name}"] = result
            lo, hi = result["ci95"]
            print(f"{method:7s} {folder.name:24s} {100 * result['win_rate_vs_untrained']:5.1f} % vs untrained "
                  f"[{100 * lo:.1f}, {100 * hi:.1f}]  identical answers {result['identical_answers']}/{result['n']}")
    dest = Path("results/benchmarks/sweep_head_to_head.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"judge": args.judge, "root": str(args.root), "points": out}, indent=1))


if __name__ == "__main__":
    main()
