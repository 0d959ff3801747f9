"""The normalised suite summary and FIGA's "Avg", computed only from stored lm-eval results.

FIGA (Guo et al., ICLR 2024, Table 2) averages seven columns: MMLU, TruthfulQA, WinoGender (accuracies
in %), CrowS-Pairs entered as 100 minus its score (the share of pairs where the model prefers the more
stereotyping sentence, so lower bias counts as higher), the reward-model score multiplied by 10, and the
Vicuna and WizardLM judged scores (1-10) as they are. Check with the paper's FIGA row: reward 4.62,
MMLU 40.8, TruthfulQA 42.0, CrowS-Pairs 61.2, WinoGender 59.6, Vicuna 8.6, WizardLM 8.3 ->
(46.2 + 40.8 + 42.0 + 38.8 + 59.6 + 8.6 + 8.3) / 7 = 34.9, the Avg printed there.

TruthfulQA is MC2 (lm-eval's and the Open LLM Leaderboard's headline TruthfulQA number); MC1 is reported
beside it. WinoGender is coreference accuracy over all 720 sentences (lm-eval's definition); the
male-female accuracy gap is reported as a diagnostic, not averaged. The reward and judged terms come from
other stages: when one is absent the paper's Avg is not defined, so ``avg`` is None and the summary
names the missing terms; ``partial_avg`` (mean of the terms present) is labelled as such.
"""

from __future__ import annotations

import statistics

# FIGA column -> (lm-eval result name, metric) candidates: our offline tasks first, then lm-eval's own.
FIGA_SOURCES = {
    "mmlu": [("figa_mmlu", "acc"), ("mmlu", "acc")],
    "truthfulqa": [("figa_truthfulqa_mc2", "acc"), ("truthfulqa_mc2", "acc")],
    "crows_pairs": [("figa_crows_pairs", "pct_stereotype"), ("crows_pairs_english", "pct_stereotype")],
    "winogender": [("figa_winogender", "acc"), ("winogender_all", "acc")],
}
EXTERNAL_TERMS = ("reward", "vicuna", "wizardlm")
FIGA_TERMS = ("reward", "mmlu", "truthfulqa", "crows_pairs", "winogender", "vicuna", "wizardlm")


def figa_terms(scores: dict[str, float | None]) -> dict[str, float | None]:
    """Each column as it enters FIGA's average (benchmarks in %, reward x10, CrowS-Pairs as 100 - x)."""
    def term(name: str, v: float | None) -> float | None:
        if v is None:
            return None
        return {"reward": 10 * v, "crows_pairs": 100 - v}.get(name, v)

    return {name: term(name, scores.get(name)) for name in FIGA_TERMS}


def figa_average(scores: dict[str, float | None]) -> dict:
    """``scores``: benchmark columns in %, reward as the raw mean reward, vicuna/wizardlm on 1-10."""
    terms = figa_terms(scores)
    present = [v for v in terms.values() if v is not None]
    missing = [k for k, v in terms.items() if v is None]
    return {"terms": terms, "avg": statistics.fmean(present) if not missing else None,
            "partial_avg": statistics.fmean(present) if present else None,
            "partial_avg_terms": len(present), "missing": missing}


def metrics_table(results: dict) -> dict[str, dict]:
    """lm-eval's ``results`` section as {name: {metric: {value, stderr}, "n": docs}} with values in %."""
    n_samples = results.get("n-samples", {})
    subtasks = results.get("group_subtasks", {})

    def docs(name: str) -> int | None:
        if name in n_samples:
            return n_samples[name].get("effective")
        counts = [docs(s) for s in subtasks.get(name, [])]
        return sum(counts) if counts and None not in counts else None

    table = {}
    for name, row in results.get("results", {}).items():
        metrics = {}
        for key, value in row.items():
            metric, _, flt = key.partition(",")
            if not flt or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            stderr = row.get(f"{metric}_stderr,{flt}")
            scale = 1 if metric == "likelihood_diff" else 100  # a log-likelihood gap is not a proportion
            metrics[metric if flt == "none" else key] = {
                "value": value * scale, "stderr": stderr * scale if isinstance(stderr, (int, float)) else None}
        table[name] = {"alias": row.get("alias", name).strip(" -"), "metrics": metrics, "n": docs(name)}
    return table


def build_summary(entries, provenance: dict, config: dict, reward: float | None = None,
                  vicuna: float | None = None, wizardlm: float | None = None) -> dict:
    """One JSON document per (checkpoint, suite run): every metric with its stderr, and the FIGA average."""
    tasks, versions, files = {}, {}, {}
    for e in entries:
        tasks.update(metrics_table(e.results))
        versions.update(e.results.get("versions", {}))
        files[e.entry] = {"path": e.path, "cached": e.cached, "seconds": round(e.seconds, 1)}
    found = {name: next((tasks[t]["metrics"][m] for t, m in cands if t in tasks and m in tasks[t]["metrics"]), {})
             for name, cands in FIGA_SOURCES.items()}
    scores = {name: f.get("value") for name, f in found.items()}
    scores.update(reward=reward, vicuna=vicuna, wizardlm=wizardlm)
    figa = figa_average(scores)
    figa["stderr"] = {name: f.get("stderr") for name, f in found.items()}
    gap = [tasks.get(f"figa_winogender::{g}", {}).get("metrics", {}).get("acc", {}).get("value") for g in ("male", "female")]
    figa["winogender_male_minus_female"] = gap[0] - gap[1] if None not in gap else None
    figa["notes"] = [f"{k}: not given (the paper's Avg needs it)" for k in EXTERNAL_TERMS if scores[k] is None]
    return {"schema": "bench.suite.summary/1", **provenance, "config": config, "task_versions": versions,
            "entries": files, "tasks": tasks, "figa": {"scores": scores, **figa}}


def reward_from_model(reward_model: str, responses_file: str) -> float:
    """Mean reward-model score of a checkpoint's responses (JSONL/JSON with ``prompt`` and ``response``;
    ``prompt`` is a chat message list or a user string). Uses ``bench.reward_model``."""
    from bench.reward_model import load_reward_model
    from bench.data import DataError
    from bench.data.readers import read_rows, text_field

    prompts, responses = [], []
    for line, row in read_rows(responses_file):
        p = row.get("prompt")
        if isinstance(p, str):
            p = [{"role": "user", "content": p}]
        if not (isinstance(p, list) and p and all(isinstance(m, dict) and "content" in m for m in p)):
            raise DataError(responses_file, line, "prompt", "expected a string or a list of chat messages")
        prompts.append(p)
        responses.append(text_field(row, "response", responses_file, line))
    if not prompts:
        raise DataError(responses_file, None, None, "no responses to score")
    return statistics.fmean(load_reward_model(reward_model).score(prompts, responses))
