"""The run document ``results.json`` (schema documented in ``leaderboard/build.py``) from the stages' files,
then every installed reporter (entry-point group ``bench.reporters``; the static site is one) renders it."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import yaml

from .config import BASE, RunConfig
from .judge import judged_path, verdicts_path
from .suite import summary_path
from .suite import units as suite_units

log = logging.getLogger("bench.run")

NAME = "report"
DEPENDS = tuple(f.name for f in dataclasses.fields(RunConfig))
SCHEMA = "bench.results/2"
SAMPLES_FILE = "samples.json"  # the answers and verdicts the site's sample browser shows (bench/stages/samples.py)
SUITE_METRICS = ["mmlu", "truthfulqa", "crows_pairs", "winogender", "figa_avg"]


def reads(run: RunConfig) -> list[Path]:
    from .generate import output_dir

    return ([judged_path(run, p, s) for p, s in run.units()] + [verdicts_path(run)]
            + [output_dir(run, p, s) for p, s in run.units()]
            + [summary_path(run, p, s) for p, s in suite_units(run)]
            + [Path(run.checkpoint(p, s)) for p, s in run.units() if p != BASE and s is not None])


def writes(run: RunConfig) -> list[Path]:
    return [run.dir / "results.json", run.dir / SAMPLES_FILE, run.dir / "site" / "index.html"]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


PPO_CURVES = ("reward_mean", "kl", "entropy", "response_length")
PROVENANCE = ("bench_version", "versions", "model_source", "chat_template_hash", "inputs", "n_train", "n_val", "n_skipped")


def _train_summary(run: RunConfig, method: str, seed: int) -> dict | None:
    """Time, steps, curves (loss; PPO: reward, KL, entropy, response length), effective config, provenance, sweep."""
    ckpt = Path(run.checkpoint(method, seed))
    info = _read(ckpt / "bench_run.json")
    if info is None:
        return None
    curves: dict[str, list] = {}
    for log_name, keys in (("train_log.jsonl", ("loss",)), ("ppo_log.jsonl", PPO_CURVES)):
        path = ckpt / log_name
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for key in keys:
                pts = [[r.get("step", r.get("iteration", i)), r[key]] for i, r in enumerate(rows) if key in r]
                if pts:
                    curves[key] = pts
    name = "reward_mean" if "reward_mean" in curves else "loss"
    config = info.get("config", {})
    return {"wall_s": info.get("train_seconds") or info.get("seconds") or 0.0, "steps": config.get("max_steps"),
            "curve": curves.get(name, []), "curve_name": name, "curves": curves, "config": config,
            "provenance": {k: info[k] for k in PROVENANCE if k in info}, "sweep": _sweep(method, config)}


def _sweep(method: str, config: dict) -> dict | None:
    """The learning-rate sweep that chose this method's rate, when it was swept on the model and data it trained on."""
    from ..config import sweep_path
    from ..registry import recipes

    spec = recipes().get(method)
    path = sweep_path(spec) if spec else None
    if not path or not path.exists():
        return None
    doc = yaml.safe_load(path.read_text()) or {}
    if (doc.get("model"), doc.get("data")) != (config.get("model"), config.get("data")):
        return None
    return {"chosen": doc.get("chosen"), "objective": doc.get("objective"), "grid": doc.get("grid"),
            "file": str(path)}


def _suite(s: dict | None) -> dict | None:
    """The suite columns, and FIGA's average with the terms it is made of (never shared with another term set)."""
    if not s:
        return None
    figa = s["figa"]
    out = {k: {"value": figa["scores"].get(k), "stderr": figa.get("stderr", {}).get(k)} for k in SUITE_METRICS[:-1]}
    terms = figa.get("terms") or {}
    out["figa_avg"] = {"value": figa["avg"] if figa["avg"] is not None else figa["partial_avg"], "stderr": None,
                       "partial": figa["avg"] is None, "terms": [k for k, v in terms.items() if v is not None],
                       "of": list(terms)}
    return out


def _winrate(name: str, judged: dict | None, verdicts: dict) -> dict | None:
    """Win rates over all of a method's seeds (hierarchical intervals) from the verdicts; one judged file without."""
    agg = (verdicts.get("methods") or {}).get(name)
    if agg:
        wr, lc = agg["win_rate"], agg["lc_win_rate"]
        return {"win_rate": wr["value"], "ci": wr["ci95"], "lc_win_rate": lc["value"], "lc_ci": lc["ci95"],
                "n": agg["n_prompts"], "avg_length": (judged or {}).get("avg_len_model")}
    if not judged:
        return None
    return {"win_rate": judged["win_rate"], "ci": judged["win_rate_ci95"], "lc_win_rate": judged["lc_win_rate"],
            "lc_ci": judged["lc_win_rate_ci95"], "n": judged["n"], "avg_length": judged["avg_len_model"]}


def _vs_base(name: str, verdicts: dict) -> dict | None:
    for pair in verdicts.get("pairs", []):
        if {pair["a"], pair["b"]} == {name, BASE} and name != BASE:
            sign = 1 if pair["a"] == name else -1
            wr = pair["win_rate"]
            return {"diff": sign * wr["value"], "ci": sorted(sign * x for x in wr["ci95"])}
    return None


def _entry(run: RunConfig, name: str, seeds: list[int | None], verdicts: dict) -> dict:
    """One method's row: its first seed's checkpoint, training and suite; win rates over all its seeds."""
    first, control = seeds[0], name in run.controls_named()
    return {"checkpoint": None if control else run.checkpoint(name, first),
            "seeds": [s for s in seeds if s is not None],
            "train": _train_summary(run, name, first) if first is not None else None,
            "data": (_read(Path(run.checkpoint(name, first)) / "bench_run.json") or {}).get("config", {}).get("data")
            if first is not None else None,  # the data spec the method trained on, from its own record
            "winrate": _winrate(name, _read(judged_path(run, name, first)), verdicts),
            "vs_base": _vs_base(name, verdicts),
            "suite": None if control else _suite(_read(summary_path(run, name, first))),
            "template_changed": _template_changes(run, name, seeds)}


def _answers(run: RunConfig, name: str, seeds: list[int | None]) -> list[list[dict]]:
    """Each of the method's answer sets as rows (``generations.jsonl``; a control's ``model_outputs.json``, words
    without finish reasons): what ``bench.degeneration.assess`` counts per prompt."""
    from ..generation import read_outputs, read_rows
    from .generate import output_dir

    sets = []
    for s in seeds:
        where = output_dir(run, name, s)
        if (where / "generations.jsonl").exists():
            sets.append(read_rows(where / "generations.jsonl"))
        elif (where / "model_outputs.json").exists():
            sets.append(read_outputs(where))
    return sets


def _template_changes(run: RunConfig, name: str, seeds: list[int | None]) -> dict | None:
    """{seed: {trained, now}} for checkpoints generated under ``allow_template_change`` with another template."""
    from .generate import output_dir

    metas = {str(s): _read(output_dir(run, name, s) / "generation_meta.json") or {} for s in seeds}
    changed = {s: m["template_changed"] for s, m in metas.items() if m.get("template_changed")}
    return changed or None


def _built(run: RunConfig) -> dict | None:
    """What the build_data stage made (steps, drops, reviser, scorer, the file), when the run built its data."""
    from .build_data import output_dir

    doc = _read(output_dir(run) / "report.json") if run.build_data else None
    return {k: doc[k] for k in ("steps", "drops", "reviser", "scorer", "files")} if doc else None


def _controls(run: RunConfig) -> dict:
    what = {"null": "the constant answer {!r}", "positive": "the reference answers of {}"}
    return {kind: {"method": name, "what": what[kind].format(run.controls[kind])}
            for name, kind in run.controls_named().items()}


def _judge(run: RunConfig) -> dict:
    """The gate's record of the judge, with whose labels the card's agreement figures are measured against."""
    from ..judges import card
    from ..judges.gate import require_validated

    judge = require_validated(run.judge, allow_unvalidated=True)
    c = card(run.judge) or {}
    if judge["summary"]:
        judge["summary"]["labels"] = (f"GPT-4's judgements (AlpacaEval, card set {c['headline']})"
                                      if "headline" in c else "human preference labels (" + ", ".join(c.get("sets") or {}) + ")")
    return judge


def _stage_times(run: RunConfig) -> dict:
    """{stage: {seconds, finished}} of the stages that have finished work (``stages/<stage>.json``)."""
    return {p.stem: {"seconds": d.get("seconds"), "finished": d.get("finished")}
            for p in sorted((run.dir / "stages").glob("*.json")) if (d := _read(p))}


def document(run: RunConfig) -> dict:
    from ..degeneration import assess

    verdicts = _read(verdicts_path(run)) or {}
    seeds: dict[str, list] = {}
    for name, seed in run.units():
        seeds.setdefault(name, []).append(seed)
    methods = {name: _entry(run, name, s, verdicts) for name, s in seeds.items()}
    degeneration = assess({name: _answers(run, name, s) for name, s in seeds.items()}, BASE, run.controls_named())
    for name, m in methods.items():  # trained methods flagged against base's answers, base and controls absolutely
        m["degeneration"] = degeneration[name]
    any_suite = any(m["suite"] for m in methods.values())
    return {"schema": SCHEMA, "run": run.run, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": run.model,
            "data": run.train_data, "data_built": _built(run), "budget": {"budget": run.budget, "method_options": run.method_options,
                                         "config": dataclasses.asdict(run)},
            "eval_set": run.eval_set, "reference": f"{run.eval_set} reference outputs", "seeds": run.seeds,
            "judge": _judge(run), "stages": _stage_times(run),
            "suite": SUITE_METRICS if any_suite else [],
            "methods": methods, "verdicts": verdicts or None, "controls": _controls(run)}


def reporters() -> dict:
    """Installed renderers of results documents: ``name -> callable(results_dir, out_dir) -> Path``."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="bench.reporters")}


def run(run: RunConfig) -> Path:
    from ..atomic import atomic_write_json
    from ..data import DataError

    doc = document(run)
    empty = [name for name, m in doc["methods"].items() if not (m["train"] or m["winrate"] or m["suite"])]
    if empty:  # a results document with empty rows reads as if those methods had been measured
        raise DataError(run.dir, None, None, f"nothing to report for {', '.join(empty)}: no training, judged answers "
                                             f"or suite results yet; run `bench run all` for run {run.run} first")
    from ..degeneration import describe

    for name, m in doc["methods"].items():
        if m["degeneration"]:
            log.info("[report] %s: %s", name, describe(m["degeneration"]))
    from .samples import samples_document

    samples = samples_document(run)
    if samples:
        atomic_write_json(run.dir / SAMPLES_FILE, samples, ensure_ascii=False)
        doc["samples"] = SAMPLES_FILE
    path = run.dir / "results.json"
    atomic_write_json(path, doc, default=str)
    for name, ep in sorted(reporters().items()):
        ep.load()(run.dir, run.dir / name)
    return path
