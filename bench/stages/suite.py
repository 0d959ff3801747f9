"""lm-eval benchmarks (FIGA's suite by default) for the untrained model and every policy (its first seed
unless ``suite_all_seeds``: a suite pass costs minutes per checkpoint on a CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import BASE, RunConfig
from .jobs import Job, run_locally
from .memory import request

log = logging.getLogger("bench.run")

NAME = "suite"
DEPENDS = ("model", "methods", "seeds", "suite", "suite_limit", "suite_shots", "suite_backend", "suite_all_seeds")


def units(run: RunConfig) -> list[tuple[str, int | None]]:
    seeds = run.seeds if run.suite_all_seeds else run.seeds[:1]
    return [(BASE, None)] + [(p, s) for p in run.policies() for s in seeds]


def summary_path(run: RunConfig, name: str, seed: int | None = None) -> Path:
    return run.path("suite", name, seed) / "summary.json"


def reads(run: RunConfig) -> list[Path]:
    return [Path(run.checkpoint(p, s)) / "bench_run.json" for p, s in units(run) if p != BASE]


def writes(run: RunConfig) -> list[Path]:
    return [summary_path(run, p, s) for p, s in units(run)]


def jobs(run: RunConfig) -> list[Job]:
    """One job per (policy, seed): a suite pass over one checkpoint."""
    memory = request(run, "suite")
    return [Job(f"suite/{policy}" + ("" if seed is None else f"/seed-{seed}"), suite_one, (run, policy, seed),
                memory=memory) for policy, seed in units(run)]


def suite_one(run: RunConfig, policy: str, seed: int | None) -> None:
    from ..suite.runner import SuiteConfig, run_suite

    log.info("[suite] %s%s: %s (limit %s)", policy, "" if seed is None else f" seed {seed}", run.suite, run.suite_limit)
    cfg = SuiteConfig(suite=run.suite, backend=run.suite_backend, limit=run.suite_limit or None,
                      shots=run.suite_shots, out_dir=str(summary_path(run, policy, seed).parent))
    run_suite(run.checkpoint(policy, seed), cfg)


def run(run: RunConfig) -> None:
    run_locally(jobs(run))
