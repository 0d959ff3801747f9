"""The ``dpo`` recipe: sigmoid DPO (Rafailov et al., 2023) against the frozen starting checkpoint.

    L = -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])

with log-probabilities summed over response tokens (end-of-turn token included), which is TRL's
``loss_type="sigmoid"`` (tests/test_dpo.py checks parity against TRL's trainer on the same batch).

Pairs come from any preference set (``hh_rlhf``) or a revision set (revised preferred to initial). The
reference is the model the run starts from, so its log-probabilities never change: they are computed once,
before the first step, and cached in ``<output_dir>/ref_logps.pt`` keyed by the token ids and the reference
checkpoint, so a resumed or repeated run does not pay for them again (and training does one forward per
sequence instead of two). Under N processes each rank computes every N-th missing pair, the ranks exchange
them, and rank 0 alone writes the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import data, distributed, models
from bench.config import TrainConfig
from bench.logprobs import next_token_logprobs
from bench.registry import register
from bench.training import OfflineRecipe, collate_rows, encode_responses, output_dir

log = logging.getLogger("bench.dpo")


@dataclass
class DpoConfig(TrainConfig):
    beta: float = field(default=0.1, metadata={"help": "strength of the implicit KL penalty (DPO's beta)"})
    ref_batch_size: int = field(default=8, metadata={"help": "sequences per forward when caching reference log-probs"})


def sequence_logps(model, input_ids, attention_mask, response_mask) -> torch.Tensor:
    """Sum of log p(token) over positions where ``response_mask`` is 1 (each token given its prefix)."""
    token_logps = next_token_logprobs(model(input_ids=input_ids, attention_mask=attention_mask).logits, input_ids)
    return (token_logps * response_mask[:, 1:]).sum(-1)


def dpo_sigmoid_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Per-pair loss and the implicit rewards beta * log(pi/ref) of each side."""
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen_reward - rejected_reward), chosen_reward, rejected_reward


def _row(ids: list[int], start: int) -> dict:
    return {"input_ids": ids, "response_mask": [0] * start + [1] * (len(ids) - start)}


def _reference_id(spec: str) -> str:
    """Identity of the reference checkpoint: its path plus the weights' size and mtime (retrained => new id)."""
    path = Path(models.resolve(spec))
    weights = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    return json.dumps([str(path), [(w.name, w.stat().st_size, int(w.stat().st_mtime)) for w in weights]])


@register("dpo")
class Dpo(OfflineRecipe):
    Config = DpoConfig

    def __init__(self):
        self._features: list[dict] = []

    def load_records(self, cfg):
        return data.load(cfg.data, kind="preference", skip_invalid=cfg.skip_invalid)

    def encode(self, record, tokenizer, cfg, skips):
        encoded = encode_responses(tokenizer, record, [("chosen", record.chosen), ("rejected", record.rejected)],
                                   self.context, cfg.max_length, skips)
        if encoded is None:
            return None
        seqs, start = encoded
        rows = [_row(ids[: cfg.max_length], start) for ids in seqs]
        key = hashlib.sha256(json.dumps([r["input_ids"] for r in rows]).encode()).hexdigest()[:24]
        feats = {"rows": rows, "key": key}
        self._features.append(feats)  # the same dict the dataset holds: prepare_model fills in "ref"
        return feats

    def collate(self, features, pad_id):
        batch = collate_rows(features, pad_id, response_mask=(0, torch.float32))
        if all("ref" in f for f in features):
            batch["ref_logps"] = torch.tensor([f["ref"] for f in features], dtype=torch.float32)  # (B, 2)
        return batch

    def prepare_model(self, model, cfg):
        """Fill every encoded pair's reference log-probs from the cache, computing the missing ones."""
        cache_path = output_dir(self, cfg) / "ref_logps.pt"
        ref_id = _reference_id(cfg.model)
        cache = torch.load(cache_path) if cache_path.exists() else {}
        if cache.get("reference") != ref_id:
            cache = {"reference": ref_id, "logps": {}}
        todo = [f for f in self._features if f["key"] not in cache["logps"]]
        if todo:
            log.info("dpo: computing reference log-probs for %d pairs (cached in %s)", len(todo), cache_path)
            mine = todo[distributed.rank():: distributed.world_size()]  # this rank's share
            cache["logps"].update(distributed.gather(list(self._reference_logps(model, mine, cfg).items())))
            with distributed.main_writes() as writer:
                if writer:
                    cache_path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = cache_path.with_suffix(".tmp")
                    torch.save(cache, tmp)
                    os.replace(tmp, cache_path)
        for f in self._features:
            f["ref"] = cache["logps"][f["key"]]
        return model

    def _reference_logps(self, model, features: list[dict], cfg) -> dict[str, list[float]]:
        """``{pair key: [log ref(chosen), log ref(rejected)]}`` under the model as it starts."""
        out = {}
        was_training = model.training
        model.eval()
        pairs_per_batch = max(cfg.ref_batch_size // 2, 1)
        with torch.no_grad():
            for i in range(0, len(features), pairs_per_batch):
                chunk = features[i: i + pairs_per_batch]
                b = {k: v.to(model.device) for k, v in self.collate(chunk, model.config.pad_token_id or 0).items()}
                logps = sequence_logps(model, b["input_ids"], b["attention_mask"], b["response_mask"]).cpu()
                for f, (c, r) in zip(chunk, logps.view(-1, 2).tolist()):
                    out[f["key"]] = [c, r]
        model.train(was_training)
        return out

    def loss_units(self, model, batch, cfg):
        return {"pairs": batch["input_ids"].size(0) // 2}

    def loss(self, model, batch, cfg, units=None):
        """Mean DPO loss over the step's pairs."""
        units = units or self.loss_units(model, batch, cfg)
        logps = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["response_mask"]).view(-1, 2)
        ref = batch["ref_logps"]
        losses, chosen_r, rejected_r = dpo_sigmoid_loss(logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], cfg.beta)
        margin = (chosen_r - rejected_r).detach()
        return losses.sum() / units["pairs"], {
            "reward_margin": float(margin.mean()),
            "accuracy": float((margin > 0).float().mean()),
            "reward_chosen": float(chosen_r.detach().mean()),
            "reward_rejected": float(rejected_r.detach().mean()),
        }
