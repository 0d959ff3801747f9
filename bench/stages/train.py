"""Train every method from the same model on the same data and budget, once per seed; reward models (also
once per seed) before the PPO methods that need them. Each recipe resumes from its last checkpoint and skips a
finished run with the same config."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import RunConfig
from .jobs import Job, run_locally

log = logging.getLogger("bench.run")

NAME = "train"
DEPENDS = ("model", "data", "build_data", "methods", "budget", "method_options", "seeds")


def order(run: RunConfig) -> list[str]:
    """The methods, each reward model placed before the PPO method that needs it (its YAML's ``needs``)."""
    from ..registry import recipes

    known = recipes()
    out = []
    for m in run.methods:
        dep = known[m].needs if m in known else None
        if dep and dep not in out:
            out.append(dep)
        if m not in out:
            out.append(m)
    return out


def recipe_config(run: RunConfig, method: str, seed: int = 0):
    """The recipe class and its config (see ``recipe_layers``)."""
    cls, cfg, _ = recipe_layers(run, method, seed)
    return cls, cfg


def recipe_layers(run: RunConfig, method: str, seed: int = 0):
    """The recipe class and its config: recipe YAML < its sweep result < the run's model/data/output < budget <
    method options < the seed (the run's, whatever the budget says)."""
    from .. import registry
    from ..config import recipe_config as layered

    spec, cls = registry.get(method)
    where = {"model": run.model, "data": run.train_data, "output_dir": run.checkpoint(method, seed)}
    if spec.needs:
        where["reward_model"] = run.checkpoint(spec.needs, seed)
    layers = [("run", where), (f"{run.source('budget')}: budget", run.budget),
              (f"{run.source('method_options')}: method_options.{method}", run.method_options.get(method, {})),
              ("seeds", {"seed": seed})]
    return cls, layered(cls, spec, layers), layers


def reads(run: RunConfig) -> list[Path]:
    from .build_data import writes as built

    return built(run)  # the pairs the build_data stage built, when the run builds its data


def writes(run: RunConfig) -> list[Path]:
    return [Path(run.checkpoint(m, s)) / "bench_run.json" for s in run.seeds for m in order(run)]


def jobs(run: RunConfig) -> list[Job]:
    """One job per (method, seed), each reward model's before the PPO method of its seed that needs it; every
    config is checked before any job is made, so a bad option stops the run before any training."""
    from .. import registry
    from ..validate import check_recipe_configs

    layers = {(method, seed): recipe_layers(run, method, seed) for seed in run.seeds for method in order(run)}
    check_recipe_configs([(m, cfg, lay) for (m, _), (_, cfg, lay) in layers.items()], run.model)
    from ..generation import backend_name
    from .memory import PROCESS_GIB, request

    out = []
    for (method, seed), (_, cfg, _) in layers.items():
        dep = registry.recipes()[method].needs
        rollout_vllm = backend_name(getattr(cfg, "rollout_backend", "hf")) == "vllm"
        engine = getattr(cfg, "rollout_kv_cache_gb", 0.0) + PROCESS_GIB if rollout_vllm else 0.0
        memory = request(run, "train", method, engine)
        out.append(Job(f"train/{method}/seed-{seed}", train_one, (run, method, seed),
                       needs=(f"train/{dep}/seed-{seed}",) if dep else (), memory=memory))
    return out


def train_one(run: RunConfig, method: str, seed: int) -> Path:
    from ..training import run_recipe

    cls, cfg, _ = recipe_layers(run, method, seed)
    log.info("[train] %s seed %d -> %s", method, seed, cfg.output_dir)
    return run_recipe(cls, cfg)


def run(run: RunConfig) -> dict[tuple[str, int], Path]:
    todo = jobs(run)
    return {job.args[1:]: out for job, out in zip(todo, run_locally(todo))}
