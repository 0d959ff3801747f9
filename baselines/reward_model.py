"""The ``reward-model`` recipe (Bradley-Terry) and what it shares with ``token-reward-model``; the checkpoint
format and the scoring API are ``bench.reward_model``'s.

Training runs the architecture that is saved and loaded: the start model's backbone under a ``score``
linear head (``AutoModelForTokenClassification``, one label), so the head is part of the model's forward
(what DDP, DeepSpeed and FSDP need to synchronise its gradient) and the shared loop's LoRA (``all-linear``)
adapts it too (the head's base weight keeps its seeded random init, its LoRA update learns).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import chat, data, distributed, models
from bench.atomic import atomic_write_json
from bench.config import TrainConfig
from bench.registry import register
from bench.reward_model import META, RewardModel, load_reward_model, save_reward_model  # noqa: F401  (recipes' API)
from bench.training import OfflineRecipe, collate_rows, encode_responses, train

log = logging.getLogger("bench.reward_model")


# --------------------------------------------------------------------------------------------- training
def head_scores(model, input_ids, attention_mask) -> torch.Tensor:
    """(B, T) head outputs of the reward model (PEFT- or DDP-wrapped or not)."""
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits.squeeze(-1).float()


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion (scipy): sound at small n and near 0 or 1, unlike p +- z*se."""
    from scipy.stats import binomtest

    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclass
class RewardModelConfig(TrainConfig):
    eval_pairs: int = field(default=200, metadata={"help": "held-out pairs scored for the reported accuracy (0 = all)"})
    calibration_pairs: int = field(default=64, metadata={
        "help": "training pairs whose 2 responses give the mean/std PPO uses to normalise rewards"})


class PairwiseRewardRecipe(OfflineRecipe):
    """Shared by both reward models: pairs in, one (chosen, rejected) row pair per record, held-out report."""

    Config = RewardModelConfig
    kind = "sequence"
    record_kind = "preference"

    def load_records(self, cfg):
        return data.load(cfg.data, kind=self.record_kind, skip_invalid=cfg.skip_invalid)

    def pair(self, record) -> tuple[str, str]:
        return record.chosen, record.rejected

    def encode(self, record, tokenizer, cfg, skips):
        chosen, rejected = self.pair(record)
        encoded = encode_responses(tokenizer, record, [("chosen", chosen), ("rejected", rejected)], self.context,
                                   cfg.max_length, skips)
        if encoded is None:
            return None
        seqs, start = encoded
        return {"rows": [{"input_ids": ids[: cfg.max_length], "start": start} for ids in seqs]}

    def collate(self, features, pad_id):
        batch = collate_rows(features, pad_id)
        batch["last"] = batch["attention_mask"].sum(1) - 1  # right-padded: the last real token
        return batch

    def prepare_model(self, model, cfg):
        """The causal LM's backbone under a fresh one-output ``score`` head (its LM head is dropped)."""
        from transformers import AutoModelForTokenClassification

        if cfg.lora_r and cfg.lora_targets != "all-linear" and "score" not in cfg.lora_targets.split(","):
            raise data.DataError("config", None, "lora_targets", "add 'score' so LoRA can train the reward head")
        config = model.config.__class__.from_dict(model.config.to_dict())
        config.num_labels, config.classifier_dropout, config.architectures = 1, 0.0, None
        rm = AutoModelForTokenClassification.from_config(config, dtype=model.dtype).to(model.device)
        prefix = rm.base_model_prefix
        getattr(rm, prefix).load_state_dict(getattr(model, prefix).state_dict())
        # Seeded (resume rebuilds the same head) and not zero: under LoRA the head's base weight stays at
        # this init, and a zero head would pass no gradient to the backbone's adapters.
        std = getattr(config, "initializer_range", 0.02)
        init = torch.randn(rm.score.weight.shape, generator=torch.Generator().manual_seed(cfg.seed)) * std
        with torch.no_grad():
            rm.score.weight.copy_(init.to(rm.score.weight))
            if rm.score.bias is not None:
                rm.score.bias.zero_()
        return rm

    def loss_units(self, model, batch, cfg):
        return {"pairs": batch["input_ids"].size(0) // 2}

    def loss(self, model, batch, cfg, units=None):
        """Mean Bradley-Terry loss over the step's pairs."""
        units = units or self.loss_units(model, batch, cfg)
        head = head_scores(model, batch["input_ids"], batch["attention_mask"])
        r = head.gather(1, batch["last"][:, None]).squeeze(1)
        margin = r[0::2] - r[1::2]
        loss = -F.logsigmoid(margin).sum() / units["pairs"]
        margin = margin.detach()
        return loss, {"accuracy": float((margin > 0).float().mean()), "margin": float(margin.mean())}

    def save(self, model, tokenizer, out, cfg):
        save_reward_model(model, tokenizer, out, self.kind, models.resolve(cfg.model))

    def run(self, cfg) -> Path:
        out = train(self, cfg)
        with distributed.main_writes() as writer:  # the held-out report: rank 0 scores and writes, others wait
            if writer:
                meta = json.loads((out / META).read_text())
                if meta.get("heldout", {}).get("config") != _eval_key(cfg):
                    meta.update(self.evaluate(out, cfg))
                    atomic_write_json(out / META, meta)
        meta = json.loads((out / META).read_text())
        log.info("%s held-out: %s", self.name, {k: v for k, v in meta["heldout"].items() if k != "config"})
        return out

    # ------------------------------------------------------------------ held-out report and calibration
    def evaluate(self, out: Path, cfg) -> dict:
        """Held-out pairwise accuracy (Wilson 95% CI) and the reward scale on training pairs."""
        rm = load_reward_model(out)
        train_recs, val_recs = data.train_val_split(self.load_records(cfg), cfg.val_fraction, cfg.seed)
        if cfg.limit:
            train_recs = train_recs[: cfg.limit]
        def fits(r) -> bool:  # as encode() decides
            return len(chat.prompt_ids(rm.tokenizer, r.prompt)) < cfg.max_length - 1

        train_recs, val_recs = [r for r in train_recs if fits(r)], [r for r in val_recs if fits(r)]
        val_recs = val_recs[: cfg.eval_pairs] if cfg.eval_pairs else val_recs
        heldout: dict = {"config": _eval_key(cfg), "n": 0}
        if val_recs:
            heldout.update(self.heldout_metrics(rm, val_recs, cfg))
        calib = self.pair_scores(rm, train_recs[: cfg.calibration_pairs], cfg)
        totals = torch.tensor([s for pair in calib for s in (sum(pair[0]), sum(pair[1]))])
        calibration = {"mean": float(totals.mean()), "std": float(totals.std().clamp(min=1e-6)) if len(totals) > 1 else 1.0,
                       "n": len(totals)}
        return {"heldout": heldout, "calibration": calibration}

    def pair_scores(self, rm: RewardModel, records, cfg) -> list[tuple[list[float], list[float]]]:
        """Token scores of (chosen, rejected) per record, truncated to max_length as in training (records
        whose prompt alone fills max_length are left out there, so ``records`` must not contain them)."""
        prompts, responses = [], []
        for r in records:
            p = chat.prompt_ids(rm.tokenizer, r.prompt)
            for text in self.pair(r):
                prompts.append(p)
                responses.append(chat.response_ids(rm.tokenizer, text)[: cfg.max_length - len(p)])
        scores = rm.token_scores_ids(prompts, responses, cfg.batch_size * 2)
        return list(zip(scores[0::2], scores[1::2]))

    def heldout_metrics(self, rm: RewardModel, records, cfg) -> dict:
        return pairwise_report(self.pair_scores(rm, records, cfg))


def pairwise_report(pairs: list[tuple[list[float], list[float]]]) -> dict:
    """How often the preferred response's total reward is higher, with a Wilson 95% interval."""
    wins = sum(sum(c) > sum(r) for c, r in pairs)
    return {"n": len(pairs), "pairwise_accuracy": wins / len(pairs), "ci95": list(wilson_interval(wins, len(pairs)))}


def _eval_key(cfg) -> dict:
    return {"data": cfg.data, "seed": cfg.seed, "val_fraction": cfg.val_fraction, "eval_pairs": cfg.eval_pairs,
            "calibration_pairs": cfg.calibration_pairs, "limit": cfg.limit, "max_length": cfg.max_length}


@register("reward-model")
class SequenceRewardModel(PairwiseRewardRecipe):
    """Bradley-Terry: -log sigmoid(r(chosen) - r(rejected)), r read at the final token."""

