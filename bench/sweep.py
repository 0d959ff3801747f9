"""``bench sweep``: choose a method's learning rate (PPO: and KL coefficient) on held-out training data, once.

Each grid point trains the method for the sweep budget on the training split (the same hash split on source
id that ``bench run`` trains on, ``val_fraction`` and ``seed`` of the run) and is scored on the held-out part:

- ``winrate`` (default; every policy, PPO and fg-PPO included): the judged win rate of its greedy answers to
  the held-out prompts against their reference answers, degenerate answers counted as losses
  (``bench.heldout_winrate``), what the leaderboard measures;
- ``nll`` (``sft``, ``figa``): token NLL of the revised response on up to ``val_limit`` records;
- ``pref`` (``dpo``): held-out preference accuracy of the implicit reward (ties: the lower held-out DPO loss);
- reward models always: held-out pairwise accuracy (ties: token-label accuracy); they answer no prompts.

Choice: the best score; with win rates, every point that a paired bootstrap over the same prompts cannot tell
from the best (95 % interval of the difference contains 0) is a tie, and the tie goes to the lowest rate (the
least change to the start model), then the largest KL coefficient. Edges: when the best point estimate sits at
an edge of the rates, the grid gains a rate 10x beyond it, until the best is inside or the rate would leave
``LR_LIMITS``; the record says which extensions happened and why one stopped. A point whose training
diverged (a NaN loss) is recorded as failed with the reason and the sweep goes on. Finished points are kept
in ``root/<recipe>/<point>.json`` (with the config, judge and prompts they were scored with), so an
interrupted sweep retrains only the missing points; checkpoints are deleted once scored.

Eval prompts are never touched. The result goes to ``sweeps/<recipe>.yaml`` beside the recipe YAML (grid,
scores, chosen options, model, data, budget, date), which the config layering reads
(``bench.config.recipe_config``): recipe YAML < sweep < run budget < method_options.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
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
    "winrate": "judged win rate of greedy answers to held-out training prompts vs their reference answers "
               "(degenerate answers lose; ties within a paired 95 % interval go to the lowest rate)",
    "nll": "validation token NLL of the revised response (score = -NLL, higher is better)",
    "pref": "held-out preference accuracy of DPO's implicit reward (ties: lower held-out DPO loss)",
    "pairs": "held-out pairwise accuracy (ties: token-label accuracy where there is one)",
}
REWARD_MODELS = ("reward-model", "token-reward-model")
KEEP = ("ref_logps.pt",)  # caches a recipe keeps in its output dir that no rate changes (DPO's reference log-probs)
LR_LIMITS = (1e-7, 1e-3)  # edge extension stops here: below, 8 steps change nothing; above, full fine-tunes diverge


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


VALIDATORS = {"nll": revised_nll, "pref": dpo_heldout, "pairs": rm_heldout}
APPLIES = {"nll": ("sft", "figa"), "pref": ("dpo",), "pairs": REWARD_MODELS}


def objective_for(recipe: str, requested: str) -> str:
    """The objective a recipe is swept on: reward models always on held-out pairs; a policy on ``requested``."""
    if recipe in REWARD_MODELS:
        return "pairs"
    if requested == "winrate" or recipe in APPLIES.get(requested, ()):
        return requested
    fits = [o for o, names in APPLIES.items() if recipe in names]
    raise DataError("--objective", None, None, f"'{requested}' does not apply to {recipe} (use winrate"
                    + (f" or {fits[0]})" if fits else ")"))


def label(point: dict) -> str:
    """A point's file name: 'lr=0.0001' or 'lr=1e-05,kl_coef=0.05'."""
    return ",".join(("lr" if k == "learning_rate" else k) + f"={v:g}" for k, v in point.items())


def _best_key(g: dict) -> tuple:
    return (g["score"], g["tiebreak"], -g["learning_rate"], g.get("kl_coef", 0.0))


def best(grid: list[dict]) -> dict | None:
    """The best point estimate among the points that did not fail (ties: the smaller rate)."""
    ok = [g for g in grid if not g.get("failed")]
    return max(ok, key=_best_key) if ok else None


def choose(grid: list[dict]) -> dict:
    """The best point; where points carry per-prompt preferences (win rates), every point not distinguishable
    from the best is a tie and the lowest rate among them wins (then the largest KL coefficient)."""
    from .heldout_winrate import indistinguishable

    top = best(grid)
    if top is None:
        reasons = "; ".join(f"{label({'learning_rate': g['learning_rate']})}: {g.get('failed')}" for g in grid)
        raise DataError("sweep", None, None, f"every grid point failed, nothing to choose ({reasons})")
    if "preferences" not in top:
        return top
    ties = [g for g in grid if not g.get("failed") and indistinguishable(g["preferences"], top["preferences"])]
    return min(ties, key=lambda g: (g["learning_rate"], -g.get("kl_coef", 0.0)))


def next_edge(grid: list[dict]) -> tuple[float | None, str]:
    """The rate to add when the best point is at an edge of the rates tried (None: none), and why."""
    top = best(grid)
    rates = sorted({g["learning_rate"] for g in grid})
    if top is None or len(rates) < 2:
        return None, ""
    lr = top["learning_rate"]
    for edge, new, ok in (("lowest", rates[0] / 10, rates[0] / 10 >= LR_LIMITS[0] * (1 - 1e-9)),
                          ("highest", rates[-1] * 10, rates[-1] * 10 <= LR_LIMITS[1] * (1 + 1e-9))):
        if math.isclose(lr, rates[0] if edge == "lowest" else rates[-1]):
            if ok:
                return new, f"best rate {lr:g} is the {edge} tried: added {new:g}"
            return None, f"best rate {lr:g} is the {edge} tried; not extended beyond the limit {LR_LIMITS}"
    return None, ""


def diverged(checkpoint: Path) -> str | None:
    """The reason a training run diverged (a non-finite loss in its log), or None."""
    for name, keys in (("train_log.jsonl", ("loss",)), ("ppo_log.jsonl", ("policy_loss", "value_loss", "reward_mean"))):
        path = checkpoint / name
        if not path.exists():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            row = json.loads(line) if line.strip() else {}
            for k in keys:
                if isinstance(row.get(k), float) and not math.isfinite(row[k]):
                    return f"{k} became {row[k]} at step {row.get('step', row.get('iteration', n))} ({name})"
    return None


class Sweep:
    """One recipe's grid on one budget: trains and scores points, reusing finished ones."""

    def __init__(self, spec, cls, layers: list[tuple[str, dict]], root: Path, objective: str, scorer=None,
                 scorer_key: dict | None = None):
        self.spec, self.cls, self.layers, self.root = spec, cls, layers, Path(root)
        self.objective, self.scorer, self.scorer_key = objective, scorer, scorer_key or {}
        self.trained = 0  # grid points trained in this call (a resumed sweep trains only the missing ones)
        self.cfg = None

    def point(self, options: dict) -> dict:
        from .training import fingerprint

        out = self.root / self.spec.name / label(options)
        cfg = recipe_config(self.cls, self.spec, self.layers + [("sweep", {**options, "output_dir": str(out)})])
        if "eval_pairs" in to_dict(cfg):  # reward models: validate on the same records, skip calibration
            cfg.eval_pairs, cfg.calibration_pairs = cfg.val_limit, 2
        self.cfg = cfg
        rm = getattr(cfg, "reward_model", None)  # PPO: a retrained reward model makes its points stale
        inputs = {"reward_model": fingerprint(rm)} if rm and Path(rm).is_dir() else {}
        done = out.parent / f"{out.name}.json"  # not with_suffix: "lr=0.0001" has a dot
        key = json.loads(json.dumps({"config": to_dict(cfg), "inputs": inputs, "objective": self.objective,
                                     "scorer": self.scorer_key}, default=str))
        if done.exists() and json.loads(done.read_text()).get("key") == key:
            return json.loads(done.read_text())["result"]
        shared = self.root / self.spec.name
        for name in KEEP:  # carried from point to point: computed once per sweep, not once per rate
            if (shared / name).exists() and not (out / name).exists():
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy2(shared / name, out / name)
        recipe = self.cls()
        path = Path(recipe.run(cfg))
        self.trained += 1
        result = {**options, "train_seconds": json.loads((path / "bench_run.json").read_text()).get("train_seconds")}
        reason = diverged(path)
        if reason:
            result.update(failed=reason, score=None, tiebreak=None)
            log.warning("sweep %s %s failed: %s", self.spec.name, label(options), reason)
        elif self.objective == "winrate":
            result.update(self.scorer.score(label(options), path))
        else:
            result.update(VALIDATORS[self.objective](path, validation_records(recipe, cfg), cfg))
        log.info("sweep %s %s: %s", self.spec.name, label(options),
                 {k: v for k, v in result.items() if k != "preferences"})
        done.write_text(json.dumps({"key": key, "result": result}, indent=1))
        for name in KEEP:
            if (out / name).exists():
                shutil.copy2(out / name, shared / name)
        shutil.rmtree(out)
        return result


def sweep(spec, cls, layers: list[tuple[str, dict]], points: list[dict], root: Path, objective: str = "nll",
          scorer=None, scorer_key: dict | None = None, extend: bool = True) -> Path:
    """Train and score ``spec``'s recipe at each point (``{"learning_rate": r}``, PPO also ``kl_coef``) under
    ``layers`` (model, data, budget), extend the rates at an edge, choose, and write ``sweeps/<recipe>.yaml``
    (after the grid and again after each extension, so an interrupted extension leaves the record so far).
    ``scorer`` (``objective == "winrate"``): an object whose ``score(name, checkpoint)`` returns the point's
    result with ``score``, ``tiebreak`` and ``preferences``; its ``base()`` scores the untrained model."""
    run = Sweep(spec, cls, layers, root, objective, scorer, scorer_key)
    grid = [run.point(p) for p in points]
    extensions: list[str] = []
    while True:
        new, why = next_edge(grid)
        if why:
            extensions.append(why if extend or new is None else f"{why.split(':')[0]}; not extended (extend off)")
        if new is None or not extend:
            break
        _write(run, grid, list(points[0]), extensions + ["(extension in progress)"])  # the record so far
        options = {k: v for k, v in best(grid).items() if k in points[0]} | {"learning_rate": new}
        grid.append(run.point(options))
    return _write(run, grid, list(points[0]), extensions)


def _write(run: Sweep, grid: list[dict], swept: list[str], extensions: list[str]) -> Path:
    """The sweep's record, ``sweeps/<recipe>.yaml``: what bench train/run layer in, and what a reader checks."""
    from . import __version__
    from .heldout_winrate import paired_difference

    chosen, cfg = choose(grid), run.cfg
    budget_keys = ("max_steps", "batch_size", "grad_accum", "limit", "max_length", "seed", "val_fraction",
                   "val_limit", "lr_scheduler", "warmup_ratio", "lora_r", "rollout_batch", "max_new_tokens",
                   "rollout_backend")
    doc = {
        "recipe": run.spec.name,
        "model": cfg.model,
        "model_source": models.resolve(cfg.model),
        "data": cfg.data,
        "objective": f"{run.objective}: {OBJECTIVES[run.objective]}",
        "budget": {k: getattr(cfg, k) for k in budget_keys if hasattr(cfg, k)},
        "grid": [{k: v for k, v in g.items() if k != "preferences"} for g in grid],
        "chosen": {k: chosen[k] for k in swept},
        "best_point_estimate": {k: best(grid)[k] for k in swept},
        "extensions": extensions,
        "trained_now": run.trained,
        "date": datetime.date.today().isoformat(),
        "bench_version": __version__,
    }
    if run.scorer is not None:
        untrained = run.scorer.base()
        doc["untrained"] = {k: v for k, v in untrained.items() if k != "preferences"}
        if "preferences" in chosen:  # did the chosen rate buy anything over not training at all?
            doc["chosen_vs_untrained"] = paired_difference(chosen["preferences"], untrained["preferences"])
        doc["scored_with"] = run.scorer_key
    path = sweep_path(run.spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `bench sweep {run.spec.name}`; read by bench/config.py (recipe_config). Do not edit by hand.\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path
