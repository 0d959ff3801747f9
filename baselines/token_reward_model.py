"""The ``token-reward-model`` recipe: a reward at every response token, learnt from minimal-edit pairs.

The supervision is FIGA's edit labels (``bench.edits.edit_labels`` over the text tokens): tokens the revision
added or substituted are *positive*, tokens of the initial response it deleted or substituted are *negative*,
the rest are neutral. Both end-of-turn tokens are neutral: labelling only the revision's positive (as FIGA's
``response_labels`` does for imitation) would teach a "stop here" bonus that PPO then exploits.
Two objectives, mixed by weight (``pairwise_weight``, ``token_weight`` in the YAML):

(a) pairwise: Bradley-Terry on the summed token rewards, -log sigmoid(sum r(revised) - sum r(initial));
    only the sequence totals are constrained, the model decides where the credit goes;
(b) token: per-token binary cross-entropy on the head's logit, target 1 on positive tokens, 0 on negative
    ones and 0.5 on neutral ones (weighted by ``neutral_weight``), so unchanged text earns ~0 reward and the
    sign of a token's reward says which side of an edit it is on;
(c) both: ``pairwise_weight * (a) + token_weight * (b)`` (the default, 1 and 1).

It saves the same checkpoint format as ``reward-model`` with kind ``token`` (see baselines/reward_model.py),
and reports held-out pairwise accuracy and token-label accuracy (sign of the reward on labelled tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from bench import chat
from bench.registry import register
from bench.training import encode_responses, pad
from bench.edits import edit_labels

from bench.reward_model import RewardModel

from .reward_model import PairwiseRewardRecipe, RewardModelConfig, head_scores, pairwise_report, wilson_interval


@dataclass
class TokenRewardModelConfig(RewardModelConfig):
    pairwise_weight: float = field(default=1.0, metadata={"help": "weight of Bradley-Terry on summed token rewards (a)"})
    token_weight: float = field(default=1.0, metadata={"help": "weight of per-token classification on edit labels (b)"})
    neutral_weight: float = field(default=1.0, metadata={"help": "weight of unchanged tokens (target 0.5) in (b)"})


def token_labels(initial_ids: list[int], revised_ids: list[int]) -> tuple[list[int], list[int]]:
    """Labels of two responses that end in the end-of-turn token: 1 positive, -1 negative, 0 neutral;
    the edits are over the text tokens and both end tokens are neutral (no side gets a stop bonus)."""
    negative, positive = edit_labels(initial_ids[:-1], revised_ids[:-1])
    return (-negative.astype(int)).tolist() + [0], positive.astype(int).tolist() + [0]


def _token_weights(labels, neutral_weight: float):
    resp = labels != -100
    return (resp & (labels != 0)).float() + neutral_weight * (resp & (labels == 0)).float()


def token_reward_loss(head, labels, pairwise_weight: float, token_weight: float, neutral_weight: float,
                      units: dict | None = None):
    """``head`` (2B, T) raw token rewards, rows (revised, initial) interleaved; ``labels`` (2B, T) in
    {1 positive, -1 negative, 0 neutral, -100 not a response token}. ``units``: the optimiser step's
    ``pairs`` and ``token_weight`` totals (default: this batch's), the denominators of (a) and (b)."""
    resp = labels != -100
    totals = (head * resp).sum(-1)
    margin = totals[0::2] - totals[1::2]
    labelled = resp & (labels != 0)
    target = torch.where(labels == 1, 1.0, torch.where(labels == -1, 0.0, 0.5))
    weight = _token_weights(labels, neutral_weight)
    pairwise_sum = -F.logsigmoid(margin).sum()
    token_sum = (F.binary_cross_entropy_with_logits(head, target, reduction="none") * weight).sum()
    n_pairs, total_weight = margin.numel(), weight.sum().clamp(min=1e-9)
    units = units or {"pairs": n_pairs, "token_weight": total_weight}
    loss = pairwise_weight * pairwise_sum / units["pairs"] + token_weight * token_sum / units["token_weight"]
    correct = ((head.detach() > 0) == (labels == 1)) & labelled
    return loss, {
        "loss_pairwise": float(pairwise_sum.detach() / n_pairs),
        "loss_token": float(token_sum.detach() / total_weight),
        "accuracy": float((margin.detach() > 0).float().mean()),
        "token_accuracy": float(correct.sum() / labelled.sum().clamp(min=1)),
        "n_labelled": float(labelled.sum()),
    }


@register("token-reward-model")
class TokenRewardModel(PairwiseRewardRecipe):
    Config = TokenRewardModelConfig
    kind = "token"
    record_kind = "revision"

    def pair(self, record):
        return record.revised, record.initial

    def encode(self, record, tokenizer, cfg, skips):
        encoded = encode_responses(tokenizer, record, [("revised", record.revised), ("initial", record.initial)],
                                   self.context, cfg.max_length, skips)
        if encoded is None:
            return None
        (revised, initial), start = encoded
        init_labels, rev_labels = token_labels(initial[start:], revised[start:])
        n = cfg.max_length
        return {"rows": [
            {"input_ids": revised[:n], "labels": ([-100] * start + rev_labels)[:n]},
            {"input_ids": initial[:n], "labels": ([-100] * start + init_labels)[:n]},
        ]}

    def collate(self, features, pad_id):
        batch = super().collate(features, pad_id)
        batch["labels"] = pad([r["labels"] for f in features for r in f["rows"]], -100)
        return batch

    def loss_units(self, model, batch, cfg):
        return {"pairs": batch["labels"].size(0) // 2,
                "token_weight": _token_weights(batch["labels"], cfg.neutral_weight).sum().clamp(min=1e-9)}

    def loss(self, model, batch, cfg, units=None):
        head = head_scores(model, batch["input_ids"], batch["attention_mask"])
        return token_reward_loss(head, batch["labels"], cfg.pairwise_weight, cfg.token_weight, cfg.neutral_weight,
                                 units)

    def heldout_metrics(self, rm: RewardModel, records, cfg) -> dict:
        pairs = self.pair_scores(rm, records, cfg)
        out = pairwise_report(pairs)
        right = total = 0
        for record, (rev_scores, init_scores) in zip(records, pairs):
            init_labels, rev_labels = token_labels(chat.response_ids(rm.tokenizer, record.initial),
                                                   chat.response_ids(rm.tokenizer, record.revised))
            for scores, labels, sign in ((rev_scores, rev_labels, True), (init_scores, init_labels, False)):
                s = np.array(scores) > 0
                m = (np.array(labels) != 0)[: len(s)]
                right += int((s[m] == sign).sum())
                total += int(m.sum())
        lo, hi = wilson_interval(right, total)
        out.update(token_label_accuracy=right / max(total, 1), token_label_ci95=[lo, hi], n_labelled_tokens=total)
        return out
