"""A judge the run serves itself: ``judge: llm`` with ``judge_serve`` starts ``bench serve`` for the judge model in
the judge stage, judges through it, and stops it; it is checked and gated like every judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data import DataError
from conftest import children_left
from bench.stages import load_run_config

CHOICES = {"annotator": "chatgpt", "choices": ["Output (a)", "Output (b)"], "max_tokens": 8}


def served_run(tmp_path, model: str, **overrides):
    return load_run_config(None, {"run": "served", "root": str(tmp_path), "model": model, "methods": ["sft"],
                                  "eval_limit": 3, "judge": "llm", "judge_options": CHOICES,
                                  "judge_serve": {"model": model, "max_model_len": 2048},
                                  "allow_unvalidated_judge": True, **overrides})


def test_judge_serve_is_checked_before_anything_runs(tmp_path, tiny_model_dir):
    with pytest.raises(DataError, match="only `judge: llm` is served"):
        served_run(tmp_path, tiny_model_dir, judge="mimic-gpt4", judge_options={})
    with pytest.raises(DataError, match="judge_serve.tensor_parallel_size"):
        served_run(tmp_path, tiny_model_dir, judge_serve={"model": tiny_model_dir, "tensor_parallel_size": 0})
    with pytest.raises(DataError, match="judge_serve.port"):
        served_run(tmp_path, tiny_model_dir, judge_serve={"model": tiny_model_dir, "port": 8000})
    with pytest.raises(DataError, match="judge_serve.model"):
        served_run(tmp_path, tiny_model_dir, judge_serve={"tensor_parallel_size": 1})


def test_an_unmeasured_served_judge_is_refused_before_training(tmp_path, tiny_model_dir):
    from bench.judges.gate import UnvalidatedJudge
    from bench.stages import run_all

    run = served_run(tmp_path, tiny_model_dir, allow_unvalidated_judge=False)
    with pytest.raises(UnvalidatedJudge, match="llm_judge_bench.py"):
        run_all(run)
    assert not (run.dir / "checkpoints").exists()


@pytest.mark.vllm
def test_the_judge_stage_serves_judges_through_and_stops_its_judge(tmp_path, tiny_model_dir):
    """Answers written as the generate stage would; the judge stage serves the tiny model as the judge, every
    answer set is judged through it (parsable verdicts), verdicts are written, and no server is left."""
    import psutil

    from bench.stages import run_all
    from bench.stages.generate import output_dir, write_control
    from bench.data import load

    run = served_run(tmp_path, tiny_model_dir)
    prompts = load(run.eval_set, limit=run.eval_limit)
    for name, seed in run.units():
        if name in run.controls_named():
            write_control(run, name, run.controls_named()[name], prompts)
        else:
            rows = [{"instruction": p.prompt[-1]["content"], "output": f"Answer {i} of {name}.", "generator": name,
                     "prompt": p.prompt, "id": p.id} for i, p in enumerate(prompts)]
            out = output_dir(run, name, seed)
            out.mkdir(parents=True)
            (out / "model_outputs.json").write_text(json.dumps(rows))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    run_all(run, ["judge"])
    judged = json.loads((run.dir / "judged" / "sft" / "seed-0.json").read_text())
    assert judged["judge"]["model"] == tiny_model_dir and judged["judge"]["annotator"] == "chatgpt"
    assert judged["n"] == 3 and judged["judge_failures"] == 0
    assert json.loads((run.dir / "judged" / "verdicts.json").read_text())
    assert "Uvicorn running" in (run.dir / "judged" / "judge_server.log").read_text() or \
        (run.dir / "judged" / "judge_server.log").stat().st_size > 0
    assert children_left(before) == []  # the judge server and its engine are gone


def test_the_gpu_preset_is_a_valid_run_with_a_served_judge(monkeypatch):
    """runs/gpu.yaml names Hub models (not in this machine's cache): every other field is checked as written."""
    from bench import validate

    monkeypatch.setattr(validate, "check_model", lambda spec, source="": 32768)
    run = load_run_config(Path(__file__).resolve().parent.parent / "runs" / "gpu.yaml")
    assert run.judge == "llm" and run.judge_serve["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert run.seeds == [0, 1, 2] and run.eval_limit is None and run.suite_limit is None
    assert run.judge_options["annotator"] == "weighted_alpaca_eval_gpt4_turbo"
