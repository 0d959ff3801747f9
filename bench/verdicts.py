"""Verdicts from the judged frames of several methods x training seeds: which differences are real.

Input: ``frames[method][seed]``, one judged frame per (method, seed) as ``bench.metrics`` describes (columns
``id``, ``preference``, ``failed``, ``len_model``, ``len_ref``), all against the same reference on the same
prompt ids. A method judged once (the untrained base, the controls) has a single frame.

Hierarchical bootstrap. Each resample draws seeds with replacement, then prompts with replacement. Prompts
are crossed with seeds (every seed answers the same prompts), so one prompt resample serves all seeds of a
replicate and all methods (paired by prompt); a pair of methods shares the seed resample too (paired by seed
index: seed s of one method with seed s of the other; a single-frame method is paired with every seed).
Row (s, p) gets the weight ``(1 + kappa (u_s - 1)) v_p`` (u, v: multinomial counts from
``bench.metrics.resample_weights``), and the statistic (win rate, or the LC GLM of ``bench.metrics``) is
computed under those weights. With one seed the weights are the prompt counts: the prompt bootstrap exactly.

Two small-sample corrections, both from the two-way ANOVA (seeds x prompts) of the preferences (of the
paired differences, for a pair): mean squares MS_seed, MS_prompt, MS_error.
- kappa: plain seed resampling (kappa = 1, Owen's "pigeonhole" bootstrap) counts the seed x prompt noise
  about three times; in the A/A simulation below it called 1.0 % (2 seeds) and 0.7 % (3 seeds) of A/A pairs
  different at nominal 5 % without seed noise, 3.2 % and 1.5 % at seed sd 0.15 (600 experiments each). kappa^2 = S/(S-1) * max(0, MS_seed - MS_error) / (MS_seed + MS_error), at most 1,
  makes the seed resampling contribute the between-seed variance the ANOVA estimates.
- df: that variance rests on S-1 degrees of freedom, so the standard error has Satterthwaite's df from
  MS_prompt (n-1), MS_seed (S-1) and MS_error ((S-1)(n-1)) when the seed term is positive (n-1 when it is
  not, as a mixed model at its boundary does; one seed: normal). Intervals are the percentile ones with the
  deviations scaled by t_{df, 0.975} / z_{0.975}, clipped to the metric's range; the two-sided p-value is the
  t test of the difference over its bootstrap standard error (smooth: bootstrap tail counts have a floor of
  2 / (n_boot + 1), which Holm's factor of 30-50 pairs would lift above 5 %).
Calibration (``simulate_rejections``, 1000 A/A experiments of 100 prompts each; benchmarks/verdicts_bench.py): share
called different at nominal 5 %, by seed-noise sd on the logit scale 0 / 0.15 / 0.3 / 0.6 (about 0, 3.5, 7, 14
points of win rate): 2 seeds 3.9 / 6.8 / 11.6 / 13.5 %, 3 seeds 3.8 / 5.1 / 7.6 / 6.6 %, 5 seeds 3.2 / 4.5 /
5.3 / 5.7 %; one seed (the prompt bootstrap, blind to seed noise) 5.0 / 9.6 / 24 / 48 %. Two seeds cannot
measure their own spread; and when seeds differ by chance, df falls towards S-1 and even large differences
lose significance: the power to find a true 10-point difference (seed sd 0.15) is 32 % with 2 or 3 seeds, no
better than one seed's 32 % (which pays for it with 9.6 % false positives), and 54 % with 5.

Multiple pairs: Holm's step-down correction over the family of all pairs, controls included (one family per
metric). Tiers (``TIER_RULE``) replace a ranking by point estimates. The minimum detectable difference of a
pair is ``MDD_FORMULA``; the run's is the median over the pairs of non-control methods, also given at Holm's
strictest step (alpha / number of pairs). Controls: a null policy must land in the bottom tier and a positive
control in the top tier, the two in different tiers, or the run is not trusted. A/A: seeds of one method
compared with each other by the same test (one seed a side, so the prompt bootstrap): "different" more often
than alpha (binomial p of the excess) says the between-seed spread is real and one-seed verdicts mislead.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from .metrics import interval, length_scale, resample_weights, weighted_stats

ALPHA, POWER = 0.05, 0.8
METRICS = ("win_rate", "lc_win_rate")
CONTROLS = {"null": "null", "positive": "positive"}
BASE = "base"
HEADLINE = (("figa", "sft"), ("figa", "dpo"), ("fg-ppo", "ppo"))
TIER_RULE = ("Methods sorted by the tier metric, best first; the best opens tier 1 and is its top; each next "
             "method joins the current tier unless its Holm-corrected difference to that tier's top is "
             "significant at alpha, in which case it opens the next tier and becomes its top.")
MDD_FORMULA = ("(t_{df, 1-alpha/2} + t_{df, power}) * SE; SE = bootstrap standard error of the paired difference, "
               "df its Satterthwaite degrees of freedom (normal with one seed)")


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(1.0, adjusted)
    return out


def anova(d: np.ndarray) -> tuple[float, float, float]:
    """Mean squares (seed, prompt, error) of a seeds x prompts table without replication (needs S >= 2)."""
    s, n = d.shape
    grand, rows, cols = d.mean(), d.mean(1), d.mean(0)
    resid = d - rows[:, None] - cols[None, :] + grand
    return (n * ((rows - grand) ** 2).sum() / (s - 1), s * ((cols - grand) ** 2).sum() / (n - 1),
            (resid**2).sum() / ((s - 1) * (n - 1)))


def seed_corrections(d: np.ndarray) -> tuple[float, float]:
    """(kappa, df) for a seeds x prompts table of preferences or paired differences (module docstring)."""
    s, n = d.shape
    if s < 2 or n < 2:
        return 0.0, np.inf
    ms_seed, ms_prompt, ms_error = anova(d)
    between = max(0.0, ms_seed - ms_error)
    kappa = min(1.0, float(np.sqrt(s / (s - 1) * between / (ms_seed + ms_error)))) if ms_seed + ms_error > 0 else 0.0
    den = ms_prompt**2 / (n - 1) + ((ms_seed**2 / (s - 1) + ms_error**2 / ((s - 1) * (n - 1))) if between else 0.0)
    return kappa, float((ms_prompt + between) ** 2 / den) if den > 0 else np.inf


def hierarchical_weights(n_seeds: int, n_prompts: int, n_boot: int, seed: int, kappa: float) -> np.ndarray:
    """(n_boot, n_seeds * n_prompts) row weights, seed-major: seeds resampled, then prompts (docstring)."""
    v = resample_weights(n_prompts, n_boot, seed)  # the same prompt draws as bench.metrics.summarize
    if n_seeds == 1:
        return v
    u = 1 + kappa * (resample_weights(n_seeds, n_boot, np.random.default_rng([seed, 1])) - 1)
    return (u[:, :, None] * v[:, None, :]).reshape(n_boot, -1)


def mdd(se: float, df: float | None, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable difference: the true difference this test finds with probability ``power``."""
    df = np.inf if df is None else df
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


NUMERICAL_ZERO = 1e-12  # win rates live in [0, 1]; LC fits leave differences of ~1e-17 where there are none


def two_sided_p(value: float, se: float, df: float) -> float:
    """t test of ``value`` with the bootstrap standard error: smooth, unlike bootstrap tail counts, whose floor
    2 / (n_boot + 1) times a Holm factor of 30-50 pairs would make every difference insignificant."""
    if se <= NUMERICAL_ZERO:  # rounding noise (an LC fit on all-zero preferences) is no evidence
        return 1.0 if abs(value) <= NUMERICAL_ZERO else 0.0
    return float(2 * stats.t.sf(abs(value) / se, df))


def estimate(a: list[pd.DataFrame], b: list[pd.DataFrame] | None = None, n_boot: int = 2000, seed: int = 0,
             metrics: tuple[str, ...] = METRICS) -> dict:
    """Win rate and LC win rate of method ``a`` (its seeds' aligned frames), or of ``a`` minus ``b`` when ``b``
    is given (frames paired by position): value, 95 % interval (clipped to the metric's range), standard
    error, and for a difference the two-sided p-value."""
    ya = np.stack([f["preference"].to_numpy(float) for f in a])
    d = ya if b is None else ya - np.stack([f["preference"].to_numpy(float) for f in b])
    kappa, df = seed_corrections(d)
    widen = float(stats.t.ppf(0.975, df) / stats.norm.ppf(0.975)) if np.isfinite(df) else 1.0
    w = hierarchical_weights(len(a), ya.shape[1], n_boot, seed, kappa)
    lc, one = "lc_win_rate" in metrics, np.ones((1, w.shape[1]))

    def stats_of(frames):
        rows = pd.concat(frames, ignore_index=True)
        return weighted_stats(rows, one, length_scale(rows), lc), weighted_stats(rows, w, length_scale(rows), lc)

    point, boot = stats_of(a)
    if b is not None:
        point_b, boot_b = stats_of(b)
        point, boot = {k: point[k] - point_b[k] for k in point}, {k: boot[k] - boot_b[k] for k in boot}
    out = {"kappa": kappa, "df": df if np.isfinite(df) else None, "widen": widen}
    for k in metrics:
        value, se = float(point[k][0]), float(np.std(boot[k]))
        samples = np.clip(value + widen * (boot[k] - value), 0 if b is None else -1, 1)
        out[k] = {"value": value, "ci95": interval(samples), "se": se}
        if b is not None:
            out[k]["p"] = two_sided_p(value, se, df)
    return out


def _aligned(frames: Mapping) -> dict[str, dict[str, pd.DataFrame]]:
    """Every frame reordered to one prompt order; a frame with other prompt ids is an error naming it."""
    if not frames or not any(frames.values()):
        raise ValueError("no judged frames")
    ids = None
    out = {}
    for method, by_seed in frames.items():
        if not by_seed:
            raise ValueError(f"method {method!r} has no judged frame")
        out[str(method)] = {}
        for s, df in by_seed.items():
            if ids is None:
                ids = list(df["id"])
            if len(df) != len(ids) or set(df["id"]) != set(ids) or df["id"].duplicated().any():
                raise ValueError(f"method {method!r} seed {s!r}: judged prompt ids differ from the other frames'")
            out[str(method)][str(s)] = df.set_index("id").loc[ids].reset_index()
    return out


def paired_frames(fa: dict, fb: dict) -> tuple[list[str], list, list]:
    """Seed-index pairing: common seeds; a method judged once pairs its one frame with each seed of the other."""
    if len(fb) == 1 or len(fa) == 1:
        seeds = list(fa) if len(fb) == 1 else list(fb)
        return seeds, [fa[s] if len(fa) > 1 else next(iter(fa.values())) for s in seeds], \
            [fb[s] if len(fb) > 1 else next(iter(fb.values())) for s in seeds]
    seeds = [s for s in fa if s in fb]
    if not seeds:
        raise ValueError("the two methods share no training seed")
    return seeds, [fa[s] for s in seeds], [fb[s] for s in seeds]


def tiers(estimates: dict[str, float], p_holm: dict[frozenset, float], alpha: float = ALPHA) -> list[list[str]]:
    """Groups of methods not distinguishable at ``alpha`` (``TIER_RULE``)."""
    out, top = [], None
    for m in sorted(estimates, key=lambda k: -estimates[k]):
        if top is None or p_holm[frozenset((top, m))] < alpha:
            out.append([m])
            top = m
        else:
            out[-1].append(m)
    return out


def control_checks(tier_list: list[list[str]], controls: Mapping) -> dict:
    """The null control in the bottom tier, the positive control in the top tier, the two apart."""
    where = {m: i for i, tier in enumerate(tier_list) for m in tier}
    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "passed": bool(ok), "detail": detail})

    for role, want in (("null", len(tier_list) - 1), ("positive", 0)):
        m = controls.get(role)
        if m is None:
            continue
        label = f"{role} control in the {'bottom' if role == 'null' else 'top'} tier"
        if m not in where:
            check(label, False, f"{m!r} was not judged in this run")
        else:
            check(label, where[m] == want, f"{m!r} is in tier {where[m] + 1} of {len(tier_list)}")
    null, pos = controls.get("null"), controls.get("positive")
    if null in where and pos in where:
        check("controls in different tiers", where[null] != where[pos],
              f"null in tier {where[null] + 1}, positive in tier {where[pos] + 1}")
    return {"roles": dict(controls), "checks": checks, "trusted": all(c["passed"] for c in checks) if checks else None,
            "failed": [c["check"] for c in checks if not c["passed"]]}


def aa_check(frames: dict, n_boot: int, seed: int, alpha: float, metric: str) -> dict:
    """Every two seeds of the same method compared by the pairwise test (one seed a side)."""
    rows = []
    for method, by_seed in frames.items():
        for s, t in combinations(by_seed, 2):
            r = estimate([by_seed[s]], [by_seed[t]], n_boot, seed, metrics=(metric,))[metric]
            rows.append({"method": method, "seeds": [s, t], "diff": r["value"], "ci95": r["ci95"], "p": r["p"],
                         "different": r["p"] < alpha})
    k = sum(r["different"] for r in rows)
    excess = float(stats.binomtest(k, len(rows), alpha, alternative="greater").pvalue) if rows else None
    return {"metric": metric, "comparisons": len(rows), "different": k, "expected": alpha * len(rows),
            "p_excess": excess, "rows": rows}


def _headline_pairs(methods: list[str], controls: Mapping, headline) -> list[tuple[str, str]]:
    if headline is not None:
        return [tuple(h) for h in headline if h[0] in methods and h[1] in methods]
    real = [m for m in methods if m not in set(controls.values())]
    pairs = [h for h in HEADLINE if h[0] in real and h[1] in real]
    return pairs + [(m, BASE) for m in real if m != BASE and BASE in real]


def verdicts(frames: Mapping, controls: Mapping = CONTROLS, headline=None, n_boot: int = 2000, seed: int = 0,
             alpha: float = ALPHA, tier_metric: str = "win_rate") -> dict:
    """The run's verdicts as a JSON-serialisable dict: per-method estimates, all pairs with Holm-corrected
    p-values, named headline pairs, tiers, the minimum detectable difference, the control checks, A/A."""
    frames = _aligned(frames)
    controls = {role: str(m) for role, m in (controls or {}).items() if m is not None}
    names = list(frames)
    methods = {}
    for m, by_seed in frames.items():
        est = estimate(list(by_seed.values()), None, n_boot, seed)
        per_seed = {s: {k: float(v[0]) for k, v in weighted_stats(df, np.ones((1, len(df))), length_scale(df)).items()}
                    for s, df in by_seed.items()}
        methods[m] = {"n_seeds": len(by_seed), "seeds": list(by_seed), "n_prompts": len(next(iter(by_seed.values())))}
        for k in METRICS:
            vals = [per_seed[s][k] for s in by_seed]
            methods[m][k] = {**est[k], "per_seed": {s: per_seed[s][k] for s in by_seed},
                             "sd_seeds": float(np.std(vals, ddof=1)) if len(vals) > 1 else None}
    pairs = []
    for a, b in combinations(names, 2):
        seeds, fa, fb = paired_frames(frames[a], frames[b])
        pairs.append({"a": a, "b": b, "seeds": seeds, **estimate(fa, fb, n_boot, seed)})
    for k in METRICS:
        for pair, p in zip(pairs, holm([pr[k]["p"] for pr in pairs])):
            pair[k]["p_holm"] = float(p)
    for pair in pairs:
        pair["mdd"] = mdd(pair[tier_metric]["se"], pair["df"], alpha)
    p_holm = {frozenset((pr["a"], pr["b"])): pr[tier_metric]["p_holm"] for pr in pairs}
    tier_list = tiers({m: methods[m][tier_metric]["value"] for m in names}, p_holm, alpha)
    for i, tier in enumerate(tier_list):
        for m in tier:
            methods[m]["tier"] = i + 1
    by_pair = {(pr["a"], pr["b"]): pr for pr in pairs}
    head = []
    for a, b in _headline_pairs(names, controls, headline):
        pr, sign = (by_pair[(a, b)], 1) if (a, b) in by_pair else (by_pair[(b, a)], -1)
        head.append({"name": f"{a} - {b}", "a": a, "b": b, "seeds": pr["seeds"], "mdd": pr["mdd"],
                     **{k: {**pr[k], "value": sign * pr[k]["value"],
                            "ci95": sorted(sign * x for x in pr[k]["ci95"])} for k in METRICS}})
    non_control = [pr for pr in pairs if not {pr["a"], pr["b"]} & set(controls.values())] or pairs
    run_mdd = float(np.median([pr["mdd"] for pr in non_control])) if non_control else None
    strict = float(np.median([mdd(pr[tier_metric]["se"], pr["df"], alpha / len(pairs)) for pr in non_control])) \
        if non_control else None
    return {
        "n_boot": n_boot, "seed": seed, "alpha": alpha, "tier_metric": tier_metric, "tier_rule": TIER_RULE,
        "methods": methods, "pairs": pairs, "headline": head, "tiers": tier_list,
        "mdd": {"value": run_mdd, "holm_strictest": strict, "alpha": alpha, "power": POWER, "metric": tier_metric,
                "formula": MDD_FORMULA, "over": "median over the pairs of non-control methods"},
        "controls": control_checks(tier_list, controls),
        "aa": aa_check({m: f for m, f in frames.items() if len(f) > 1}, n_boot, seed, alpha, tier_metric),
    }


def simulate_rejections(n_seeds: int, seed_sd: float, experiments: int = 400, n_prompts: int = 100,
                        n_boot: int = 400, seed: int = 0, alpha: float = ALPHA, effect: float = 0.0) -> float:
    """The share of simulated experiments in which the pairwise test calls two methods different at ``alpha``:
    its false-positive rate for ``effect`` 0 (A/A: both methods from one distribution), its power otherwise.
    Outcomes are Bernoulli with a prompt difficulty shared by every seed and method (logit N(-0.5, 1.2)), a
    per-(method, seed) logit shift N(0, ``seed_sd``), and ``effect`` added to the first method's logit."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n_prompts)]

    def judged(logit):
        return pd.DataFrame({"id": ids, "preference": (rng.random(n_prompts) < 1 / (1 + np.exp(-logit))).astype(float),
                             "len_model": 100.0, "len_ref": 100.0})

    different = 0
    for i in range(experiments):
        difficulty = rng.normal(-0.5, 1.2, n_prompts)
        a, b = ([judged(difficulty + shift + rng.normal(0, seed_sd)) for _ in range(n_seeds)] for shift in (effect, 0))
        different += estimate(a, b, n_boot, seed=i, metrics=("win_rate",))["win_rate"]["p"] < alpha
    return different / experiments
