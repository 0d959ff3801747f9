"""``reward-model``: judge with any trained reward model (``baselines/reward_model.py``'s ``load_reward_model``).

The reward model scores each (prompt, response) on its own; the higher score wins (see ``ScorerJudge``).
Scores are cached on disk by content hash of (checkpoint identity, prompt, response).
"""

from __future__ import annotations

from ..cache import Cache, content_key
from . import register
from .base import ScorerJudge


class CachedScorer:
    """Wrap any ``.score`` object so each (prompt, response) is scored once per checkpoint."""

    def __init__(self, scorer, ident: str, name: str = "judge_scores"):
        self.scorer, self.ident, self.cache = scorer, ident, Cache(name)

    def score(self, prompts, responses, batch_size: int = 8) -> list[float]:
        keys = [content_key("reward-model", self.ident, p, r) for p, r in zip(prompts, responses)]
        found = self.cache.get_many(list(set(keys)))
        todo = sorted({k: i for i, k in enumerate(keys) if k not in found}.values())
        if todo:
            scores = self.scorer.score([prompts[i] for i in todo], [responses[i] for i in todo], batch_size=batch_size)
            new = {keys[i]: float(s) for i, s in zip(todo, scores)}
            self.cache.put_many(new)
            found.update(new)
        return [found[k] for k in keys]


@register("reward-model")
class RewardModelJudge(ScorerJudge):
    def __init__(self, path: str | None = None, batch_size: int = 8):
        if not path:
            raise KeyError("judge 'reward-model' needs a checkpoint: --judge-option path=DIR")
        from ..reward_model import load_reward_model

        from ..generation import model_fingerprint
        from ..models import resolve

        ident = model_fingerprint(resolve(path))
        super().__init__(CachedScorer(load_reward_model(path), ident), batch_size, {"path": path, "fingerprint": ident})
