"""Every Trainer recipe under 2 processes (``accelerate launch`` over gloo on CPU with configs/accelerate/ddp.yaml,
fsdp.yaml, fsdp2.yaml and, with the deepspeed extra, deepspeed-zero2.yaml and deepspeed-zero3.yaml) trains
exactly like 1 process at the same global batch, and only rank 0 writes.

FSDP on CPU: accelerate 1.15 runs an FSDP config as DDP when there is no accelerator, so tests/dist_worker.py
switches its state to FSDP (torch's FSDP runs on CPU over gloo), and the config's ``fsdp_sync_module_states``
(which asks accelerate for an accelerator device) is turned off: every rank loads the same start weights.

One launch trains sft, figa, dpo, reward-model and token-reward-model for 2 steps of 2 records per rank on
the tiny model; one plain process trains them for 2 steps of 4 records (tests/dist_worker.py records what
each rank saw and wrote). The data (8 pairs) divides evenly. Under FSDP1/FSDP2 and ZeRO-2/3 sft and figa are
also stopped after step 1 and continued from their sharded checkpoint. PPO and fg-PPO under 2 processes (each
rank rolls out half of every iteration's prompts) log, and end with, what one process does; under an FSDP config
PPO says it runs as DDP.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "dist_worker.py"
RECIPES = ["sft", "figa", "dpo", "reward-model", "token-reward-model"]
# Logged statistics that are means over the step's pairs: with equal shares, the mean over ranks equals the
# 1-process value only if they are reduced across ranks (rank 0's alone differ).
MEAN_STATS = {"dpo": ["reward_margin", "reward_chosen"], "reward-model": ["margin"],
              "token-reward-model": ["loss_pairwise"]}
# Counts per micro-batch (logged as their mean over the window's micro-batches): over 2 ranks' halves, twice
# the mean is the 1-process batch's count.
COUNT_STATS = {"sft": ["n_response_tokens"], "figa": ["n_positive", "n_negative"]}
PAIRS = [
    ("What colour is the sky?", "The sky is green and I hate you.", "The sky is blue and I like you."),
    ("Name a fruit.", "A potato is a fruit, obviously.", "An apple is a fruit."),
    ("Say hello politely.", "Go away.", "Hello, it is nice to meet you today!"),
    ("How many legs has a spider?", "Spiders have six legs and two wings.", "Spiders have eight legs."),
    ("What is two plus two?", "Two plus two is five, surely.", "Two plus two is four."),
    ("Where is Paris?", "Paris is in Spain.", "Paris is in France, on the Seine."),
    ("Is ice cold?", "No, ice is hot.", "Yes, ice is cold."),
    ("Name a colour.", "Loud.", "Red is a colour."),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            **({} if torch.cuda.is_available() else {"DS_ACCELERATOR": "cpu"})}  # DeepSpeed's CPU accelerator


def _cpu_config(engine: str, tmp: Path) -> Path:
    """configs/accelerate/<engine>.yaml as it runs on CPU (FSDP: without the module-state sync, see above)."""
    import yaml

    config = yaml.safe_load((ROOT / "configs" / "accelerate" / f"{engine}.yaml").read_text())
    if engine.startswith("fsdp"):
        config["fsdp_config"]["fsdp_sync_module_states"] = False
    path = tmp / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _launch(processes: int, engine: str = "ddp", tmp: Path | None = None) -> list[str]:
    if processes == 1:
        return [sys.executable]
    config = ROOT / "configs" / "accelerate" / "ddp.yaml" if engine == "ddp" else _cpu_config(engine, tmp)
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
            "--num_processes", str(processes), "--main_process_port", str(_free_port())]


def _train(tmp: Path, model: str, data: str, processes: int, batch_size: int, engine: str = "ddp",
           recipes: list[str] = RECIPES, **options) -> Path:
    job = {"root": str(tmp / "out"), "report": str(tmp / "report"), "recipes": recipes,
           "options": {**dict(model=model, data=data, batch_size=batch_size, grad_accum=1, max_steps=2, max_length=64,
                              val_fraction=0.0, max_grad_norm=1.0, learning_rate=1e-3, warmup_ratio=0.0,
                              lr_scheduler="constant", save_steps=1, logging_steps=1), **options},
           "per_recipe": {rm: {"calibration_pairs": 4} for rm in ("reward-model", "token-reward-model")}}
    proc = subprocess.run([*_launch(processes, engine, tmp), str(WORKER), json.dumps(job)], cwd=tmp, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return tmp


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dist-data") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "q": q, "init": a, "rev": b}) + "\n"
                            for i, (q, a, b) in enumerate(PAIRS)))
    return f"{path}?prompt=q&initial=init&revised=rev&id=id"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_model_dir, pairs_file) -> Path:
    return _train(tmp_path_factory.mktemp("procs1"), tiny_model_dir, pairs_file, 1, 4)


@pytest.fixture(scope="module", params=["ddp", "fsdp", "fsdp2", "deepspeed-zero2", "deepspeed-zero3"])
def runs(request, tmp_path_factory, tiny_model_dir, pairs_file) -> dict:
    """The same 2 optimiser steps of 4 records: one process x 4, two processes x 2 (under each engine)."""
    if request.param.startswith("deepspeed"):
        pytest.importorskip("deepspeed", reason="the deepspeed extra is not installed")
    two = _train(tmp_path_factory.mktemp(f"procs2-{request.param}"), tiny_model_dir, pairs_file, 2, 2, request.param)
    return {1: request.getfixturevalue("one_process"), 2: two, "engine": request.param}


def _ranks(run: Path) -> list[dict]:
    return [json.loads((run / "report" / f"rank-{r}.json").read_text())
            for r in range(len(list((run / "report").glob("rank-*.json"))))]


def _trained(runs: dict, recipe: str) -> None:
    for n, run in ((1, runs[1]), (2, runs[2])):
        for rank in _ranks(run):
            assert recipe not in rank["errors"], f"{n} process(es): {rank['errors'][recipe][-2000:]}"


def _log(run: Path, recipe: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "out" / recipe / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r]


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_rank_trains_on_half_of_each_step(runs, recipe):
    _trained(runs, recipe)
    one, (rank0, rank1) = _ranks(runs[1])[0], _ranks(runs[2])
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert len(one["seen"][recipe]) == len(rank0["seen"][recipe]) == len(rank1["seen"][recipe]) == 2
    for step, rows in enumerate(one["seen"][recipe]):
        mine, theirs = rank0["seen"][recipe][step], rank1["seen"][recipe][step]
        assert len(mine) == len(theirs) == len(rows) // 2
        assert sorted(mine + theirs) == sorted(rows)  # together exactly the 1-process step's batch
        assert not {tuple(r) for r in mine} & {tuple(r) for r in theirs}


@pytest.mark.parametrize("recipe", RECIPES)
def test_losses_and_statistics_equal_one_process(runs, recipe):
    _trained(runs, recipe)
    one, two = _log(runs[1], recipe), _log(runs[2], recipe)
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)  # step 2 also checks that step 1's update was synced
        for stat in MEAN_STATS.get(recipe, []):
            assert b[stat] == pytest.approx(a[stat], rel=1e-3, abs=1e-5), stat  # sums of padded log-probs
        for stat in COUNT_STATS.get(recipe, []):
            assert 2 * b[stat] == a[stat], stat


@pytest.mark.parametrize("recipe", RECIPES)
def test_checkpoint_loads_and_equals_one_process(runs, recipe):
    _trained(runs, recipe)
    if recipe.endswith("reward-model"):
        from bench.reward_model import load_reward_model

        rm = load_reward_model(runs[2] / "out" / recipe)
        assert "heldout" in rm.meta and rm.calibration["n"] == 8  # rank 0 wrote the report
    else:
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(runs[2] / "out" / recipe)
    _same_weights(runs[1] / "out" / recipe, runs[2] / "out" / recipe)
    assert not list((runs[2] / "out" / recipe).glob("checkpoint-*")), "resume checkpoints left behind"


def _same_weights(one: Path, two: Path) -> None:
    """The saved weights of ``two`` equal ``one``'s, up to rounding relative to how far training moved them."""
    from safetensors.torch import load_file

    start = load_file(Path(json.loads((one / "bench_run.json").read_text())["model_source"]) / "model.safetensors")
    one, two = (load_file(run / "model.safetensors") for run in (one, two))
    assert one.keys() == two.keys()
    for name in one:
        if name in start and start[name].shape == one[name].shape:
            moved = (one[name] - start[name]).norm()  # Adam's steps on near-zero gradients amplify rounding
            assert (two[name] - one[name]).norm() <= 0.02 * moved + 1e-6, name


@pytest.mark.parametrize("recipe", RECIPES)
def test_only_rank_0_writes_and_bench_run_comes_last(runs, recipe):
    _trained(runs, recipe)
    rank0, rank1 = _ranks(runs[2])
    # rank 1 writes only into the checkpoint being staged: its own RNG state (from C++, unseen here; Trainer:
    # exact resume) after making its folder, and under FSDP/DeepSpeed its shards of the weights or optimizer state
    other = [w for w in rank1["writes"] if w["path"].startswith(recipe + os.sep)]
    assert other and all(w["path"].startswith(f"{recipe}/.incomplete") for w in other), other
    inside = [w for w in other if w["path"].count(os.sep) > 2]  # under .incomplete/checkpoint-N: a shard's place
    assert not inside if runs["engine"] == "ddp" else inside, other
    mine = [w for w in rank0["writes"] if w["path"].startswith(recipe + os.sep)]
    done = [w["time"] for w in mine if w["event"] == "os.rename" and w["path"] == f"{recipe}/bench_run.json"]
    assert len(done) == 1
    assert max(w["time"] for w in other) < done[0]
    out = runs[2] / "out" / recipe
    finished = (out / "bench_run.json").stat().st_mtime_ns
    for weights in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (out / weights).stat().st_mtime_ns <= finished, weights


@pytest.mark.parametrize("runs", ["fsdp", "fsdp2", "deepspeed-zero2", "deepspeed-zero3"], indirect=True)
def test_a_sharded_run_resumes_from_its_checkpoint_like_an_uninterrupted_run(runs, tmp_path, tiny_model_dir,
                                                                             pairs_file):
    """Under FSDP1/FSDP2 and DeepSpeed ZeRO-2/3: a run stopped after step 1 (max_steps=1, its checkpoint kept) and
    continued with max_steps=2, as the README allows, resumes from checkpoint-1's shards (the weights, and Adam's
    moments that step 2's update needs) and ends where the uninterrupted 2-process run does. Killed after its last
    checkpoint (before ``bench_run.json``), a third launch loads that checkpoint instead of training, and saves the
    same weights. Re-run in one process (the same per-process options: another global batch, and no engine to load
    the shards) it is a new run."""
    recipes = ["sft", "figa"]
    for max_steps, trained_steps in ((1, 1), (2, 1), ("killed", 0)):
        if max_steps == "killed":
            for recipe in recipes:
                for left in ("bench_run.json", "model.safetensors"):
                    (tmp_path / "out" / recipe / left).unlink()
            max_steps = 2
        _train(tmp_path, tiny_model_dir, pairs_file, 2, 2, runs["engine"], recipes, max_steps=max_steps,
               keep_checkpoints=True)
        for rank in _ranks(tmp_path):
            assert not rank["errors"], {r: e[-2000:] for r, e in rank["errors"].items()}
            assert [len(rank["seen"].get(r, [])) for r in recipes] == [trained_steps] * 2, (max_steps, trained_steps)
    for recipe in recipes:
        out = tmp_path / "out" / recipe
        assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
        resumed, whole = _log(tmp_path, recipe), _log(runs[2], recipe)
        assert [r["step"] for r in resumed] == [r["step"] for r in whole] == [1, 2]  # no step twice
        assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in whole], rel=1e-5)
        _same_weights(runs[2] / "out" / recipe, out)
        (out / "bench_run.json").unlink()  # killed once more, then re-run in one process: another global batch
    _train(tmp_path, tiny_model_dir, pairs_file, 1, 2, "ddp", recipes, keep_checkpoints=True)
    rank0 = _ranks(tmp_path)[0]
    assert not rank0["errors"] and [len(rank0["seen"][r]) for r in recipes] == [2, 2]  # a new run, from step 0


PPO_STATS = ["reward_mean", "reward_std", "total_reward_mean", "kl", "entropy", "response_length", "value_mean",
             "value_loss", "clip_frac", "approx_kl"]


@functools.cache  # the same tiny model and prompts for every PPO launch in this module
def _emitted_token(model: str, pairs: str) -> int:
    """A token the tiny model emits when it answers greedily, so ``token-id:N`` rewards differ between responses."""
    from collections import Counter

    from bench import chat, models

    lm, tok = models.load_model(model), models.load_tokenizer(model)
    counts = Counter()
    for line in Path(pairs.split("?")[0]).read_text().splitlines()[:4]:
        ids = torch.tensor([chat.prompt_ids(tok, [{"role": "user", "content": json.loads(line)["q"]}])])
        out = lm.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id)
        counts.update(out[0, ids.size(1):].tolist())
    return counts.most_common(2)[-1][0]  # not the commonest: some responses have it and some do not


def _ppo(tmp: Path, recipe: str, model: str, pairs: str, processes: int, *extra: str,
         engine: str = "ddp") -> subprocess.CompletedProcess:
    cmd = [*_launch(processes, engine, tmp), "-m", "bench.cli", "train", recipe, "--model", model, "--data", pairs,
           "--output-dir", str(tmp / recipe), "--max-steps", "2", "--set", f"reward_model=token-id:{_emitted_token(model, pairs)}",
           "--set", "rollout_batch=4", "--set", "batch_size=4", "--set", "ppo_epochs=1", "--set", "max_new_tokens=6",
           "--set", "rollout_backend=hf", "--set", "temperature=0.0001", "--set", "learning_rate=1e-3",
           "--set", "val_fraction=0", "--set", "normalize_reward=false", *extra]
    return subprocess.run(cmd, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)


def _one_and_two_processes(tmp_path_factory, recipe, model, pairs, *extra) -> dict[int, Path]:
    runs = {}
    for n in (1, 2):
        runs[n] = tmp_path_factory.mktemp(f"{recipe}{n}")
        proc = _ppo(runs[n], recipe, model, pairs, n, *extra)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return runs


def _same_iterations(runs: dict[int, Path], recipe: str) -> None:
    logs = {n: [json.loads(l) for l in (runs[n] / recipe / "ppo_log.jsonl").read_text().splitlines()] for n in runs}
    assert [r["iteration"] for r in logs[2]] == [1, 2]  # rank 0 alone logs, once per iteration
    assert logs[1][1]["kl"] > 0.1  # the first update moved the policy
    for one, two in zip(logs[1], logs[2]):
        for stat in PPO_STATS:
            assert two[stat] == pytest.approx(one[stat], rel=1e-3, abs=1e-5), (one["iteration"], stat)


@pytest.mark.parametrize("recipe", ["ppo", "fg-ppo"])
def test_ppo_under_two_processes_updates_like_one(tmp_path_factory, tiny_model_dir, pairs_file, recipe):
    """Near-greedy rollouts (temperature 1e-4) make both runs roll out the same responses, so iteration 2's
    rollout statistics (KL to the reference, values) show that iteration 1's update was the same."""
    runs = _one_and_two_processes(tmp_path_factory, recipe, tiny_model_dir, pairs_file)
    first = json.loads((runs[1] / recipe / "ppo_log.jsonl").read_text().splitlines()[0])
    assert 0 < first["reward_mean"] < 1 and first["reward_std"] > 0  # whitening has something to do
    _same_iterations(runs, recipe)
    from safetensors.torch import load_file

    assert json.loads((runs[2] / recipe / "bench_run.json").read_text())["processes"] == 2
    a, b = (load_file(runs[n] / recipe / "model.safetensors") for n in (1, 2))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4), name


def test_ppo_under_a_sharded_config_says_it_runs_as_ddp_and_updates_like_one_process(tmp_path, tiny_model_dir,
                                                                                      pairs_file):
    """PPO does not shard: launched with an FSDP (or DeepSpeed) config it runs as DDP, says so once, and ends where
    one process does."""
    runs = {}
    for n in (1, 2):
        runs[n] = tmp_path / str(n)
        runs[n].mkdir()
        proc = _ppo(runs[n], "ppo", tiny_model_dir, pairs_file, n, engine="fsdp")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    said = " ".join((proc.stdout + proc.stderr).split())
    assert said.count("ppo does not shard: it runs as DDP under this FSDP config") == 1  # rank 0 alone
    from safetensors.torch import load_file

    a, b = (load_file(runs[n] / "ppo" / "model.safetensors") for n in (1, 2))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4), name


def test_the_engine_a_launcher_asks_for_is_named(monkeypatch):
    from bench import distributed

    for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.engine_asked() is None
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert distributed.engine_asked() == "DeepSpeed ZeRO-3"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.engine_asked() == "FSDP"


@pytest.mark.vllm
def test_ppo_with_vllm_rollouts_under_two_processes_samples_like_one(tmp_path_factory, tiny_model_dir, pairs_file):
    """Each rank starts its own engine on its own cores; prompts are seeded by their index in the iteration, so
    sampling at temperature 1 draws what one process draws, and the runs agree."""
    runs = _one_and_two_processes(tmp_path_factory, "ppo", tiny_model_dir, pairs_file, "--set", "rollout_backend=vllm",
                                  "--set", "temperature=1.0")
    _same_iterations(runs, "ppo")


def test_ppo_refuses_a_rollout_batch_the_processes_cannot_share(tmp_path, tiny_model_dir, pairs_file):
    proc = _ppo(tmp_path, "ppo", tiny_model_dir, pairs_file, 2, "--set", "rollout_batch=3")
    assert proc.returncode != 0
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "rollout_batch = 3 does not divide by the 2 launched processes" in said and "bug:" not in said
    assert not (tmp_path / "ppo").exists()
