"""The shared training loop for offline recipes (SFT, FIGA, DPO, reward models).

It is transformers' ``Trainer``, so ``accelerate launch`` (DDP, DeepSpeed, FSDP), checkpointing and
``--resume`` work unchanged; under N processes each rank trains on its share of every batch, rank 0 alone
decides, saves and writes ``bench_run.json`` (bench/distributed.py), and logged statistics are reduced over
ranks. A recipe supplies four small hooks; everything else is shared, which is what
makes methods comparable on the same budget:

- ``load_records(cfg)``: typed records (``bench.data``)
- ``encode(record, tokenizer, cfg)``: one record -> a dict of token lists (or None to drop it)
- ``collate(features, pad_id)``: a batch of tensors
- ``loss_units(model, batch, cfg)``: how many of each averaging unit the batch holds (pairs, tokens)
- ``loss(model, batch, cfg, units)``: ``(loss, {metric: float})``; metrics are averaged per logging step

Gradient accumulation. Every loss term is a sum divided by a count of units (SFT: response tokens, FIGA:
weighted tokens, DPO and reward models: pairs). The loop sums ``loss_units`` over the micro-batches of one
optimiser step before their forward passes and gives the totals to ``loss``, so each step's loss and
gradient are those of its whole batch (``batch_size * grad_accum`` records), whatever the split
(tests/test_accumulation.py).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from . import chat, distributed, models
from .atomic import atomic_write_json
from .checkpoints import (RESUMABLE, ExactResume, StagedCheckpoints, already_trained,  # noqa: F401
                          elapsed_seconds, fingerprint, resume_or_finish, resume_point)
from .config import TrainConfig, to_dict
from .console import progress
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


def encode_responses(tokenizer, record, responses: list[tuple[str, str]], context: int, max_length: int,
                     skips: Skips) -> tuple[list[list[int]], int] | None:
    """Token ids of ``prompt + response`` for each ``(field, text)`` of a record (one prompt, so one ``start``
    where every response begins), untruncated; None when one exceeds the model's context (a located error
    or a counted skip) or the prompt alone fills ``max_length`` (nothing left to learn from)."""
    seqs = []
    for field_name, text in responses:
        ids, start = chat.sequence(tokenizer, record.prompt, text)
        if not check_length(len(ids), context, record, field_name, skips):
            return None
        seqs.append(ids)
    return (seqs, start) if start < max_length - 1 else None


def collate_rows(features: list[dict], pad_id: int, **fields: tuple) -> dict:
    """The batch of a pairwise recipe: every feature's ``rows`` flattened (pair i is rows 2i and 2i+1),
    ``input_ids`` padded with ``pad_id``, their ``attention_mask``, and each named per-row field padded
    with its ``(value, dtype)``."""
    rows = [r for f in features for r in f["rows"]]
    ids = [r["input_ids"] for r in rows]
    batch = {"input_ids": pad(ids, pad_id), "attention_mask": pad([[1] * len(i) for i in ids], 0)}
    for name, (value, dtype) in fields.items():
        batch[name] = pad([r[name] for r in rows], value, dtype)
    return batch


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

    def loss_units(self, model, batch: dict, cfg) -> dict[str, torch.Tensor]:
        """``{unit: count}`` in ``batch``; ``model`` (called without gradients) is there for counts that
        depend on it, such as FIGA's tau filter."""
        raise NotImplementedError

    def loss(self, model, batch: dict, cfg, units: dict | None = None) -> tuple[torch.Tensor, dict]:
        """``units``: totals of ``loss_units`` over the optimiser step (None: this batch's own)."""
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


class _RecipeTrainer(StagedCheckpoints, ExactResume, Trainer):
    """Routes the loss to the recipe, normalised over the whole optimiser step, and averages its metrics
    over each logging window."""

    loss_is_scaled_for_ga = True  # the recipe divides by the step's units: the Trainer must not divide again

    def __init__(self, recipe, cfg, **kw):
        super().__init__(**kw)
        self.recipe, self.cfg = recipe, cfg
        self._units: dict | None = None
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._tokens = 0
        self._t0 = time.perf_counter()

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The step's micro-batches, and the recipe's units summed over them (and over processes)."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._units = self._step_units(batches) if batches else None
        return batches, None

    def _step_units(self, batches: list) -> dict | None:
        world = self.accelerator.num_processes
        if len(batches) == 1 and world == 1:
            return None  # one micro-batch: its own normalisation is the step's (and costs nothing extra)
        with torch.no_grad():
            per_batch = [self.recipe.loss_units(self.model, self._prepare_inputs(b), self.cfg) for b in batches]
        totals = {k: sum(torch.as_tensor(u[k], dtype=torch.float32, device=self.args.device) for u in per_batch)
                  for k in per_batch[0]}
        if world > 1:
            totals = {k: self.accelerator.reduce(v, "sum") for k, v in totals.items()}
        return totals

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        units = self._units if model.training else None
        loss, metrics = self.recipe.loss(model, inputs, self.cfg, units)
        if units is not None:
            loss = loss * self.accelerator.num_processes  # DDP averages gradients over processes; undo that
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
        if "loss" in logs:  # a training log, called on every rank alike: metrics are means over all ranks'
            keys = sorted(self._sums)  # micro-batches, tokens/s counts every rank's tokens
            totals = torch.tensor([self._count, self._tokens, *(self._sums[k] for k in keys)], dtype=torch.float64,
                                  device=self.args.device)
            if self.accelerator.num_processes > 1:
                totals = self.accelerator.reduce(totals, "sum")
            count, tokens, sums = float(totals[0]), float(totals[1]), totals[2:].tolist()
            if count:
                logs.update({k: v / count for k, v in zip(keys, sums)})
                logs["tokens_per_s"] = tokens / max(time.perf_counter() - self._t0, 1e-9)
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
            progress(f"{self.path.parent.parent.name} {self.path.parent.name}: training steps", state.global_step,
                     state.max_steps)


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
    # a reward model (token classification) gets peft's plain wrapper: the causal-LM one asks for generation hooks,
    # the token-classification one fully trains the head that our LoRA targets already reach
    task = None if type(model).__name__.endswith("ForTokenClassification") else "CAUSAL_LM"
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type=task)
    return get_peft_model(model, lcfg)


def output_dir(recipe, cfg) -> Path:
    return Path(cfg.output_dir or Path("results") / "checkpoints" / recipe.name)


def run_recipe(cls, cfg) -> Path:
    """Train ``cls`` under ``cfg`` holding its output directory's lock: a second trainer there is refused.
    Under a launcher rank 0 holds it for the whole job (the other ranks are its processes, not rivals)."""
    import contextlib

    from .runlock import train_lock

    recipe = cls()
    lock = train_lock(output_dir(recipe, cfg)) if distributed.is_main() else contextlib.nullcontext()
    with lock:
        return Path(recipe.run(cfg))


def train(recipe: OfflineRecipe, cfg, callbacks: list | None = None) -> Path:
    """Train ``recipe`` under ``cfg``; returns the directory of the saved Hugging Face checkpoint.
    ``callbacks``: extra ``TrainerCallback``s (tests read gradients through them)."""
    from transformers import set_seed

    from . import __version__
    from .chat import template_hash

    set_seed(cfg.seed)
    distributed.init()
    out = output_dir(recipe, cfg)
    inputs = distributed.launch()  # another launch is another run: its resume state is not ours
    if distributed.decided_by_main(lambda: already_trained(out, cfg, inputs)):
        return out
    tokenizer = models.load_tokenizer(cfg.model)
    records = recipe.load_records(cfg)
    train_recs, val_recs = train_val_split(records, cfg.val_fraction, cfg.seed)
    if cfg.limit:
        train_recs = train_recs[: cfg.limit]
    if cfg.val_limit:
        val_recs = val_recs[: cfg.val_limit]
    model = models.load_model(cfg.model, dtype=torch.float32)  # fp32 master weights; on GPUs bf16=True autocasts
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
    skeleton = distributed.weightless_copy(model)  # what a sharded engine's gathered weights are saved through

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
        callbacks=[JsonlLog(out / "train_log.jsonl"), *(callbacks or [])],
    )
    asked = distributed.engine_asked()  # accelerate 1.15 runs these configs as DDP on a machine without GPUs
    if asked and distributed.is_main() and not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        log.warning("the accelerate config asks for %s, but accelerate runs it as plain DDP here (no GPU): "
                    "every rank holds the whole model", asked)
    ckpt = distributed.decided_by_main(lambda: resume_point(out))  # crash-safe resume: bench/checkpoints.py
    trainer.bench_prior_seconds, trainer.bench_t0 = elapsed_seconds(ckpt), time.perf_counter()
    result = resume_or_finish(trainer, ckpt, cfg.max_steps)
    wall = trainer.bench_prior_seconds + time.perf_counter() - trainer.bench_t0
    final_eval = trainer.evaluate() if val_set else {}
    whole = distributed.whole_model(trainer, skeleton)  # on every rank: sharded engines gather the weights
    distributed.end_partitioned_construction()  # after ZeRO-3, saving and the next recipe build ordinary models
    with distributed.main_writes() as writer:
        if writer:
            recipe.save(whole, tokenizer, out, cfg)
    run_info = {
        "recipe": recipe.name,
        "config": to_dict(cfg),
        "inputs": inputs,
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
    with distributed.main_writes() as writer:  # after every rank's part of the weights: the run is finished
        if writer:
            atomic_write_json(out / "bench_run.json", run_info, default=str)
            if not cfg.keep_checkpoints:  # finished: resume state is dead weight (the default run's was 45 GB)
                for ckpt_dir in out.glob("checkpoint-*"):
                    shutil.rmtree(ckpt_dir, ignore_errors=True)
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
