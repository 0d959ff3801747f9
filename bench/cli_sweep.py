"""``bench sweep``: a method's learning rate from a small grid, on a validation split of its training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from bench.cli_common import app, console, fail_cleanly

DEFAULT_RUN = Path(__file__).resolve().parent.parent / "runs" / "smollm2-cpu.yaml"


@app.command("sweep")
@fail_cleanly
def sweep_command(
    recipe: Annotated[str, typer.Argument(help="sft, figa, dpo, reward-model or token-reward-model")],
    lrs: Annotated[str, typer.Option(help="comma-separated learning rates")] = "1e-6,1e-5,1e-4",
    config: Annotated[Optional[Path], typer.Option(help="run YAML whose model, data and budget are used")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE budget override, e.g. max_steps=4")] = None,
    root: Annotated[Path, typer.Option(help="where the per-rate scores go while sweeping")] = Path("results/sweeps"),
):
    """Train RECIPE at each rate on the run's training split, score each on its held-out split with the
    method's validation objective, and write sweeps/<recipe>.yaml beside the recipe (reused by bench train/run)."""
    from . import registry
    from .config import parse_overrides
    from .stages import load_run_config
    from .sweep import sweep

    run = load_run_config(config or DEFAULT_RUN)
    spec, cls = registry.get(recipe)
    try:
        rates = [float(x) for x in lrs.split(",") if x.strip()]
    except ValueError:
        rates = []
    if not rates or not all(0 < r < float("inf") for r in rates):
        raise typer.BadParameter(f"--lrs expects positive numbers separated by commas, got '{lrs}'")
    layers = [("run", {"model": run.model, "data": run.data}), (f"{run.source('budget')}: budget", run.budget),
              (f"{run.source('method_options')}: method_options.{recipe}", run.method_options.get(recipe, {})),
              ("--set", parse_overrides(set_ or []))]
    path = sweep(spec, cls, layers, rates, root)
    import yaml

    doc = yaml.safe_load(path.read_text())
    table = Table("learning_rate", "score", *[k for k in doc["grid"][0] if k not in ("learning_rate", "score")],
                  title=f"{recipe}: {doc['objective']}")
    for g in doc["grid"]:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in g.values()])
    console.print(table)
    console.print(f"[bold green]chosen:[/] {doc['chosen']}  [bold green]written:[/] {path}")
