"""``bench run``: the pipeline as its stages, one module each, run in this order:

    build_data data/spa.jsonl               optional: SPA-style pairs built from the run's own model (bench/spa)
    train     checkpoints/<method>/         every method (and the reward models PPO needs) on one budget
    generate  generations/<policy>/         the untrained model and every policy answer the eval prompts
    judge     judged/<policy>.json|.csv     win rates against the eval set's references
    suite     suite/<policy>/summary.json   lm-eval benchmarks
    report    results.json, site/           the run document and its leaderboard

The contract every stage module keeps:

- ``DEPENDS``: the run-config fields whose values decide its work;
- ``reads(run)`` / ``writes(run)``: the files of earlier stages it consumes and the files it produces;
- ``run(run)``: do the work, reading only those files; finished work inside a stage is read back, not redone.

From these, ``fingerprint`` decides whether a stage has anything to do: when neither its config fields nor the
files it reads or writes changed since it last finished, it is skipped without importing torch or vLLM.
A new stage is one module added to ``STAGES``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import yaml

from . import build_data, generate, judge, report, suite, train
from .config import BASE, RunConfig, load_run_config

log = logging.getLogger("bench.run")

STAGES = {m.NAME: m for m in (build_data, train, generate, judge, suite, report)}

__all__ = ["BASE", "RunConfig", "STAGES", "fingerprint", "load_run_config", "run_all"]


def _file_state(path: Path) -> list | None:
    """Size and modification time of a file, or of every file below a directory (None: missing)."""
    if path.is_dir():
        return sorted([str(p.relative_to(path)), *_file_state(p)] for p in path.rglob("*") if p.is_file())
    if not path.exists():
        return None
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def fingerprint_inputs(stage, run: RunConfig) -> dict:
    """What a stage's work depends on: its config fields and the state of the files it reads and writes."""
    config = {k: getattr(run, k) for k in stage.DEPENDS}
    files = {str(p.relative_to(run.dir)): _file_state(p) for p in [*stage.reads(run), *stage.writes(run)]}
    return json.loads(json.dumps({"stage": stage.NAME, "config": config, "files": files}, default=str))


def fingerprint(stage, run: RunConfig) -> str:
    blob = json.dumps(fingerprint_inputs(stage, run), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _stamp_path(run: RunConfig, name: str) -> Path:
    return run.dir / "stages" / f"{name}.json"


def is_current(stage, run: RunConfig) -> bool:
    path = _stamp_path(run, stage.NAME)
    return path.exists() and json.loads(path.read_text()).get("fingerprint") == fingerprint(stage, run)


def run_all(run: RunConfig, stages: list[str] | None = None, force: bool = False, executor: str = "local",
            address: str | None = None) -> Path:
    """Run the stages in order (all by default); each reads the previous stages' files only. ``executor="ray"``
    sends the jobs of the stages that have them (train, generate, suite) to the Ray cluster at ``address``
    (none: a local one), see ``ray_executor``; the others run here."""
    from ..atomic import atomic_write_json, atomic_write_text
    from ..console import step
    from ..procs import check_interrupted
    from ..runlock import run_lock

    stages = stages or list(STAGES)
    if "judge" in stages and (force or not is_current(STAGES["judge"], run)):
        from ..judges.gate import require_validated

        require_validated(run.judge, run.allow_unvalidated_judge)  # before any training: one sentence if refused
    with run_lock(run.dir, run.run):  # one bench run per run directory
        config = yaml.safe_dump(dataclasses.asdict(run), sort_keys=False)
        if not (run.dir / "run_config.yaml").exists() or (run.dir / "run_config.yaml").read_text() != config:
            atomic_write_text(run.dir / "run_config.yaml", config)
        worked = []
        for name in stages:
            stage = STAGES[name]
            if not force and is_current(stage, run):
                log.info("[%s] up to date: nothing to do", name)
                continue
            check_interrupted()  # a signal some library swallowed still stops the run before the next stage
            t0 = time.perf_counter()
            with step(name):  # bench.console: output to logs/<stage>.log, a live line and bar on the terminal
                if executor == "ray" and hasattr(stage, "jobs"):
                    from . import ray_executor

                    ray_executor.connect(address)
                    ray_executor.run_jobs(stage.jobs(run), name)
                else:
                    stage.run(run)
            seconds = round(time.perf_counter() - t0, 1)
            stamp = {"fingerprint": fingerprint(stage, run), "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "inputs": fingerprint_inputs(stage, run)}  # `bench status` says what changed since
            atomic_write_json(_stamp_path(run, name), stamp)  # only real work replaces a stage's time
            worked.append(name)
            log.info("[%s] done in %.0f s", name, seconds)
        if not worked:
            log.info("run %s: every stage is up to date; nothing needed doing", run.run)
    return run.dir / "site" / "index.html"


def timings(run: RunConfig) -> dict[str, float]:
    """Seconds each stage took when it last did work (a skipped, up-to-date stage keeps its time)."""
    out = {}
    for name in STAGES:
        path = _stamp_path(run, name)
        if path.exists():
            out[name] = json.loads(path.read_text())["seconds"]
    return out
