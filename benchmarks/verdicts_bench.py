"""Calibration and cost of the verdicts (bench/verdicts.py).

    .venv/bin/python benchmarks/verdicts_bench.py [--experiments 1000] [--skip-calibration]

- calibration: the share of simulated A/A experiments (100 prompts, ``bench.verdicts.simulate_rejections``)
  that the pairwise test calls different at nominal 5 %, for 1, 2, 3 and 5 seeds a side and seed-level logit
  noise sd 0, 0.15, 0.3, 0.6 (about 0, 3.5, 7 and 14 points of win rate between seeds at 40 %).
- power: the share of experiments with a true difference of 0.45 logit (about 10 points of win rate) that
  the test calls different, seed noise sd 0.15.
- speed: seconds for ``verdicts()`` on 8 policies (base, 5 methods, null, positive) x 2 or 3 seeds x 100 or 805
  prompts, n_boot 2000 (the report stage's call).

Results go to results/benchmarks/verdicts_bench.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.verdicts import simulate_rejections, verdicts


def frames(n_seeds: int, n_prompts: int, rng) -> dict:
    ids = [f"p{i}" for i in range(n_prompts)]

    def judged(rate):
        return pd.DataFrame({"id": ids, "preference": (rng.random(n_prompts) < rate).astype(float), "failed": False,
                             "len_model": rng.normal(300, 80, n_prompts), "len_ref": rng.normal(300, 80, n_prompts)})

    rates = {"sft": 0.35, "figa": 0.45, "dpo": 0.33, "ppo": 0.30, "fg-ppo": 0.36}
    out = {m: {s: judged(r) for s in range(n_seeds)} for m, r in rates.items()}
    return out | {"base": {0: judged(0.25)}, "null": {0: judged(0.0)}, "positive": {0: judged(0.9)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--skip-calibration", action="store_true")
    args = ap.parse_args()
    out = {"calibration": {}, "power": {}, "speed": {}}
    if not args.skip_calibration:
        for n_seeds in (1, 2, 3, 5):
            for sd in (0.0, 0.15, 0.3, 0.6):
                rate = simulate_rejections(n_seeds, sd, args.experiments, seed=100 + n_seeds)
                out["calibration"][f"seeds={n_seeds} seed_sd={sd}"] = rate
                print(f"seeds {n_seeds}  seed sd {sd:4}  false-positive rate {rate:.3f}", flush=True)
        for n_seeds in (1, 2, 3, 5):
            rate = simulate_rejections(n_seeds, 0.15, args.experiments, seed=200 + n_seeds, effect=0.45)
            out["power"][f"seeds={n_seeds} seed_sd=0.15 effect=0.45"] = rate
            print(f"seeds {n_seeds}  power at ~10 points {rate:.3f}", flush=True)
    rng = np.random.default_rng(0)
    for n_seeds, n_prompts in ((2, 100), (3, 100), (3, 805)):
        t0 = time.perf_counter()
        verdicts(frames(n_seeds, n_prompts, rng), n_boot=2000)
        seconds = out["speed"][f"seeds={n_seeds} prompts={n_prompts}"] = round(time.perf_counter() - t0, 1)
        print(f"verdicts(): 8 policies x {n_seeds} seeds x {n_prompts} prompts: {seconds} s", flush=True)
    path = Path("results/benchmarks/verdicts_bench.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(path)


if __name__ == "__main__":
    main()
