"""The judge card against GPT-4: how well a judge reproduces GPT-4's AlpacaEval verdicts on unseen data.

Every figure is measured on pairs whose prompt *and* generator were both outside the judge's training data
(``grouped_folds``; a fixed judge is simply run on the same test folds), next to the same figure for three
trivial rules ("longer answer wins", "reference always wins", "model always wins") and optionally another
judge (``local-rm``, on a subsample). Agreement counts ties and soft GPT-4 labels as expected agreement:
verdict v and label p agree with probability v*p + (1-v)*(1-p). Intervals are 95% percentile bootstraps over
prompts (pairs of one prompt move together). Adversarial kit rows are left out of agreement and win rates and
used in the null battery instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from scipy.stats import spearmanr

from .gpt4_pairs import GPT4Pair, grouped_folds

log = logging.getLogger("bench.judges")

NEAR_EQUAL = 1.5  # length ratio bound of the near-equal-length stratum
NULL_PASS = 0.98  # every null output must lose on at least this share of prompts
Predictor = Callable[[list[GPT4Pair]], np.ndarray]  # pairs -> verdicts in [0, 1] (P(answer wins) or 1/0.5/0)


def _verdict(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))


def baselines() -> dict[str, Predictor]:
    def longer(pairs):
        return np.array([1.0 if len(p.output) > len(p.reference) else 0.0 if len(p.output) < len(p.reference) else 0.5
                         for p in pairs])

    return {"longer_wins": longer, "reference_always_wins": lambda pairs: np.zeros(len(pairs)),
            "model_always_wins": lambda pairs: np.ones(len(pairs))}


def near_equal(pairs: list[GPT4Pair]) -> np.ndarray:
    lo = np.array([max(min(len(p.output), len(p.reference)), 1) for p in pairs])
    hi = np.array([max(len(p.output), len(p.reference)) for p in pairs])
    return hi / lo <= NEAR_EQUAL


def _boot_index(groups: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_boot`` resamples of the distinct groups (a cluster bootstrap)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))]) for _ in range(n_boot)]


def _with_ci(stat: Callable[[np.ndarray], float], n: int, boot: list[np.ndarray]) -> dict:
    values = np.array([stat(idx) for idx in boot])
    values = values[np.isfinite(values)]
    return {"value": round(float(stat(np.arange(n))), 4),
            "ci95": [round(float(x), 4) for x in np.percentile(values, [2.5, 97.5])] if len(values) else None}


def _system(verdict: np.ndarray, label: np.ndarray, gens: np.ndarray, fold: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    """Spearman and mean absolute error (points) of per-generator win rates, judge vs GPT-4, over the rows idx."""
    keys = np.unique(gens[idx])
    judge = np.array([verdict[idx][gens[idx] == g].mean() for g in keys])
    gpt4 = np.array([label[idx][gens[idx] == g].mean() for g in keys])
    rho = spearmanr(judge, gpt4).statistic if len(keys) > 2 and judge.std() > 0 else float("nan")
    return float(rho), float(100 * np.abs(judge - gpt4).mean())


def figures(pairs: list[GPT4Pair], preds: dict[str, np.ndarray], folds: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Agreement (overall, near-equal length), system-level Spearman and MAE, for each predictor, with CIs."""
    label = np.array([p.label for p in pairs])
    gens = np.array([p.generator for p in pairs])
    prompts = np.array([p.instruction_id for p in pairs])
    eq = near_equal(pairs)
    boot = _boot_index(prompts, n_boot, seed)
    out = {"pairs": len(pairs), "near_equal_pairs": int(eq.sum()), "generators": int(len(set(gens))),
           "prompts": int(len(set(prompts))), "gpt4_model_win_rate": round(float(label.mean()), 4)}
    for name, p in preds.items():
        v = _verdict(p)
        agree = v * label + (1 - v) * (1 - label)
        per_fold = [_system(v, label, gens, folds, np.flatnonzero(folds == f))[0] for f in np.unique(folds)]
        out[name] = {
            "agreement": _with_ci(lambda i: agree[i].mean(), len(pairs), boot),
            "near_equal_agreement": _with_ci(lambda i: agree[i][eq[i]].mean() if eq[i].any() else np.nan, len(pairs), boot),
            "system_spearman": _with_ci(lambda i: _system(v, label, gens, folds, i)[0], len(pairs), boot),
            "system_spearman_per_fold": [round(x, 4) for x in per_fold],
            "system_mae_points": _with_ci(lambda i: _system(v, label, gens, folds, i)[1], len(pairs), boot),
        }
    return out


def null_outputs(instruction: str, reference: str, junk: str) -> dict[str, str]:
    """The null outputs judged against ``reference``. The reference cut to its first sentence is left out where
    the reference is one sentence (the cut would be the reference itself, and a tie is the right verdict)."""
    from ..metrics import NULL_OUTPUTS
    from .mimic_gpt4 import _first_sentence

    empty, idk, refusal = NULL_OUTPUTS
    nulls = {"empty": empty, "i_dont_know": idk, "refusal": refusal, "instruction_echo": instruction,
             "one_token_repeated": " ".join(["the"] * 200), "adversarial_junk": junk}
    cut = _first_sentence(reference).strip()
    if cut != reference.strip():
        nulls["reference_first_sentence"] = cut
    return nulls


def null_battery(predict: Predictor, prompts: list[tuple[int, str, str]], junk: str) -> dict:
    """Each null output judged against the reference on every prompt (id, instruction, reference): the share of
    prompts on which it loses (a tie is not a loss). Passed when every one loses on >= 98% of prompts."""
    rows: dict[str, list[GPT4Pair]] = {}
    for iid, instruction, reference in prompts:
        for label, text in null_outputs(instruction, reference, junk).items():
            rows.setdefault(label, []).append(GPT4Pair("null", iid, instruction, label, text, reference, 0.0, True))
    rates = {label: round(float(np.mean(predict(pairs) < 0.5)), 4) for label, pairs in rows.items()}
    worst = min(rates.values())
    return {"prompts": len(prompts), "prompts_per_output": {label: len(pairs) for label, pairs in rows.items()},
            "passed": bool(worst >= NULL_PASS), "worst_loss_rate": worst, "outputs": rates}


def cross_validate(pairs: list[GPT4Pair], train: Callable[[list[GPT4Pair]], Predictor], k: int = 3, seed: int = 0,
                   ) -> tuple[list[GPT4Pair], dict[str, np.ndarray], np.ndarray, list]:
    """Held-out predictions: for each grouped fold, ``train`` on its training rows and predict its test rows.

    Returns (test pairs without adversarial rows, {predictor: predictions}, fold of each test pair, per-fold
    (predictor, test prompts) for the null battery)."""
    test_pairs, preds, folds, fold_models = [], {"judge": []}, [], []
    others = baselines()
    for name in others:
        preds[name] = []
    for f, (tr, te) in enumerate(grouped_folds(pairs, k, seed)):
        t0 = time.time()
        predictor = train([pairs[i] for i in tr])
        test = [pairs[i] for i in te if not pairs[i].adversarial]
        test_pairs += test
        folds += [f] * len(test)
        preds["judge"].append(predictor(test))
        for name, other in others.items():
            preds[name].append(other(test))
        fold_models.append((predictor, sorted({(p.instruction_id, p.instruction, p.reference) for p in test})))
        log.info("fold %d: %d train, %d test pairs (%.0f s)", f, len(tr), len(test), time.time() - t0)
    return test_pairs, {k_: np.concatenate(v) for k_, v in preds.items()}, np.array(folds), fold_models


def measure(name: str, pairs: list[GPT4Pair], train: Callable[[list[GPT4Pair]], Predictor], shipped: Predictor,
            unseen: dict[str, list[tuple[int, str, str]]], junk: str, k: int = 3, seed: int = 0,
            compare: tuple[str, Predictor, int] | None = None) -> dict:
    """The card's figures (see the module docstring) per set of the pairs given. ``compare`` = (name, predictor,
    n): another judge, measured with the judge and the baselines on a seeded subsample of n test pairs per set."""
    card = {"sets": {}, "compare_subsample": {}, "null_battery_cv": {}, "null_battery": {}}
    for set_name in sorted({p.set for p in pairs}):
        subset = [p for p in pairs if p.set == set_name]
        test, preds, folds, fold_models = cross_validate(subset, train, k, seed)
        card["sets"][set_name] = figures(test, preds, folds, seed=seed)
        if compare:
            other, predictor, n = compare
            idx = np.sort(np.random.default_rng(seed).choice(len(test), min(n, len(test)), replace=False))
            sub = [test[i] for i in idx]
            card["compare_subsample"][set_name] = figures(sub, {**{key: v[idx] for key, v in preds.items()},
                                                                other: predictor(sub)}, folds[idx], seed=seed)
        per_fold = [null_battery(pred, prompts, junk) for pred, prompts in fold_models]
        card["null_battery_cv"][set_name] = {
            "prompts": sum(b["prompts"] for b in per_fold), "passed": all(b["passed"] for b in per_fold),
            "worst_loss_rate": min(b["worst_loss_rate"] for b in per_fold),
            "outputs": {label: min(b["outputs"][label] for b in per_fold if label in b["outputs"])
                        for label in dict.fromkeys(k for b in per_fold for k in b["outputs"])}}
    for column, prompts in unseen.items():
        card["null_battery"][column] = null_battery(shipped, prompts, junk)
    return card


# ---- wiring a named judge into the measurement ------------------------------------------------------------

def judge_predictor(judge) -> Predictor:
    """Any registered judge as a predictor: its ``compare`` on (instruction, answer, reference) of each pair."""
    from ..data import user

    def predict(pairs: list[GPT4Pair]) -> np.ndarray:
        verdicts = judge.compare([user(p.instruction) for p in pairs], [p.output for p in pairs], [p.reference for p in pairs])
        return np.array([0.5 if v.preference is None else float(v.preference) for v in verdicts])

    return predict


def unseen_prompts(pairs: list[GPT4Pair]) -> dict[str, list[tuple[int, str, str]]]:
    """Prompts of the references file that no given pair uses (the kit holds out 206), with each reference."""
    from .gpt4_pairs import SETS, references

    used = {p.instruction_id for p in pairs}
    refs = references()
    return {column: [(i, r["instruction"], r[column]) for i, r in sorted(refs.items()) if i not in used]
            for _, column in SETS.values()}


def adversarial_junk() -> str:
    """The kit's constant junk output (AlpacaEval's ``NullModel``), used as a null output."""
    from .gpt4_pairs import kit_pairs

    return next(p.output for p in kit_pairs(("ae2",)) if p.adversarial)


def speed(make_judge: Callable[[], object], pairs: list[GPT4Pair], n: int = 400, seed: int = 0) -> float:
    """Pairs per second of a freshly built judge (nothing cached, model loading not counted) on n sampled pairs."""
    rng = np.random.default_rng(seed)
    sample = [pairs[i] for i in rng.choice(len(pairs), min(n, len(pairs)), replace=False)]
    predict = judge_predictor(make_judge())
    t0 = time.time()
    predict(sample)
    return len(sample) / max(time.time() - t0, 1e-9)


def _limit(pairs: list[GPT4Pair], limit: int | None, seed: int) -> list[GPT4Pair]:
    """A seeded subsample of at most ``limit`` pairs per set, in kit order."""
    if not limit:
        return pairs
    out = []
    for set_name in sorted({p.set for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.set == set_name]
        keep = np.random.default_rng(seed).choice(idx, min(limit, len(idx)), replace=False)
        out += [pairs[i] for i in sorted(keep)]
    return out


def measure_judge(name: str, options: dict | None = None, pair_file: str | None = None, k: int = 3, seed: int = 0,
                  limit: int | None = None, compare: str | None = None, compare_pairs: int = 300) -> dict:
    """The judge card of registered judge ``name``. ``mimic-gpt4`` on the kit is refitted on each grouped fold's
    training rows; any other judge, or any judge on a maintainer's ``pair_file`` (pairs it never trained on), is
    run unchanged on every pair (one fold)."""
    import datetime

    from . import get
    from .gpt4_pairs import kit_pairs

    options = options or {}
    kit = kit_pairs()
    pairs = _limit(kit_pairs(path=pair_file) if pair_file else kit, limit, seed)
    shipped_judge = get(name, **options)
    shipped = judge_predictor(shipped_judge)
    refit = name == "mimic-gpt4" and not pair_file
    if refit:
        from .mimic_gpt4 import MimicGPT4Judge, fit

        def train(rows):
            return judge_predictor(MimicGPT4Judge.from_model(fit(rows, seed)))
    else:
        def train(rows):
            return shipped
        k = 1
    other = (compare, judge_predictor(get(compare)), compare_pairs) if compare else None
    t0 = time.time()
    figs = measure(name, pairs, train, shipped, unseen_prompts(kit), adversarial_junk(), k, seed, other)
    meta = getattr(shipped_judge, "meta", {}) or {}
    return {
        "judge": shipped_judge.identity(), "measured": datetime.date.today().isoformat(), "headline": "ae1",
        "data": "AlpacaEval GPT-4 judgements from the data kit (judge/), CC BY-NC 4.0: research use only",
        "pairs_source": pair_file or "data kit judge/ae1_gpt4_pairs + ae2_gpt4turbo_pairs" + (f" (subsample {limit}/set)" if limit else ""),
        "protocol": {
            "folds": k, "seed": seed, "refit_per_fold": refit,
            "split": ("grouped by prompt AND by generator: test fold f = prompts of group f x generators of group f, "
                      "training = the other prompt groups x the other generator groups") if refit else
                     "the judge never trained on these pairs: all of them are test pairs (one fold)",
            "near_equal_length": f"max/min character length <= {NEAR_EQUAL}",
            "agreement": "expected agreement v*p + (1-v)*(1-p) of verdict v in {0, 0.5, 1} and GPT-4's P(model wins) p",
            "system": "per-generator win rates on its test fold, judge vs GPT-4: Spearman pooled over all held-out generators "
                      "(per fold alongside) and mean absolute error in points",
            "ci": "95% percentile bootstrap over prompts (1000 resamples)",
            "null_battery": f"each null output must lose (verdict < 0.5) on >= {NULL_PASS:.0%} of prompts; null_battery = the "
                            "shipped judge on the prompts the kit holds out (never trained on), per reference; "
                            "null_battery_cv = each fold's model on its test prompts",
            "adversarial_rows": "left out of agreement and win rates; their junk output is in the null battery"},
        **figs,
        "speed_pairs_per_second": round(speed(lambda: get(name, **options), pairs, seed=seed), 1),
        "speed_note": "cold cache, model load not counted, 2 CPU cores shared with other jobs (timings inflated)",
        "training": {key: meta[key] for key in ("pairs", "train_seconds", "seed", "params") if key in meta},
        "measure_seconds": round(time.time() - t0, 1),
    }


def reproduce_check(seed: int = 0, below: int = 60) -> dict:
    """Card figures of mimic-gpt4 refitted on a fixed small split (AlpacaEval 1 pairs of instruction ids < below,
    3 grouped folds): stored in the card, recomputed by the tests."""
    from .gpt4_pairs import kit_pairs
    from .mimic_gpt4 import MimicGPT4Judge, fit

    pairs = [p for p in kit_pairs(("ae1",)) if p.instruction_id < below]
    test, preds, folds, _ = cross_validate(pairs, lambda rows: judge_predictor(MimicGPT4Judge.from_model(fit(rows, seed))), 3, seed)
    fig = figures(test, {"judge": preds["judge"]}, folds, n_boot=200, seed=seed)["judge"]
    return {"set": "ae1", "instruction_id_below": below, "folds": 3, "seed": seed, "precision": 0.002,
            **{key: fig[key]["value"] for key in ("agreement", "near_equal_agreement", "system_spearman")}}
