"""Step 2, reward: score answers with a pluggable scorer, and keep the subpar ones.

A scorer is either a validated judge against the prompt's reference answer (``judge:mimic-gpt4``: the
score is the judge's probability that the answer beats the reference, so answers of different prompts are
on one scale; mimic-gpt4's probability itself, not its 0/1 verdict, so that quantiles and gains are not ties)
or a trained reward model (``rm:PATH``, ``bench.reward_model``: its summed reward). The same
scorer later scores the revisions, so the filter's "score gain" compares like with like. Scores are cached by
content (scorer identity, prompt, answer, reference) in the build's directory: a re-run scores nothing twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..cache import Cache, content_key
from ..data import DataError

log = logging.getLogger("bench.spa")


class Scorer:
    """``score(prompts, answers, references) -> list[float | None]`` (None: this scorer cannot score it)."""

    def __init__(self, spec: str, cache_root: Path):
        kind, _, name = spec.partition(":")
        if kind == "judge":
            from ..judges import get
            from ..judges.gate import require_validated

            require_validated(name)  # a judge whose null battery fails would call junk a good answer
            self.judge, self.rm = get(name), None
            self.identity = self.judge.identity()
        elif kind == "rm":
            from ..generation import model_fingerprint
            from ..reward_model import load_reward_model

            self.judge, self.rm = None, load_reward_model(name)
            self.identity = {"reward_model": name, "weights": model_fingerprint(name)}
        else:
            raise DataError("scorer", None, None, f"'{spec}' is not a scorer: use judge:NAME (e.g. judge:mimic-gpt4) "
                                                  "or rm:PATH (a reward-model checkpoint)")
        self.spec = spec
        self.needs_reference = self.judge is not None
        self.cache = Cache("scores", root=cache_root)

    def score(self, prompts: list, answers: list[str], references: list[str | None]) -> list[float | None]:
        keys = [content_key("spa-score/2", self.identity, p, a, r if self.needs_reference else None)
                for p, a, r in zip(prompts, answers, references)]
        known = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in known
                and not (self.needs_reference and not (references[i] or "").strip())]
        if todo:
            got = self._compute([prompts[i] for i in todo], [answers[i] for i in todo], [references[i] for i in todo])
            new = {keys[i]: s for i, s in zip(todo, got)}
            self.cache.put_many(new)
            known.update(new)
        return [known.get(k) for k in keys]

    def _compute(self, prompts, answers, references) -> list[float]:
        if self.judge is not None:  # the judge's own probability where it gives one (mimic-gpt4's "p"), not its 0/1
            return [float(v.detail.get("p", v.preference)) if v.preference is not None else None
                    for v in self.judge.compare(prompts, answers, references)]
        return [float(s) for s in self.rm.score(prompts, answers)]


def subpar(scores: list[float | None], threshold: float | None, quantile: float) -> tuple[list[bool], float]:
    """Which scored answers are subpar, and the cut used: below ``threshold``, or in the lowest ``quantile``."""
    known = np.array([s for s in scores if s is not None], dtype=float)
    if threshold is None:
        if not len(known):
            return [False] * len(scores), float("nan")
        threshold = float(np.quantile(known, quantile, method="higher")) if quantile < 1 else float("inf")
        keep = [s is not None and s < threshold for s in scores]
        if quantile > 0 and not any(keep):  # every score tied: the quantile would keep nothing
            keep = [s is not None and s <= threshold for s in scores]
        return keep, threshold
    return [s is not None and s < threshold for s in scores], threshold
