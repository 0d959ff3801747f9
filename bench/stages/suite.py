"""lm-eval benchmarks (FIGA's suite by default) for the untrained model and every policy."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import BASE, RunConfig

log = logging.getLogger("bench.run")

NAME = "suite"
DEPENDS = ("model", "methods", "suite", "suite_limit", "suite_shots", "suite_backend")


def summary_path(run: RunConfig, policy: str) -> Path:
    return run.dir / "suite" / policy / "summary.json"


def reads(run: RunConfig) -> list[Path]:
    return [run.dir / "checkpoints" / p / "bench_run.json" for p in run.policies() if p != BASE]


def writes(run: RunConfig) -> list[Path]:
    return [summary_path(run, p) for p in run.policies()]


def run(run: RunConfig) -> None:
    from ..suite.runner import SuiteConfig, run_suite

    for policy in run.policies():
        log.info("[suite] %s: %s (limit %s)", policy, run.suite, run.suite_limit)
        cfg = SuiteConfig(suite=run.suite, backend=run.suite_backend, limit=run.suite_limit or None,
                          shots=run.suite_shots, out_dir=str(summary_path(run, policy).parent))
        run_suite(run.checkpoint(policy), cfg)
