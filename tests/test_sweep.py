"""The learning-rate sweep: the choice rule, the config layering of its result, and a real sweep on the tiny model."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from bench import registry
from bench.config import recipe_config, sweep_path
from bench.sweep import choose, sweep


def test_choice_prefers_score_then_tiebreak_then_the_smaller_rate():
    grid = [{"learning_rate": 1e-4, "score": 0.7, "tiebreak": 0.0}, {"learning_rate": 1e-5, "score": 0.8, "tiebreak": -2.0},
            {"learning_rate": 1e-6, "score": 0.8, "tiebreak": -1.0}]
    assert choose(grid)["learning_rate"] == 1e-6
    grid[2]["tiebreak"] = -2.0
    assert choose(grid)["learning_rate"] == 1e-6  # a full tie: the conservative rate
    grid[1]["score"] = 0.9
    assert choose(grid)["learning_rate"] == 1e-5


def _moved(spec, tmp_path):
    """The recipe's spec with its YAML in tmp_path, so the test writes its sweep there, not in the repo."""
    yaml_path = tmp_path / spec.yaml_path.name
    yaml_path.write_text(spec.yaml_path.read_text())
    return dataclasses.replace(spec, yaml_path=yaml_path)


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


@pytest.mark.parametrize("recipe", ["sft", "dpo"])
def test_sweep_trains_each_rate_scores_on_held_out_records_and_writes_the_choice(recipe, tiny_model_dir, tmp_path):
    data = tmp_path / "rev.jsonl"
    data.write_text("".join(json.dumps({"id": i, "q": f"Question {i}: what colour is the sky?", "init": "It is green, idiot.",
                                        "rev": "It is blue."}) + "\n" for i in range(40)))
    spec, cls = registry.get(recipe)
    spec = _moved(spec, tmp_path)
    layers = [("test", {"model": tiny_model_dir, "data": f"{data}?prompt=q&initial=init&revised=rev&id=id",
                        "max_steps": 3, "batch_size": 4, "limit": 12, "max_length": 64, "val_fraction": 0.25,
                        "val_limit": 8, "save_steps": 100, "lr_scheduler": "constant", "warmup_ratio": 0.0})]
    path = sweep(spec, cls, layers, [1e-6, 1e-3], tmp_path / "runs")
    doc = yaml.safe_load(path.read_text())
    assert path == sweep_path(spec) and [g["learning_rate"] for g in doc["grid"]] == [1e-6, 1e-3]
    assert all(g["n"] == 8 for g in doc["grid"])
    # 3 steps at 1e-6 barely move a random model; 1e-3 learns the one revised answer (and prefers it)
    assert doc["chosen"] == {"learning_rate": 1e-3}, doc["grid"]
    assert doc["budget"]["max_steps"] == 3 and doc["data"].startswith(str(data)) and doc["date"]
    assert not (tmp_path / "runs" / recipe / "lr=0.001").exists()  # checkpoints deleted once scored
