"""The sweep: the choice and tie rules, edge extension, resume, divergence, the config layering of its result,
real sweeps on the tiny model, and the held-out prompts it scores on (never an eval prompt)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from bench import registry
from bench.config import recipe_config, sweep_path
from bench.sweep import LR_LIMITS, choose, sweep


def test_choice_prefers_score_then_tiebreak_then_the_smaller_rate():
    grid = [{"learning_rate": 1e-4, "score": 0.7, "tiebreak": 0.0}, {"learning_rate": 1e-5, "score": 0.8, "tiebreak": -2.0},
            {"learning_rate": 1e-6, "score": 0.8, "tiebreak": -1.0}]
    assert choose(grid)["learning_rate"] == 1e-6
    grid[2]["tiebreak"] = -2.0
    assert choose(grid)["learning_rate"] == 1e-6  # a full tie: the conservative rate
    grid[1]["score"] = 0.9
    assert choose(grid)["learning_rate"] == 1e-5


def _winrate_point(lr: float, wins: int, n: int = 100, start: int = 0) -> dict:
    """``wins`` of ``n`` prompts won, the won prompts starting at ``start`` (so two points win different prompts)."""
    prefs = [1.0 if (i - start) % n < wins else 0.0 for i in range(n)]
    return {"learning_rate": lr, "score": wins / n, "win_rate": wins / n, "tiebreak": 0.0, "preferences": prefs,
            "win_rate_ci95": [max(0.0, wins / n - 0.1), min(1.0, wins / n + 0.1)], "loop": 0.0, "truncated": 0.5,
            "empty": 0.0}


def test_win_rates_the_data_cannot_tell_apart_go_to_the_lowest_rate():
    close = [_winrate_point(1e-6, 40), _winrate_point(1e-5, 45, start=50), _winrate_point(1e-4, 20)]
    assert choose(close)["learning_rate"] == 1e-6  # 45 vs 40 of 100: a tie, the lower rate
    apart = [_winrate_point(1e-6, 10), _winrate_point(1e-5, 60, start=50), _winrate_point(1e-4, 20)]
    assert choose(apart)["learning_rate"] == 1e-5
    failed = apart + [{"learning_rate": 1e-3, "failed": "loss became nan at step 2", "score": None, "tiebreak": None}]
    assert choose(failed)["learning_rate"] == 1e-5


def _moved(spec, tmp_path):
    """The recipe's spec with its YAML in tmp_path, so the test writes its sweep there, not in the repo."""
    yaml_path = tmp_path / spec.yaml_path.name
    yaml_path.write_text(spec.yaml_path.read_text())
    return dataclasses.replace(spec, yaml_path=yaml_path)


class ScriptedScorer:
    """Win rate as a function of the learning rate the checkpoint was trained with (read from bench_run.json)."""

    def __init__(self, curve):
        self.curve, self.scored = curve, []

    def score(self, name, checkpoint):
        lr = json.loads((Path(checkpoint) / "bench_run.json").read_text())["config"]["learning_rate"]
        self.scored.append(lr)
        return {**_winrate_point(lr, self.curve(lr)), "mean_tokens": 100.0, "base_mean_tokens": 100.0}

    def base(self):
        return {**_winrate_point(0.0, 30), "mean_tokens": 100.0}


def scripted_recipe(cls, trained: list, fail: dict | None = None, nan_at: float | None = None):
    """``cls`` whose training writes a finished checkpoint at once (counted; ``fail``: raise at that rate once)."""

    cached: list = []

    class Scripted(cls):
        def run(self, cfg):
            if fail and cfg.learning_rate in fail:
                fail.pop(cfg.learning_rate)
                raise KeyboardInterrupt  # the sweep is interrupted while training this point
            trained.append(cfg.learning_rate)
            out = Path(cfg.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            cached.append((out / "ref_logps.pt").exists())  # DPO's reference log-probs, computed once per sweep
            (out / "ref_logps.pt").write_text("reference log-probs")
            (out / "bench_run.json").write_text(json.dumps({"config": {"learning_rate": cfg.learning_rate},
                                                            "train_seconds": 1.0}))
            loss = float("nan") if cfg.learning_rate == nan_at else 1.0
            (out / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n"
                                                 + json.dumps({"step": 2, "loss": loss}) + "\n")
            return out

    Scripted.cached = cached
    return Scripted


def _scripted_sweep(tmp_path, curve, lrs, trained, **kw):
    spec, cls = registry.get("sft")
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = _moved(spec, tmp_path)
    recipe = scripted_recipe(cls, trained, kw.pop("fail", None), kw.pop("nan_at", None))
    layers = [("test", {"model": "some-model", "data": "expertqa"})]
    scorer = ScriptedScorer(curve)
    scorer.recipe = recipe
    path = sweep(spec, recipe, layers, [{"learning_rate": r} for r in lrs], tmp_path / "runs", "winrate", scorer,
                 {"judge": "scripted"}, **kw)
    return yaml.safe_load(path.read_text()), scorer


def test_a_best_rate_at_an_edge_extends_the_grid_tenfold_until_inside_or_at_the_limit(tmp_path):
    peak = lambda lr: {1e-6: 20, 1e-5: 30, 1e-4: 50, 1e-3: 80}.get(lr, 10)  # noqa: E731  best: ever higher
    doc, _ = _scripted_sweep(tmp_path, peak, [1e-6, 1e-5, 1e-4], [])
    assert [g["learning_rate"] for g in doc["grid"]] == [1e-6, 1e-5, 1e-4, 1e-3]  # 1e-2 would pass LR_LIMITS
    assert doc["chosen"] == {"learning_rate": 1e-3} and LR_LIMITS[1] == 1e-3
    assert "added 0.001" in doc["extensions"][0] and "not extended" in doc["extensions"][1]
    assert doc["untrained"]["win_rate"] == 0.3 and "preferences" not in doc["grid"][0]
    gain = doc["chosen_vs_untrained"]  # what the chosen rate bought over not training, with its paired interval
    assert gain["difference"] == pytest.approx(0.5) and 0 < gain["ci95"][0] < 0.5 < gain["ci95"][1]
    low = lambda lr: {1e-6: 60, 1e-5: 30, 1e-4: 10, 1e-7: 50}.get(lr, 0)  # noqa: E731  best at the low edge, then inside
    doc, _ = _scripted_sweep(tmp_path / "low", low, [1e-6, 1e-5, 1e-4], [])
    assert [g["learning_rate"] for g in doc["grid"]] == [1e-6, 1e-5, 1e-4, 1e-7]
    assert doc["best_point_estimate"] == {"learning_rate": 1e-6} and len(doc["extensions"]) == 1
    inside = lambda lr: {1e-6: 20, 1e-5: 60, 1e-4: 10}[lr]  # noqa: E731
    doc, _ = _scripted_sweep(tmp_path / "inside", inside, [1e-6, 1e-5, 1e-4], [], extend=True)
    assert len(doc["grid"]) == 3 and doc["extensions"] == []


def test_an_interrupted_sweep_retrains_only_the_missing_points(tmp_path):
    inside = lambda lr: {1e-6: 20, 1e-5: 60, 1e-4: 10}[lr]  # noqa: E731
    trained: list = []
    with pytest.raises(KeyboardInterrupt):
        _scripted_sweep(tmp_path, inside, [1e-6, 1e-5, 1e-4], trained, fail={1e-4: True})
    assert trained == [1e-6, 1e-5]
    doc, scorer = _scripted_sweep(tmp_path, inside, [1e-6, 1e-5, 1e-4], trained)
    assert trained == [1e-6, 1e-5, 1e-4] and scorer.scored == [1e-4]  # one point trained and scored, not three
    assert scorer.recipe.cached == [True]  # the rate-independent cache of the earlier points was carried over
    assert doc["trained_now"] == 1 and doc["chosen"] == {"learning_rate": 1e-5}


def test_a_diverged_point_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    curve = lambda lr: {1e-6: 50, 1e-5: 60, 1e-4: 10}.get(lr, 0)  # noqa: E731
    doc, scorer = _scripted_sweep(tmp_path, curve, [1e-6, 1e-5, 1e-4], [], nan_at=1e-5)
    failed = doc["grid"][1]
    assert "loss became nan at step 2" in failed["failed"] and 1e-5 not in scorer.scored
    assert doc["chosen"] == {"learning_rate": 1e-6}  # the best of the points that trained
    assert [g["learning_rate"] for g in doc["grid"]] == [1e-6, 1e-5, 1e-4, 1e-7]  # and it was at the low edge


def test_sweep_result_layers_between_recipe_yaml_and_run_budget(tmp_path):
    spec, cls = registry.get("dpo")
    spec = _moved(spec, tmp_path)
    run = [("run", {"model": "smollm2-135m-instruct", "data": "expertqa"})]
    assert recipe_config(cls, spec, run).learning_rate == spec.defaults["learning_rate"]  # no sweep yet
    sweep_path(spec).parent.mkdir()
    sweep_path(spec).write_text(yaml.safe_dump({"model": "smollm2-135m-instruct", "data": "expertqa",
                                                "chosen": {"learning_rate": 3e-6}}))
    assert recipe_config(cls, spec, run).learning_rate == 3e-6
    assert recipe_config(cls, spec, run + [("method_options.dpo", {"learning_rate": 1e-7})]).learning_rate == 1e-7
    other = [("run", {"model": "Qwen/Qwen2.5-0.5B-Instruct", "data": "expertqa"})]
    assert recipe_config(cls, spec, other).learning_rate == spec.defaults["learning_rate"]  # swept elsewhere


def _pairs_file(tmp_path) -> str:
    data = tmp_path / "rev.jsonl"
    data.write_text("".join(json.dumps({"id": i, "q": f"Question {i}: what colour is the sky?", "init": "It is green, idiot.",
                                        "rev": "It is blue."}) + "\n" for i in range(40)))
    return f"{data}?prompt=q&initial=init&revised=rev&id=id"


@pytest.mark.parametrize("recipe,objective", [("sft", "nll"), ("dpo", "pref")])
def test_sweep_trains_each_rate_scores_on_held_out_records_and_writes_the_choice(recipe, objective, tiny_model_dir, tmp_path):
    spec, cls = registry.get(recipe)
    spec = _moved(spec, tmp_path)
    layers = [("test", {"model": tiny_model_dir, "data": _pairs_file(tmp_path),
                        "max_steps": 3, "batch_size": 4, "limit": 12, "max_length": 64, "val_fraction": 0.25,
                        "val_limit": 8, "save_steps": 100, "lr_scheduler": "constant", "warmup_ratio": 0.0})]
    path = sweep(spec, cls, layers, [{"learning_rate": 1e-6}, {"learning_rate": 1e-3}], tmp_path / "runs", objective,
                 extend=False)
    doc = yaml.safe_load(path.read_text())
    assert path == sweep_path(spec) and [g["learning_rate"] for g in doc["grid"]] == [1e-6, 1e-3]
    assert all(g["n"] == 8 for g in doc["grid"]) and doc["objective"].startswith(objective)
    # 3 steps at 1e-6 barely move a random model; 1e-3 learns the one revised answer (and prefers it)
    assert doc["chosen"] == {"learning_rate": 1e-3}, doc["grid"]
    assert doc["budget"]["max_steps"] == 3 and doc["data"].startswith(str(tmp_path)) and doc["date"]
    assert not (tmp_path / "runs" / recipe / "lr=0.001").exists()  # checkpoints deleted once scored


def test_the_winrate_objective_judges_held_out_answers_and_counts_degenerate_ones_as_losses(tiny_model_dir, tmp_path):
    from bench.heldout_winrate import HeldoutWinRate, heldout_prompts

    prompts = heldout_prompts(_pairs_file(tmp_path), 0.25, 0)
    assert prompts and all(p.reference == "It is blue." for p in prompts)
    scorer = HeldoutWinRate(prompts, tmp_path / "s", tiny_model_dir, "mimic-gpt4", {}, 24, backend="hf")
    result = scorer.score("point", tiny_model_dir)
    assert result["n"] == len(prompts) == len(result["preferences"]) and result["base_mean_tokens"] == result["mean_tokens"]
    lo, hi = result["win_rate_ci95"]
    assert lo <= result["win_rate"] <= hi
    from bench.degeneration import is_degenerate
    from bench.generation import read_rows

    rows = read_rows(tmp_path / "s" / "answers" / "point" / "generations.jsonl")  # no prefix given
    assert [r["id"] for r in rows] == [p.id for p in prompts]
    assert all(pref == 0.0 for r, pref in zip(rows, result["preferences"]) if is_degenerate(r["output"], r["token_ids"]))
    with pytest.raises(Exception, match="local-rm"):  # the run's gate: an unvalidated judge is refused
        HeldoutWinRate(prompts, tmp_path / "s", tiny_model_dir, "local-rm", {}, 24, backend="hf")


@pytest.mark.parametrize("eval_set", ["alpaca_eval", "vicuna", "mt_bench", "wizardlm"])
def test_sweep_prompts_and_eval_prompts_are_disjoint_by_id_and_text(eval_set):
    from bench.data import load
    from bench.generation import instruction_text
    from bench.heldout_winrate import heldout_prompts
    from bench.stages.config import RunConfig

    run = RunConfig()
    held = heldout_prompts(run.data, run.budget["val_fraction"], 0)
    evals = load(eval_set)
    texts = {instruction_text(p.prompt).strip().lower() for p in evals}
    ids = {p.id for p in evals} | {p.source_id for p in evals}
    assert len(held) > 40
    assert not [p for p in held if instruction_text(p.prompt).strip().lower() in texts]
    assert not [p for p in held if p.id in ids]


def test_the_printed_table_shows_each_point_with_its_interval_length_and_the_untrained_model(tmp_path):
    from rich.console import Console

    from bench.cli_sweep import _table

    peak = lambda lr: {1e-6: 20, 1e-5: 30, 1e-4: 50}[lr]  # noqa: E731
    doc, _ = _scripted_sweep(tmp_path, peak, [1e-6, 1e-5, 1e-4], [], extend=False)
    assert doc["extensions"] == ["best rate 0.0001 is the highest tried; not extended (extend off)"]
    console = Console(record=True, width=200)
    console.print(_table(doc))
    text = console.export_text()
    assert "untrained" in text and "50.0 [" in text and "chosen" in text and "100.0 (100.0)" in text
