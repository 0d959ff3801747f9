"""Training wall time on 1 vs N processes (``accelerate launch``, DDP over gloo on CPU, NCCL on GPUs) for the same
global batch: SFT, FIGA (one step = ``--batch`` records) and PPO (one iteration = ``--rollout-batch`` prompts, HF
rollouts of ``--new-tokens`` tokens, the untrained model's reward head as the reward model).

    .venv/bin/python benchmarks/processes_bench.py [--processes 2] [--steps 4] [--recipes sft figa ppo]

Each run is the CLI a user types (``bench train``, under ``accelerate launch`` for N > 1); reported: the launch's
wall seconds, ``train_seconds`` from ``bench_run.json`` (model loaded to weights saved) and, for PPO, the mean
seconds per phase over iterations. Results go to results/benchmarks/processes_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("time_rollout", "time_scoring", "time_update", "time_total")


def _launcher(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "bench.cli"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(ROOT / "configs" / "accelerate" / "ddp.yaml"), "--num_processes", str(processes),
            "--main_process_port", str(port), "-m", "bench.cli"]


def _options(recipe: str, processes: int, args, reward_model: str) -> list[str]:
    if recipe == "ppo":  # rollout_batch and batch_size are totals over the processes
        return ["--set", f"rollout_batch={args.rollout_batch}", "--set", f"batch_size={args.rollout_batch}",
                "--set", f"max_new_tokens={args.new_tokens}", "--set", "rollout_backend=hf",
                "--set", f"reward_model={reward_model}", "--set", "ppo_epochs=1"]
    return ["--set", f"batch_size={args.batch // processes}", "--set", "grad_accum=1",
            "--set", f"max_length={args.max_length}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4, help="records per optimiser step (SFT, FIGA), all processes")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--rollout-batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--recipes", nargs="+", default=["sft", "figa", "ppo"])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results: dict = {"config": vars(args), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-procs-") as tmp:
        reward_model = str(Path(tmp) / "rm")
        if "ppo" in args.recipes:  # one optimiser step: a reward head PPO can load, not a measured one
            subprocess.run([*_launcher(1), "train", "reward-model", "--model", args.model, "--max-steps", "1",
                            "--output-dir", reward_model, "--set", "batch_size=2", "--set", "calibration_pairs=8",
                            "--set", "eval_pairs=8"], env=env, check=True, capture_output=True)
        for recipe in args.recipes:
            for n in (1, args.processes):
                out = Path(tmp) / f"{recipe}-{n}"
                cmd = [*_launcher(n), "train", recipe, "--model", args.model, "--max-steps", str(args.steps),
                       "--output-dir", str(out), "--set", "save_steps=100000", *_options(recipe, n, args, reward_model)]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if proc.returncode:
                    sys.exit(f"{recipe} on {n} process(es) failed:\n{proc.stderr[-3000:]}")
                run = {"recipe": recipe, "processes": n, "wall_seconds": round(wall, 1),
                       "train_seconds": round(json.loads((out / "bench_run.json").read_text())["train_seconds"], 1)}
                if recipe == "ppo":
                    log = [json.loads(l) for l in (out / "ppo_log.jsonl").read_text().splitlines()]
                    run.update({k: round(sum(r[k] for r in log) / len(log), 2) for k in PHASES})
                    run["kl_last"] = round(log[-1]["kl"], 4)
                else:
                    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
                    run["losses"] = [round(r["loss"], 5) for r in log if "loss" in r]
                results["runs"].append(run)
                print(json.dumps(run), flush=True)
    path = ROOT / "results" / "benchmarks" / "processes_bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
