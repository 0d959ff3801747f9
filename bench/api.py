"""The Python API beside the CLI: ``bench.train``, ``bench.run`` and ``bench.judge`` do what the commands of the
same names do and return what those print (a checkpoint path, the run's results document, the judged summaries).

    import bench
    ckpt = bench.train("figa", model="smollm2-135m-instruct", max_steps=12, beta=0.3)
    doc = bench.run("runs/smoke.yaml", eval_limit=8)
    report = bench.judge(["results/runs/smoke/generations/figa"], against="alpaca_eval")
"""

from __future__ import annotations

import json
from pathlib import Path

from .stages.config import DEFAULT_JUDGE


def train_config(recipe: str, config: str | Path | None = None, overrides: dict | None = None, **flags):
    """The recipe class and its effective config: recipe YAML < its sweep result < ``config`` file < ``overrides``
    < ``flags``."""
    from . import registry
    from .config import read_yaml, recipe_config

    spec, cls = registry.get(recipe)
    layers = [(str(config), read_yaml(config))] if config else []
    layers += [("--set", overrides or {}), ("command line", {k: v for k, v in flags.items() if v is not None})]
    cfg = recipe_config(cls, spec, layers)
    from .validate import check_train_config

    check_train_config(cfg, layers)  # ranges, model, data, output dir: before any model loads
    return cls, cfg


def train(recipe: str, config: str | Path | None = None, **options) -> Path:
    """Train ``recipe`` (a name or a recipe YAML) with any of its options; returns the checkpoint directory."""
    from .training import run_recipe

    cls, cfg = train_config(recipe, config, overrides=options)
    return run_recipe(cls, cfg)


def run(config: str | Path | None = None, stages: list[str] | None = None, force: bool = False, **overrides) -> dict:
    """Run the pipeline (all stages by default) for a run YAML with field overrides; returns its results document."""
    from .stages import load_run_config, run_all

    cfg = load_run_config(config or Path(__file__).resolve().parent.parent / "runs" / "smollm2-cpu.yaml", overrides)
    run_all(cfg, stages, force=force)
    path = cfg.dir / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def judge(outputs: list[str | Path], against: str = "alpaca_eval", judge: str = DEFAULT_JUDGE,
          judge_options: dict | None = None, n_boot: int = 2000, seed: int = 0, allow_unvalidated: bool = False) -> dict:
    """Judge each outputs file against ``against`` (an eval set's references or another outputs file): one
    summary per file (win rate, LC win rate, 95% intervals) and each file's paired difference to the first.
    The judge passes the same gate as ``bench judge`` (``UnvalidatedJudge`` unless ``allow_unvalidated``)."""
    from .judges import get
    from .judges.gate import require_validated
    from .judges.run import judge_pair, outputs_side, reference_side
    from .metrics import paired_difference

    reference = reference_side(against)
    sides = [outputs_side(p) for p in outputs]
    gate = require_validated(judge, allow_unvalidated)
    chosen = get(judge, **(judge_options or {}))
    results, frames = [], []
    for path, side in zip(outputs, sides):
        summary, frame, _ = judge_pair(chosen, side, reference, n_boot, seed)
        results.append({**summary, "outputs": str(path)})
        frames.append((side.name, frame))
    diffs = [{"a": frames[0][0], "b": name, **paired_difference(frames[0][1], f, n_boot, seed)} for name, f in frames[1:]]
    return {"results": results, "paired_differences": diffs, "judge": gate}
