"""The untrained model (``base``) and every trained policy answer the eval prompts."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import BASE, RunConfig

log = logging.getLogger("bench.run")

NAME = "generate"
DEPENDS = ("model", "methods", "eval_set", "eval_limit", "max_new_tokens", "generation_backend")


def output_dir(run: RunConfig, policy: str) -> Path:
    return run.dir / "generations" / policy


def reads(run: RunConfig) -> list[Path]:
    return [run.dir / "checkpoints" / p / "bench_run.json" for p in run.policies() if p != BASE]


def writes(run: RunConfig) -> list[Path]:
    return [output_dir(run, p) / "generations.jsonl" for p in run.policies()]


def run(run: RunConfig) -> None:
    from ..data import load
    from ..generation import Sampling, generate_eval

    prompts = load(run.eval_set, limit=run.eval_limit)
    for policy in run.policies():
        log.info("[generate] %s on %d %s prompts", policy, len(prompts), run.eval_set)
        generate_eval(run.checkpoint(policy), prompts, output_dir(run, policy), run.generation_backend,
                      Sampling(max_new_tokens=run.max_new_tokens), generator=policy, dataset=run.eval_set)
