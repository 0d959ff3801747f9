"""Win rate, length-controlled win rate and paired-bootstrap confidence intervals over prompts.

A judged comparison is one row per prompt (a pandas DataFrame) with
``preference`` (1 = the model's output is better than the reference, 0 = worse, 0.5 = tie),
``len_model`` and ``len_ref`` (characters, as AlpacaEval counts), and ``failed`` (the judge could not give a
verdict after its retries; such rows are kept, as ties, and counted; never dropped).

Length control. AlpacaEval 2's LC win rate fits a GLM with per-instruction difficulty terms, which exist only
for its own 805 prompts. Ours works on any eval set: a logistic GLM of the preference on the tanh of the
length difference scaled by its standard deviation,

    logit P(model preferred) = theta + beta * tanh((len_model - len_ref) / sd(len_model - len_ref)),

and the LC win rate is the prediction at zero length difference, sigmoid(theta): "how often would the model
win if its answers were as long as the reference's". With equal lengths the feature is 0 and the LC win
rate equals the raw win rate exactly. Ties enter as fractional targets (0.5).

Uncertainty. The paired bootstrap resamples prompts (all metrics, and both models of a comparison, share
the same resampled prompts), which keeps the prompt-to-prompt difficulty correlation that an unpaired
interval would ignore. Percentile intervals, seeded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RIDGE = 1e-4  # on beta only: keeps the GLM defined when every length difference is 0
SATURATED = 16.0  # |theta| beyond which the LC win rate is within 1e-7 of 0 or 1: iterating further changes nothing


def length_feature(len_model, len_ref, scale: float | None = None) -> np.ndarray:
    diff = np.asarray(len_model, float) - np.asarray(len_ref, float)
    scale = float(np.std(diff)) if scale is None else scale
    return np.tanh(diff / scale) if scale > 0 else np.zeros_like(diff)


def fit_length_glm(y: np.ndarray, x: np.ndarray, weights: np.ndarray | None = None, iters: int = 50) -> np.ndarray:
    """Weighted logistic regression ``logit p = theta + beta x`` with soft targets, fitted for many weight
    vectors at once (one per bootstrap resample) by Newton's method. Returns (B, 2) [theta, beta]."""
    y, x = np.asarray(y, float), np.asarray(x, float)
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(np.asarray(weights, float))
    params = np.zeros((w.shape[0], 2))
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(params[:, :1] + params[:, 1:] * x)))
        r, s = w * (p - y), w * p * (1 - p)
        g = np.stack([r.sum(1), (r * x).sum(1) + RIDGE * params[:, 1]], 1)
        h00, h01, h11 = s.sum(1) + 1e-12, (s * x).sum(1), (s * x * x).sum(1) + RIDGE
        det = h00 * h11 - h01**2
        step = np.stack([(h11 * g[:, 0] - h01 * g[:, 1]) / det, (h00 * g[:, 1] - h01 * g[:, 0]) / det], 1)
        params = np.clip(params - np.clip(step, -5, 5), -30, 30)  # bounded: all-win/all-loss samples saturate
        live = np.abs(params[:, 0]) < SATURATED  # saturated resamples (all wins or all losses) need no more steps
        if not live.any() or np.abs(step[live]).max() < 1e-10:
            break
    return params


def win_rate(preference) -> float:
    return float(np.mean(preference))


def lc_win_rate(preference, len_model, len_ref) -> float:
    theta = fit_length_glm(preference, length_feature(len_model, len_ref))[0, 0]
    return float(1 / (1 + np.exp(-theta)))


def resample_weights(n: int, n_boot: int, seed) -> np.ndarray:
    """(n_boot, n) counts: how often each unit (prompt, or seed) appears in each resample. ``seed`` is an int
    or a numpy Generator; every bootstrap in the project draws its resamples here."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)


def length_scale(df: pd.DataFrame) -> float:
    return float(np.std(df["len_model"].to_numpy(float) - df["len_ref"].to_numpy(float)))


def weighted_stats(df: pd.DataFrame, w: np.ndarray, scale: float, lc: bool = True) -> dict[str, np.ndarray]:
    """Win rate and (unless ``lc`` is false) LC win rate of the rows of ``df`` under each row of weights
    ``w`` (B, len(df))."""
    y = df["preference"].to_numpy(float)
    out = {"win_rate": (w @ y) / w.sum(1)}
    if lc:
        theta = fit_length_glm(y, length_feature(df["len_model"], df["len_ref"], scale), w)[:, 0]
        out["lc_win_rate"] = 1 / (1 + np.exp(-theta))
    return out


def interval(samples: np.ndarray, level: float = 0.95) -> list[float]:
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def summarize(df: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Win rate and LC win rate with 95% paired-bootstrap intervals, lengths, ties and judge failures."""
    n = len(df)
    scale = length_scale(df)
    point = weighted_stats(df, np.ones((1, n)), scale)
    boot = weighted_stats(df, resample_weights(n, n_boot, seed), scale)
    out = {"n": n}
    for k in point:
        out[k] = float(point[k][0])
        out[f"{k}_ci95"] = interval(boot[k])
    out.update(avg_len_model=float(df["len_model"].mean()), avg_len_ref=float(df["len_ref"].mean()),
               wins=int((df["preference"] == 1).sum()), losses=int((df["preference"] == 0).sum()),
               ties=int(((df["preference"] > 0) & (df["preference"] < 1)).sum()),
               judge_failures=int(df["failed"].sum()) if "failed" in df else 0,
               n_boot=n_boot, seed=seed)
    return out


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Model A minus model B, both judged against the same reference: each resample draws the same prompts
    for both. Rows are matched on ``id``; prompts judged for only one model are left out and counted."""
    ids = sorted(set(a["id"]) & set(b["id"]), key=list(a["id"]).index)
    if not ids:
        raise ValueError("the two judged sets share no prompt ids")
    a2, b2 = a.set_index("id").loc[ids].reset_index(), b.set_index("id").loc[ids].reset_index()
    n = len(ids)
    w = resample_weights(n, n_boot, seed)
    out = {"n": n, "unmatched": int(len(a) + len(b) - 2 * n), "n_boot": n_boot, "seed": seed}
    one = np.ones((1, n))
    pa, pb = weighted_stats(a2, one, length_scale(a2)), weighted_stats(b2, one, length_scale(b2))
    ba, bb = weighted_stats(a2, w, length_scale(a2)), weighted_stats(b2, w, length_scale(b2))
    for k in pa:
        diff = ba[k] - bb[k]
        out[f"{k}_diff"] = float(pa[k][0] - pb[k][0])
        out[f"{k}_diff_ci95"] = interval(diff)
        out[f"{k}_p_a_not_better"] = float(np.mean(diff <= 0))  # bootstrap one-sided p-value for "A > B"
    return out


NULL_OUTPUTS = ("", "I don't know.", "I'm sorry, but I can't help with that.")


def null_model_check(judge, prompts: list, references: list[str], null_outputs=NULL_OUTPUTS) -> dict:
    """Judge constant "null" outputs against the references: a judge worth trusting never lets a constant
    answer beat the reference. Returns each null output's win rate and ``passed`` (all below 0.5)."""
    results = {}
    for text in null_outputs:
        verdicts = judge.compare(prompts, [text] * len(prompts), references)
        results[text] = win_rate([0.5 if v.preference is None else v.preference for v in verdicts])
    worst = max(results.values())
    return {"null_win_rates": results, "worst": worst, "passed": bool(worst < 0.5), "n": len(prompts)}
