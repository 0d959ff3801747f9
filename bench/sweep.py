"""``bench sweep``: choose a method's learning rate on a validation split of its training data, once.

Each rate in the grid trains the method for the sweep budget on the training split (the same hash split on
source id that ``bench run`` trains on, ``val_fraction`` and ``seed`` of the run) and is scored on up to
``val_limit`` records of the held-out part with the method's own validation objective:

- ``sft``, ``figa``: token NLL of the revised response (what both are meant to make likely; FIGA's own loss
  is no yardstick: its unlikelihood term falls without bound);
- ``dpo``: held-out preference accuracy of the implicit reward (ties: the lower held-out DPO loss);
- ``reward-model``, ``token-reward-model``: held-out pairwise accuracy (ties: token-label accuracy).

Eval prompts are never touched. The result goes to ``sweeps/<recipe>.yaml`` beside the recipe YAML (grid,
scores, chosen rate, model, data, budget, date), which the config layering reads
(``bench.config.recipe_config``): recipe YAML < sweep < run budget < method_options. PPO methods are not
swept: one PPO run costs minutes of rollouts per rate on a CPU (see README, "The budget").
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from . import chat, models
from .config import recipe_config, sweep_path, to_dict
from .data import DataError, train_val_split

log = logging.getLogger("bench.sweep")

OBJECTIVES = {
    "sft": "validation token NLL of the revised response (score = -NLL, higher is better)",
    "figa": "validation token NLL of the revised response (score = -NLL, higher is better)",
    "dpo": "held-out preference accuracy of DPO's implicit reward (ties: lower held-out DPO loss)",
    "reward-model": "held-out pairwise accuracy (ties: token-label accuracy where there is one)",
    "token-reward-model": "held-out pairwise accuracy (ties: token-label accuracy where there is one)",
}


def validation_records(recipe, cfg) -> list:
    """The held-out part of the method's training data (never the eval prompts), at most ``val_limit``."""
    _, val = train_val_split(recipe.load_records(cfg), cfg.val_fraction, cfg.seed)
    val = val[: cfg.val_limit] if cfg.val_limit else val
    if not val:
        raise DataError(cfg.data, None, "val_fraction", "no held-out records to validate the sweep on")
    return val


@torch.no_grad()
def _sequence_losses(model, rows: list[tuple[list[int], int]], batch_size: int) -> list[tuple[float, int]]:
    """(summed CE of the response tokens, their number) per (ids, response start) row."""
    from .training import pad
    from .logprobs import token_ce

    out = []
    for i in range(0, len(rows), batch_size):
        chunk = rows[i: i + batch_size]
        ids = pad([r for r, _ in chunk], 0).to(model.device)
        attn = pad([[1] * len(r) for r, _ in chunk], 0).to(model.device)
        ce = token_ce(model(input_ids=ids, attention_mask=attn).logits, ids)
        for b, (r, start) in enumerate(chunk):
            resp = ce[b, start - 1: len(r) - 1]
            out.append((float(resp.sum()), resp.numel()))
    return out


def _rows(tokenizer, records, fields: tuple[str, ...], max_length: int) -> list[tuple[list[int], int]]:
    rows = []
    for r in records:
        for f in fields:
            ids, start = chat.sequence(tokenizer, r.prompt, getattr(r, f))
            if start < max_length - 1:
                rows.append((ids[:max_length], start))
    return rows


def revised_nll(out: Path, records, cfg) -> dict:
    model = models.load_model(str(out)).eval()
    target = getattr(cfg, "target", "revised")  # sft can imitate reference outputs instead
    rows = _rows(models.load_tokenizer(str(out)), records, (target,), cfg.max_length)
    losses = _sequence_losses(model, rows, cfg.batch_size)
    nll = sum(s for s, _ in losses) / max(sum(n for _, n in losses), 1)
    return {"score": -nll, "tiebreak": 0.0, "nll": nll, "n": len(rows)}


def dpo_heldout(out: Path, records, cfg) -> dict:
    tokenizer = models.load_tokenizer(str(out))
    records = [r for r in records if len(chat.prompt_ids(tokenizer, r.prompt)) < cfg.max_length - 1]
    rows = _rows(tokenizer, records, ("chosen", "rejected"), cfg.max_length)
    logps = {}
    for name, path in (("policy", str(out)), ("reference", cfg.model)):
        model = models.load_model(path).eval()
        logps[name] = torch.tensor([-s for s, _ in _sequence_losses(model, rows, cfg.batch_size)]).view(-1, 2)
    ratio = logps["policy"] - logps["reference"]
    margin = cfg.beta * (ratio[:, 0] - ratio[:, 1])
    loss = float(-F.logsigmoid(margin).mean())
    accuracy = float((margin > 0).float().mean())
    return {"score": accuracy, "tiebreak": -loss, "accuracy": accuracy, "dpo_loss": loss,
            "margin": float(margin.mean()), "n": len(margin)}


def rm_heldout(out: Path, records, cfg) -> dict:
    held = json.loads((out / "reward_model.json").read_text())["heldout"]
    return {"score": held["pairwise_accuracy"], "tiebreak": held.get("token_label_accuracy", 0.0),
            **{k: v for k, v in held.items() if k != "config"}}


VALIDATORS = {"sft": revised_nll, "figa": revised_nll, "dpo": dpo_heldout,
              "reward-model": rm_heldout, "token-reward-model": rm_heldout}


def choose(grid: list[dict]) -> dict:
    """The best score, then the best tie-break, then the smaller rate (the conservative choice)."""
    return max(grid, key=lambda g: (g["score"], g["tiebreak"], -g["learning_rate"]))


def sweep(spec, cls, layers: list[tuple[str, dict]], lrs: list[float], root: Path) -> Path:
    """Train and score ``spec``'s recipe at each rate under ``layers`` (model, data, budget); write the result.
    Scored rates are kept in ``root/<recipe>/lr=<rate>.json`` so an interrupted sweep continues; the
    checkpoints themselves are deleted once scored."""
    from . import __version__

    if spec.name not in VALIDATORS:
        raise KeyError(f"no validation objective for '{spec.name}' (sweepable: {', '.join(VALIDATORS)})")
    grid = []
    for lr in lrs:
        out = root / spec.name / f"lr={lr:g}"
        cfg = recipe_config(cls, spec, layers + [("sweep", {"learning_rate": lr, "output_dir": str(out)})])
        if "eval_pairs" in to_dict(cfg):  # reward models: validate on the same records, skip calibration
            cfg.eval_pairs, cfg.calibration_pairs = cfg.val_limit, 2
        done = out.parent / f"{out.name}.json"  # not with_suffix: "lr=0.0001" has a dot
        key = json.loads(json.dumps(to_dict(cfg), default=str))
        if done.exists() and json.loads(done.read_text())["config"] == key:
            grid.append(json.loads(done.read_text())["result"])
            continue
        recipe = cls()
        path = recipe.run(cfg)
        result = {"learning_rate": lr, **VALIDATORS[spec.name](path, validation_records(recipe, cfg), cfg),
                  "train_seconds": json.loads((path / "bench_run.json").read_text()).get("train_seconds")}
        log.info("sweep %s lr=%g: %s", spec.name, lr, result)
        done.write_text(json.dumps({"config": key, "result": result}, indent=2))
        shutil.rmtree(out)
        grid.append(result)
    best = choose(grid)
    budget_keys = ("max_steps", "batch_size", "grad_accum", "limit", "max_length", "seed", "val_fraction",
                   "val_limit", "lr_scheduler", "warmup_ratio", "lora_r")
    doc = {
        "recipe": spec.name,
        "model": cfg.model,
        "model_source": models.resolve(cfg.model),
        "data": cfg.data,
        "objective": OBJECTIVES[spec.name],
        "budget": {k: getattr(cfg, k) for k in budget_keys},
        "grid": grid,
        "chosen": {"learning_rate": best["learning_rate"]},
        "date": datetime.date.today().isoformat(),
        "bench_version": __version__,
    }
    path = sweep_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `bench sweep {spec.name}`; read by bench/config.py (recipe_config). Do not edit by hand.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path
