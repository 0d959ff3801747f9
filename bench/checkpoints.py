"""Crash-safe training checkpoints: visible only when complete, resumed from the last complete one.

transformers' ``Trainer`` writes ``checkpoint-N`` in place: weights, then optimizer, then
``trainer_state.json``. A Ctrl-C or SIGKILL in between leaves a directory that looks like a checkpoint and
crashes every later resume. Here each checkpoint is written under ``.incomplete/`` and renamed into place
when whole; directories without ``trainer_state.json`` (from an older bench, or a crash inside a rename-less
filesystem) are removed with a warning. The loss log is cut back to the step training resumes from, so a
resumed run's curve has no step twice.

A run's identity lives here too: ``already_trained`` compares a finished run's config and inputs with the
new one's, and discards resume state that belongs to another run. Under several processes rank 0 alone
reads and changes the output directory (bench/distributed.py); the others wait.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

from . import distributed
from .atomic import atomic_write_text
from .config import to_dict
from .data import DataError

log = logging.getLogger("bench.training")
STAGING = ".incomplete"
STATE = "trainer_state.json"
ELAPSED = "bench_elapsed.json"  # training seconds up to this checkpoint, over every session that led to it
_NAME = re.compile(r"^checkpoint-(\d+)$")


def _step(path: Path) -> int:
    return int(_NAME.match(path.name).group(1))


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``out``; incomplete ones are removed with a warning."""
    out = Path(out)
    if not out.is_dir():
        return None
    shutil.rmtree(out / STAGING, ignore_errors=True)  # a save cut short last time
    found = sorted((p for p in out.iterdir() if p.is_dir() and _NAME.match(p.name)), key=_step)
    complete = []
    for p in found:
        if (p / STATE).is_file():
            complete.append(p)
        else:
            log.warning("%s is incomplete (no %s: interrupted while saving); removing it", p, STATE)
            shutil.rmtree(p, ignore_errors=True)
    return complete[-1] if complete else None


def checkpoint_step(ckpt: Path | None) -> int:
    return _step(ckpt) if ckpt else 0


def elapsed_seconds(ckpt: Path | None) -> float:
    """Training seconds spent up to ``ckpt`` (0 for a fresh start)."""
    try:
        return float(json.loads((Path(ckpt) / ELAPSED).read_text())["train_seconds"]) if ckpt else 0.0
    except (OSError, ValueError, KeyError):
        return 0.0


def trim_log(path: Path, step: int) -> None:
    """Keep only the rows of a JSONL log up to ``step`` (the checkpoint a resumed run continues from)."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if line.strip() and json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:
            continue  # a line cut short by a crash
    atomic_write_text(path, "".join(row + "\n" for row in keep))


class StagedCheckpoints:
    """``Trainer`` mixin: each checkpoint is written under ``.incomplete/`` and renamed into place.

    ``bench_prior_seconds`` (training time before this session) and ``bench_t0`` are set by the caller so
    every checkpoint records the total training time up to it."""

    bench_prior_seconds = 0.0
    bench_t0 = None
    _staging: Path | None = None

    def _get_output_dir(self, trial):
        return str(self._staging) if self._staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        """Every rank writes its part (rank 0 the weights and state, each rank its RNG state, sharded
        engines their optimizer shards) into the staging directory; rank 0 renames it once all are done."""
        from transformers.trainer_utils import rotate_checkpoints

        run_dir = Path(super()._get_output_dir(trial))
        staging = run_dir / STAGING
        with distributed.main_writes() as writer:
            if writer:
                shutil.rmtree(staging, ignore_errors=True)
        self._staging = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        name = f"checkpoint-{self.state.global_step}"
        with distributed.main_writes() as writer:
            if writer and self.args.should_save:
                spent = self.bench_prior_seconds + (time.perf_counter() - self.bench_t0 if self.bench_t0 else 0.0)
                atomic_write_text(staging / name / ELAPSED, json.dumps({"train_seconds": spent}))
                shutil.rmtree(run_dir / name, ignore_errors=True)
                os.replace(staging / name, run_dir / name)
                shutil.rmtree(staging, ignore_errors=True)
                rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)


class ExactResume:
    """``Trainer`` mixin: a resumed run continues exactly where its checkpoint stopped, under every engine.

    - FSDP's sharded optimizer checkpoint loads only the state entries the optimizer already holds, and Adam
      holds none before its first step: the moments would silently restart at zero (torch's FSDP1 path; FSDP2's
      initialises them). They are initialised first, as torch's ``get_optimizer_state_dict`` does.
    - Resumed from a checkpoint that already reached ``max_steps`` (killed after its last save, before
      ``bench_run.json``), training loads it as every resume does and stops without a step (the ``Trainer``
      itself would train one step past ``max_steps`` when an epoch holds more steps than that). Loading through
      ``train`` matters under sharded engines: their checkpoints load only into the model the engine wrapped."""

    def _load_optimizer_and_scheduler(self, checkpoint):
        if checkpoint is not None and getattr(self, "is_fsdp_enabled", False):
            from torch.distributed.checkpoint.state_dict import _init_optim_state

            _init_optim_state(getattr(self.optimizer, "optimizer", self.optimizer))  # a zero-lr step on zero grads
        super()._load_optimizer_and_scheduler(checkpoint)

    def _run_epoch(self, *args, **kwargs):
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

    def log(self, logs, *args, **kwargs):
        if "train_runtime" in logs and self.state.global_step == getattr(self, "_initial_global_step", None):
            return  # this session trained no step: it has no loss or speed to report
        super().log(logs, *args, **kwargs)


class _Finished:
    """What ``resume_or_finish`` returns for a job whose last checkpoint already reached ``max_steps``: the
    metrics of the session that trained it (none when it was killed before reporting them)."""

    def __init__(self, state):
        runtime = [h for h in state.log_history if "train_runtime" in h]
        self.global_step = state.global_step
        self.metrics = {k: v for k, v in (runtime[-1] if runtime else {}).items() if k.startswith("train_")}


def resume_point(out: Path) -> Path | None:
    """The checkpoint to resume from, with incomplete ones removed and the loss log cut back to it."""
    ckpt = last_complete_checkpoint(out)
    trim_log(Path(out) / "train_log.jsonl", checkpoint_step(ckpt))
    return ckpt


def resume_or_finish(trainer, ckpt: Path | None, max_steps: int):
    """``trainer.train``, resumed from ``ckpt``; a checkpoint at ``max_steps`` is loaded, not trained past
    (``ExactResume``)."""
    if ckpt is not None and 0 < max_steps <= checkpoint_step(ckpt):
        log.info("%s already reached max_steps=%d: loading it instead of training", ckpt, max_steps)
        trainer.train(resume_from_checkpoint=str(ckpt))
        return _Finished(trainer.state)
    if ckpt is not None:
        log.info("resuming from %s", ckpt)
    return trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)


# Options that may change between an interrupted run and its continuation (more steps, other logging).
RESUMABLE = ("max_steps", "epochs", "save_steps", "logging_steps", "eval_steps", "output_dir", "keep_checkpoints")


def fingerprint(path: str | Path) -> str:
    """Content hash of a checkpoint a run depends on (PPO's reward model): its weight files, plus a reward
    model's kind and calibration (which scales PPO's rewards). A retrained checkpoint gets a new one; an
    identical retrain, the same one."""
    path = Path(path)
    files = sorted(f for pattern in ("*.safetensors", "*.bin") for f in path.glob(pattern))
    if not files:
        raise DataError(path, None, None, "no weight files (*.safetensors) to fingerprint: is it trained?")
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            h.update(f.name.encode() + hashlib.file_digest(fh, "sha256").digest())
    meta = path / "reward_model.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        h.update(json.dumps({k: m.get(k) for k in ("kind", "calibration")}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def _key(cfg, inputs: dict | None) -> dict:
    return json.loads(json.dumps({"config": to_dict(cfg), "inputs": inputs or {}}, default=str))


def _resumable(key: dict) -> dict:
    return {"config": {k: v for k, v in key["config"].items() if k not in RESUMABLE}, "inputs": key["inputs"]}


def already_trained(out: Path, cfg, inputs: dict | None = None,
                    resume_state: tuple[str, ...] = ("checkpoint-*", "train_log.jsonl")) -> bool:
    """True when a finished run with the same config and the same ``inputs`` (fingerprints of the checkpoints
    it depends on) left ``bench_run.json``: re-running it is a no-op.

    Otherwise ``out`` is made ready to train: resume state (``resume_state`` globs) left by a run with
    another key, finished or not, is removed, since resuming it would continue the wrong run; only
    ``RESUMABLE`` options may differ. The key goes to ``bench_key.json`` for the next comparison."""
    key = _key(cfg, inputs)
    done, started = out / "bench_run.json", out / "bench_key.json"
    if done.exists():
        info = json.loads(done.read_text())
        if {"config": info.get("config"), "inputs": info.get("inputs", {})} == key:
            log.info("%s already trained with this config and inputs; delete %s to retrain", out, done)
            return True
    previous = json.loads(started.read_text()) if started.exists() else None
    if previous is None or _resumable(previous) != _resumable(key):
        stale = [p for pattern in resume_state for p in out.glob(pattern)]
        if stale:
            log.warning("%s: config or inputs changed; removing the old run's %s", out, [p.name for p in stale])
        for p in stale:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    done.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started.write_text(json.dumps(key, indent=2))
    return False
