"""Reward plugins for PPO: anything that, given prompts and sampled responses, returns one float per
response token (FineGrainedRLHF's contract). ``ppo`` and ``fg-ppo`` differ only in the plugin they use.

    plugin(prompts, prompt_ids, response_ids) -> list[list[float]]   # len(row) == len(response_ids[i])

``response_ids`` are the policy's sampled tokens (ending in the end-of-turn token unless the response was cut
off). Plugins:

- ``ModelReward``: a checkpoint of ``reward-model`` (score on the last token) or ``token-reward-model``
  (a score per token). With ``dense=False`` a token RM's scores are summed onto the last token, which is
  how a sequence-level method would see the same model.
- ``TokenIdReward``: +1 for every occurrence of one token id; a checked toy reward for tests.

Scale. ``ModelReward`` divides by the RM's calibration std and subtracts its mean on the last token
(the mean/std of per-sequence totals on the RM's training pairs, written by the RM recipes), so every
reward model's sequence total has zero mean and unit std on the data it was fitted to. A KL coefficient
then trades the same amount of reward for KL whichever reward model is used.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("bench.rewards")


class RewardPlugin(Protocol):
    def __call__(self, prompts: list, prompt_ids: list[list[int]], response_ids: list[list[int]]) -> list[list[float]]:
        ...


def _terminal(rows: list[list[float]]) -> list[list[float]]:
    """Move each row's total onto its last token (what a sequence-level reward sees)."""
    return [[0.0] * (len(r) - 1) + [sum(r)] if r else [] for r in rows]


class TokenIdReward:
    """+1 per emitted ``token_id``: dense (on the token itself) or terminal (the count on the last token)."""

    def __init__(self, token_id: int, dense: bool = True):
        self.token_id, self.dense = token_id, dense

    def __call__(self, prompts, prompt_ids, response_ids):
        rows = [[1.0 if t == self.token_id else 0.0 for t in r] for r in response_ids]
        return rows if self.dense else _terminal(rows)


class ModelReward:
    """A trained reward model as a plugin, scoring the policy's token ids directly when it shares the
    policy's tokenizer and chat template (no decode/re-encode drift), through text otherwise."""

    def __init__(self, path: str, policy_tokenizer, dense: bool = True, normalize: bool = True, batch_size: int = 8):
        from .reward_model import load_reward_model
        from bench.chat import template_hash

        self.rm = load_reward_model(path)
        self.dense, self.batch_size = dense, batch_size
        cal = self.rm.calibration if normalize else {"mean": 0.0, "std": 1.0}
        self.mean, self.std = float(cal["mean"]), float(cal["std"])
        self.same_tokens = (template_hash(policy_tokenizer) == template_hash(self.rm.tokenizer)
                            and policy_tokenizer.get_vocab() == self.rm.tokenizer.get_vocab())
        self.policy_tokenizer = policy_tokenizer
        if not self.same_tokens and self.rm.kind == "token":
            raise ValueError(f"token reward model {path} needs the policy's tokenizer and chat template")

    def __call__(self, prompts, prompt_ids, response_ids):
        if self.same_tokens:
            rows = self.rm.token_scores_ids(prompt_ids, response_ids, self.batch_size)
        else:  # a sequence RM with another tokenizer: score the text, credit the policy's last token
            texts = self.policy_tokenizer.batch_decode(response_ids, skip_special_tokens=True)
            rows = [[0.0] * (len(r) - 1) + [s] for r, s in
                    zip(response_ids, self.rm.score(prompts, texts, self.batch_size))]
        rows = [[x / self.std for x in r] for r in rows]
        for r in rows:
            if r:
                r[-1] -= self.mean / self.std
        return rows if self.dense else _terminal(rows)


def build(spec: str, policy_tokenizer, dense: bool, normalize: bool = True) -> RewardPlugin:
    """``token-id:N`` -> TokenIdReward, anything else is a reward model checkpoint directory."""
    if spec.startswith("token-id:"):
        return TokenIdReward(int(spec.split(":", 1)[1]), dense)
    return ModelReward(spec, policy_tokenizer, dense, normalize)
