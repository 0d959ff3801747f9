"""The ``sft`` recipe: cross-entropy on response tokens only (the imitation baseline FIGA improves on)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import data
from bench.config import TrainConfig
from bench.registry import register
from bench.training import OfflineRecipe, encode_responses, pad


@dataclass
class SftConfig(TrainConfig):
    target: str = field(default="revised", metadata={
        "help": "what to imitate: 'revised' responses of a revision set, or 'reference' outputs "
                "(SPA's output field, or any prompt+reference set such as alpaca_libre)"})


@register("sft")
class Sft(OfflineRecipe):
    Config = SftConfig

    def load_records(self, cfg):
        if cfg.target not in ("revised", "reference"):
            raise data.DataError("config", None, "target", f"expected 'revised' or 'reference', got {cfg.target!r}")
        records = data.load(cfg.data, skip_invalid=cfg.skip_invalid)
        if cfg.target == "revised" and not isinstance(records[0], data.RevisionTriple):
            raise data.DataError(cfg.data, None, "revised", "target=revised needs a revision dataset")
        return records

    def _response(self, record, cfg) -> str | None:
        if cfg.target == "revised":
            return record.revised
        return getattr(record, "reference", None)

    def encode(self, record, tokenizer, cfg, skips):
        response = self._response(record, cfg)
        if not response:
            skips.handle(data.DataError(record.origin or record.source_id, None, "reference", "missing"))
            return None
        encoded = encode_responses(tokenizer, record, [(cfg.target, response)], self.context, cfg.max_length, skips)
        if encoded is None:
            return None
        (ids,), start = encoded
        ids = ids[: cfg.max_length]
        return {"input_ids": ids, "labels": [-100] * start + ids[start:]}

    def collate(self, features, pad_id):
        ids = [f["input_ids"] for f in features]
        return {
            "input_ids": pad(ids, pad_id),
            "attention_mask": pad([[1] * len(i) for i in ids], 0),
            "labels": pad([f["labels"] for f in features], -100),
        }

    def loss_units(self, model, batch, cfg):
        return {"tokens": (batch["labels"][:, 1:] != -100).sum()}  # the predicted (shifted) response tokens

    def loss(self, model, batch, cfg, units=None):
        """Mean token cross-entropy over the step's response tokens (transformers sums and divides by
        ``num_items_in_batch``)."""
        units = units or self.loss_units(model, batch, cfg)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                    num_items_in_batch=units["tokens"])
        return out.loss, {"n_response_tokens": float((batch["labels"] != -100).sum())}
