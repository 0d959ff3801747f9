"""The ``bench`` command line: one sub-command per pipeline stage."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

app = typer.Typer(help="Benchmark fine-grained alignment methods (FIGA, SFT, DPO, PPO, fine-grained PPO).",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
recipes_app = typer.Typer(help="Registered training recipes.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: the data kit, the Hub, your own files.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
app.add_typer(data_app, name="data")
console = Console()
VERBOSE = False  # -v: debug logging, and a traceback behind every error
RESUME_HINT = "interrupted; run the same command again to resume from where it stopped"


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging, tracebacks on errors")] = False):
    global VERBOSE
    VERBOSE = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])


def user_error_message(e: BaseException) -> str | None:
    """The one sentence for a user's mistake, or None for anything that is a bug in bench."""
    import errno

    from .data import DataError

    if isinstance(e, DataError) or getattr(e, "user_error", False):  # plugins (the leaderboard) flag theirs
        return str(e)
    if isinstance(e, KeyError):
        return str(e.args[0]) if e.args else "unknown key"
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOENT,
                                              errno.ENOTDIR, errno.EISDIR, errno.EADDRINUSE):
        where = f" '{e.filename}'" if e.filename else ""
        return f"{e.strerror or e}{where}"
    return None


def fail_cleanly(fn):
    """Bad input ends with one red line naming file, line and field: never a deep traceback (unless -v).

    A genuine bug keeps its traceback, with one line asking for a report; Ctrl-C says how to resume."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter, SystemExit):
            raise
        except KeyboardInterrupt:
            console.print(f"[bold yellow]{RESUME_HINT}[/]", highlight=False)
            raise typer.Exit(130) from None
        except Exception as e:
            message = user_error_message(e)
            if message is None:
                console.print("[bold red]bug:[/] this is a bug in bench; please report it with the command and "
                              "the traceback below", highlight=False)
                raise
            if VERBOSE:
                console.print_exception()
            console.print(f"[bold red]error:[/] {message}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


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
    console.print_json(data=to_dict(cfg))
    out = cls().run(cfg)
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
def data_show(spec: str, n: int = 2, skip_invalid: bool = False):
    """Load a data spec, validate every row, and print the first records."""
    from dataclasses import asdict

    from .data import load

    records = load(spec, skip_invalid=skip_invalid)
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
    stage: Annotated[str, typer.Argument(help="all, or one of: train, generate, judge, suite, report")] = "all",
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
    page = run_all(run, None if stage == "all" else [stage], force=force, executor=executor, address=address)
    console.print(f"[bold green]run {run.run}:[/] {run.dir}" + (f"\n[bold green]leaderboard:[/] {page}" if page.exists() else ""))


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


if __name__ == "__main__":
    app()
