"""Training throughput of SFT and FIGA on SmolLM2, edit-labelling speed, and peak memory.

    .venv/bin/python benchmarks/train_bench.py [--steps 6] [--seq 256] [--batch 4]

Throughput is measured through the real training loop (bench.training.train) on real ExpertQA pairs whose
prompt+response fill at least ``--seq`` tokens, so every sequence is exactly ``--seq`` long (no padding).
Steps after the first are averaged. Results go to results/benchmarks/train_bench.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_labels(a: list[int], b: list[int]) -> tuple[list[bool], list[bool]]:
    """Textbook O(n*m) Levenshtein DP with backtrace, one Python step per cell: the same semantics as
    bench.edits.edit_labels (substitute/delete/insert), for the speed comparison."""
    n, m = len(a), len(b)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    neg, pos = [False] * n, [False] * m
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            if a[i - 1] != b[j - 1]:
                neg[i - 1] = pos[j - 1] = True
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            neg[i - 1] = True
            i -= 1
        else:
            pos[j - 1] = True
            j -= 1
    return neg, pos


def bench_labels(tokenizer, n_pairs: int) -> dict:
    from bench.data import load
    from bench.edits import edit_labels

    pairs = [(tokenizer(t.initial)["input_ids"], tokenizer(t.revised)["input_ids"]) for t in load("expertqa")[:n_pairs]]
    t0 = time.perf_counter()
    fast = [edit_labels(a, b) for a, b in pairs]
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = [naive_labels(a, b) for a, b in pairs]
    t_slow = time.perf_counter() - t0
    # Several optimal alignments can exist; equal edit counts show both compute the same distance.
    dist_equal = sum(
        int(np.sum(f[0])) == sum(s[0]) and int(np.sum(f[1])) == sum(s[1]) for f, s in zip(fast, slow)
    )
    return {
        "pairs": len(pairs),
        "mean_tokens_per_response": statistics.mean(len(a) + len(b) for a, b in pairs) / 2,
        "rapidfuzz_pairs_per_s": len(pairs) / t_fast,
        "naive_python_pairs_per_s": len(pairs) / t_slow,
        "speedup": t_slow / t_fast,
        "pairs_with_identical_label_counts": dist_equal,
    }


def bench_training(recipe: str, steps: int, seq: int, batch: int) -> dict:
    from bench import registry
    from bench.config import build_config
    from bench.models import EMBEDDED, resolve

    spec, cls = registry.get(recipe)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "long.jsonl"
        # Real ExpertQA pairs, long enough that every truncated sequence is exactly `seq` tokens.
        from bench.data import load

        rows = [{"q": t.prompt[0]["content"], "a": t.initial, "b": t.revised} for t in load("expertqa")
                if len(t.initial) > 6 * seq and len(t.revised) > 6 * seq]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("bench", dict(
            model=resolve(EMBEDDED), data=f"{data}?prompt=q&initial=a&revised=b", max_length=seq, batch_size=batch,
            max_steps=steps, val_fraction=0.0, output_dir=f"{tmp}/out", save_steps=10_000, learning_rate=1e-6))])
        t0 = time.perf_counter()
        out = cls().run(cfg)
        wall = time.perf_counter() - t0
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    rates = [r["tokens_per_s"] for r in log[1:]]
    seqs_per_step = batch * (2 if recipe == "figa" else 1)
    return {"recipe": recipe, "seq": seq, "sequences_per_step": seqs_per_step, "steps": steps,
            "tokens_per_s_median": statistics.median(rates), "tokens_per_s_all": rates, "wall_s": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=100)
    args = ap.parse_args()

    from bench.models import EMBEDDED, load_tokenizer

    report = {"labels": bench_labels(load_tokenizer(EMBEDDED), args.pairs)}
    print(json.dumps(report["labels"], indent=2))
    for recipe in ("sft", "figa"):
        report[recipe] = bench_training(recipe, args.steps, args.seq, args.batch)
        print(json.dumps(report[recipe], indent=2))
    report["figa_overhead_per_token"] = report["sft"]["tokens_per_s_median"] / report["figa"]["tokens_per_s_median"] - 1
    report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({k: report[k] for k in ("figa_overhead_per_token", "peak_rss_gib")}, indent=2))
    out = Path("results/benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_bench.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
