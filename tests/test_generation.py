"""Generation: output formats, resume, seeds, stopping, and vLLM/HF greedy parity on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench import generation
from conftest import children_left
from bench.data import DataError, EvalPrompt, user
from bench.generation import HFBackend, Sampling, generate_eval, read_outputs

PROMPTS = [EvalPrompt(str(i), user(q), f"reference {i}", "toy") for i, q in enumerate(
    ["Name three colours.", "What is 2 + 2?", "Write a haiku about rain.", "Say hello.", "Define entropy."])]


@pytest.fixture()
def counting(monkeypatch):
    """Record how many prompts each backend call generates (the real backend still runs)."""
    calls = []
    real = generation.make_backend

    def make(*args, **kwargs):
        engine = real(*args, **kwargs)
        inner = engine.generate

        def generate(prompts, sampling):
            calls.append(len(prompts))
            return inner(prompts, sampling)

        engine.generate = generate
        return engine

    monkeypatch.setattr(generation, "make_backend", make)
    return calls


def rows(out):
    return [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]


def test_writes_alpaca_eval_outputs_and_rich_rows(tmp_path, tiny_model_dir):
    out = generate_eval(tiny_model_dir, PROMPTS[:2], tmp_path, "hf", Sampling(max_new_tokens=6), generator="tiny", dataset="toy")
    alpaca = json.loads((out / "model_outputs.json").read_text())
    assert [set(r) for r in alpaca] == [{"instruction", "output", "generator", "dataset"}] * 2
    assert alpaca[0]["instruction"] == "Name three colours." and alpaca[0]["generator"] == "tiny"
    r = rows(out)[0]
    assert r["output_tokens"] == len(r["token_ids"]) <= 6 and r["prompt_tokens"] > 0
    assert r["finish_reason"] in ("stop", "length") and r["seed"] == 0 and r["sampling"]["max_new_tokens"] == 6
    assert r["backend"] == "hf" and r["backend_version"].startswith("transformers")
    meta = json.loads((out / "generation_meta.json").read_text())
    assert meta["backend"] == "hf" and meta["n"] == 2 and meta["template_hash"]


def test_resume_generates_only_the_missing_prompts(tmp_path, tiny_model_dir, counting):
    sampling = Sampling(max_new_tokens=5)
    generate_eval(tiny_model_dir, PROMPTS[:3], tmp_path, "hf", sampling)
    first = rows(tmp_path)
    generate_eval(tiny_model_dir, PROMPTS, tmp_path, "hf", sampling)
    assert counting == [3, 2]
    assert rows(tmp_path)[:3] == first
    # An interrupted write leaves a torn last line: that prompt (only) is generated again.
    text = (tmp_path / "generations.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "generations.jsonl").write_text("".join(text[:4]) + text[4][:30])
    generate_eval(tiny_model_dir, PROMPTS, tmp_path, "hf", sampling)
    assert counting == [3, 2, 1] and len(rows(tmp_path)) == 5
    generate_eval(tiny_model_dir, PROMPTS, tmp_path, "hf", sampling)  # all done: no backend is even built
    assert counting == [3, 2, 1]
    generate_eval(tiny_model_dir, PROMPTS[:2], tmp_path, "hf", Sampling(max_new_tokens=4))  # new settings: new answers
    assert counting == [3, 2, 1, 2] and [r["sampling"]["max_new_tokens"] for r in rows(tmp_path)] == [4, 4]


def test_sampling_is_seeded_and_stops_at_the_end_of_turn(tiny_model_dir, tokenizer):
    hf = HFBackend(tiny_model_dir, tokenizer, batch_size=2)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in ("Hello", "Tell me a story")]
    a = hf.generate(ids, Sampling(max_new_tokens=12, temperature=1.0, seed=1))
    b = hf.generate(ids, Sampling(max_new_tokens=12, temperature=1.0, seed=1))
    c = hf.generate(ids, Sampling(max_new_tokens=12, temperature=1.0, seed=2))
    assert [x.token_ids for x in a] == [x.token_ids for x in b] != [x.token_ids for x in c]
    assert generation.stop_ids(tokenizer, tiny_model_dir) == [tokenizer.eos_token_id]
    for x in a + c:  # the end-of-turn token ends generation and is never part of the answer
        assert tokenizer.eos_token_id not in x.token_ids
        assert (x.finish_reason == "length") == (len(x.token_ids) == 12)


def test_reading_outputs_names_the_bad_row(tmp_path):
    bad = tmp_path / "model_outputs.json"
    bad.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c"}]))
    with pytest.raises(DataError, match=r"model_outputs.json, line 2: field 'output': missing"):
        read_outputs(bad)


@pytest.mark.vllm
def test_vllm_and_hf_generate_the_same_greedy_tokens(tmp_path, tiny_model_dir):
    """vLLM runs in a subprocess (its engine spawns workers); HF runs here; fp32 greedy must agree."""
    limit = 4
    cmd = [os.path.join(os.path.dirname(sys.executable), "bench"), "generate", tiny_model_dir, "--eval-set", "alpaca_eval", "--limit", str(limit),
           "--max-new-tokens", "24", "--backend", "vllm", "--output-dir", str(tmp_path / "vllm")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from bench.data import load

    generate_eval(tiny_model_dir, load("alpaca_eval", limit=limit), tmp_path / "hf", "hf", Sampling(max_new_tokens=24))
    v, h = rows(tmp_path / "vllm"), rows(tmp_path / "hf")
    assert v[0]["backend"] == "vllm" and "vllm" in v[0]["backend_version"]
    assert [r["token_ids"] for r in v] == [r["token_ids"] for r in h]
    assert len({t for r in h for t in r["token_ids"]}) > 10  # the tiny model's output varies: a real comparison


# ---------------------------------------------------------------- one engine, many checkpoints (bench/engine.py)
ENGINE = dict(kv_cache_gb=0.25, max_model_len=512, max_num_seqs=8)  # a small KV cache: the machine is shared


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, smollm2_dir):
    """Three tiny llamas of one shape with different weights, and a copy of the first under another path."""
    import shutil

    from bench.models import make_tiny_model

    root = tmp_path_factory.mktemp("ckpts")
    dirs = [str(make_tiny_model(root / name, tokenizer_from=smollm2_dir, seed=seed)) for seed, name in enumerate("abc")]
    return dirs + [shutil.copytree(dirs[0], root / "a2")]


@pytest.mark.vllm
def test_one_engine_swaps_checkpoints_resumes_and_shuts_down(tmp_path, checkpoints, monkeypatch):
    """A -> B -> C -> A in one engine equals fresh engines / HF token for token; a stage killed in C resumes
    with only C's missing prompts; the engine's processes are gone after the stage, also after the kill."""
    import psutil

    from bench.engine import Engine
    from bench.generation import generate_evals

    names = ["a", "b", "c", "a2"]
    jobs = [(n, d, tmp_path / n) for n, d in zip(names, checkpoints)]
    sampling = Sampling(max_new_tokens=20)
    calls, real = [], Engine.generate

    def generate(self, prompts, params):
        calls.append((os.path.basename(self.loaded), len(prompts)))
        if len(calls) == 6:  # C's second chunk: the stage dies here
            raise KeyboardInterrupt
        return real(self, prompts, params)

    monkeypatch.setattr(Engine, "generate", generate)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(KeyboardInterrupt):
        generate_evals(jobs, PROMPTS, "vllm", sampling, chunk=3, backend_options=ENGINE)
    assert children_left(before) == []  # shut down on the way out
    assert calls == [("a", 3), ("a", 2), ("b", 3), ("b", 2), ("c", 3), ("c", 2)]
    assert len(rows(tmp_path / "c")) == 3 and not (tmp_path / "a2").joinpath("generations.jsonl").exists()

    calls.clear()
    generate_evals(jobs, PROMPTS, "vllm", sampling, chunk=3, backend_options=ENGINE)
    assert calls == [("c", 2), ("a2", 3), ("a2", 2)]  # only what was missing
    assert children_left(before) == []
    swapped = {n: [r["token_ids"] for r in rows(tmp_path / n)] for n in names}
    assert [r["id"] for r in rows(tmp_path / "c")] == [p.id for p in PROMPTS]
    meta = json.loads((tmp_path / "c" / "generation_meta.json").read_text())
    assert meta["engine_start_seconds"] > 0 and meta["generated_now"] == 2

    # References: a fresh engine on B (swapped in second), HF generate on every checkpoint.
    fresh_b = generate_eval(checkpoints[1], PROMPTS, tmp_path / "fresh_b", "vllm", sampling, backend_options=ENGINE)
    assert [r["token_ids"] for r in rows(fresh_b)] == swapped["b"]
    for n, d in zip(names, checkpoints):
        hf = generate_eval(d, PROMPTS, tmp_path / f"hf_{n}", "hf", sampling)
        assert [r["token_ids"] for r in rows(hf)] == swapped[n], n
    assert swapped["a"] == swapped["a2"] != swapped["b"] != swapped["c"]  # no leak of the previous weights
    assert len({t for ids in swapped["b"] for t in ids}) > 10


@pytest.mark.vllm
@pytest.mark.integration
def test_smollm2_swap_equals_a_fresh_engine(tmp_path, smollm2_dir, tokenizer):
    """The real model (tied embeddings, 30 layers): base -> perturbed -> base in one engine vs fresh engines."""
    import torch

    from bench.chat import prompt_ids
    from bench.engine import Engine
    from bench.models import load_model

    model = load_model(smollm2_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02 * p.std())
    model.save_pretrained(tmp_path / "perturbed")
    tokenizer.save_pretrained(tmp_path / "perturbed")
    del model
    from vllm import SamplingParams

    ids = [prompt_ids(tokenizer, user(q)) for q in ("Name three colours.", "Give me a tip for sleeping well.")]
    params = SamplingParams(max_tokens=24, temperature=0, detokenize=False)
    out = lambda e: [list(o.outputs[0].token_ids) for o in e.generate(ids, params)]  # noqa: E731
    with Engine(smollm2_dir, **ENGINE) as engine:
        base = out(engine)
        engine.load(str(tmp_path / "perturbed"))
        perturbed = out(engine)
        engine.load(smollm2_dir)
        back = out(engine)
    with Engine(str(tmp_path / "perturbed"), **ENGINE) as engine:
        fresh = out(engine)
    assert perturbed == fresh and back == base and perturbed != base


def test_a_checkpoint_whose_chat_template_changed_is_refused_unless_allowed(tmp_path, tiny_model_dir):
    import shutil

    from bench.chat import template_hash
    from bench.models import load_tokenizer

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_model_dir, ckpt)
    trained = template_hash(load_tokenizer(str(ckpt)))
    (ckpt / "bench_run.json").write_text(json.dumps({"chat_template_hash": trained}))
    generate_eval(str(ckpt), PROMPTS[:1], tmp_path / "same", "hf", Sampling(max_new_tokens=2))  # unchanged: fine
    (ckpt / "bench_run.json").write_text(json.dumps({"chat_template_hash": "0123456789abcdef"}))
    with pytest.raises(DataError) as e:
        generate_eval(str(ckpt), PROMPTS[:1], tmp_path / "refused", "hf", Sampling(max_new_tokens=2))
    assert "bench_run.json" in str(e.value) and "--allow-template-change" in str(e.value)
    assert not (tmp_path / "refused" / "generations.jsonl").exists()
    out = generate_eval(str(ckpt), PROMPTS[:1], tmp_path / "allowed", "hf", Sampling(max_new_tokens=2),
                        allow_template_change=True)
    meta = json.loads((out / "generation_meta.json").read_text())
    assert meta["template_changed"] == {"trained": "0123456789abcdef", "now": trained}


@pytest.mark.vllm
def test_seeded_sampling_of_prompts_longer_than_one_prefill_step(tiny_model_dir):
    """PPO samples with a seed per request. vLLM's CPU worker crashed when chunked prefill split such a
    request across steps (8 prompts of ~900 tokens overflow a 4,096-token step); an engine made for seeded
    sampling prefills whole prompts, and the same seeds give the same samples."""
    from vllm import SamplingParams

    from bench.engine import Engine

    prompts = [[100 + (i * 7 + j) % 5000 for j in range(900)] for i in range(8)]
    params = [SamplingParams(max_tokens=4, temperature=1.0, seed=i, detokenize=False) for i in range(8)]
    with Engine(tiny_model_dir, **{**ENGINE, "max_model_len": 1024}, seeded_sampling=True) as engine:
        first = [list(o.outputs[0].token_ids) for o in engine.generate(prompts, params)]
        again = [list(o.outputs[0].token_ids) for o in engine.generate(prompts, params)]
    assert first == again and all(len(ids) == 4 for ids in first)
