"""The ``token-reward-model`` recipe: a reward at every response token, learnt from minimal-edit pairs.

The supervision is FIGA's edit labels (``bench.edits.response_labels``): tokens the revision added or
substituted are *positive*, tokens of the initial response it deleted or substituted are *negative*, the rest
are neutral. Two objectives, mixed by weight (``pairwise_weight``, ``token_weight`` in the YAML):

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
from bench.training import check_length, pad
from bench.edits import response_labels

from .reward_model import (PairwiseRewardRecipe, RewardModel, RewardModelConfig, head_scores, pairwise_report,
                           wilson_interval)


@dataclass
class TokenRewardModelConfig(RewardModelConfig):
    pairwise_weight: float = field(default=1.0, metadata={"help": "weight of Bradley-Terry on summed token rewards (a)"})
    token_weight: float = field(default=1.0, metadata={"help": "weight of per-token classification on edit labels (b)"})
    neutral_weight: float = field(default=1.0, metadata={"help": "weight of unchanged tokens (target 0.5) in (b)"})


def token_reward_loss(head, labels, pairwise_weight: float, token_weight: float, neutral_weight: float):
    """``head`` (2B, T) raw token rewards, rows (revised, initial) interleaved; ``labels`` (2B, T) in
    {1 positive, -1 negative, 0 neutral, -100 not a response token}."""
    resp = labels != -100
    totals = (head * resp).sum(-1)
    margin = totals[0::2] - totals[1::2]
    pairwise = -F.logsigmoid(margin).mean()
    labelled = resp & (labels != 0)
    target = torch.where(labels == 1, 1.0, torch.where(labels == -1, 0.0, 0.5))
    weight = labelled.float() + neutral_weight * (resp & (labels == 0)).float()
    bce = F.binary_cross_entropy_with_logits(head, target, reduction="none")
    token = (bce * weight).sum() / weight.sum().clamp(min=1e-9)
    loss = pairwise_weight * pairwise + token_weight * token
    correct = ((head.detach() > 0) == (labels == 1)) & labelled
    return loss, {
        "loss_pairwise": float(pairwise.detach()),
        "loss_token": float(token.detach()),
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
        revised, start = chat.sequence(tokenizer, record.prompt, record.revised)
        initial, _ = chat.sequence(tokenizer, record.prompt, record.initial)
        if not (check_length(len(revised), self.context, record, "revised", skips)
                and check_length(len(initial), self.context, record, "initial", skips)) or start >= cfg.max_length - 1:
            return None
        negative, positive = response_labels(initial[start:], revised[start:])
        n = cfg.max_length
        return {"rows": [
            {"input_ids": revised[:n], "labels": ([-100] * start + positive.astype(int).tolist())[:n]},
            {"input_ids": initial[:n], "labels": ([-100] * start + (-negative.astype(int)).tolist())[:n]},
        ]}

    def collate(self, features, pad_id):
        batch = super().collate(features, pad_id)
        batch["labels"] = pad([r["labels"] for f in features for r in f["rows"]], -100)
        return batch

    def loss(self, model, batch, cfg):
        head = head_scores(model, batch["input_ids"], batch["attention_mask"])
        return token_reward_loss(head, batch["labels"], cfg.pairwise_weight, cfg.token_weight, cfg.neutral_weight)

    def heldout_metrics(self, rm: RewardModel, records, cfg) -> dict:
        pairs = self.pair_scores(rm, records, cfg)
        out = pairwise_report(pairs)
        right = total = 0
        for record, (rev_scores, init_scores) in zip(records, pairs):
            negative, positive = response_labels(chat.response_ids(rm.tokenizer, record.initial),
                                                 chat.response_ids(rm.tokenizer, record.revised))
            for scores, mask, sign in ((rev_scores, positive, True), (init_scores, negative, False)):
                s = np.array(scores) > 0
                m = mask[: len(s)]
                right += int((s[m] == sign).sum())
                total += int(m.sum())
        lo, hi = wilson_interval(right, total)
        out.update(token_label_accuracy=right / max(total, 1), token_label_ci95=[lo, hi], n_labelled_tokens=total)
        return out
