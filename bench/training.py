"""The shared training loop for offline recipes (SFT, FIGA, DPO, reward models).

It is transformers' ``Trainer``, so ``accelerate launch`` (DDP, DeepSpeed, FSDP), checkpointing and
``--resume`` work unchanged. A recipe supplies four small hooks; everything else is shared, which is what
makes methods comparable on the same budget:

- ``load_records(cfg)``: typed records (``bench.data``)
- ``encode(record, tokenizer, cfg)``: one record -> a dict of token lists (or None to drop it)
- ``collate(features, pad_id)``: a batch of tensors
- ``loss(model, batch, cfg)``: ``(loss, {metric: float})``; metrics are averaged per logging step
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import models
from .atomic import atomic_write_json
from .checkpoints import StagedCheckpoints, checkpoint_step, elapsed_seconds, last_complete_checkpoint, resume_or_finish, trim_log
from .config import TrainConfig, to_dict
from .data import DataError, Skips, train_val_split

log = logging.getLogger("bench.training")


class ListDataset(Dataset):
    def __init__(self, items: list):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def pad(seqs: list[list], value, dtype=torch.long) -> torch.Tensor:
    """Right-pad lists to a (len(seqs), max_len) tensor."""
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=dtype)


def check_length(n_tokens: int, limit: int, record, field: str, skips: Skips) -> bool:
    """Texts longer than the model's context are bad input: a located error (or a counted skip)."""
    if n_tokens <= limit:
        return True
    path, _, line = (record.origin or record.source_id).rpartition(":")
    skips.handle(DataError(path or record.source_id, int(line) if line.isdigit() else None, field,
                           f"{n_tokens} tokens exceed the model's context of {limit}"))
    return False


class OfflineRecipe:
    """Base for recipes trained by the shared loop. Subclasses set ``Config`` and the hooks."""

    Config = TrainConfig
    name = "offline"
    context = 2048  # the model's context length, set by train() before encoding

    def load_records(self, cfg) -> list:
        raise NotImplementedError

    def encode(self, record, tokenizer, cfg, skips: Skips) -> dict | None:
        raise NotImplementedError

    def collate(self, features: list[dict], pad_id: int) -> dict:
        raise NotImplementedError

    def loss(self, model, batch: dict, cfg) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def prepare_model(self, model, cfg):
        """Hook for recipes that add heads (reward models); the default is the causal LM itself."""
        return model

    def save(self, model, tokenizer, out: Path, cfg) -> None:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()  # an ordinary checkpoint that vLLM and transformers load
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    def run(self, cfg) -> Path:
        return train(self, cfg)


class _RecipeTrainer(StagedCheckpoints, Trainer):
    """Routes the loss to the recipe and averages its metrics over each logging window."""

    def __init__(self, recipe, cfg, **kw):
        super().__init__(**kw)
        self.recipe, self.cfg = recipe, cfg
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._tokens = 0
        self._t0 = time.perf_counter()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, metrics = self.recipe.loss(model, inputs, self.cfg)
        if model.training:
            for k, v in metrics.items():
                self._sums[k] += float(v)
            self._count += 1
            self._tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else 0
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss, _ = self.recipe.loss(model, self._prepare_inputs(inputs), self.cfg)
        return loss.detach(), None, None

    def log(self, logs, *args, **kwargs):
        if self._count and "loss" in logs:
            logs.update({k: v / self._count for k, v in self._sums.items()})
            elapsed = time.perf_counter() - self._t0
            logs["tokens_per_s"] = self._tokens / max(elapsed, 1e-9)
            self._sums.clear()
            self._count = self._tokens = 0
            self._t0 = time.perf_counter()
        super().log(logs, *args, **kwargs)


class JsonlLog(TrainerCallback):
    """Loss curves as JSONL next to the checkpoint, for the leaderboard and for humans."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kw):
        if state.is_world_process_zero and logs:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")


def encode_all(recipe, records, tokenizer, cfg) -> tuple[list, Skips]:
    skips = Skips(cfg.skip_invalid)
    out = []
    for r in records:
        feats = recipe.encode(r, tokenizer, cfg, skips)
        if feats is not None:
            out.append(feats)
    skips.report(f"{recipe.name} encoding")
    dropped = len(records) - len(out) - len(skips.errors)
    if dropped:
        log.warning("%s: %d of %d records left out because the prompt alone fills max_length=%d",
                    recipe.name, dropped, len(records), cfg.max_length)
    return out, skips


def apply_lora(model, cfg):
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else [t.strip() for t in cfg.lora_targets.split(",")]
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg)


def output_dir(recipe, cfg) -> Path:
    return Path(cfg.output_dir or Path("results") / "checkpoints" / recipe.name)


def already_trained(out: Path, cfg) -> bool:
    """A finished run with the same config left ``bench_run.json``: re-running it is a no-op."""
    done = out / "bench_run.json"
    if done.exists() and json.loads(done.read_text()).get("config") == json.loads(json.dumps(to_dict(cfg))):
        log.info("%s already trained with this config; delete %s to retrain", out, done)
        return True
    return False


def train(recipe: OfflineRecipe, cfg) -> Path:
    """Train ``recipe`` under ``cfg``; returns the directory of the saved Hugging Face checkpoint."""
    from transformers import set_seed

    from . import __version__
    from .chat import template_hash

    set_seed(cfg.seed)
    out = output_dir(recipe, cfg)
    if already_trained(out, cfg):
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = models.load_tokenizer(cfg.model)
    records = recipe.load_records(cfg)
    train_recs, val_recs = train_val_split(records, cfg.val_fraction, cfg.seed)
    if cfg.limit:
        train_recs = train_recs[: cfg.limit]
    if cfg.val_limit:
        val_recs = val_recs[: cfg.val_limit]
    model = models.load_model(cfg.model)
    recipe.context = models.context_length(model)
    train_set, skips = encode_all(recipe, train_recs, tokenizer, cfg)
    val_set, _ = encode_all(recipe, val_recs, tokenizer, cfg)
    if not train_set:
        raise DataError(cfg.data, None, None, "no trainable records after encoding")
    model = recipe.prepare_model(model, cfg)
    if cfg.lora_r:
        model = apply_lora(model, cfg)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()

    steps_per_epoch = math.ceil(len(train_set) / (cfg.batch_size * cfg.grad_accum))
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=int(cfg.warmup_ratio * (cfg.max_steps if cfg.max_steps > 0 else steps_per_epoch * cfg.epochs)),
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if cfg.eval_steps and val_set else "no",
        eval_steps=cfg.eval_steps or None,
        seed=cfg.seed,
        bf16=models.default_dtype() == torch.bfloat16,
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = _RecipeTrainer(
        recipe, cfg, model=model, args=args, train_dataset=ListDataset(train_set),
        eval_dataset=ListDataset(val_set) if val_set else None,
        data_collator=lambda feats: recipe.collate(feats, tokenizer.pad_token_id),
        callbacks=[JsonlLog(out / "train_log.jsonl")],
    )
    ckpt = last_complete_checkpoint(out)  # crash-safe resume: bench/checkpoints.py
    trim_log(out / "train_log.jsonl", checkpoint_step(ckpt))
    trainer.bench_prior_seconds, trainer.bench_t0 = elapsed_seconds(ckpt), time.perf_counter()
    result = resume_or_finish(trainer, ckpt, cfg.max_steps)
    wall = trainer.bench_prior_seconds + time.perf_counter() - trainer.bench_t0
    final_eval = trainer.evaluate() if val_set else {}
    model = trainer.model
    recipe.save(model, tokenizer, out, cfg)
    run_info = {
        "recipe": recipe.name,
        "config": to_dict(cfg),
        "bench_version": __version__,
        "versions": _versions(),
        "model_source": models.resolve(cfg.model),
        "chat_template_hash": template_hash(tokenizer),
        "n_train": len(train_set),
        "n_val": len(val_set),
        "n_skipped": len(skips.errors),
        "train_seconds": wall,
        "train_metrics": result.metrics,
        "eval_metrics": final_eval,
    }
    atomic_write_json(out / "bench_run.json", run_info, default=str)
    return out


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "accelerate", "peft"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
