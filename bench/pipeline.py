"""``bench run``: train every method on the same model, data and budget, then generate, judge, benchmark, report.

A run is described by one YAML file (see ``runs/``). Every stage writes its own files under
``results/runs/<run>/`` and skips work whose output already exists, so an interrupted run continues where
it stopped and a finished one costs nothing to re-report:

    checkpoints/<method>/        ordinary HF checkpoints (+ bench_run.json, train_log.jsonl)
    generations/<method>/        model_outputs.json + generations.jsonl (base = the untrained model)
    judged/<method>.json         win rate vs the eval set's references (+ per-prompt verdicts .csv)
    suite/<method>/              lm-eval results + summary.json
    results.json                 the run document the leaderboard reads (schema bench.results/1)
    site/index.html              the leaderboard of this run
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import load_yaml
from .data import DataError

log = logging.getLogger("bench.pipeline")

BASE = "base"
# Methods that need a reward model trained first, and the option that receives its path.
REWARD_DEPENDENCIES = {"ppo": "reward-model", "fg-ppo": "token-reward-model"}


@dataclass
class RunConfig:
    """One comparison: which methods, on what, with which shared budget, evaluated how."""

    run: str = "smollm2-cpu"
    model: str = "smollm2-135m-instruct"
    data: str = "expertqa"
    methods: list = field(default_factory=lambda: ["sft", "figa", "dpo", "ppo", "fg-ppo"])
    budget: dict = field(default_factory=dict)  # TrainConfig options every method gets (steps, batch, length, seed)
    method_options: dict = field(default_factory=dict)  # per-method extra options, e.g. {"ppo": {"max_steps": 3}}
    eval_set: str = "alpaca_eval"
    eval_limit: int = 100
    max_new_tokens: int = 256
    generation_backend: str = "auto"
    judge: str = "local-rm"
    judge_options: dict = field(default_factory=dict)
    suite: str = "figa"
    suite_limit: float | None = 0.25  # documents per task, or a fraction of each task if < 1; None = all
    suite_shots: dict = field(default_factory=dict)  # few-shot overrides per suite entry, e.g. {"figa_mmlu": 0}
    suite_backend: str = "hf-prefix"
    root: str = "results/runs"

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.run


def load_run_config(path: str | Path | None, overrides: dict | None = None) -> RunConfig:
    doc = {}
    if path:
        path = Path(path)
        doc = load_yaml(path) or {}
    doc.update(overrides or {})
    names = {f.name: f for f in dataclasses.fields(RunConfig)}
    for key, value in doc.items():
        if key not in names:
            raise DataError(path or "run config", None, key, f"unknown option (known: {', '.join(names)})")
        want = {"methods": list, "budget": dict, "method_options": dict, "judge_options": dict,
                "suite_shots": dict}.get(key)
        if want and not isinstance(value, want):
            raise DataError(path or "run config", None, key, f"expected a {want.__name__}")
    return RunConfig(**doc)


def _recipe_config(run: RunConfig, method: str):
    from . import registry
    from .config import build_config

    spec, cls = registry.get(method)
    layers = [(str(spec.yaml_path), spec.defaults),
              ("run", {"model": run.model, "data": run.data, "output_dir": str(run.dir / "checkpoints" / method)}),
              ("run budget", run.budget),
              (f"method_options.{method}", run.method_options.get(method, {}))]
    if method in REWARD_DEPENDENCIES:
        layers.insert(2, ("run", {"reward_model": str(run.dir / "checkpoints" / REWARD_DEPENDENCIES[method])}))
    return cls, build_config(cls.Config, layers)


def training_order(run: RunConfig) -> list[str]:
    """The methods, each reward model placed before the PPO method that needs it."""
    order = []
    for m in run.methods:
        dep = REWARD_DEPENDENCIES.get(m)
        if dep and dep not in order:
            order.append(dep)
        if m not in order:
            order.append(m)
    return order


def train_all(run: RunConfig) -> dict[str, Path]:
    out = {}
    for method in training_order(run):
        cls, cfg = _recipe_config(run, method)
        log.info("[train] %s -> %s", method, cfg.output_dir)
        out[method] = cls().run(cfg)
    return out


def checkpoint(run: RunConfig, method: str) -> str:
    from .models import resolve

    return resolve(run.model) if method == BASE else str(run.dir / "checkpoints" / method)


def policies(run: RunConfig) -> list[str]:
    return [BASE] + [m for m in run.methods if m not in REWARD_DEPENDENCIES.values()]


def generate_all(run: RunConfig) -> None:
    """All policies in one call, so vLLM starts one engine and swaps each checkpoint's weights into it."""
    from .data import load
    from .generation import Sampling, generate_evals

    prompts = load(run.eval_set, limit=run.eval_limit)
    log.info("[generate] %d policies on %d %s prompts", len(policies(run)), len(prompts), run.eval_set)
    jobs = [(method, checkpoint(run, method), run.dir / "generations" / method) for method in policies(run)]
    generate_evals(jobs, prompts, run.generation_backend, Sampling(max_new_tokens=run.max_new_tokens), dataset=run.eval_set)


def judge_all(run: RunConfig) -> None:
    """Judge every policy against the eval set's references; the difference to base is paired by prompt.
    Judge calls are cached by content hash, so re-judging unchanged outputs costs nothing."""
    from .judges import get
    from .judges.run import eval_set_side, judge_pair, outputs_side
    from .metrics import paired_difference

    judge = get(run.judge, **run.judge_options)
    reference = eval_set_side(run.eval_set, run.eval_limit)
    frames = {}
    for method in policies(run):
        log.info("[judge] %s with %s", method, run.judge)
        summary, frames[method], _ = judge_pair(judge, outputs_side(run.dir / "generations" / method), reference)
        if method != BASE:
            summary["vs_base"] = paired_difference(frames[method], frames[BASE])
        path = run.dir / "judged" / f"{method}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        frames[method].to_csv(path.with_suffix(".csv"), index=False)
        path.write_text(json.dumps(summary, indent=2))


def mean_reward(run: RunConfig, method: str) -> float | None:
    """Mean score of the run's sequence reward model on a policy's eval answers (FIGA's reward column)."""
    rm_dir = run.dir / "checkpoints" / "reward-model"
    if not (rm_dir / "bench_run.json").exists():
        return None
    from baselines.reward_model import load_reward_model

    from .generation import read_outputs

    rows = read_outputs(run.dir / "generations" / method / "generations.jsonl")
    scores = load_reward_model(rm_dir).score([r["prompt"] for r in rows], [r["output"] for r in rows])
    return sum(scores) / len(scores)


def suite_all(run: RunConfig) -> None:
    from .suite.runner import SuiteConfig, run_suite

    for method in policies(run):
        log.info("[suite] %s: %s (limit %s)", method, run.suite, run.suite_limit)
        cfg = SuiteConfig(suite=run.suite, backend=run.suite_backend, limit=run.suite_limit or None,
                          shots=run.suite_shots, out_dir=str(run.dir / "suite" / method))
        run_suite(checkpoint(run, method), cfg, reward=mean_reward(run, method))


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _train_summary(run: RunConfig, method: str) -> dict | None:
    ckpt = run.dir / "checkpoints" / method
    info_path = ckpt / "bench_run.json"
    if method == BASE or not info_path.exists():
        return None
    info = json.loads(info_path.read_text())
    curve, name = [], "loss"
    for log_name, key in (("train_log.jsonl", "loss"), ("ppo_log.jsonl", "reward_mean")):
        path = ckpt / log_name
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            curve = [[r.get("step", r.get("iteration", i)), r[key]] for i, r in enumerate(rows) if key in r]
            name = key
    steps = info.get("config", {}).get("max_steps")
    return {"wall_s": info.get("train_seconds") or info.get("seconds") or 0.0, "steps": steps, "curve": curve,
            "curve_name": name}


def report(run: RunConfig) -> Path:
    """Write the run document (schema ``bench.results/1``) from the stages' files, and the run's leaderboard."""
    from leaderboard.build import SCHEMA, build

    from .judges import card

    suite_metrics = ["mmlu", "truthfulqa", "crows_pairs", "winogender", "figa_avg"]
    methods, any_suite = {}, False
    for method in policies(run):
        j, s = _read(run.dir / "judged" / f"{method}.json"), _read(run.dir / "suite" / method / "summary.json")
        any_suite = any_suite or s is not None
        winrate = None if not j else {
            "win_rate": j["win_rate"], "ci": j["win_rate_ci95"], "lc_win_rate": j["lc_win_rate"],
            "lc_ci": j["lc_win_rate_ci95"], "n": j["n"], "avg_length": j["avg_len_model"]}
        vs = (j or {}).get("vs_base")
        suite = None
        if s:
            scores = s["figa"]["scores"]
            suite = {k: {"value": scores.get(k), "stderr": s["figa"].get("stderr", {}).get(k)} for k in suite_metrics[:-1]}
            suite["figa_avg"] = {"value": s["figa"]["avg"] if s["figa"]["avg"] is not None else s["figa"]["partial_avg"],
                                 "stderr": None, "partial": s["figa"]["avg"] is None}
        methods[method] = {"checkpoint": checkpoint(run, method), "train": _train_summary(run, method),
                           "winrate": winrate,
                           "vs_base": {"diff": vs["win_rate_diff"], "ci": vs["win_rate_diff_ci95"]} if vs else None,
                           "suite": suite}
    doc = {"schema": SCHEMA, "run": run.run, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": run.model,
           "data": run.data, "budget": {"budget": run.budget, "method_options": run.method_options,
                                        "config": dataclasses.asdict(run)},
           "eval_set": run.eval_set, "reference": f"{run.eval_set} reference outputs",
           "judge": {"name": run.judge, "card": card(run.judge)}, "suite": suite_metrics if any_suite else [],
           "methods": methods}
    path = run.dir / "results.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    return build(run.dir, run.dir / "site")


STAGES = {"train": train_all, "generate": generate_all, "judge": judge_all, "suite": suite_all, "report": report}


def run_all(run: RunConfig, stages: list[str] | None = None) -> Path:
    """Run the stages in order (all by default); each reads the previous stages' files only."""
    stages = stages or list(STAGES)
    run.dir.mkdir(parents=True, exist_ok=True)
    (run.dir / "run_config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(run), sort_keys=False))
    timings_path = run.dir / "timings.json"
    timings = _read(timings_path) or {}
    for stage in stages:
        t0 = time.perf_counter()
        STAGES[stage](run)
        timings[stage] = round(time.perf_counter() - t0, 1)
        timings_path.write_text(json.dumps(timings, indent=2))
        log.info("[%s] done in %.0f s", stage, timings[stage])
    return run.dir / "site" / "index.html"
