"""The ``bench`` command line: one sub-command per pipeline stage (the shared app and error handling are in
``cli_common``; each ``cli_*`` module adds its stage's commands to the app)."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import cli_common
from .cli_common import RESUME_HINT, app, console, data_app, fail_cleanly, recipes_app, user_error_message  # noqa: F401

@recipes_app.command("list")
def recipes_list():
    """One line per recipe: name, description, where its YAML is."""
    from . import registry

    table = Table("recipe", "description", "defaults")
    for name, spec in sorted(registry.recipes().items()):
        table.add_row(name, spec.description, str(spec.yaml_path.relative_to(Path.cwd()) if spec.yaml_path.is_relative_to(Path.cwd()) else spec.yaml_path))
    console.print(table)


@recipes_app.command("show")
@fail_cleanly
def recipes_show(recipe: str):
    """Every option of a recipe with its default (after the recipe YAML and its sweep result) and help."""
    from . import registry
    from .config import recipe_config, to_dict

    spec, cls = registry.get(recipe)
    cfg = recipe_config(cls, spec, [])
    helps = {f.name: f.metadata.get("help", "") for f in __import__("dataclasses").fields(cls.Config)}
    table = Table("option", "value", "help", title=f"{spec.name}: {spec.description}")
    for k, v in to_dict(cfg).items():
        table.add_row(k, repr(v), helps.get(k, ""))
    console.print(table)


@app.command()
@fail_cleanly
def train(
    recipe: Annotated[str, typer.Argument(help="recipe name (bench recipes list) or path to a recipe YAML")],
    model: Annotated[Optional[str], typer.Option(help="HF id, local dir, or smollm2-135m-instruct")] = None,
    data: Annotated[Optional[str], typer.Option(help="data spec, e.g. expertqa or file.jsonl?prompt=q&initial=a&revised=b")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML with option overrides")] = None,
    output_dir: Annotated[Optional[str], typer.Option(help="checkpoint directory")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="stop after N optimiser steps")] = None,
    limit: Annotated[Optional[int], typer.Option(help="use at most N training records")] = None,
    lora_r: Annotated[Optional[int], typer.Option(help="LoRA rank (0 = full fine-tune)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="count and log invalid rows instead of stopping")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE override (repeatable)")] = None,
):
    """Train a recipe and write an ordinary Hugging Face checkpoint. Re-running resumes."""
    from .api import train_config
    from .config import parse_overrides, to_dict
    from .validate import check_option, int_at_least

    for option, value, rule in (("--max-steps", max_steps, int_at_least(1)), ("--limit", limit, int_at_least(1)),
                                ("--lora-r", lora_r, int_at_least(0)), ("--seed", seed, int_at_least(0))):
        check_option(option, value, rule)
    cls, cfg = train_config(recipe, config, parse_overrides(set_ or []), model=model, data=data, output_dir=output_dir,
                            max_steps=max_steps, limit=limit, lora_r=lora_r, seed=seed, skip_invalid=skip_invalid or None)
    from . import distributed
    from .training import run_recipe

    if distributed.is_main():  # under a launcher: said once, not once per process
        console.print_json(data=to_dict(cfg))
    out = run_recipe(cls, cfg)
    if distributed.is_main():
        console.print(f"[bold green]checkpoint:[/] {out}")


@data_app.command("list")
def data_list():
    """The named datasets and where each is read from."""
    from .data import DATASETS
    from .data.readers import data_dir

    table = Table("name", "kind", "source", "description")
    for d in DATASETS.values():
        local = data_dir() / d.file if d.file else None
        source = str(local) if local and local.exists() else (f"hub:{d.hub[0]}" if d.hub else "missing")
        table.add_row(d.name, d.kind, source, d.description)
    console.print(table)


@data_app.command("show")
@fail_cleanly
def data_show(spec: str, n: int = 2, skip_invalid: bool = False,
              kind: Annotated[Optional[str], typer.Option(help="check the records are of this kind: revision, preference or eval")] = None):
    """Load a data spec, validate every row, and print the first records."""
    from dataclasses import asdict

    from .data import load
    from .data.specs import KINDS

    if kind is not None and kind not in KINDS:
        raise KeyError(f"--kind {kind}: use one of {', '.join(KINDS)}")
    records = load(spec, kind=kind, skip_invalid=skip_invalid)
    console.print(f"{len(records)} {type(records[0]).__name__} records")
    for r in records[:n]:
        console.print_json(data=asdict(r))


@app.command("model")
@fail_cleanly
def model_path(spec: Annotated[str, typer.Argument(help="HF id, local dir, or smollm2-135m-instruct")] = "smollm2-135m-instruct"):
    """Resolve a model spec (converting the embedded GGUF once) and print its checkpoint path."""
    from .models import resolve

    console.print(resolve(spec))


@app.command("run")
@fail_cleanly
def run_pipeline(
    stage: Annotated[str, typer.Argument(help="all, or one of: build_data, train, generate, judge, suite, report")] = "all",
    config: Annotated[Optional[Path], typer.Option(help="run YAML (default runs/smollm2-cpu.yaml)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE run override, e.g. eval_limit=20")] = None,
    force: Annotated[bool, typer.Option(help="re-run the stage(s) even when nothing they depend on changed")] = False,
    allow_unvalidated_judge: Annotated[bool, typer.Option(
        help="judge even with a judge whose card is missing or fails its null battery (numbers marked red)")] = False,
    allow_template_change: Annotated[bool, typer.Option(
        help="generate with checkpoints whose chat template changed since training (recorded in the results)")] = False,
    executor: Annotated[str, typer.Option(help="local (this process, in order) or ray (train/generate/suite jobs as Ray tasks)")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (auto: the one on this node; default: start a local one)")] = None,
):
    """The whole comparison: train every method on the same budget, generate, judge, benchmark, report.
    Every stage resumes: finished work is read back, not redone; a stage whose inputs did not change is skipped."""
    from .config import parse_overrides
    from .stages import STAGES, load_run_config, run_all

    if stage != "all" and stage not in STAGES:
        raise KeyError(f"unknown stage '{stage}'; use all or one of {', '.join(STAGES)}")
    if executor not in ("local", "ray"):
        raise KeyError(f"unknown executor '{executor}'; use local or ray")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise KeyError("--executor ray needs Ray: pip install -e '.[ray]' (or BENCH_EXTRAS=ray ./setup.sh)")
    default = Path(__file__).resolve().parent.parent / "runs" / "smollm2-cpu.yaml"
    overrides = parse_overrides(set_ or [])
    if allow_unvalidated_judge:
        overrides["allow_unvalidated_judge"] = True
    if allow_template_change:
        overrides["allow_template_change"] = True
    run = load_run_config(config or default, overrides)
    from .console import RunConsole

    with RunConsole(run.dir, verbose=cli_common.VERBOSE):  # third-party output to the run's logs/, a live line here
        page = run_all(run, None if stage == "all" else [stage], force=force, executor=executor, address=address)
    console.print(f"[bold green]run {run.run}:[/] {run.dir}" + (f"\n[bold green]leaderboard:[/] {page}" if page.exists() else ""))


@app.command()
@fail_cleanly
def status(
    run: Annotated[Optional[str], typer.Argument(help="run name (under --root), run directory or run YAML "
                                                      "(default: runs/smollm2-cpu.yaml)")] = None,
    root: Annotated[Path, typer.Option(help="where run directories are")] = Path("results/runs"),
):
    """A run's stages: done, running, stale (and what changed) or to do, with the time each last took."""
    from .stages import load_run_config
    from .status import stage_table

    default = Path(__file__).resolve().parent.parent / "runs" / "smollm2-cpu.yaml"
    candidates = [Path(run), Path(run) / "run_config.yaml", root / run / "run_config.yaml"] if run else [default]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise KeyError(f"no run '{run}': not a run YAML, nor a run directory with run_config.yaml, nor a run under {root}")
    cfg = load_run_config(path)
    table = Table("stage", "state", "last took", "finished", "would re-run because", title=f"run {cfg.run}: {cfg.dir}")
    colour = {"done": "green", "running": "cyan", "stale": "yellow", "to do": "dim"}
    for row in stage_table(cfg):
        took = "" if row["seconds"] is None else f"{row['seconds']:.0f} s"
        table.add_row(row["stage"], f"[{colour[row['state']]}]{row['state']}[/]", took, row["finished"] or "", row["why"])
    console.print(table)


@app.command()
@fail_cleanly
def leaderboard(
    results: Annotated[Path, typer.Argument(help="directory searched for run results.json files")] = Path("results/runs"),
    out: Annotated[Path, typer.Option(help="where index.html goes")] = Path("results/site"),
):
    """Render every run's results.json into a static HTML leaderboard (no server needed)."""
    from .stages.report import reporters

    console.print(f"[bold green]leaderboard:[/] {reporters()['site'].load()(results, out)}")


# Stage commands live beside their code; each module adds its commands to `app` when imported.
# (one import line per stage module below)
from . import cli_suite  # noqa: E402,F401  (bench suite)
from . import cli_eval  # noqa: E402,F401  (bench generate, serve, judge, eval, judges)
from . import cli_sweep  # noqa: E402,F401  (bench sweep)
from . import cli_data  # noqa: E402,F401  (bench data build-spa, build-edits)


def main() -> None:
    """The ``bench`` program. An interrupted command (exit 130 / 143) has shut down what it started; its
    interpreter's own shutdown then gets ``procs.EXIT_WITHIN`` seconds (``procs.exit_within``)."""
    try:
        app()
    except SystemExit as e:
        if e.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            from .procs import exit_within

            exit_within(e.code)
        raise


if __name__ == "__main__":
    main()
