"""Win rate, LC win rate, paired bootstrap and the null-model check, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.judges import Judgement, judged_frame
from bench.metrics import (fit_length_glm, lc_win_rate, length_feature, null_model_check, paired_difference, summarize,
                           win_rate)


def frame(pref, len_model=None, len_ref=None, ids=None):
    n = len(pref)
    return pd.DataFrame({"id": ids or [str(i) for i in range(n)], "preference": pref, "failed": [False] * n,
                         "len_model": len_model if len_model is not None else [100] * n,
                         "len_ref": len_ref if len_ref is not None else [100] * n})


def test_win_rate_counts_ties_one_half():
    assert win_rate([1, 0, 0.5, 1]) == 0.625
    s = summarize(frame([1, 0, 0.5, 1]), n_boot=100)
    assert (s["wins"], s["ties"], s["losses"], s["n"]) == (2, 1, 1, 4)
    assert s["win_rate"] == 0.625


def test_bootstrap_interval_of_two_prompts_is_hand_computable():
    # Resampling two prompts with outcomes 0 and 1 gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5% and 97.5% percentiles are therefore exactly 0 and 1.
    s = summarize(frame([0.0, 1.0]), n_boot=4000, seed=1)
    assert s["win_rate"] == 0.5
    assert s["win_rate_ci95"] == [0.0, 1.0]


def test_bootstrap_interval_matches_the_normal_approximation_and_is_seeded():
    pref = [1.0] * 240 + [0.0] * 160  # p = 0.6, n = 400: 95% half-width 1.96 * sqrt(0.24 / 400) = 0.048
    s = summarize(frame(pref), n_boot=4000, seed=0)
    lo, hi = s["win_rate_ci95"]
    assert (hi - lo) / 2 == pytest.approx(0.048, rel=0.12)
    assert lo < 0.6 < hi
    assert summarize(frame(pref), n_boot=4000, seed=0)["win_rate_ci95"] == [lo, hi]
    assert summarize(frame(pref), n_boot=4000, seed=7)["win_rate_ci95"] != [lo, hi]


def test_constant_preferences_have_a_degenerate_interval():
    s = summarize(frame([1.0] * 30), n_boot=500)
    assert s["win_rate_ci95"] == [1.0, 1.0]
    assert s["lc_win_rate"] > 0.999


def test_lc_win_rate_equals_raw_win_rate_when_lengths_are_equal():
    rng = np.random.default_rng(0)
    pref = rng.choice([0.0, 0.5, 1.0], size=200, p=[0.5, 0.1, 0.4]).tolist()
    s = summarize(frame(pref), n_boot=500)
    assert s["lc_win_rate"] == pytest.approx(s["win_rate"], abs=1e-9)
    np.testing.assert_allclose(s["lc_win_rate_ci95"], s["win_rate_ci95"], atol=1e-9)


def test_lc_win_rate_removes_a_pure_length_advantage():
    # The judge prefers whichever answer is longer and nothing else; the model is usually longer.
    rng = np.random.default_rng(0)
    n = 4000
    diff = rng.normal(150, 200, n)
    x = length_feature(diff, np.zeros(n))
    pref = (rng.random(n) < 1 / (1 + np.exp(-2.5 * x))).astype(float)
    assert win_rate(pref) > 0.65
    assert lc_win_rate(pref, diff + 500, np.full(n, 500.0)) == pytest.approx(0.5, abs=0.04)


def test_glm_matches_an_unregularised_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    x = np.tanh(rng.normal(0, 1, 300))
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.4 + 1.2 * x)))).astype(float)
    ours = fit_length_glm(y, x)[0]
    ref = LogisticRegression(C=1e8, max_iter=1000).fit(x[:, None], y)
    assert ours[0] == pytest.approx(ref.intercept_[0], abs=1e-3)
    assert ours[1] == pytest.approx(ref.coef_[0, 0], abs=1e-3)


def test_paired_difference_uses_the_same_prompts_for_both_models():
    pref = [1.0, 0.0, 0.5, 1.0, 0.0, 1.0] * 10
    same = paired_difference(frame(pref), frame(pref), n_boot=500)
    assert same["win_rate_diff"] == 0 and same["win_rate_diff_ci95"] == [0.0, 0.0]  # unpaired CIs would not be 0
    better = [1.0 if p == 0.0 and i % 2 else p for i, p in enumerate(pref)]  # A wins 10 more prompts
    d = paired_difference(frame(better), frame(pref), n_boot=1000)
    assert d["win_rate_diff"] == pytest.approx(10 / 60)
    assert d["win_rate_diff_ci95"][0] > 0
    assert d["win_rate_p_a_not_better"] < 0.05


def test_paired_difference_matches_rows_by_id():
    a = frame([1.0, 0.0, 1.0], ids=["x", "y", "z"])
    b = frame([0.0, 1.0], ids=["z", "y"])
    d = paired_difference(a, b, n_boot=100)
    assert d["n"] == 2 and d["unmatched"] == 1
    assert d["win_rate_diff"] == pytest.approx((0 + 1) / 2 - (1 + 0) / 2)


def test_failed_judgements_are_counted_ties_never_dropped():
    verdicts = [Judgement(1.0), Judgement(None), Judgement(0.0)]
    df = judged_frame(["a", "b", "c"], verdicts, ["x", "yy", "zzz"], ["r", "r", "r"])
    s = summarize(df, n_boot=100)
    assert s["n"] == 3 and s["judge_failures"] == 1 and s["win_rate"] == 0.5
    assert s["avg_len_model"] == 2.0


class LengthJudge:
    """Prefers the shorter (or longer) answer: a judge with a pure length bias."""

    def __init__(self, prefer_short: bool):
        self.prefer_short = prefer_short

    def compare(self, prompts, outputs, references):
        return [Judgement(float((len(o) < len(r)) == self.prefer_short)) for o, r in zip(outputs, references)]


def test_null_model_check_fires_when_a_constant_output_beats_the_reference():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(20)]
    refs = [f"A detailed, helpful answer number {i}, long enough to be longer than every null output." for i in range(20)]
    fired = null_model_check(LengthJudge(prefer_short=True), prompts, refs)
    assert not fired["passed"] and fired["worst"] == 1.0
    ok = null_model_check(LengthJudge(prefer_short=False), prompts, refs)
    assert ok["passed"] and ok["worst"] == 0.0
