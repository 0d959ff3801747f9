"""Reward-model accuracy and training/PPO speed of the baselines on SmolLM2-135M-Instruct (CPU, fp32).

    flock /tmp/heavy.lock .venv/bin/python benchmarks/baselines_bench.py [--pairs 128] [--only rm dpo ppo]

- ``rm``: the sequence RM trained on ``--pairs`` HH-RLHF pairs, held-out pairwise accuracy (Wilson 95% CI)
  on up to ``--eval-pairs`` pairs of HH-RLHF's held-out split (val_fraction 0.05, never trained on); the token
  RM trained on expertqa revision pairs and scored on expertqa's held-out pairs (pairwise + token-label
  accuracy). Training throughput in pairs/s for both.
- ``dpo``: DPO training throughput in pairs/s on expertqa, and the one-off reference-log-prob pass.
- ``ppo``: seconds per PPO iteration for ``--prompts`` prompts x ``--new-tokens`` new tokens, split by phase
  (rollout = HF generate, scoring = reward model + policy/reference log-probs + values, update = PPO epochs),
  with the sequence RM from the ``rm`` step (or an untrained head when ``rm`` was skipped).

Every run uses LoRA r=16 with max_length 256 (the budget these 2 shared cores afford). Results go to
results/benchmarks/baselines_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

COMMON = dict(model="smollm2-135m-instruct", lora_r=16, max_length=256, batch_size=4, save_steps=100000,
              warmup_ratio=0.0, lr_scheduler="constant", learning_rate=1e-4)


def _run(cls, **kw):
    from bench.config import build_config

    return cls().run(build_config(cls.Config, [("bench", {**COMMON, **kw})]))


def bench_rm(work: Path, pairs: int, eval_pairs: int) -> dict:
    from baselines.reward_model import SequenceRewardModel
    from baselines.token_reward_model import TokenRewardModel

    out = {}
    for name, cls, data, val in (("sequence_rm_hh_rlhf", SequenceRewardModel, "hh_rlhf", 0.05),
                                 ("token_rm_expertqa", TokenRewardModel, "expertqa", 0.1)):
        t0 = time.perf_counter()
        path = _run(cls, data=data, output_dir=str(work / name), limit=pairs, epochs=1, val_fraction=val,
                    eval_pairs=eval_pairs, calibration_pairs=32)
        run = json.loads((path / "bench_run.json").read_text())
        meta = json.loads((path / "reward_model.json").read_text())
        out[name] = {
            "train_pairs": run["n_train"], "train_seconds": round(run["train_seconds"], 1),
            "train_pairs_per_s": round(run["n_train"] / run["train_seconds"], 3),
            "heldout": {k: v for k, v in meta["heldout"].items() if k != "config"},
            "calibration": meta["calibration"], "wall_seconds_incl_eval": round(time.perf_counter() - t0, 1),
            "checkpoint": str(path),
        }
        print(json.dumps({name: out[name]}, indent=1), flush=True)
    return out


def bench_dpo(work: Path, steps: int) -> dict:
    from baselines.dpo import Dpo

    t0 = time.perf_counter()
    path = _run(Dpo, data="expertqa", output_dir=str(work / "dpo"), limit=steps * 4, max_steps=steps, val_fraction=0.0,
                learning_rate=5e-5)
    wall = time.perf_counter() - t0
    run = json.loads((path / "bench_run.json").read_text())
    pairs = steps * COMMON["batch_size"]
    out = {"pairs": pairs, "train_seconds": round(run["train_seconds"], 1),
           "train_pairs_per_s": round(pairs / run["train_seconds"], 3),
           "wall_seconds_incl_load_and_ref_pass": round(wall, 1)}
    print(json.dumps({"dpo": out}, indent=1), flush=True)
    return out


def bench_ppo(work: Path, rm_path: str | None, prompts: int, new_tokens: int, iterations: int) -> dict:
    from baselines.ppo import Ppo

    if rm_path is None:  # an untrained head: the cost is the same as a trained one
        import torch
        from transformers import AutoModelForCausalLM

        from bench.reward_model import save_reward_model
        from bench.models import load_tokenizer, resolve

        src = resolve("smollm2-135m-instruct")
        lm = AutoModelForCausalLM.from_pretrained(src)
        lm.score = torch.nn.Linear(lm.config.hidden_size, 1)
        rm_path = str(work / "rm_untrained")
        save_reward_model(lm, load_tokenizer(src), Path(rm_path), "sequence", src)
    path = _run(Ppo, data="expertqa", output_dir=str(work / "ppo"), reward_model=rm_path, max_steps=iterations,
                rollout_batch=prompts, max_new_tokens=new_tokens, batch_size=8, learning_rate=5e-5, save_steps=100000)
    log = [json.loads(l) for l in (path / "ppo_log.jsonl").read_text().splitlines()]
    keys = ("time_rollout", "time_reward", "time_logprobs", "time_scoring", "time_update", "time_total", "response_length")
    out = {"prompts": prompts, "max_new_tokens": new_tokens, "iterations": [{k: round(r[k], 1) for k in keys} for r in log]}
    out["mean"] = {k: round(sum(r[k] for r in log) / len(log), 1) for k in keys}
    print(json.dumps({"ppo": out}, indent=1), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["rm", "dpo", "ppo"])
    ap.add_argument("--pairs", type=int, default=128, help="training pairs per reward model")
    ap.add_argument("--eval-pairs", type=int, default=200, help="held-out pairs scored per reward model")
    ap.add_argument("--dpo-steps", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--out", default="results/benchmarks/baselines_bench.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    result = {"cpus": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(), "settings": COMMON,
              "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rm_path = None
        if "rm" in args.only:
            result["reward_models"] = bench_rm(work, args.pairs, args.eval_pairs)
            rm_path = result["reward_models"]["sequence_rm_hh_rlhf"]["checkpoint"]
        if "dpo" in args.only:
            result["dpo"] = bench_dpo(work, args.dpo_steps)
        if "ppo" in args.only:
            result["ppo"] = bench_ppo(work, rm_path, args.prompts, args.new_tokens, args.iterations)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **result}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
