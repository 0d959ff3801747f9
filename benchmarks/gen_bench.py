"""Generation speed, measured (never asserted in tests): what a vLLM engine's start costs, what one engine
with checkpoint swaps saves over a fresh engine per checkpoint, and PPO iterations with HF vs vLLM rollouts.

1. Start-up options on SmolLM2-135M-Instruct (fp32): eager vs torch.compile, KV cache size; engine start,
   decode tokens/s, and the generate cost (start + decode) at the smoke (12 prompts x 32 tokens) and
   default (``--default-prompts`` x 192 tokens) eval sizes.
2. The generate stage (``bench.generation.generate_evals``, smoke size) for 1, 3 and 6 checkpoints: one
   engine with swaps, vs a fresh engine per checkpoint (1 and 3 measured; 6 = 2 x the 3-checkpoint cost).
3. One PPO iteration of the run config's PPO options (runs/smollm2-cpu.yaml) with HF ``generate`` vs vLLM
   rollouts (a token-id reward, so no reward-model forward in either; the engine start is listed apart).

    python benchmarks/gen_bench.py                        # full size (~25 min on 2 shared cores)
    python benchmarks/gen_bench.py --default-prompts 32 --skip-compiled

Prints one table and writes JSON (``--out``). Timings on a shared machine include other people's load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def bench_startup(args, model_dir, smoke_ids, default_ids) -> list[dict]:
    from vllm import SamplingParams

    from bench.engine import Engine

    variants = [("eager, KV 2 GiB", dict(enforce_eager=True, kv_cache_gb=2.0)),
                ("eager, KV 0.5 GiB", dict(enforce_eager=True, kv_cache_gb=0.5))]
    if not args.skip_compiled:
        variants.append(("torch.compile, KV 2 GiB", dict(enforce_eager=False, kv_cache_gb=2.0)))
    rows = []
    for label, opts in variants:
        engine, start = timed(Engine, model_dir, **opts)
        with engine:
            row = {"variant": label, "start_s": round(start, 1)}
            for size, ids, n in (("smoke", smoke_ids, 32), ("default", default_ids, 192)):
                outs, dt = timed(engine.generate, ids, SamplingParams(max_tokens=n, temperature=0, detokenize=False))
                tokens = sum(len(o.outputs[0].token_ids) for o in outs)
                row.update({f"{size}_decode_s": round(dt, 1), f"{size}_tokens": tokens,
                            f"{size}_tok_s": round(tokens / dt, 1), f"{size}_stage_s": round(start + dt, 1)})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_stage(args, model_dir, prompts, work: Path) -> dict:
    from bench.generation import Sampling, generate_eval, generate_evals

    ckpts = []
    for i in range(6):  # six checkpoint directories (hard links: same bytes, different paths, so every one is loaded)
        d = work / f"ckpt{i}"
        shutil.copytree(model_dir, d, copy_function=os.link)
        ckpts.append(str(d))
    sampling = Sampling(max_new_tokens=32)
    out = {}
    for n in (1, 3, 6):
        jobs = [(f"m{i}", ckpts[i], work / f"swap{n}" / f"m{i}") for i in range(n)]
        _, dt = timed(generate_evals, jobs, prompts, "vllm", sampling, dataset="alpaca_eval")
        out[f"swap_{n}"] = round(dt, 1)
        print(f"one engine, {n} checkpoints: {dt:.1f}s", flush=True)
    fresh = []
    for i in range(3):
        _, dt = timed(generate_eval, ckpts[i], prompts, work / "fresh" / f"m{i}", "vllm", sampling)
        fresh.append(dt)
        print(f"fresh engine, checkpoint {i + 1}: {dt:.1f}s", flush=True)
    out.update(fresh_1=round(fresh[0], 1), fresh_3=round(sum(fresh), 1), fresh_6_est=round(2 * sum(fresh), 1))
    return out


def bench_ppo(args, work: Path) -> dict:
    from baselines.ppo import Ppo
    from bench.config import build_config, load_yaml

    options = load_yaml(Path(__file__).parent.parent / "runs" / "smollm2-cpu.yaml")["method_options"]["ppo"]
    out = {"options": options}
    for backend in ("hf", "vllm"):
        cfg = build_config(Ppo.Config, [("bench", dict(model="smollm2-135m-instruct", data="expertqa", limit=64,
                                                       reward_model="token-id:13", output_dir=str(work / f"ppo-{backend}"),
                                                       rollout_backend=backend, **{**options, "max_steps": args.ppo_iterations}))])
        _, wall = timed(Ppo().run, cfg)
        log = [json.loads(line) for line in (work / f"ppo-{backend}" / "ppo_log.jsonl").read_text().splitlines()]
        per = {k: round(sum(r[k] for r in log) / len(log), 1)
               for k in ("time_total", "time_sync", "time_rollout", "time_scoring", "time_update")}
        out[backend] = {**per, "iterations": len(log), "run_wall_s": round(wall, 1)}
        print(backend, json.dumps(out[backend]), flush=True)
    return out


def table(result: dict) -> str:
    lines = ["## Engine start-up options (SmolLM2-135M fp32, greedy)",
             f"default size = {result['default_prompts']} prompts x 192 tokens; smoke = 12 x 32",
             "| variant | start s | smoke tok/s | smoke stage s | default tok/s | default stage s |",
             "|---|---|---|---|---|---|"]
    for r in result.get("startup", []):
        lines.append(f"| {r['variant']} | {r['start_s']} | {r['smoke_tok_s']} | {r['smoke_stage_s']} | "
                     f"{r['default_tok_s']} | {r['default_stage_s']} |")
    s = result.get("stage")
    if s:
        lines += ["", "## Generate stage, smoke size (12 prompts x 32 tokens per checkpoint)",
                  "| checkpoints | fresh engine each, s | one engine + swaps, s | ratio fresh/swap | swap vs 1 checkpoint |",
                  "|---|---|---|---|---|"]
        for n, fresh in ((1, s["fresh_1"]), (3, s["fresh_3"]), (6, s["fresh_6_est"])):
            swap = s[f"swap_{n}"]
            est = " (est.)" if n == 6 else ""
            lines.append(f"| {n} | {fresh}{est} | {swap} | {fresh / swap:.2f}x | {swap / s['swap_1']:.2f}x |")
    p = result.get("ppo")
    if p:
        hf, vl = p["hf"], p["vllm"]
        lines += ["", f"## PPO iteration (runs/smollm2-cpu.yaml ppo options {p['options']}), mean over {hf['iterations']}",
                  "| rollouts | iteration s | sync s | rollout s | scoring s | update s | run wall s |", "|---|---|---|---|---|---|---|"]
        for name, r in (("HF generate", hf), ("vLLM engine", vl)):
            lines.append(f"| {name} | {r['time_total']} | {r['time_sync']} | {r['time_rollout']} | {r['time_scoring']} | "
                         f"{r['time_update']} | {r['run_wall_s']} |")
        lines.append(f"| ratio HF/vLLM | {hf['time_total'] / vl['time_total']:.2f}x | | "
                     f"{hf['time_rollout'] / max(vl['time_rollout'] + vl['time_sync'], 1e-9):.2f}x (incl. sync) | | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--default-prompts", type=int, default=100)
    ap.add_argument("--skip-compiled", action="store_true", help="leave out the torch.compile engine (~2-3 min start)")
    ap.add_argument("--ppo-iterations", type=int, default=1)
    ap.add_argument("--parts", default="startup,stage,ppo")
    ap.add_argument("--out", default="results/gen_bench.json")
    args = ap.parse_args()

    from bench.chat import prompt_ids
    from bench.data import load
    from bench.models import load_tokenizer, resolve

    model_dir = resolve("smollm2-135m-instruct")
    tok = load_tokenizer(model_dir)
    prompts = load("alpaca_eval", limit=max(args.default_prompts, 12))
    ids = [prompt_ids(tok, p.prompt) for p in prompts]
    result = {"default_prompts": args.default_prompts, "cpus": len(os.sched_getaffinity(0)),
              "load_at_start": os.getloadavg()}
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory(prefix="gen-bench-") as tmp:
        work = Path(tmp)
        if "startup" in parts:
            result["startup"] = bench_startup(args, model_dir, ids[:12], ids[: args.default_prompts])
        if "stage" in parts:
            result["stage"] = bench_stage(args, model_dir, prompts[:12], work)
        if "ppo" in parts:
            result["ppo"] = bench_ppo(args, work)
    result["load_at_end"] = os.getloadavg()
    print(table(result))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
