"""Measure a judge against held-out human preference labels: the numbers that go on its judge card.

- agreement: how often the judge prefers the response humans chose (ties count one half), per set and
  pooled, with a 95% bootstrap interval over pairs;
- position consistency: the share of pairs whose verdict flips exactly when the two responses swap roles;
- length bias: how often the judge's decisive verdicts pick the longer response, next to how often humans
  did on the same pairs, and the agreement of the trivial "longer wins" rule as a baseline;
- null-model check (bench.metrics): constant outputs judged against AlpacaEval references must lose;
- speed: pairs judged per second with an empty cache.
"""

from __future__ import annotations

import datetime
import tempfile
import time

import numpy as np

from ..cache import Cache
from ..metrics import null_model_check


def _ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (n_boot, len(values)))
    return [float(x) for x in np.percentile(values[idx].mean(1), [2.5, 97.5])]


def _fresh_cache(judge) -> None:
    """Point the judge's cache at an empty temporary store, so the speed measured is the real one."""
    target = judge.scorer if hasattr(judge, "scorer") and hasattr(judge.scorer, "cache") else judge
    if hasattr(target, "cache"):
        target.cache = Cache("fresh", tempfile.mkdtemp(prefix="bench-judge-"))


def agreement_stats(judge, pairs) -> dict:
    prompts = [p.prompt for p in pairs]
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
    t0 = time.time()
    forward = judge.compare(prompts, chosen, rejected)  # "model" = chosen, "reference" = rejected
    seconds = time.time() - t0
    swapped = judge.compare(prompts, rejected, chosen)
    pref = np.array([0.5 if v.preference is None else v.preference for v in forward])
    back = np.array([0.5 if v.preference is None else v.preference for v in swapped])
    longer_chosen = np.array([len(c) > len(r) for c, r in zip(chosen, rejected)])
    equal_len = np.array([len(c) == len(r) for c, r in zip(chosen, rejected)])
    decisive = (pref != 0.5) & ~equal_len
    picks_longer = np.where(pref == 1, longer_chosen, ~longer_chosen)[decisive]
    longer_rule = np.where(equal_len, 0.5, longer_chosen.astype(float))
    return {
        "pairs": len(pairs),
        "agreement": float(pref.mean()),
        "agreement_ci95": _ci(pref),
        "failures": int(sum(v.preference is None for v in forward)),
        "position_consistency": float(np.mean(np.isclose(pref + back, 1.0))),
        "judge_prefers_longer": float(picks_longer.mean()) if picks_longer.size else None,
        "humans_prefer_longer": float(longer_chosen[~equal_len].mean()),
        "longer_wins_baseline_agreement": float(longer_rule.mean()),
        "pairs_per_second": round(len(pairs) / seconds, 2) if seconds > 0 else None,
    }


def measure(judge, held_out: dict[str, list], null_prompts: int = 100, notes: str = "") -> dict:
    """The judge card: per-set and pooled statistics on held-out human pairs, plus the null-model check."""
    from ..data import load

    _fresh_cache(judge)
    sets = {name: agreement_stats(judge, pairs) for name, pairs in held_out.items()}
    total = sum(s["pairs"] for s in sets.values())
    pooled_pref = np.concatenate([
        np.array([0.5 if v.preference is None else v.preference for v in judge.compare(
            [p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])])
        for pairs in held_out.values()])  # cached by now: no extra judge calls
    evals = load("alpaca_eval", limit=null_prompts)
    null = null_model_check(judge, [e.prompt for e in evals], [e.reference for e in evals])
    return {
        "judge": judge.identity(),
        "measured": datetime.date.today().isoformat(),
        "held_out_pairs": total,
        "agreement": float(pooled_pref.mean()),
        "agreement_ci95": _ci(pooled_pref),
        "position_consistency": float(np.average([s["position_consistency"] for s in sets.values()],
                                                 weights=[s["pairs"] for s in sets.values()])),
        "sets": sets,
        "null_model_check": {**null, "reference": "alpaca_eval text-davinci-003"},
        "notes": notes,
    }
