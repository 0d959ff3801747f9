"""``bench sweep``: a method's learning rate (PPO: and KL coefficient) from a small grid, on held-out training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from bench.cli_common import app, console, fail_cleanly

DEFAULT_RUN = Path(__file__).resolve().parent.parent / "runs" / "smollm2-cpu.yaml"


def _numbers(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < float("inf") for v in values):
        raise typer.BadParameter(f"{option} expects positive numbers separated by commas, got '{text}'")
    return values


def _reward_model(run, recipe: str) -> dict:
    """PPO methods need their reward model: the run's own (first seed), trained now if it is not there yet."""
    from . import registry
    from .stages.train import recipe_config

    spec, _ = registry.get(recipe)
    if not spec.needs:
        return {}
    cls, cfg = recipe_config(run, spec.needs, seed=run.seeds[0])
    return {"reward_model": str(cls().run(cfg))}


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _table(doc: dict) -> Table:
    """The sweep's grid: options, score (win rate with its interval, or the objective's score), lengths, shares."""
    swept = list(doc["chosen"])
    winrate = doc["objective"].startswith("winrate")
    cols = swept + (["win rate % [95 %]", "mean tokens (untrained)", "loop %", "truncated %", "empty %"] if winrate
                    else ["score", "tiebreak"]) + ["train s", "status"]
    table = Table(*cols, title=f"{doc['recipe']}: {doc['objective']}")
    base = doc.get("untrained") or {}
    if winrate and base:
        table.add_row(*(["untrained"] + [""] * (len(swept) - 1)),
                      f"{_pct(base['win_rate'])} [{_pct(base['win_rate_ci95'][0])}, {_pct(base['win_rate_ci95'][1])}]",
                      f"{base['mean_tokens']:.1f}", _pct(base["loop"]), _pct(base["truncated"]), _pct(base["empty"]), "", "")
    for g in doc["grid"]:
        status = g.get("failed") or ("chosen" if all(g[k] == doc["chosen"][k] for k in swept) else "")
        head = [f"{g[k]:g}" for k in swept]
        if g.get("failed"):
            body = [""] * (len(cols) - len(swept) - 2)
        elif winrate:
            ci = g["win_rate_ci95"]
            body = [f"{_pct(g['win_rate'])} [{_pct(ci[0])}, {_pct(ci[1])}]",
                    f"{g['mean_tokens']:.1f} ({g.get('base_mean_tokens', 0):.1f})", _pct(g["loop"]),
                    _pct(g["truncated"]), _pct(g["empty"])]
        else:
            body = [f"{g['score']:.4g}", f"{g['tiebreak']:.4g}"]
        table.add_row(*head, *body, f"{g.get('train_seconds') or 0:.0f}", status)
    return table


@app.command("sweep")
@fail_cleanly
def sweep_command(
    recipe: Annotated[str, typer.Argument(help="sft, figa, dpo, ppo, fg-ppo, reward-model or token-reward-model")],
    lrs: Annotated[str, typer.Option(help="comma-separated learning rates")] = "1e-6,1e-5,1e-4",
    kl_coefs: Annotated[str, typer.Option(help="PPO methods: comma-separated KL coefficients")] = "0.05,0.2",
    objective: Annotated[str, typer.Option(help="winrate (judged answers to held-out prompts), nll (sft, figa) or "
                                                "pref (dpo); reward models always use held-out pair accuracy")] = "winrate",
    prompts: Annotated[Optional[int], typer.Option(help="winrate: at most N held-out prompts (default: all)")] = None,
    extend: Annotated[bool, typer.Option(help="add a rate 10x beyond an edge where the best rate sits")] = True,
    config: Annotated[Optional[Path], typer.Option(help="run YAML whose model, data, budget and judge are used")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE budget override, e.g. max_steps=4")] = None,
    root: Annotated[Path, typer.Option(help="where the per-point scores and answers go while sweeping")] = Path("results/sweeps"),
):
    """Train RECIPE at each grid point on the run's training split, score each on its held-out split (default:
    the run's judge on generated answers), and write sweeps/<recipe>.yaml beside the recipe (reused by bench
    train/run)."""
    import yaml

    from . import registry
    from .config import parse_overrides
    from .stages import load_run_config
    from .sweep import REWARD_MODELS, objective_for, sweep

    if objective not in ("winrate", "nll", "pref"):
        raise typer.BadParameter(f"--objective expects winrate, nll or pref, got '{objective}'")
    if prompts is not None and prompts < 1:
        raise typer.BadParameter(f"--prompts expects a positive number, got {prompts}")
    run = load_run_config(config or DEFAULT_RUN)
    spec, cls = registry.get(recipe)
    chosen = objective_for(recipe, objective)
    points = [{"learning_rate": r} for r in _numbers(lrs, "--lrs")]
    if "kl_coef" in cls.Config.__dataclass_fields__:
        points = [{**p, "kl_coef": k} for p in points for k in _numbers(kl_coefs, "--kl-coefs")]
    layers = [("run", {"model": run.model, "data": run.data}), (f"{run.source('budget')}: budget", run.budget),
              (f"{run.source('method_options')}: method_options.{recipe}", run.method_options.get(recipe, {})),
              ("reward model", {} if recipe in REWARD_MODELS else _reward_model(run, recipe)),
              ("--set", parse_overrides(set_ or []))]
    scorer, key = None, None
    if chosen == "winrate":
        from .cache import content_key
        from .config import recipe_config
        from .heldout_winrate import HeldoutWinRate, heldout_prompts

        cfg = recipe_config(cls, spec, layers)
        held = heldout_prompts(cfg.data, cfg.val_fraction, cfg.seed, prompts)
        scorer = HeldoutWinRate(held, root, run.model, run.judge, run.judge_options, run.max_new_tokens,
                                run.generation_backend, run.allow_unvalidated_judge, prefix=f"{recipe}/")
        key = {"judge": run.judge, "judge_options": run.judge_options, "max_new_tokens": run.max_new_tokens,
               "prompts": len(held), "prompt_ids": content_key([p.id for p in held])}
    try:
        path = sweep(spec, cls, layers, points, root, chosen, scorer, key, extend)
    finally:
        if scorer is not None:
            scorer.close()
    doc = yaml.safe_load(path.read_text())
    console.print(_table(doc))
    for line in doc["extensions"]:
        console.print(f"[bold yellow]edge:[/] {line}")
    if "chosen_vs_untrained" in doc:
        d = doc["chosen_vs_untrained"]
        lo, hi = d["ci95"]
        verdict = "better than" if lo > 0 else "worse than" if hi < 0 else "not distinguishable from"
        console.print(f"[bold]chosen vs untrained:[/] {100 * d['difference']:+.1f} points [{100 * lo:+.1f}, "
                      f"{100 * hi:+.1f}] (paired bootstrap 95 %): {verdict} not training at all")
    console.print(f"[bold green]chosen:[/] {doc['chosen']}  [bold green]trained now:[/] {doc['trained_now']} points  "
                  f"[bold green]written:[/] {path}")
