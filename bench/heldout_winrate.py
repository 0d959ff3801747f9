"""The sweeps' generation objective: the judged win rate of a checkpoint's answers on held-out training prompts.

What the leaderboard measures is a judge's verdict on generated answers; held-out NLL or preference accuracy
cannot see an answer that loops to the token limit. So a sweep point is scored the way a run scores a method,
on prompts no method trains on and no eval set contains: the held-out split of the training data (the same
hash split on source id that ``bench run`` trains on), answered greedily with the run's ``max_new_tokens``
through one vLLM engine per sweep (each checkpoint's weights swapped in, as the generate stage does), judged
by the run's judge (through its validation gate) against those prompts' reference answers: a revision pair's
``revised`` side, a preference pair's ``chosen`` side, an SFT demonstration's reference. Degenerate answers
(``bench.degeneration``: a loop or empty) count as losses whatever the judge says. Every point reports its
answers' mean length beside the untrained model's, because the judge rewards length: a reader must see
whether a rate bought quality or length.
"""

from __future__ import annotations

import logging
from pathlib import Path

from . import data
from .data import DataError, EvalPrompt
from .degeneration import is_degenerate, statistics

log = logging.getLogger("bench.sweep")

N_BOOT = 2000


def heldout_prompts(spec: str, val_fraction: float, seed: int, limit: int | None = None) -> list[EvalPrompt]:
    """The held-out split of ``spec`` as prompts with their reference answers (never an eval prompt)."""
    _, val = data.train_val_split(data.load(spec, skip_invalid=True), val_fraction, seed)
    prompts, seen = [], set()
    for r in val:
        ref = getattr(r, "revised", None) or getattr(r, "chosen", None) or getattr(r, "reference", None)
        key = str(r.prompt)
        if ref and key not in seen:
            seen.add(key)
            prompts.append(EvalPrompt(id=r.source_id, prompt=r.prompt, reference=ref, dataset=f"heldout:{spec}"))
    prompts = prompts[:limit] if limit else prompts
    if not prompts:
        raise DataError(spec, None, "val_fraction", "no held-out prompt with a reference answer to sweep on")
    return prompts


class HeldoutWinRate:
    """Scores checkpoints by judged win rate on held-out prompts; one engine for all of them (``close`` it)."""

    def __init__(self, prompts: list[EvalPrompt], root: Path, base_model: str, judge: str, judge_options: dict,
                 max_new_tokens: int, backend: str = "auto", allow_unvalidated_judge: bool = False, prefix: str = ""):
        """Answers go to ``root/answers/<prefix><point>``; the untrained model's to ``root/answers/untrained``,
        shared by every sweep with the same root (rows are keyed by weights, prompt and sampling)."""
        from .judges import get
        from .judges.gate import require_validated
        from .models import resolve

        self.gate = require_validated(judge, allow_unvalidated_judge)  # the run's gate, before any training
        self.judge = get(judge, **judge_options)
        self.prompts, self.root, self.backend, self.prefix = prompts, Path(root), backend, prefix
        self.base_model, self.max_new_tokens = resolve(base_model), max_new_tokens
        self.engine = None
        self._base: dict | None = None

    def _answers(self, name: str, checkpoint: str) -> list[dict]:
        from .generation import Sampling, backend_name, generate_evals, read_rows

        if backend_name(self.backend) == "vllm" and self.engine is None:
            self.engine = LazyEngine(self.base_model)
        where = self.root / "answers" / (name if name == "untrained" else self.prefix + name)
        out = generate_evals([(name, checkpoint, where)], self.prompts, self.backend,
                             Sampling(max_new_tokens=self.max_new_tokens), dataset=self.prompts[0].dataset,
                             engine=self.engine)[0]
        by_key = {r["id"]: r for r in read_rows(out / "generations.jsonl")}
        return [by_key[p.id] for p in self.prompts]

    def base(self) -> dict:
        """The untrained model scored the same way: the yardstick for win rate and length."""
        if self._base is None:
            self._base = self.score("untrained", self.base_model)
        return self._base

    def score(self, name: str, checkpoint: str | Path) -> dict:
        from .judges import judged_frame
        from .metrics import interval, resample_weights

        rows = self._answers(name, str(checkpoint))
        outputs = [r["output"] for r in rows]
        refs = [p.reference for p in self.prompts]
        frame = judged_frame([p.id for p in self.prompts], self.judge.compare([p.prompt for p in self.prompts], outputs, refs),
                             outputs, refs)
        degenerate = [is_degenerate(r["output"], r.get("token_ids")) for r in rows]
        frame.loc[degenerate, "preference"] = 0.0  # a loop or an empty answer loses, whatever the judge says
        prefs = frame["preference"].to_numpy(float)
        w = resample_weights(len(prefs), N_BOOT, 0)  # the same resamples for every point: paired comparisons
        stats = statistics(rows)
        result = {"score": float(prefs.mean()), "tiebreak": 0.0, "win_rate": float(prefs.mean()),
                  "win_rate_ci95": interval(w @ prefs / w.sum(1)), "n": len(prefs),
                  "mean_tokens": stats["mean_tokens"], "truncated": stats["truncated"], "loop": stats["loop"],
                  "empty": stats["empty"], "degenerate": stats["degenerate"], "judge_failures": int(frame["failed"].sum()),
                  "preferences": [float(x) for x in prefs]}
        if name != "untrained":
            result["base_mean_tokens"] = self.base()["mean_tokens"]
        return result

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


class LazyEngine:
    """A vLLM ``Engine`` started on first use: a resumed sweep whose answers are all written starts none."""

    def __init__(self, model_dir: str):
        self.model_dir, self.started = model_dir, None

    def __getattr__(self, name: str):
        if self.started is None:
            from .engine import Engine

            self.started = Engine(self.model_dir)
        return getattr(self.started, name)

    def close(self) -> None:
        if self.started is not None:
            self.started.close()
            self.started = None


def paired_difference(a: list[float], b: list[float]) -> dict:
    """mean(a) - mean(b) over the same prompts with its paired bootstrap 95 % interval."""
    import numpy as np

    from .metrics import interval, resample_weights

    diff = np.asarray(a, float) - np.asarray(b, float)
    w = resample_weights(len(diff), N_BOOT, 0)
    return {"difference": float(diff.mean()), "ci95": interval(w @ diff / w.sum(1))}


def indistinguishable(a: list[float], b: list[float]) -> bool:
    """True when the paired bootstrap 95 % interval of mean(a) - mean(b) over the same prompts contains 0."""
    lo, hi = paired_difference(a, b)["ci95"]
    return lo <= 0 <= hi
