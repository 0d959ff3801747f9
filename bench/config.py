"""Typed, printable recipe configs: dataclass defaults < recipe YAML < its learning-rate sweep result < user
YAML (or a run's budget) < command-line overrides (or a run's method_options)."""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .data.errors import DataError

log = logging.getLogger("bench.config")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Shared by every recipe, so methods are compared on the same model, data and budget."""

    model: str = _help("HF model id, local checkpoint dir, or 'smollm2-135m-instruct' (embedded)", "smollm2-135m-instruct")
    data: str = _help("data spec (see bench.data.sets)", "expertqa")
    output_dir: str = _help("where checkpoints and logs go (default results/checkpoints/<recipe>)", "")
    seed: int = _help("seed for data split, init and sampling", 0)
    limit: int = _help("use at most this many training records (0 = all)", 0)
    val_fraction: float = _help("held-out fraction (hash split on source id)", 0.05)
    val_limit: int = _help("evaluate on at most this many held-out records (0 = all)", 32)
    skip_invalid: bool = _help("count and log invalid rows instead of stopping at the first", False)
    max_length: int = _help("truncate prompt+response to this many tokens", 512)
    learning_rate: float = _help("peak learning rate", 1e-5)
    lr_scheduler: str = _help("transformers scheduler name", "cosine")
    warmup_ratio: float = _help("fraction of steps spent warming up", 0.03)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    epochs: float = _help("passes over the training records", 1.0)
    max_steps: int = _help("stop after this many optimiser steps (-1 = use epochs)", -1)
    batch_size: int = _help("records per micro-batch", 4)
    grad_accum: int = _help("micro-batches per optimiser step", 1)
    max_grad_norm: float = _help("gradient clipping", 1.0)
    logging_steps: int = _help("log every N steps", 1)
    save_steps: int = _help("write a resumable checkpoint every N steps", 50)
    keep_checkpoints: bool = _help("keep the resumable checkpoint-N folders once training has finished "
                                   "(weights + optimizer: 3x the model each)", False)
    eval_steps: int = _help("evaluate on the held-out split every N steps (0 = only at the end)", 0)
    gradient_checkpointing: bool = _help("trade compute for memory", False)
    lora_r: int = _help("LoRA rank (0 = full fine-tuning)", 0)
    lora_alpha: int = _help("LoRA scaling", 16)
    lora_dropout: float = _help("LoRA dropout", 0.05)
    lora_targets: str = _help("comma-separated module names, or 'all-linear'", "all-linear")


def _coerce(value, typ, where: tuple):
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        options = [t for t in typing.get_args(typ) if t is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], where)
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
    elif typ is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif typ is int and (isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.lstrip("-").isdigit()):
        return int(value)
    elif typ is str and isinstance(value, (str, int, float)):
        return str(value)
    raise DataError(where[0], None, where[1], f"expected {getattr(typ, '__name__', typ)}, got {value!r}")


def build_config(cls, layers: list[tuple[str, dict]]):
    """Apply ``(source, mapping)`` layers in order; unknown keys and bad types name their source."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for source, mapping in layers:
        for key, value in (mapping or {}).items():
            key = key.replace("-", "_")
            if key not in names:
                raise DataError(source, None, key, f"unknown option for {cls.__name__} (known: {', '.join(sorted(names))})")
            values[key] = _coerce(value, hints[key], (source, key))
    return cls(**values)


def parse_overrides(pairs: list[str]) -> dict:
    """``["alpha=2", "lora_r=8"]`` -> ``{"alpha": 2, "lora_r": 8}`` (values parsed as YAML scalars)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise DataError("--set", None, pair, "expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def load_yaml(path: str | Path):
    """A YAML file's content; a missing file or invalid YAML is a DataError naming the file (and line)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataError(path, None, None, "file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise DataError(path, mark.line + 1 if mark else None, None, f"invalid YAML: {e}") from None


def read_yaml(path: str | Path) -> dict:
    """A config override file: its mapping, or a recipe YAML's ``config`` section."""
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise DataError(path, None, None, "expected a mapping")
    return doc.get("config", doc) if "recipe" in doc else doc


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def describe(cls) -> list[tuple[str, str, str]]:
    """(name, default, help) rows for ``bench recipes show``."""
    return [(f.name, repr(f.default), f.metadata.get("help", "")) for f in dataclasses.fields(cls)]


def sweep_path(spec) -> Path:
    """Where ``bench sweep`` writes a recipe's learning-rate sweep: ``sweeps/<recipe>.yaml`` beside its YAML."""
    return Path(spec.yaml_path).parent / "sweeps" / f"{spec.name}.yaml"


def sweep_layer(spec, model: str, data: str) -> list[tuple[str, dict]]:
    """The sweep's chosen options as a config layer, if it was swept on this model and data (a rate chosen
    for another model or data set is no evidence for this one: then the recipe YAML's rate stands)."""
    path = sweep_path(spec)
    if not path.exists():
        return []
    doc = load_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("chosen"), dict):
        raise DataError(path, None, "chosen", "expected a mapping of the chosen options")
    if (doc.get("model"), doc.get("data")) != (model, data):
        log.warning("%s was swept on model=%s data=%s, not %s/%s: keeping the recipe's defaults",
                    path, doc.get("model"), doc.get("data"), model, data)
        return []
    return [(str(path), doc["chosen"])]


def recipe_config(cls, spec, layers: list[tuple[str, dict]]):
    """``cls.Config`` from the recipe YAML < its sweep result (when it matches the model and data that the
    finished config names) < ``layers``; one place for this order, used by ``bench train`` and ``bench run``."""
    base = [(str(spec.yaml_path), spec.defaults)]
    first = build_config(cls.Config, base + layers)
    return build_config(cls.Config, base + sweep_layer(spec, first.model, first.data) + layers)
