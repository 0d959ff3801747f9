"""bench suite: FIGA's lm-eval tasks on the data kit, the cached runner, the FIGA average, the CLI."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data import DataError
from bench.data.readers import data_dir
from bench.suite import TASKS_DIR, SuiteConfig, SuiteRunner, figa_average, run_suite
from bench.suite.runner import resolve_suite

needs_kit = pytest.mark.skipif(not (data_dir() / "eval").is_dir(), reason="data kit not found (set BENCH_DATA)")


def _kit():
    """The hook module as lm-eval loads it (from the task directory), to check the rows it gives lm-eval."""
    from lm_eval.tasks._yaml_loader import _import_func_in_yml

    return {n: _import_func_in_yml(f"kit.{n}", TASKS_DIR) for n in ("mmlu", "truthfulqa", "crows_pairs", "winogender")}


@needs_kit
def test_kit_rows_have_the_shape_and_counts_of_the_standard_sets():
    kit = _kit()
    mmlu = kit["mmlu"]({"test": "eval/mmlu/mmlu_test_sample20per_subject.jsonl", "dev": "eval/mmlu/mmlu_dev.jsonl"},
                       subject="anatomy")
    assert (len(mmlu["test"]), len(mmlu["dev"])) == (20, 5)
    assert set(mmlu["test"][0]) == {"subject", "question", "choices", "answer"} and len(mmlu["test"][0]["choices"]) == 4
    tqa = kit["truthfulqa"]({"validation": "eval/truthfulqa/v1_817/mc_task.json"})["validation"]
    assert len(tqa) == 817
    # lm-eval's MC1 scores choice 0 as the answer: exactly one true answer, listed first.
    assert all(r["mc1_targets"]["labels"][0] == 1 and sum(r["mc1_targets"]["labels"]) == 1 for r in tqa)
    assert all(set(r["mc1_targets"]["choices"]) <= set(r["mc2_targets"]["choices"]) for r in tqa)
    assert len(kit["crows_pairs"]({"test": "eval/crows_pairs_anonymized.csv"})["test"]) == 1508
    wino = kit["winogender"]({"test": "eval/winogender/all_sentences.tsv"}, gender="female")["test"]
    assert len(wino) == 240 and {r["pronoun"] for r in wino} == {"she", "her"}
    row = next(r for r in wino if r["sentid"] == "technician.customer.1.female.txt")
    assert (row["occupation"], row["participant"], row["label"]) == ("technician", "customer", 1)


def test_figa_average_reproduces_the_papers_figa_row():
    # FIGA's row in the paper's Table 2; its printed Avg is 34.9.
    scores = dict(reward=4.62, mmlu=40.8, truthfulqa=42.0, crows_pairs=61.2, winogender=59.6, vicuna=8.6, wizardlm=8.3)
    assert round(figa_average(scores)["avg"], 1) == 34.9
    partial = figa_average({**scores, "reward": None})
    assert partial["avg"] is None and partial["missing"] == ["reward"] and partial["partial_avg_terms"] == 6


def test_suite_spec_resolution():
    entries, include = resolve_suite("figa")
    assert entries == ["figa_mmlu", "figa_truthfulqa", "figa_crows_pairs", "figa_winogender"]
    assert include == [str(TASKS_DIR)]
    # A task directory contributes its top-level entries (groups' members run inside their group).
    entries, include = resolve_suite(str(TASKS_DIR) + ",hellaswag")
    assert sorted(entries) == ["figa_crows_pairs", "figa_mmlu", "figa_truthfulqa", "figa_winogender", "hellaswag"]


def test_vllm_cpu_metadata_shim_is_scoped():
    from bench.suite.backends import prepare_vllm_cpu

    prepare_vllm_cpu()
    import lm_eval.models.vllm_causallms as v

    assert v.version("vllm").startswith(importlib.metadata.version("vllm-cpu"))
    assert importlib.metadata.version.__module__ == "importlib.metadata"  # restored for everyone else


@needs_kit
def test_local_suite_runs_on_tiny_model_and_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    cfg = SuiteConfig(limit=2, shots={"figa_mmlu": 0}, out_dir=str(tmp_path))
    summary = run_suite(tiny_model_dir, cfg)
    scores = summary["figa"]["scores"]
    assert all(0 <= scores[k] <= 100 for k in ("mmlu", "truthfulqa", "crows_pairs", "winogender"))
    assert summary["tasks"]["figa_mmlu"]["n"] == 57 * 2 and summary["tasks"]["figa_winogender"]["n"] == 3 * 2
    assert summary["figa"]["avg"] is None and "reward" in summary["figa"]["missing"]
    # Each column keeps its standard error (the leaderboard prints it beside the score).
    assert summary["figa"]["stderr"]["mmlu"] == summary["tasks"]["figa_mmlu"]["metrics"]["acc"]["stderr"] is not None
    stored = json.loads(Path(summary["entries"]["figa_mmlu"]["path"]).read_text())
    # lm-eval's own results JSON (readable by its tooling) plus our provenance.
    assert stored["n-shot"]["figa_mmlu::anatomy"] == 0 and stored["lm_eval_version"]
    assert stored["versions"]["figa_mmlu::anatomy"] == 1.0
    assert stored["bench"]["backend"] == "hf-prefix" and len(stored["bench"]["template_hash"]) == 16
    assert json.loads((tmp_path / "summary.json").read_text())["figa"]["scores"] == scores

    def no_model(self):
        raise AssertionError("a cached suite must not load the model")

    monkeypatch.setattr(SuiteRunner, "lm", property(no_model))
    again = SuiteRunner(tiny_model_dir, cfg)
    assert all(r.cached for r in again.run())
    changed = SuiteRunner(tiny_model_dir, SuiteConfig(limit=3, shots={"figa_mmlu": 0}, out_dir=str(tmp_path)))
    assert changed.key("figa_crows_pairs") != again.key("figa_crows_pairs")
    assert not changed.result_path("figa_crows_pairs").exists()


def test_missing_data_file_names_task_and_path(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "no-kit"))
    runner = SuiteRunner(tiny_model_dir, SuiteConfig(suite=str(TASKS_DIR / "figa_crows_pairs.yaml"), limit=1,
                                                     out_dir=str(tmp_path / "out")))
    with pytest.raises(DataError) as e:
        runner.run()
    assert "figa_crows_pairs" in str(e.value) and str(tmp_path / "no-kit" / "eval/crows_pairs_anonymized.csv") in str(e.value)


@needs_kit
def test_cli_prints_table_and_rejects_bad_options(tiny_model_dir, tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["suite", tiny_model_dir, "--suite", str(TASKS_DIR / "figa_winogender.yaml"),
                              "--limit", "2", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "figa_winogender" in result.output and "Avg" in result.output and (tmp_path / "summary.json").exists()
    bad = cli.invoke(app, ["suite", tiny_model_dir, "--suite", "no_such_task_xyz", "--out-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "no_such_task_xyz" in bad.output


def test_chat_template_rendering_is_bench_chat(tiny_model_dir):
    """With --chat-template, lm-eval renders prompts exactly as bench.chat does for training."""
    from lm_eval.models.huggingface import HFLM

    from bench.chat import render_prompt
    from bench.models import load_tokenizer

    lm = HFLM(pretrained=tiny_model_dir, device="cpu", dtype="float32")
    messages = [{"role": "user", "content": "Which is larger, 3 or 5?"}]
    assert lm.apply_chat_template(messages) == render_prompt(load_tokenizer(tiny_model_dir), messages)


@pytest.mark.integration
@needs_kit
def test_runner_equals_direct_lm_eval_on_smollm2(smollm2_dir, tmp_path):
    """Our runner adds caching, provenance and (default backend hf-prefix) shared-prefix reuse, never
    different numbers: each entry equals a plain lm_eval.simple_evaluate call of lm-eval's own hf model
    with the same task files, model arguments, limit and shots (up to float rounding of the reuse)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    cfg = SuiteConfig(limit=2, shots={"figa_mmlu": 0}, out_dir=str(tmp_path))
    runner = SuiteRunner(smollm2_dir, cfg)
    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    for ours in runner.run():
        direct = simple_evaluate(model="hf", model_args=runner.backend.model_args, tasks=[ours.entry], task_manager=tm,
                                 limit=2, num_fewshot=cfg.shots.get(ours.entry), log_samples=False)["results"]
        assert set(ours.results["results"]) == set(direct)
        for name, row in direct.items():
            for key, value in row.items():
                if isinstance(value, float):
                    assert ours.results["results"][name][key] == pytest.approx(value, rel=1e-4, abs=1e-7), (name, key)


def test_prefix_sharing_model_scores_like_lm_evals_hf(tiny_model_dir):
    """hf-prefix reuses cached prompt prefixes; each request's log-probability and greedy flag must equal
    lm-eval's own hf model: shared and unshared contexts, one- and multi-token answers, repeated answers,
    a one-token context, and a prompt longer than max_length (truncated from the left)."""
    import random

    from lm_eval.models.huggingface import HFLM

    from bench.suite.prefix_lm import PrefixSharingHFLM

    rng = random.Random(0)
    primer = [rng.randrange(50, 5000) for _ in range(40)]
    requests = []
    for q in range(6):
        context = primer + [rng.randrange(50, 5000) for _ in range(rng.randrange(1, 9))]
        answers = [[rng.randrange(50, 5000) for _ in range(rng.randrange(1, 6))] for _ in range(4)]
        answers.append(list(answers[0]))  # the same answer twice (TruthfulQA MC1 choices reappear in MC2)
        answers.append(answers[1][:1])  # a one-token answer that another answer extends
        requests += [(("c", "a"), context, a) for a in answers]
    requests += [(("", "s"), [0], [rng.randrange(50, 5000) for _ in range(n)]) for n in (3, 7, 1)]
    requests.append((("long", "x"), [rng.randrange(50, 5000) for _ in range(60)], [11, 12, 13]))
    args = dict(pretrained=tiny_model_dir, device="cpu", dtype="float32", batch_size=4, max_length=48)
    expected = HFLM(**args)._loglikelihood_tokens(requests)
    ours = PrefixSharingHFLM(**args)
    assert ours._plain_cache()  # the shared-prefix path runs, not the fallback to hf's own
    got = ours._loglikelihood_tokens(requests)
    assert [g for _, g in got] == [g for _, g in expected]
    assert [lp for lp, _ in got] == pytest.approx([lp for lp, _ in expected], rel=1e-5, abs=1e-4)
    # A tight token budget splits the answer rows into more batches, none wider than the budget allows.
    shapes = []
    ours.model.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    ours.max_batch_tokens = 8
    tight = ours._loglikelihood_tokens(requests)
    assert [lp for lp, _ in tight] == pytest.approx([lp for lp, _ in got], rel=1e-5, abs=1e-5)
    rows = [(b, n) for b, n in shapes if b > 1]
    assert rows and all(b * n <= 8 for b, n in rows)


def test_hub_suite_names_lm_evals_own_tasks_and_fails_clearly_offline(tiny_model_dir, tmp_path, monkeypatch):
    """figa-hub is lm-eval's own MMLU/TruthfulQA/CrowS/WinoGender (Hub datasets): every name must exist in
    the installed lm-eval, FIGA's columns must read their results, and offline the error says what to do."""
    from lm_eval.tasks import TaskManager

    from bench.suite.runner import SUITES
    from bench.suite.summary import FIGA_SOURCES

    known = TaskManager().all_tasks
    assert all(name in known for name in SUITES["figa-hub"])
    assert all(any(t in SUITES["figa-hub"] for t, _ in sources) for sources in FIGA_SOURCES.values())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = SuiteRunner(tiny_model_dir, SuiteConfig(suite="winogender_all", limit=1, out_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="winogender_all.*--suite figa"):
        runner.run()
