"""What every judge returns, and the adapter that turns any pointwise scorer into a pairwise judge.

A judge compares a model's output with a reference output for the same prompt. ``Judgement.preference`` is
the probability that the model's output is the better one as the judge sees it: 1, 0, or 0.5 for a tie
(including an LLM judge that changes its mind when the two outputs swap places). ``None`` means the judge
gave no usable verdict even after retries; callers count those, never drop them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd


@dataclass
class Judgement:
    preference: float | None
    detail: dict = field(default_factory=dict)


class Judge(Protocol):
    name: str

    def compare(self, prompts: list[list[dict]], outputs: list[str], references: list[str]) -> list[Judgement]: ...

    def identity(self) -> dict: ...


class Scorer(Protocol):
    """The reward-model API (baselines/reward_model.py's ``RewardModel`` has it too)."""

    def score(self, prompts: list[list[dict]], responses: list[str], batch_size: int = 8) -> list[float]: ...


class ScorerJudge:
    """Pairwise verdicts from pointwise scores: the higher-scored response wins; equal scores tie.

    Scoring each response on its own makes the verdict independent of presentation order by construction
    (position consistency 1.0), at the price of never seeing the two answers side by side.
    """

    name = "scorer"

    def __init__(self, scorer: Scorer, batch_size: int = 8, ident: dict | None = None):
        self.scorer, self.batch_size, self._ident = scorer, batch_size, ident or {"scorer": type(scorer).__name__}

    def identity(self) -> dict:
        return {"judge": self.name, **self._ident}

    def compare(self, prompts, outputs, references):
        n = len(prompts)
        scores = self.scorer.score(list(prompts) * 2, list(outputs) + list(references), batch_size=self.batch_size)
        verdicts = []
        for s_out, s_ref in zip(scores[:n], scores[n:]):
            pref = 1.0 if s_out > s_ref else 0.0 if s_out < s_ref else 0.5
            verdicts.append(Judgement(pref, {"score_model": float(s_out), "score_ref": float(s_ref)}))
        return verdicts


def judged_frame(ids: list[str], verdicts: list[Judgement], outputs: list[str], references: list[str]) -> pd.DataFrame:
    """The per-prompt table ``bench.metrics`` consumes; a failed verdict is a counted tie."""
    return pd.DataFrame({
        "id": [str(i) for i in ids],
        "preference": [0.5 if v.preference is None else float(v.preference) for v in verdicts],
        "failed": [v.preference is None for v in verdicts],
        "len_model": [len(o) for o in outputs],
        "len_ref": [len(r) for r in references],
    })
