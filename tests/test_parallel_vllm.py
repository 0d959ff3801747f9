"""vLLM sized for the hardware: the CPU binding follows the tensor x data parallel size, the sizes reach the
engine, the server and the run config, PPO's rollout engine is sized against what PPO holds; and tensor- and
data-parallel generation on CPU give the tiny model's HF tokens."""

from __future__ import annotations

import json
import os

import pytest

from bench.data import DataError, EvalPrompt, user
from bench.engine import cpu_binding, cpu_vllm_env
from bench.data_parallel import rank_env
from bench.generation import Sampling, generate_eval, generate_evals

PROMPTS = [EvalPrompt(str(i), user(q), f"reference {i}", "toy") for i, q in enumerate(
    ["Name three colours.", "What is 2 + 2?", "Write a haiku about rain.", "Say hello."])]
ENGINE = dict(kv_cache_gb=0.25, max_model_len=512, max_num_seqs=8)


def test_binding_has_one_core_list_per_rank():
    assert cpu_binding([0, 1], 1) == "0-1"
    assert cpu_binding([1, 0], 2) == "0|1"  # the form vLLM accepts for TP=2 ("0-1" fails)
    assert cpu_binding([0, 1, 2, 3, 4], 2) == "0-2|3-4"
    assert cpu_binding([0, 2, 3, 8], 2) == "0,2|3,8"
    with pytest.raises(ValueError, match="need at least 3 CPU cores"):
        cpu_binding([0, 1], 3)


def test_engine_binding_follows_the_tensor_parallel_size_but_keeps_the_users(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    # a private environment and binding record: a later engine in this process must not find this test's binding
    # and keep it as the user's (TP=2 then failed in CI with "CPU id list ['0-3'] doesn't match world size 2")
    monkeypatch.setattr("os.environ", {k: v for k, v in os.environ.items() if k != "VLLM_CPU_OMP_THREADS_BIND"})
    monkeypatch.setattr("bench.engine._bound", None)
    cpu_vllm_env(2)
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0-1|2-3"
    cpu_vllm_env(1)  # the next engine in the same process gets its own binding
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0-3"
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "2|3")
    cpu_vllm_env(1)
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "2|3"


def test_each_data_parallel_rank_gets_its_slice_of_the_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert [rank_env(r, 2, 2)["VLLM_CPU_OMP_THREADS_BIND"] for r in (0, 1)] == ["0-1|2-3", "4-5|6-7"]
    assert rank_env(1, 2, 1) == {"VLLM_CPU_OMP_THREADS_BIND": "4-7"}


def test_server_command_carries_the_parallel_sizes(tiny_model_dir):
    from bench.serve import Parallel, server_command

    cmd = server_command(tiny_model_dir, "127.0.0.1", 8000, "tiny", None, 512, parallel=Parallel(2, 1, 0.5))
    text = " ".join(cmd)
    assert "--tensor-parallel-size 2" in text and "--data-parallel-size 1" in text
    assert "--gpu-memory-utilization 0.5" in text
    assert "--gpu-memory-utilization 0.3" in " ".join(server_command(tiny_model_dir, "h", 1, "n", None, 512))


def test_run_config_parallel_sizes_are_checked(tiny_model_dir):
    from bench.stages import load_run_config

    run = load_run_config(None, {"model": tiny_model_dir, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.6})
    from bench.stages.generate import engine_options

    assert engine_options(run) == {"tensor_parallel_size": 2, "data_parallel_size": 1, "gpu_memory_utilization": 0.6}
    for key, value in (("tensor_parallel_size", 0), ("data_parallel_size", 1.5), ("gpu_memory_utilization", 1.2)):
        with pytest.raises(DataError, match=key):
            load_run_config(None, {"model": tiny_model_dir, key: value})


def test_rollout_engine_share_is_what_ppo_leaves_free(monkeypatch):
    import types

    import torch

    from bench.rollouts import UPDATE_MARGIN, rollout_gpu_share

    cfg = types.SimpleNamespace(rollout_gpu_memory_utilization=0.0)
    assert rollout_gpu_share(cfg, 0) is None or torch.cuda.is_available()  # CPU: no share
    gib = 2 ** 30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (60 * gib, 80 * gib))  # PPO holds 20 GiB
    assert rollout_gpu_share(cfg, 8 * gib) == pytest.approx((60 - 8) / 80 - UPDATE_MARGIN, abs=1e-3)
    cfg.rollout_gpu_memory_utilization = 0.3
    assert rollout_gpu_share(cfg, 8 * gib) == 0.3  # the setting wins
    cfg.rollout_gpu_memory_utilization = 0.0
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (10 * gib, 80 * gib))
    with pytest.raises(ValueError, match="rollout engine would get"):
        rollout_gpu_share(cfg, 4 * gib)


def _tokens(out) -> list:
    return [json.loads(line)["token_ids"] for line in (out / "generations.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, smollm2_dir):
    from bench.models import make_tiny_model

    root = tmp_path_factory.mktemp("parallel")
    return [str(make_tiny_model(root / n, tokenizer_from=smollm2_dir, seed=s)) for s, n in enumerate("ab")]


@pytest.mark.vllm
def test_tensor_parallel_two_ranks_on_cpu_give_the_hf_tokens(tmp_path, two_checkpoints):
    """TP=2 on 2 cores (binding ``0|1``), a checkpoint swapped into the sharded engine: HF's greedy tokens."""
    sampling = Sampling(max_new_tokens=16)
    jobs = [(n, d, tmp_path / n) for n, d in zip("ab", two_checkpoints)]
    generate_evals(jobs, PROMPTS, "vllm", sampling, backend_options={**ENGINE, "tensor_parallel_size": 2})
    for n, d in zip("ab", two_checkpoints):
        hf = generate_eval(d, PROMPTS, tmp_path / f"hf_{n}", "hf", sampling)
        assert _tokens(tmp_path / n) == _tokens(hf), n
    assert _tokens(tmp_path / "a") != _tokens(tmp_path / "b")


@pytest.mark.vllm
def test_data_parallel_engines_side_by_side_give_the_hf_tokens(tmp_path, two_checkpoints):
    """DP=2: two engine processes, one core each, a checkpoint each; a re-run generates nothing."""
    sampling = Sampling(max_new_tokens=16)
    jobs = [(n, d, tmp_path / n) for n, d in zip("ab", two_checkpoints)]
    generate_evals(jobs, PROMPTS, "vllm", sampling, backend_options={**ENGINE, "data_parallel_size": 2})
    for n, d in zip("ab", two_checkpoints):
        meta = json.loads((tmp_path / n / "generation_meta.json").read_text())
        assert meta["n"] == len(PROMPTS) and meta["backend"] == "vllm"
        assert _tokens(tmp_path / n) == _tokens(generate_eval(d, PROMPTS, tmp_path / f"hf_{n}", "hf", sampling)), n
    generate_evals(jobs, PROMPTS, "vllm", sampling, backend_options={**ENGINE, "data_parallel_size": 2})
    assert json.loads((tmp_path / "a" / "generation_meta.json").read_text())["generated_now"] == 0
