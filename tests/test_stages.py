"""The pipeline as stages: budget layering, training order, the skip-when-current contract, the results
document, and a method that lives in a separately installed package."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.stages import STAGES, fingerprint, is_current, load_run_config, run_all
from bench.stages import report as report_stage
from bench.stages import train as train_stage
from bench.stages.config import RunConfig

REPO = Path(__file__).resolve().parent.parent


def test_budget_layers_in_documented_order(tmp_path):
    run = RunConfig(run="r", root=str(tmp_path), model="some-model", data="jfleg",
                    budget={"max_steps": 7, "batch_size": 2, "learning_rate": 3e-4},
                    method_options={"figa": {"batch_size": 1}})
    _, figa = train_stage.recipe_config(run, "figa")
    _, sft = train_stage.recipe_config(run, "sft")
    assert (figa.max_steps, figa.batch_size, figa.learning_rate) == (7, 1, 3e-4)  # method option beats budget
    assert (sft.max_steps, sft.batch_size) == (7, 2)  # budget beats the recipe YAML (batch 4)
    assert figa.beta == 0.5 and figa.model == "some-model" and figa.data == "jfleg"  # recipe YAML, then run
    assert figa.output_dir == str(tmp_path / "r" / "checkpoints" / "figa" / "seed-0")
    _, ppo = train_stage.recipe_config(run, "ppo", seed=2)
    assert ppo.reward_model == str(tmp_path / "r" / "checkpoints" / "reward-model" / "seed-2")  # its own seed's RM
    assert ppo.max_steps == 7 and ppo.seed == 2  # the run budget reaches the online methods too
    run.budget["seed"] = 5
    assert train_stage.recipe_config(run, "sft", seed=1)[1].seed == 1  # the run's seeds decide, not the budget


def test_reward_models_train_before_the_methods_that_need_them():
    run = RunConfig(methods=["sft", "fg-ppo", "ppo", "figa"], seeds=[0, 1], controls={"null": "", "positive": None})
    order = train_stage.order(run)
    assert order == ["sft", "token-reward-model", "fg-ppo", "reward-model", "ppo", "figa"]  # from the YAMLs' needs
    ablation = RunConfig(methods=["fg-ppo-terminal", "token-reward-model"])
    assert train_stage.order(ablation) == ["token-reward-model", "fg-ppo-terminal"]
    assert ablation.policies() == ["fg-ppo-terminal"]  # a reward model (policy: false) answers no prompts
    assert run.policies() == ["sft", "fg-ppo", "ppo", "figa"]
    assert run.units() == [("base", None), ("sft", 0), ("sft", 1), ("fg-ppo", 0), ("fg-ppo", 1), ("ppo", 0),
                           ("ppo", 1), ("figa", 0), ("figa", 1), ("null-control", None)]
    assert len(train_stage.writes(run)) == 2 * len(order)  # every method and reward model once per seed


def test_unknown_run_option_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("run: x\nevals: 3\n")
    with pytest.raises(Exception, match="evals"):
        load_run_config(path)


class FakeStage:
    """A stage with the real contract whose work is counted."""

    NAME, DEPENDS = "fake", ("eval_limit",)

    def __init__(self):
        self.calls = 0

    def reads(self, run):
        return [run.dir / "in.txt"]

    def writes(self, run):
        return [run.dir / "out.txt"]

    def run(self, run):
        self.calls += 1
        (run.dir / "out.txt").write_text((run.dir / "in.txt").read_text().upper())


def test_a_stage_runs_again_only_when_what_it_depends_on_changes(tmp_path, monkeypatch):
    fake = FakeStage()
    monkeypatch.setitem(STAGES, "fake", fake)
    run = RunConfig(run="r", root=str(tmp_path))
    run.dir.mkdir(parents=True)
    (run.dir / "in.txt").write_text("a")
    run_all(run, ["fake"])
    assert fake.calls == 1 and is_current(fake, run)
    run_all(run, ["fake"])
    assert fake.calls == 1  # nothing changed: skipped
    (run.dir / "in.txt").write_text("bb")  # an input changed
    run_all(run, ["fake"])
    assert fake.calls == 2 and (run.dir / "out.txt").read_text() == "BB"
    run.eval_limit = 5  # a config field it depends on changed
    run_all(run, ["fake"])
    assert fake.calls == 3
    run.judge = "other"  # a field it does not depend on
    assert is_current(fake, run)
    (run.dir / "out.txt").unlink()  # its output went missing
    assert not is_current(fake, run)
    run_all(run, ["fake"], force=False)
    assert fake.calls == 4
    run_all(run, ["fake"], force=True)
    assert fake.calls == 5
    assert fingerprint(fake, run) == json.loads((run.dir / "stages" / "fake.json").read_text())["fingerprint"]


def test_results_document_from_stage_files(tmp_path, tiny_model_dir):
    import numpy as np
    import pandas as pd

    from bench.stages.judge import frames, judged_path, verdicts_path
    from bench.verdicts import verdicts

    run = RunConfig(run="r", root=str(tmp_path), model=tiny_model_dir, methods=["figa"], seeds=[0], judge="local-rm",
                    controls={"null": "", "positive": None})
    rng = np.random.default_rng(0)
    for name, seed, p in (("base", None, 0.3), ("figa", 0, 0.7), ("null-control", None, 0.0)):
        prefs = (rng.random(60) < p).astype(float)
        path = judged_path(run, name, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": [str(i) for i in range(60)], "preference": prefs, "failed": False, "len_model": 90,
                      "len_ref": 100}).to_csv(path.with_suffix(".csv"), index=False)
        path.write_text(json.dumps({"avg_len_model": 90.0}))
    verdicts_path(run).write_text(json.dumps(verdicts(frames(run), controls={"null": "null-control"}, n_boot=200)))
    ckpt = run.dir / "checkpoints" / "figa" / "seed-0"
    ckpt.mkdir(parents=True)
    (ckpt / "bench_run.json").write_text(json.dumps({"train_seconds": 12.5, "config": {"max_steps": 2}}))
    (ckpt / "train_log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"eval_loss": 1.9}\n')
    doc = report_stage.document(run)
    v = json.loads(verdicts_path(run).read_text())
    assert doc["schema"] == "bench.results/2" and list(doc["methods"]) == ["base", "figa", "null-control"]
    figa = doc["methods"]["figa"]
    assert figa["winrate"]["win_rate"] == v["methods"]["figa"]["win_rate"]["value"]  # across seeds, from verdicts
    assert figa["winrate"]["ci"] == v["methods"]["figa"]["win_rate"]["ci95"] and figa["winrate"]["avg_length"] == 90
    pair = next(p for p in v["pairs"] if {p["a"], p["b"]} == {"figa", "base"})
    sign = 1 if pair["a"] == "figa" else -1
    assert figa["vs_base"]["diff"] == pytest.approx(sign * pair["win_rate"]["value"]) and figa["vs_base"]["diff"] > 0
    assert {k: figa["train"][k] for k in ("wall_s", "steps", "curve", "curve_name", "curves")} == {
        "wall_s": 12.5, "steps": 2, "curve": [[1, 2.0], [2, 1.5]], "curve_name": "loss", "curves": {"loss": [[1, 2.0], [2, 1.5]]}}
    assert figa["seeds"] == [0]
    base = doc["methods"]["base"]
    assert base["train"] is None and base["checkpoint"] == tiny_model_dir and base["vs_base"] is None
    assert doc["methods"]["null-control"]["checkpoint"] is None
    assert doc["controls"] == {"null": {"method": "null-control", "what": "the constant answer ''"}}
    assert doc["suite"] == [] and figa["suite"] is None  # no suite was run: no suite columns
    assert doc["budget"]["config"]["methods"] == ["figa"] and doc["verdicts"] == v
    assert doc["judge"]["name"] == "local-rm" and doc["judge"]["validated"] is False  # its card fails the nulls
    assert "null battery" in doc["judge"]["reason"]
    (run.dir / "results.json").write_text(json.dumps(doc))
    from leaderboard.build import build

    page = build(run.dir, tmp_path / "site").read_text()  # the site accepts the document the stage writes
    assert "null-control" in page and "figa" in page


def test_a_method_from_an_installed_package_is_one_module_plus_one_yaml(tmp_path):
    """The README's example, as a throw-away package declaring the ``bench.recipes`` entry point."""
    pkg = tmp_path / "site" / "myrecipes"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "unlikelihood.yaml").write_text(textwrap.dedent("""\
        recipe: unlikelihood
        module: myrecipes.unlikelihood
        description: "Ablation: FIGA's negative term alone"
        config:
          data: expertqa
          beta: 1.0
        """))
    (pkg / "unlikelihood.py").write_text(textwrap.dedent("""\
        from dataclasses import dataclass
        from bench.registry import register
        from figa.recipe import Figa, FigaConfig

        @dataclass
        class UnlikelihoodConfig(FigaConfig):
            alpha: float = 0.0

        @register("unlikelihood")
        class Unlikelihood(Figa):
            Config = UnlikelihoodConfig
        """))
    dist = tmp_path / "site" / "myrecipes-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myrecipes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.recipes]\nmyrecipes = myrecipes\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)]), "COLUMNS": "200"}
    code = ("from bench.api import train_config; from bench import registry; "
            "cls, cfg = train_config('unlikelihood'); "
            "print(sorted(registry.recipes()), cls.__name__, cfg.alpha, cfg.beta, cfg.gamma)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "'unlikelihood'" in out.stdout and "'figa'" in out.stdout
    assert out.stdout.strip().endswith("Unlikelihood 0.0 1.0 0.0")


def test_run_refuses_a_judge_without_a_passing_card_before_any_work(tmp_path, monkeypatch):
    from bench.judges.gate import UnvalidatedJudge

    fake = FakeStage()
    monkeypatch.setitem(STAGES, "judge", fake)
    run = RunConfig(run="r", root=str(tmp_path), judge="reward-model")  # a judge with no card
    run.dir.mkdir(parents=True)
    (run.dir / "in.txt").write_text("a")
    with pytest.raises(UnvalidatedJudge, match="reward-model.*--allow-unvalidated-judge"):
        run_all(run, ["judge"])
    assert fake.calls == 0
    run.allow_unvalidated_judge = True
    run_all(run, ["judge"])
    assert fake.calls == 1
