"""Train every method from the same model on the same data and budget; reward models before the PPO methods
that need them. Each recipe resumes from its last checkpoint and skips a finished run with the same config."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import REWARD_DEPENDENCIES, RunConfig

log = logging.getLogger("bench.run")

NAME = "train"
DEPENDS = ("model", "data", "methods", "budget", "method_options")


def order(run: RunConfig) -> list[str]:
    """The methods, each reward model placed before the PPO method that needs it."""
    out = []
    for m in run.methods:
        dep = REWARD_DEPENDENCIES.get(m)
        if dep and dep not in out:
            out.append(dep)
        if m not in out:
            out.append(m)
    return out


def recipe_config(run: RunConfig, method: str):
    """The recipe class and its config: recipe YAML < the run's model/data/output < budget < method options."""
    from .. import registry
    from ..config import build_config

    spec, cls = registry.get(method)
    layers = [(str(spec.yaml_path), spec.defaults),
              ("run", {"model": run.model, "data": run.data, "output_dir": str(run.dir / "checkpoints" / method)}),
              ("run budget", run.budget),
              (f"method_options.{method}", run.method_options.get(method, {}))]
    if method in REWARD_DEPENDENCIES:
        layers.insert(2, ("run", {"reward_model": str(run.dir / "checkpoints" / REWARD_DEPENDENCIES[method])}))
    return cls, build_config(cls.Config, layers)


def reads(run: RunConfig) -> list[Path]:
    return []


def writes(run: RunConfig) -> list[Path]:
    return [run.dir / "checkpoints" / m / "bench_run.json" for m in order(run)]


def run(run: RunConfig) -> dict[str, Path]:
    out = {}
    for method in order(run):
        cls, cfg = recipe_config(run, method)
        log.info("[train] %s -> %s", method, cfg.output_dir)
        out[method] = cls().run(cfg)
    return out
