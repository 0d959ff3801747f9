"""``bench data build-spa`` / ``build-edits``: revision data made from a model's own answers (bench/spa/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from bench.cli_common import console, data_app, fail_cleanly


def _build(mode: str, prompts: str, config: Optional[Path], set_: Optional[list[str]], flags: dict) -> None:
    from .config import build_config, parse_overrides, read_yaml
    from .spa import SpaConfig, build

    layers = [("mode", {"mode": mode, "prompts": prompts})]
    if config:
        layers.append((str(config), read_yaml(config)))
    layers += [("--set", parse_overrides(set_ or [])), ("options", {k: v for k, v in flags.items() if v is not None})]
    cfg = build_config(SpaConfig, layers)
    doc = build(cfg)
    table = Table("step", "count", "share", "seconds", title=f"{mode} build: {cfg.out}")
    for step, row in doc["steps"].items():
        table.add_row(step, str(row["count"]), f"{100 * row['share_of_input']:.0f} %", "")
    for step, s in doc["seconds"].items():
        table.add_row(f"  time: {step}", "", "", f"{s:.1f}")
    console.print(table)
    drops = ", ".join(f"{k} {v}" for k, v in doc["drops"].items() if v) or "none"
    console.print(f"[bold]dropped:[/] {drops}")
    console.print(f"[bold green]data:[/] {doc['files']['data']}  (train with --data {doc['files']['data_spec']})")


Out = Annotated[Optional[str], typer.Option(help="output directory (default results/spa)")]
BaseUrl = Annotated[Optional[str], typer.Option(help="reviser: OpenAI-compatible endpoint (default $OPENAI_BASE_URL)")]
Reviser = Annotated[Optional[str], typer.Option(help="reviser: the endpoint's model, or with no endpoint a local "
                                                     "checkpoint to `bench serve`")]
Scorer = Annotated[Optional[str], typer.Option(help="judge:NAME (against the reference) or rm:PATH")]
Limit = Annotated[Optional[int], typer.Option(help="first N prompts (0 = all)")]
Config = Annotated[Optional[Path], typer.Option(help="YAML of build options (bench/spa/config.py)")]
Set = Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE build option (repeatable)")]


@data_app.command("build-spa")
@fail_cleanly
def build_spa(
    prompts: Annotated[str, typer.Argument(help="data spec of the prompts (alpaca_libre, hh_rlhf, a file)")] = "alpaca_libre",
    model: Annotated[Optional[str], typer.Option(help="the model to be trained (it answers the prompts)")] = None,
    limit: Limit = None, scorer: Scorer = None, base_url: BaseUrl = None, reviser_model: Reviser = None,
    out: Out = None, config: Config = None, set_: Set = None,
):
    """SPA data for MODEL: its answers (rollout), the subpar ones (reward), minimally revised (revise), kept when
    the edit is small and the score rose (filter); writes spa.jsonl (--data spa:PATH) and report.json. Resumes."""
    _build("spa", prompts, config, set_, dict(model=model, limit=limit, scorer=scorer, base_url=base_url,
                                              reviser_model=reviser_model, out=out))


@data_app.command("build-edits")
@fail_cleanly
def build_edits(
    pairs: Annotated[str, typer.Argument(help="data spec of preference pairs (hh_rlhf, a chosen/rejected file)")] = "hh_rlhf",
    model: Annotated[Optional[str], typer.Option(help="the tokenizer's model (for edit ratios)")] = None,
    limit: Limit = None, scorer: Scorer = None, base_url: BaseUrl = None, reviser_model: Reviser = None,
    out: Out = None, config: Config = None, set_: Set = None,
):
    """Token-reward-model data: minimal edits of each pair's rejected response (revise, filter); writes
    edits.jsonl in the revision-pair format (prompt, initial, revised) that token-reward-model trains on."""
    _build("edit", pairs, config, set_, dict(model=model, limit=limit, scorer=scorer, base_url=base_url,
                                             reviser_model=reviser_model, out=out or "results/edits"))
