"""The run document ``results.json`` (schema documented in ``leaderboard/build.py``) from the stages' files,
then every installed reporter (entry-point group ``bench.reporters``; the static site is one) renders it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from .config import BASE, RunConfig
from .judge import judged_path
from .suite import summary_path

NAME = "report"
DEPENDS = tuple(f.name for f in dataclasses.fields(RunConfig))
SCHEMA = "bench.results/1"
SUITE_METRICS = ["mmlu", "truthfulqa", "crows_pairs", "winogender", "figa_avg"]


def reads(run: RunConfig) -> list[Path]:
    return ([judged_path(run, p) for p in run.policies()] + [summary_path(run, p) for p in run.policies()]
            + [run.dir / "checkpoints" / p for p in run.policies() if p != BASE])


def writes(run: RunConfig) -> list[Path]:
    return [run.dir / "results.json", run.dir / "site" / "index.html"]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _train_summary(run: RunConfig, method: str) -> dict | None:
    ckpt = run.dir / "checkpoints" / method
    info = _read(ckpt / "bench_run.json")
    if method == BASE or info is None:
        return None
    curve, name = [], "loss"
    for log_name, key in (("train_log.jsonl", "loss"), ("ppo_log.jsonl", "reward_mean")):
        path = ckpt / log_name
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            curve = [[r.get("step", r.get("iteration", i)), r[key]] for i, r in enumerate(rows) if key in r]
            name = key
    return {"wall_s": info.get("train_seconds") or info.get("seconds") or 0.0,
            "steps": info.get("config", {}).get("max_steps"), "curve": curve, "curve_name": name}


def _winrate(j: dict | None) -> dict | None:
    if not j:
        return None
    return {"win_rate": j["win_rate"], "ci": j["win_rate_ci95"], "lc_win_rate": j["lc_win_rate"],
            "lc_ci": j["lc_win_rate_ci95"], "n": j["n"], "avg_length": j["avg_len_model"]}


def _suite(s: dict | None) -> dict | None:
    if not s:
        return None
    figa = s["figa"]
    out = {k: {"value": figa["scores"].get(k), "stderr": figa.get("stderr", {}).get(k)} for k in SUITE_METRICS[:-1]}
    out["figa_avg"] = {"value": figa["avg"] if figa["avg"] is not None else figa["partial_avg"],
                       "stderr": None, "partial": figa["avg"] is None}
    return out


def document(run: RunConfig) -> dict:
    from ..judges import card

    methods = {}
    for policy in run.policies():
        j, s = _read(judged_path(run, policy)), _read(summary_path(run, policy))
        vs = (j or {}).get("vs_base")
        methods[policy] = {"checkpoint": run.checkpoint(policy), "train": _train_summary(run, policy),
                           "winrate": _winrate(j),
                           "vs_base": {"diff": vs["win_rate_diff"], "ci": vs["win_rate_diff_ci95"]} if vs else None,
                           "suite": _suite(s)}
    any_suite = any(m["suite"] for m in methods.values())
    return {"schema": SCHEMA, "run": run.run, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": run.model,
            "data": run.data, "budget": {"budget": run.budget, "method_options": run.method_options,
                                         "config": dataclasses.asdict(run)},
            "eval_set": run.eval_set, "reference": f"{run.eval_set} reference outputs",
            "judge": {"name": run.judge, "card": card(run.judge)}, "suite": SUITE_METRICS if any_suite else [],
            "methods": methods}


def reporters() -> dict:
    """Installed renderers of results documents: ``name -> callable(results_dir, out_dir) -> Path``."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="bench.reporters")}


def run(run: RunConfig) -> Path:
    path = run.dir / "results.json"
    path.write_text(json.dumps(document(run), indent=2, default=str))
    for name, ep in sorted(reporters().items()):
        ep.load()(run.dir, run.dir / name)
    return path
