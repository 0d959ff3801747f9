"""Evaluation commands: ``bench generate``, ``serve``, ``judge``, ``eval`` and ``judges list|train|measure``."""

from __future__ import annotations

import functools
import json
import re
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cli import app, console, fail_cleanly

judges_app = typer.Typer(help="Judges: list them with their measured agreement, train and measure them.", no_args_is_help=True)
app.add_typer(judges_app, name="judges")

JudgeOpt = Annotated[str, typer.Option("--judge", help="judge name (bench judges list)")]
JudgeOptions = Annotated[Optional[list[str]], typer.Option("--judge-option", help="KEY=VALUE judge option (repeatable)")]


def clean_errors(fn):
    """Also turn endpoint, server and setup errors into one red line (after ``fail_cleanly``'s data errors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .judges.llm import EndpointError
        from .serve import ServerError

        try:
            return fn(*args, **kwargs)
        except (EndpointError, ServerError, FileNotFoundError, ValueError) as e:
            if type(e).__name__ == "DataError":
                raise
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None

    return fail_cleanly(wrapper)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


def _judge(name: str, options: list[str] | None):
    from .config import parse_overrides
    from .judges import get

    return get(name, **parse_overrides(options or []))


def _generate(model, eval_set, output_dir, backend, limit, max_new_tokens, temperature, top_p, seed, max_num_seqs,
              batch_size, generator) -> Path:
    from .data import EvalPrompt, load
    from .generation import Sampling, backend_name, generate_eval
    from .models import resolve

    prompts = load(eval_set, limit=limit)
    if not isinstance(prompts[0], EvalPrompt):
        from .data import DataError

        raise DataError(eval_set, None, None, "is not an eval set of prompts")
    generator = generator or Path(resolve(model)).name
    out = Path(output_dir) if output_dir else Path("results") / "generations" / _slug(generator) / _slug(eval_set)
    name = backend_name(backend)
    options = {"max_num_seqs": max_num_seqs} if name == "vllm" else {"batch_size": batch_size}
    sampling = Sampling(max_new_tokens, temperature, top_p, seed)
    return generate_eval(model, prompts, out, name, sampling, generator, eval_set, backend_options=options)


_GEN_OPTIONS = dict(
    eval_set=typer.Option("--eval-set", help="eval set name (bench data list) or a prompts file spec"),
    output_dir=typer.Option("--output-dir", help="default results/generations/GENERATOR/EVAL_SET"),
    backend=typer.Option(help="auto (vLLM if installed, else HF), vllm or hf"),
    limit=typer.Option(help="only the first N prompts"),
    max_new_tokens=typer.Option(help="tokens generated at most per answer"),
    temperature=typer.Option(help="0 = greedy"),
    top_p=typer.Option(help="nucleus sampling (temperature > 0)"),
    seed=typer.Option(help="sampling seed"),
    max_num_seqs=typer.Option(help="vLLM: sequences decoded together"),
    batch_size=typer.Option(help="HF: prompts per generate call"),
    generator=typer.Option(help="name recorded in the outputs (default: checkpoint directory name)"),
)


@app.command()
@clean_errors
def generate(
    model: Annotated[str, typer.Argument(help="checkpoint dir, Hub id or smollm2-135m-instruct")],
    eval_set: Annotated[str, _GEN_OPTIONS["eval_set"]] = "alpaca_eval",
    output_dir: Annotated[Optional[Path], _GEN_OPTIONS["output_dir"]] = None,
    backend: Annotated[str, _GEN_OPTIONS["backend"]] = "auto",
    limit: Annotated[Optional[int], _GEN_OPTIONS["limit"]] = None,
    max_new_tokens: Annotated[int, _GEN_OPTIONS["max_new_tokens"]] = 256,
    temperature: Annotated[float, _GEN_OPTIONS["temperature"]] = 0.0,
    top_p: Annotated[float, _GEN_OPTIONS["top_p"]] = 1.0,
    seed: Annotated[int, _GEN_OPTIONS["seed"]] = 0,
    max_num_seqs: Annotated[int, _GEN_OPTIONS["max_num_seqs"]] = 256,
    batch_size: Annotated[int, _GEN_OPTIONS["batch_size"]] = 16,
    generator: Annotated[Optional[str], _GEN_OPTIONS["generator"]] = None,
):
    """Answer an eval set's prompts with a checkpoint (its own chat template). Re-running resumes."""
    out = _generate(model, eval_set, output_dir, backend, limit, max_new_tokens, temperature, top_p, seed, max_num_seqs,
                    batch_size, generator)
    meta = json.loads((out / "generation_meta.json").read_text())
    console.print(f"[bold green]outputs:[/] {out / 'model_outputs.json'} ({meta['n']} answers, {meta['generated_now']} new, "
                  f"backend {meta['backend_version']}" + (f", {meta['tokens_per_s']} tokens/s)" if meta["tokens_per_s"] else ")"))


@app.command()
@clean_errors
def serve(
    model: Annotated[str, typer.Argument(help="checkpoint dir, Hub id or smollm2-135m-instruct")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 = pick a free one)")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(help="require this key from clients")] = None,
    name: Annotated[Optional[str], typer.Option(help="served model name (default: directory name)")] = None,
    max_model_len: Annotated[Optional[int], typer.Option(help="longest prompt + answer in tokens (default: the model's context, at most 4096)")] = None,
):
    """Serve a checkpoint with vLLM's OpenAI-compatible API until Ctrl-C."""
    from .serve import serve as serve_ctx

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM shuts down as cleanly as Ctrl-C
    try:
        with serve_ctx(model, host, port, api_key, name, max_model_len=max_model_len) as url:
            console.print(f"[bold green]serving[/] {url}  (OpenAI-compatible; Ctrl-C stops)", highlight=False)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopped")


def _table(rows: list[dict], diffs: list[dict]) -> Table:
    def pct(x):
        return f"{100 * x:.1f}"

    table = Table("model", "vs reference", "n", "win rate % [95% CI]", "LC win rate % [95% CI]", "avg len (model/ref)",
                  "W/T/L", "judge failures", title="Judged win rates (ties count one half; paired bootstrap over prompts)")
    for r in rows:
        table.add_row(r["model"], r["reference"], str(r["n"]),
                      f"{pct(r['win_rate'])} [{pct(r['win_rate_ci95'][0])}, {pct(r['win_rate_ci95'][1])}]",
                      f"{pct(r['lc_win_rate'])} [{pct(r['lc_win_rate_ci95'][0])}, {pct(r['lc_win_rate_ci95'][1])}]",
                      f"{r['avg_len_model']:.0f} / {r['avg_len_ref']:.0f}", f"{r['wins']}/{r['ties']}/{r['losses']}",
                      str(r["judge_failures"]))
    for d in diffs:
        table.add_row(f"{d['a']} - {d['b']}", "(paired)", str(d["n"]),
                      f"{pct(d['win_rate_diff'])} [{pct(d['win_rate_diff_ci95'][0])}, {pct(d['win_rate_diff_ci95'][1])}]",
                      f"{pct(d['lc_win_rate_diff'])} [{pct(d['lc_win_rate_diff_ci95'][0])}, {pct(d['lc_win_rate_diff_ci95'][1])}]",
                      "", "", "")
    return table


def _judge_and_report(outputs: list[str], against: str, judge_name: str, judge_options, n_boot: int, seed: int,
                      json_out: Optional[Path], limit: Optional[int] = None) -> dict:
    from .judges import card
    from .judges.run import judge_pair, outputs_side, reference_side, write_annotations
    from .metrics import paired_difference

    reference = reference_side(against, limit)  # read (and validate) every input before any judge starts
    sides = [outputs_side(path) for path in outputs]
    judge = _judge(judge_name, judge_options)
    rows, frames = [], []
    for path, side in zip(outputs, sides):
        t0 = time.time()
        summary, frame, verdicts = judge_pair(judge, side, reference, n_boot, seed)
        summary["judge_seconds"] = round(time.time() - t0, 2)
        summary["outputs"] = str(path)
        rows.append(summary)
        frames.append((side.name, frame))
        ann = Path(json_out).with_suffix("") if json_out else None
        where = Path(str(ann) + f".{_slug(side.name)}.annotations.jsonl") if ann else \
            (Path(path) if Path(path).is_dir() else Path(path).parent) / f"annotations_{judge_name}_vs_{_slug(reference.name)}.jsonl"
        write_annotations(where, frame, verdicts, side, reference)
    diffs = [{"a": frames[0][0], "b": name, **paired_difference(frames[0][1], frame, n_boot, seed)} for name, frame in frames[1:]]
    measured = card(judge_name) or {}
    report = {"results": rows, "paired_differences": diffs,
              "judge_card": {k: measured.get(k) for k in ("agreement", "agreement_ci95", "position_consistency", "held_out_pairs",
                                                           "null_model_check")}}
    console.print(_table(rows, diffs))
    if measured:
        lo, hi = measured["agreement_ci95"]
        console.print(f"judge {judge_name}: agreement with held-out human labels {100 * measured['agreement']:.1f}% "
                      f"[{100 * lo:.1f}, {100 * hi:.1f}] on {measured['held_out_pairs']} pairs")
    if measured and not measured["null_model_check"]["passed"]:
        worst = max(measured["null_model_check"]["null_win_rates"].items(), key=lambda kv: kv[1])
        console.print(f"[bold yellow]warning:[/] judge {judge_name} failed its null-model check: the constant answer "
                      f"{worst[0]!r} beat the reference on {100 * worst[1]:.0f}% of prompts (judge card). Read these win "
                      "rates with that in mind; an LLM judge (--judge llm) is the stronger choice where one can be served.")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
        console.print(f"[bold green]json:[/] {json_out}")
    else:
        console.print_json(data=report)
    return report


@app.command()
@clean_errors
def judge(
    outputs: Annotated[list[str], typer.Argument(help="model outputs (model_outputs.json, generations.jsonl or their dir); "
                                                  "with several, each is also compared with the first (paired)")],
    against: Annotated[str, typer.Option(help="reference: an eval set name (its reference outputs) or an outputs file")] = "alpaca_eval",
    judge: JudgeOpt = "local-rm",
    judge_option: JudgeOptions = None,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report here")] = None,
):
    """Win rate, length-controlled win rate and 95% CIs of outputs judged against a reference."""
    _judge_and_report(outputs, against, judge, judge_option, n_boot, seed, json_out)


@app.command("eval")
@clean_errors
def eval_(
    model: Annotated[str, typer.Argument(help="checkpoint dir, Hub id or smollm2-135m-instruct")],
    against: Annotated[str, typer.Option(help="reference: eval set name (its reference outputs) or an outputs file")] = "alpaca_eval",
    eval_set: Annotated[str, _GEN_OPTIONS["eval_set"]] = "alpaca_eval",
    judge: JudgeOpt = "local-rm",
    judge_option: JudgeOptions = None,
    limit: Annotated[Optional[int], _GEN_OPTIONS["limit"]] = None,
    backend: Annotated[str, _GEN_OPTIONS["backend"]] = "auto",
    max_new_tokens: Annotated[int, _GEN_OPTIONS["max_new_tokens"]] = 256,
    max_num_seqs: Annotated[int, _GEN_OPTIONS["max_num_seqs"]] = 256,
    output_dir: Annotated[Optional[Path], _GEN_OPTIONS["output_dir"]] = None,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report here")] = None,
):
    """Generate (greedy) with a checkpoint and judge the answers against a reference, in one go."""
    out = _generate(model, eval_set, output_dir, backend, limit, max_new_tokens, 0.0, 1.0, 0, max_num_seqs, 16, None)
    _judge_and_report([str(out)], against, judge, judge_option, n_boot, 0,
                      json_out or out / f"eval_{_slug(judge)}_vs_{_slug(against)}.json", limit)


@judges_app.command("list")
def judges_list():
    """The judges, with the agreement with held-out human labels measured for each (its judge card)."""
    from .judges import card, judges

    table = Table("judge", "description", "agreement % [95% CI]", "held-out pairs", "position consistency",
                  "prefers longer (judge/humans)", "null check")
    for name, spec in sorted(judges().items()):
        c = card(name)
        if not c:
            table.add_row(name, spec.description.split(". ")[0], "not measured", "", "", "", "")
            continue
        sets = c["sets"].values()
        lj = [s["judge_prefers_longer"] for s in sets if s["judge_prefers_longer"] is not None]
        lh = [s["humans_prefer_longer"] for s in sets]
        null = c["null_model_check"]
        table.add_row(name, spec.description.split(". ")[0],
                      f"{100 * c['agreement']:.1f} [{100 * c['agreement_ci95'][0]:.1f}, {100 * c['agreement_ci95'][1]:.1f}]",
                      str(c["held_out_pairs"]), f"{c['position_consistency']:.2f}",
                      " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(lj, lh)),
                      f"{'pass' if null['passed'] else 'FAIL'} (worst {100 * null['worst']:.0f}%)")
    console.print(table)


@judges_app.command("train")
@clean_errors
def judges_train(
    name: Annotated[str, typer.Argument(help="the trainable judge")] = "local-rm",
    limit: Annotated[Optional[int], typer.Option(help="at most N training pairs per human-labelled set")] = None,
    seed: Annotated[int, typer.Option(help="split seed")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="where to write the head (default: beside the judge)")] = None,
):
    """Train the local judge's head on the training part of the human preference sets (resumable)."""
    if name != "local-rm":
        raise KeyError(f"judge '{name}' is not trainable here (only local-rm is)")
    from .judges.local_rm import DEFAULT_HEAD, train_head

    head = train_head(out or DEFAULT_HEAD, seed=seed, limit=limit)
    console.print(f"[bold green]head:[/] {out or DEFAULT_HEAD} (layer {head.layer}, C {head.meta['C']}, "
                  f"validation agreement {head.meta['validation_agreement']:.3f})")


@judges_app.command("measure")
@clean_errors
def judges_measure(
    name: Annotated[str, typer.Argument(help="judge name")] = "local-rm",
    judge_option: JudgeOptions = None,
    pairs: Annotated[Optional[int], typer.Option(help="at most N held-out pairs per set (default: all)")] = None,
    null_prompts: Annotated[int, typer.Option(help="AlpacaEval prompts for the null-model check")] = 100,
    seed: Annotated[int, typer.Option(help="split seed (must match the judge's training split)")] = 0,
    card_out: Annotated[Optional[Path], typer.Option("--card", help="where to write the card (default: beside the judge)")] = None,
):
    """Measure a judge on held-out human preference pairs and write its judge card."""
    from .judges import write_card
    from .judges.card import measure
    from .judges.local_rm import human_pairs

    judge_obj = _judge(name, judge_option)
    held_out = {k: (v[:pairs] if pairs else v) for k, (_, v) in human_pairs(seed).items()}
    notes = ("held-out = the 30% hash split of each set that local-rm never trains on" if name == "local-rm"
             else "held-out human pairs (the same split local-rm is measured on)")
    data = measure(judge_obj, held_out, null_prompts, notes)
    path = write_card(name, data, card_out)
    console.print(f"[bold green]card:[/] {path}  agreement {100 * data['agreement']:.1f}% "
                  f"[{100 * data['agreement_ci95'][0]:.1f}, {100 * data['agreement_ci95'][1]:.1f}]")
