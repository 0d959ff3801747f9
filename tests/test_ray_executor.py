"""Stages as job lists, and the Ray executor: the same jobs in dependency order, the same results document as
the local executor, the same resume; the one-time model conversion is safe when workers start at once."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from bench.stages import load_run_config, run_all
from bench.stages import generate as generate_stage
from bench.stages import suite as suite_stage
from bench.stages import train as train_stage

TIMING = re.compile(r"second|wall_s|tokens_per_s|finished|measured|created|date|time|^stages$", re.I)  # stages: their times


def tiny_run(root, model: str, **overrides):
    return load_run_config(None, {
        "run": "tiny", "root": str(root), "model": model, "data": "expertqa", "methods": ["sft", "ppo"],
        "budget": {"max_steps": 2, "batch_size": 2, "max_length": 128, "limit": 8, "val_limit": 4, "save_steps": 100},
        "seeds": [0, 1],
        "method_options": {"ppo": {"max_steps": 1, "rollout_batch": 4, "max_new_tokens": 16, "batch_size": 4,
                                   "rollout_backend": "hf"},
                           "reward-model": {"max_steps": 2, "eval_pairs": 8}},
        "eval_limit": 3, "max_new_tokens": 8, "generation_backend": "hf", "judge": "mimic-gpt4",
        "controls": {"null": "I don't know.", "positive": None},
        "suite": "figa", "suite_limit": 1, "suite_shots": {"figa_mmlu": 0}, **overrides})


def test_train_jobs_put_each_reward_model_before_the_ppo_of_its_seed(tmp_path, tiny_model_dir):
    run = tiny_run(tmp_path, tiny_model_dir)
    jobs = train_stage.jobs(run)
    keys = [j.key for j in jobs]
    assert keys == [f"train/{m}/seed-{s}" for s in (0, 1) for m in ("sft", "reward-model", "ppo")]
    needs = {j.key: j.needs for j in jobs}
    assert needs["train/ppo/seed-1"] == ("train/reward-model/seed-1",) and needs["train/sft/seed-0"] == ()
    assert [j.key for j in suite_stage.jobs(run)] == ["suite/base", "suite/sft/seed-0", "suite/ppo/seed-0"]


def test_generate_jobs_one_per_engine_group_and_one_per_checkpoint_with_hf(tmp_path, tiny_model_dir):
    import shutil

    run = tiny_run(tmp_path, tiny_model_dir, methods=["sft"], seeds=[0])
    ckpt = run.dir / "checkpoints" / "sft" / "seed-0"
    shutil.copytree(tiny_model_dir, ckpt)
    assert [j.key for j in generate_stage.jobs(run)] == ["generate/base", "generate/sft/seed-0"]
    assert (run.dir / "generations" / "null-control" / "model_outputs.json").exists()  # controls: on the driver
    run.generation_backend, run.tensor_parallel_size = "vllm", 2
    (job,) = generate_stage.jobs(run)  # one architecture: one engine swaps both checkpoints in
    assert job.key == "generate/base+sft/seed-0" and job.gpus == 2 and job.cpus == 2


def test_every_job_asks_for_memory_sized_from_the_model_and_the_run_config_overrides_it(tmp_path, tiny_model_dir):
    from bench.data.errors import DataError
    from bench.stages.memory import GIB, PROCESS_GIB, parameters
    from bench.stages.ray_executor import JobError, check_memory

    run = tiny_run(tmp_path, tiny_model_dir)
    memory = {j.key: j.memory for j in train_stage.jobs(run) + suite_stage.jobs(run)}
    weights = parameters(tiny_model_dir) * 4
    assert memory["train/sft/seed-0"] == 8 * weights + int(PROCESS_GIB * GIB)  # weights, grads, Adam, activations
    assert memory["train/ppo/seed-0"] > memory["train/sft/seed-0"] > memory["suite/base"] > PROCESS_GIB * GIB
    run = tiny_run(tmp_path, tiny_model_dir, ray_memory_gb={"train": 3, "suite": 0.5})
    assert {j.memory for j in train_stage.jobs(run)} == {3 * GIB} and suite_stage.jobs(run)[0].memory == GIB // 2
    with pytest.raises(JobError, match="train/sft/seed-0: asks Ray for 3.0 GiB .* ray_memory_gb"):
        check_memory(train_stage.jobs(run), 2.5 * GIB)  # a task no node can hold would wait for ever
    with pytest.raises(DataError, match="ray_memory_gb.generat"):
        tiny_run(tmp_path, tiny_model_dir, ray_memory_gb={"generat": 4})
    with pytest.raises(DataError, match="ray_memory_gb.train"):
        tiny_run(tmp_path, tiny_model_dir, ray_memory_gb={"train": -1})


def test_the_model_conversion_runs_once_when_workers_start_together(tmp_path, monkeypatch):
    from bench import models

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_embedded_gguf", lambda: gguf)
    calls = []

    def convert(src, out):
        calls.append(out)
        time.sleep(0.5)  # a slow conversion: the others must wait, not convert again or see half a directory
        tmp = out.with_name(out.name + ".part")
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        tmp.rename(out)

    monkeypatch.setattr(models, "convert_gguf", convert)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(models.resolve(models.EMBEDDED))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(paths)) == 1 and len(paths) == 4


def _normalised(path, root) -> dict:
    def walk(x):
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items() if not TIMING.search(k)}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x.replace(str(root), "ROOT") if isinstance(x, str) else x

    return walk(json.loads(path.read_text()))


def _kill_when_running(task: str, killed: list) -> None:
    """SIGKILL the Ray worker process running ``task`` (a worker's title is ``ray::<task name>`` while it runs
    one); only this test's descendants are looked at."""
    import psutil

    me = psutil.Process()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not killed:
        for proc in me.children(recursive=True):
            try:
                if proc.cmdline()[:1] == [f"ray::{task}"]:
                    proc.kill()
                    killed.append(proc.pid)
                    return
            except psutil.Error:
                continue
        time.sleep(0.05)


@pytest.mark.ray
def test_ray_executor_gives_the_local_results_and_resumes_after_a_killed_task(tmp_path, tiny_model_dir):
    """A local 2-CPU Ray cluster runs the tiny grid (6 training jobs, PPO after its reward model); the worker
    running one training job is killed mid-run: the run stops naming that job (Ray does not retry it:
    ``max_retries=0``), and the same command again redoes only the unfinished jobs and gives the local
    executor's results.json (timings aside)."""
    ray = pytest.importorskip("ray")
    from bench.stages import ray_executor

    local, remote = tiny_run(tmp_path / "local", tiny_model_dir), tiny_run(tmp_path / "ray", tiny_model_dir)
    run_all(local)
    ray_executor.connect(num_cpus=2)
    try:
        killed: list = []
        killer = threading.Thread(target=_kill_when_running, args=("train/sft/seed-1", killed), daemon=True)
        killer.start()
        with pytest.raises(ray_executor.JobError, match="train/sft/seed-1: its Ray task was lost"):
            run_all(remote, executor="ray")
        killer.join()
        assert killed
        ckpts = remote.dir / "checkpoints"
        finished = {p: p.stat().st_mtime_ns for p in ckpts.rglob("bench_run.json")}
        assert finished  # two CPUs: a seed-0 job finished before seed 1's SFT started
        assert not (ckpts / "sft" / "seed-1" / "bench_run.json").exists()

        run_all(remote, executor="ray")
        again = {p: p.stat().st_mtime_ns for p in ckpts.rglob("bench_run.json")}
        assert {p: again[p] for p in finished} == finished  # finished training is read back, not redone
        assert len(again) == 6 and ckpts / "sft" / "seed-1" / "bench_run.json" in again
        assert _normalised(remote.dir / "results.json", remote.root) == _normalised(local.dir / "results.json", local.root)
    finally:
        ray.shutdown()


@pytest.mark.ray
def test_a_failed_or_lost_ray_task_ends_the_stage_with_one_sentence():
    """A user error inside a task comes back as its sentence, named by the job; a task whose worker dies says
    it was lost and how to resume (both print as one line, exit 2, through bench.cli_common)."""
    import os

    ray = pytest.importorskip("ray")
    from bench.cli_common import user_error_message
    from bench.data import load
    from bench.stages.jobs import Job
    from bench.stages.ray_executor import JobError, connect, run_jobs

    connect(num_cpus=2)
    try:
        with pytest.raises(JobError, match="train/x/seed-0: .*no-such-set") as bad:
            run_jobs([Job("train/x/seed-0", load, ("no-such-set",))], "train")
        assert user_error_message(bad.value) == str(bad.value)
        with pytest.raises(JobError, match="suite/base: its Ray task was lost .*run the same command again"):
            run_jobs([Job("suite/base", os._exit, (1,))], "suite")
    finally:
        ray.shutdown()
