"""Crash-safe training on the tiny model: incomplete checkpoints are skipped, the loss log never holds a step
twice, and a job whose last checkpoint reached max_steps is not trained past it."""

import json
import shutil

from bench import registry
from bench.checkpoints import STAGING, last_complete_checkpoint
from bench.config import build_config


def train(tmp_path, model, **options):
    spec, cls = registry.get("sft")
    base = dict(model=model, data="jfleg", limit=8, max_length=96, batch_size=2, max_steps=2,
                output_dir=str(tmp_path / "sft"), save_steps=1, logging_steps=1, val_fraction=0.0,
                keep_checkpoints=True)  # these tests play the kill that comes before the clean-up
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", {**base, **options})])
    return cls().run(cfg)


def logged_steps(out):
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]


def crash_after(out, keep_checkpoint: int):
    """What a SIGKILL leaves: no bench_run.json, checkpoints up to ``keep_checkpoint``, the log beyond it."""
    (out / "bench_run.json").unlink()
    for ckpt in out.glob("checkpoint-*"):
        if int(ckpt.name.split("-")[1]) > keep_checkpoint:
            shutil.rmtree(ckpt)


def test_checkpoints_appear_only_complete(tmp_path, tiny_model_dir):
    out = train(tmp_path, tiny_model_dir, max_steps=3)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert all((p / "trainer_state.json").is_file() for p in out.glob("checkpoint-*"))
    assert not (out / STAGING).exists()


def test_half_written_checkpoint_is_skipped_and_training_resumes_from_the_previous_one(tmp_path, tiny_model_dir, caplog):
    out = train(tmp_path, tiny_model_dir, max_steps=4, save_steps=2)
    crash_after(out, keep_checkpoint=2)
    half = out / "checkpoint-4"  # what an interrupted in-place save used to leave: weights, no trainer_state.json
    half.mkdir()
    shutil.copy(out / "model.safetensors", half / "model.safetensors")
    (out / STAGING / "checkpoint-4").mkdir(parents=True)  # a staged save cut short
    assert last_complete_checkpoint(out).name == "checkpoint-2"
    assert "incomplete" in caplog.text
    half.mkdir()
    shutil.copy(out / "model.safetensors", half / "model.safetensors")
    out = train(tmp_path, tiny_model_dir, max_steps=4, save_steps=2)
    assert logged_steps(out) == [1, 2, 3, 4]  # resumed after step 2; no step logged twice
    assert json.loads((out / "bench_run.json").read_text())["train_metrics"]["train_runtime"] > 0


def test_killed_after_the_last_checkpoint_is_not_trained_past_max_steps(tmp_path, tiny_model_dir):
    out = train(tmp_path, tiny_model_dir, max_steps=2)
    first = json.loads((out / "bench_run.json").read_text())["train_seconds"]
    crash_after(out, keep_checkpoint=2)
    out = train(tmp_path, tiny_model_dir, max_steps=2)
    assert logged_steps(out) == [1, 2]
    info = json.loads((out / "bench_run.json").read_text())
    assert info["train_seconds"] >= 0.5 * first  # the time of the steps trained before the kill is kept
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_a_finished_job_drops_its_resume_checkpoints_unless_asked(tmp_path, tiny_model_dir):
    out = train(tmp_path, tiny_model_dir, max_steps=2, keep_checkpoints=False)
    assert not list(out.glob("checkpoint-*")) and (out / "model.safetensors").exists()
    stamp = (out / "bench_run.json").stat().st_mtime_ns
    train(tmp_path, tiny_model_dir, max_steps=2, keep_checkpoints=False)
    assert (out / "bench_run.json").stat().st_mtime_ns == stamp  # a re-run is still a no-op
