"""Wall time of FIGA's benchmark suite on SmolLM2-135M-Instruct, per backend, and the scores it gives.

    .venv/bin/python benchmarks/suite_bench.py --fraction 1 --backends hf-prefix    # the full suite, measured
    .venv/bin/python benchmarks/suite_bench.py [--fraction 0.05] [--backends hf vllm]  # extrapolated

Runs ``bench suite smollm2-135m-instruct --suite figa`` through bench.suite.run_suite (never from cache)
on a fraction of every task (lm-eval ``limit`` < 1 keeps that share of each task's documents, so MMLU keeps
all 57 subjects). The full-suite time is extrapolated per entry as seconds / fraction, plus the one-off
model start (HF load or vLLM engine start), which does not scale with the data. With --fraction 1 it is a
measurement, not an extrapolation. Extrapolation undercounts hf-prefix's savings (a 5 % sample keeps one
MMLU question per subject, so no two share their five-shot prefix): measure it on the full suite.
Results go to results/benchmarks/suite_bench[-BACKENDS].json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def bench_backend(backend: str, fraction: float, shots: dict) -> dict:
    from bench.suite import SuiteConfig, SuiteRunner
    from bench.suite.summary import build_summary

    with tempfile.TemporaryDirectory() as out:
        runner = SuiteRunner("smollm2-135m-instruct", SuiteConfig(backend=backend, limit=fraction if fraction < 1 else None,
                                                                  shots=shots, out_dir=out, rerun=True))
        start = time.perf_counter()
        _ = runner.lm
        startup = time.perf_counter() - start
        entries = runner.run()  # shuts the model (and a vLLM engine) down when done
        total = time.perf_counter() - start
        summary = build_summary(entries, runner.provenance, {})
    per_entry = {e.entry: round(e.seconds, 1) for e in entries}
    return {
        "backend": backend, "fraction": fraction, "startup_s": round(startup, 1), "measured_total_s": round(total, 1),
        "entry_s": per_entry,
        "full_suite_estimate_s": round(startup + sum(s / fraction for s in per_entry.values()), 1),
        "scores": {k: round(v, 2) if v is not None else None for k, v in summary["figa"]["scores"].items()},
        "truthfulqa_mc1": summary["tasks"].get("figa_truthfulqa_mc1", {}).get("metrics", {}).get("acc"),
        "winogender_male_minus_female": summary["figa"]["winogender_male_minus_female"],
        "docs": {k: v["n"] for k, v in summary["tasks"].items() if "::" not in k},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.05, help="share of every task's documents (1 = full)")
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"])
    ap.add_argument("--mmlu-shots", type=int, default=None, help="override figa_mmlu's 5 shots")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    shots = {} if args.mmlu_shots is None else {"figa_mmlu": args.mmlu_shots}
    rows = []
    for backend in args.backends:
        row = bench_backend(backend, args.fraction, shots)
        row["cpus"] = len(os.sched_getaffinity(0))
        row["mmlu_shots"] = 5 if args.mmlu_shots is None else args.mmlu_shots
        print(json.dumps(row, indent=1), flush=True)
        rows.append(row)
    out = Path(f"results/benchmarks/suite_bench-{'-'.join(args.backends)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    for r in rows:
        print(f"{r['backend']:>5}: measured {r['measured_total_s']:.0f} s on {r['fraction']:.0%} of each task; "
              f"full suite ~{r['full_suite_estimate_s'] / 60:.1f} min (start-up {r['startup_s']:.0f} s)")


if __name__ == "__main__":  # vLLM's engine starts workers with spawn
    main()
