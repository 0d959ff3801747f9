"""The ``figa`` recipe: the FIGA loss on (initial, revised) pairs through the shared training loop."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench import data
from bench.config import TrainConfig
from bench.registry import register
from bench.training import OfflineRecipe, collate_rows, encode_responses

from bench.edits import response_labels
from bench.logprobs import token_ce

from .loss import effective_weights, figa_loss


@dataclass
class FigaConfig(TrainConfig):
    alpha: float = field(default=1.0, metadata={"help": "weight of tokens the revision added or substituted"})
    beta: float = field(default=0.5, metadata={"help": "weight of the penalty on deleted/substituted initial tokens"})
    gamma: float = field(default=0.0, metadata={"help": "weight of unchanged revision tokens"})
    tau: float = field(default=0.6, metadata={"help": "penalise a negative token only where its CE <= tau"})
    tau_min: float | None = field(default=None, metadata={"help": "window rule: also require CE >= tau_min"})


@register("figa")
class Figa(OfflineRecipe):
    Config = FigaConfig

    def load_records(self, cfg):
        return data.load(cfg.data, kind="revision", skip_invalid=cfg.skip_invalid)

    def encode(self, record, tokenizer, cfg, skips):
        encoded = encode_responses(tokenizer, record, [("revised", record.revised), ("initial", record.initial)],
                                   self.context, cfg.max_length, skips)
        if encoded is None:
            return None
        (revised, initial), start = encoded
        negative, positive = response_labels(initial[start:], revised[start:])
        zeros = np.zeros(start)
        w_rev = np.concatenate([zeros, np.where(positive, cfg.alpha, cfg.gamma)])
        w_init = np.concatenate([zeros, np.where(negative, -cfg.beta, 0.0)])
        neg = np.concatenate([zeros, negative]).astype(bool)
        n = cfg.max_length
        return {"rows": [
            {"input_ids": revised[:n], "weights": w_rev[:n].tolist(), "negative": [False] * len(revised[:n])},
            {"input_ids": initial[:n], "weights": w_init[:n].tolist(), "negative": neg[:n].tolist()},
        ]}

    def collate(self, features, pad_id):
        return collate_rows(features, pad_id, weights=(0.0, torch.float32), negative=(False, torch.bool))

    def loss_units(self, model, batch, cfg):
        """The tokens with a non-zero weight after the tau rule: it depends on the model's CE, so counting
        them over an accumulated step costs one forward pass without gradients per micro-batch."""
        ce = token_ce(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                      batch["input_ids"])
        w = effective_weights(ce, batch["weights"][:, 1:], batch["negative"][:, 1:], cfg.tau, cfg.tau_min)
        return {"weighted": (w != 0).sum()}

    def loss(self, model, batch, cfg, units=None):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ce = token_ce(logits, batch["input_ids"])
        return figa_loss(ce, batch["weights"][:, 1:], batch["negative"][:, 1:], cfg.tau, cfg.tau_min,
                         units["weighted"] if units else None)
