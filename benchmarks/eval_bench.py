"""Evaluation-side speed and judge reliability, measured (never asserted in tests).

1. Generation throughput on SmolLM2-135M-Instruct for AlpacaEval prompts (greedy, fp32 on CPU):
   vLLM offline batch vs HF ``generate``, new tokens per second of generation (engine start reported apart),
   and how many answers the two backends produce token-for-token identically.
2. The local judge: agreement with held-out human preference labels (95% bootstrap CI) and pairs judged per
   second with an empty cache.
3. ``bench eval`` end to end (generate + judge + bootstrap) with an empty cache, then the re-run (all cached).

    python benchmarks/eval_bench.py                       # the full-size run (200 prompts, 256 tokens)
    python benchmarks/eval_bench.py --prompts 32 --hf-prompts 16 --judge-pairs 100 --eval-prompts 50

On a shared 2-core CPU the HF baseline is slow (~40 tokens/s), so it runs on ``--hf-prompts`` prompts (the
first of the vLLM set) and its throughput is compared at that size; the report says which sizes were used.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_generation(args) -> dict:
    from bench.chat import render_prompt
    from bench.data import load
    from bench.generation import HFBackend, Sampling, VLLMBackend
    from bench.models import load_tokenizer, resolve

    model_dir = resolve("smollm2-135m-instruct")
    tok = load_tokenizer(model_dir)
    prompts = load("alpaca_eval", limit=args.prompts)
    ids = [tok(render_prompt(tok, p.prompt), add_special_tokens=False)["input_ids"] for p in prompts]
    sampling = Sampling(max_new_tokens=args.max_new_tokens)
    out = {"model": "SmolLM2-135M-Instruct fp32", "max_new_tokens": args.max_new_tokens, "threads": os.cpu_count()}

    t0 = time.time()
    vllm = VLLMBackend(model_dir, tok, max_num_seqs=args.max_num_seqs)
    start = time.time() - t0
    t0 = time.time()
    v = vllm.generate(ids, sampling)
    dt = time.time() - t0
    n_tok = sum(len(c.token_ids) for c in v)
    out["vllm"] = {"version": vllm.version, "prompts": len(ids), "max_num_seqs": args.max_num_seqs, "engine_start_s": round(start, 1),
                   "generate_s": round(dt, 1), "new_tokens": n_tok, "tokens_per_s": round(n_tok / dt, 1)}
    t0 = time.time()
    v_small = vllm.generate(ids[: args.hf_prompts], sampling)
    dt = time.time() - t0
    n_small = sum(len(c.token_ids) for c in v_small)
    out["vllm_same_prompts_as_hf"] = {"prompts": args.hf_prompts, "generate_s": round(dt, 1), "tokens_per_s": round(n_small / dt, 1)}
    vllm.close()  # shut the engine down: its processes hold the weights and the KV cache
    del vllm
    gc.collect()

    hf = HFBackend(model_dir, tok, batch_size=args.hf_batch_size)
    t0 = time.time()
    h = hf.generate(ids[: args.hf_prompts], sampling)
    dt = time.time() - t0
    n_hf = sum(len(c.token_ids) for c in h)
    out["hf"] = {"prompts": args.hf_prompts, "batch_size": args.hf_batch_size, "generate_s": round(dt, 1), "new_tokens": n_hf,
                 "tokens_per_s": round(n_hf / dt, 1)}
    out["speedup_vllm_over_hf_same_prompts"] = round(out["vllm_same_prompts_as_hf"]["tokens_per_s"] / out["hf"]["tokens_per_s"], 2)
    out["speedup_vllm_full_set_over_hf"] = round(out["vllm"]["tokens_per_s"] / out["hf"]["tokens_per_s"], 2)
    out["greedy_identical_answers"] = f"{sum(a.token_ids == b.token_ids for a, b in zip(v, h))}/{len(h)}"
    del hf
    gc.collect()
    return out


def bench_judge(args) -> dict:
    import numpy as np

    from bench.judges import card, get
    from bench.judges.card import _ci, _fresh_cache
    from bench.judges.local_rm import human_pairs

    judge = get("local-rm")
    _fresh_cache(judge)
    held = [p for _, v in human_pairs().values() for p in v[: args.judge_pairs // 2]]
    t0 = time.time()
    verdicts = judge.compare([p.prompt for p in held], [p.chosen for p in held], [p.rejected for p in held])
    dt = time.time() - t0
    pref = np.array([0.5 if v.preference is None else v.preference for v in verdicts])
    c = card("local-rm") or {}
    return {"pairs": len(held), "seconds": round(dt, 1), "pairs_per_s": round(len(held) / dt, 2),
            "agreement_on_these_pairs": round(float(pref.mean()), 4), "agreement_ci95": [round(x, 4) for x in _ci(pref)],
            "card": {k: c.get(k) for k in ("agreement", "agreement_ci95", "held_out_pairs", "position_consistency")}}


def bench_eval(args) -> dict:
    """``bench eval`` in a subprocess with an empty cache (the converted model is shared, not re-made)."""
    from bench.models import cache_dir

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    (work / "cache").mkdir()
    (work / "cache" / "models").symlink_to(cache_dir() / "models")
    env = {**os.environ, "BENCH_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [str(Path(sys.executable).parent / "bench"), "eval", "smollm2-135m-instruct", "--limit", str(args.eval_prompts),
           "--max-new-tokens", str(args.max_new_tokens), "--max-num-seqs", str(args.max_num_seqs), "--output-dir", str(work / "out"),
           "--json", str(work / "report.json")]
    times = []
    for _ in range(2):  # the second run is the re-run: everything cached
        t0 = time.time()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append(round(time.time() - t0, 1))
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    report = json.loads((work / "report.json").read_text())["results"][0]
    return {"prompts": args.eval_prompts, "wall_s_empty_cache": times[0], "wall_s_rerun": times[1],
            "win_rate": report["win_rate"], "win_rate_ci95": report["win_rate_ci95"], "lc_win_rate": report["lc_win_rate"],
            "lc_win_rate_ci95": report["lc_win_rate_ci95"], "avg_len_model": report["avg_len_model"],
            "avg_len_ref": report["avg_len_ref"], "judge_failures": report["judge_failures"], "work_dir": str(work)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=200, help="AlpacaEval prompts for vLLM")
    ap.add_argument("--hf-prompts", type=int, default=32, help="prompts for the (slow) HF baseline")
    ap.add_argument("--hf-batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--judge-pairs", type=int, default=200, help="held-out human pairs for the judge speed")
    ap.add_argument("--eval-prompts", type=int, default=200, help="prompts for bench eval end to end")
    ap.add_argument("--only", choices=["generation", "judge", "eval"], action="append", help="run only these parts")
    ap.add_argument("--out", type=Path, default=Path("results/bench/eval_bench.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parts = args.only or ["generation", "judge", "eval"]
    report = {}
    for name, fn in (("generation", bench_generation), ("judge", bench_judge), ("eval", bench_eval)):
        if name in parts:
            t0 = time.time()
            report[name] = fn(args)
            print(json.dumps({name: report[name]}, indent=2), flush=True)
            print(f"[{name} took {time.time() - t0:.0f} s]", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":  # vLLM's engine spawns worker processes: the guard is required
    main()
