"""``bench suite``: FIGA's benchmark suite (or any lm-eval tasks) on a checkpoint, through lm-eval."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from bench.cli_common import app, console, fail_cleanly


def _shots(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        name, sep, n = v.partition("=")
        if not sep or not n.strip().isdigit():
            raise typer.BadParameter(f"--shots expects TASK=N (e.g. figa_mmlu=0), got '{v}'")
        out[name.strip()] = int(n)
    return out


def summary_table(summary: dict) -> Table:
    """Every task and group with its metrics and standard errors, then FIGA's terms and average."""
    table = Table("task", "metric", "value", "± stderr", "n",
                  title=f"{summary['checkpoint']} · {summary['backend']} · lm-eval {summary['lm_eval_version']}")
    table.columns[0].no_wrap = True
    tasks = summary["tasks"]
    groups = {n.split("::")[0] for n in tasks if "::" in n}
    for name, row in tasks.items():
        group = name.split("::")[0]
        if "::" in name and sum(n.startswith(group + "::") for n in tasks) > 5:
            continue  # MMLU's 57 subjects stay in summary.json; the table shows the group
        for metric, m in row["metrics"].items():
            err = f"{m['stderr']:.2f}" if m["stderr"] is not None else "-"
            label = "  " + name.split("::")[1] if "::" in name else name + (" (group)" if name in groups else "")
            table.add_row(label, metric, f"{m['value']:.2f}", err, str(row["n"] or ""))
    figa = summary["figa"]
    how = {"reward": "reward x10", "crows_pairs": "100 - crows_pairs"}
    for term, v in figa["terms"].items():
        table.add_row("FIGA term", how.get(term, term), "-" if v is None else f"{v:.2f}", "", "", style="cyan")
    avg = figa["avg"]
    label = f"{avg:.2f}" if avg is not None else f"n/a (partial {figa['partial_avg']:.2f} over {figa['partial_avg_terms']} of 7)"
    table.add_row("FIGA", "Avg", label, "", "", style="bold cyan")
    return table


@app.command("suite")
@fail_cleanly
def suite(
    checkpoint: Annotated[str, typer.Argument(help="local dir, Hub id, or smollm2-135m-instruct")],
    suite_: Annotated[str, typer.Option("--suite", help="figa | figa-hub | lm-eval task names | task dir | YAML (comma-separated)")] = "figa",
    backend: Annotated[str, typer.Option(help="hf-prefix (hf reusing shared prompt prefixes) | hf | vllm | endpoint (or an http:// URL for endpoint)")] = "hf-prefix",
    url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible server for --backend endpoint")] = None,
    limit: Annotated[Optional[float], typer.Option(help="at most N documents per task, or a fraction if < 1 (quick runs)")] = None,
    shots: Annotated[Optional[list[str]], typer.Option(help="TASK=N few-shot override, e.g. figa_mmlu=0 (repeatable)")] = None,
    chat_template: Annotated[bool, typer.Option(help="wrap prompts in the checkpoint's chat template (off by default: see bench/suite/__init__.py)")] = False,
    batch_size: Annotated[int, typer.Option(help="requests per forward pass (hf) or per HTTP call (endpoint)")] = 16,
    out_dir: Annotated[Optional[str], typer.Option(help="results directory (default results/suite/<checkpoint>)")] = None,
    rerun: Annotated[bool, typer.Option(help="ignore cached results")] = False,
    reward: Annotated[Optional[float], typer.Option(help="mean reward-model score, for FIGA's Avg")] = None,
    reward_model: Annotated[Optional[str], typer.Option(help="reward model dir: score --responses with it")] = None,
    responses: Annotated[Optional[str], typer.Option(help="JSONL of prompt/response pairs to score with --reward-model")] = None,
    vicuna: Annotated[Optional[float], typer.Option(help="Vicuna-80 judged score (1-10), for FIGA's Avg")] = None,
    wizardlm: Annotated[Optional[float], typer.Option(help="WizardLM judged score (1-10), for FIGA's Avg")] = None,
):
    """Run MMLU, TruthfulQA (MC1/MC2), CrowS-Pairs and WinoGender through lm-eval; print and save the results.

    Writes lm-eval's results JSON per suite entry (results/suite/<checkpoint>/lm_eval/) and summary.json
    with FIGA's average. Unchanged (checkpoint, task, settings) are read back, not re-run.
    """
    from .suite import SuiteConfig, run_suite
    from .suite.summary import reward_from_model

    from .validate import check_model, check_option, int_at_least, positive

    check_option("--limit", limit, positive())
    check_option("--batch-size", batch_size, int_at_least(1))
    if not backend.startswith(("http://", "https://")) and backend != "endpoint":
        check_model(checkpoint, "CHECKPOINT")
    if backend.startswith(("http://", "https://")):
        backend, url = "endpoint", backend
    if (reward_model is None) != (responses is None):
        raise typer.BadParameter("--reward-model and --responses go together")
    if reward_model:
        reward = reward_from_model(reward_model, responses)
    if limit is not None and limit >= 1:
        limit = int(limit)
    cfg = SuiteConfig(suite=suite_, backend=backend, url=url, limit=limit, shots=_shots(shots or []),
                      chat_template=chat_template, batch_size=batch_size, out_dir=out_dir, rerun=rerun)
    try:
        summary = run_suite(checkpoint, cfg, reward=reward, vicuna=vicuna, wizardlm=wizardlm)
    except ValueError as e:  # bad option values (DataError, a ValueError, is handled by fail_cleanly)
        from .data import DataError

        if isinstance(e, DataError):
            raise
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    console.print(summary_table(summary))
    for note in summary["figa"]["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"[bold green]summary:[/] {summary['summary_path']}")
