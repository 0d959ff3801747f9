"""Evaluation commands: ``bench generate``, ``serve``, ``judge``, ``eval`` and ``judges list|train|measure``."""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cli_common import app, console, fail_cleanly
from .stages.config import DEFAULT_JUDGE

judges_app = typer.Typer(help="Judges: list them with their measured agreement, train and measure them.", no_args_is_help=True)
app.add_typer(judges_app, name="judges")

JudgeOpt = Annotated[str, typer.Option("--judge", help="judge name (bench judges list)")]
JudgeOptions = Annotated[Optional[list[str]], typer.Option("--judge-option", help="KEY=VALUE judge option (repeatable)")]


def clean_errors(fn):
    """Also turn endpoint, server and setup errors into one red line (after ``fail_cleanly``'s data errors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .endpoint import EndpointError
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
              batch_size, generator, allow_template_change=False) -> Path:
    from .data import EvalPrompt, load
    from .generation import Sampling, backend_name, generate_eval
    from .models import resolve
    from .validate import check_generate_options

    check_generate_options(model, eval_set, output_dir, backend, limit=limit, max_new_tokens=max_new_tokens,
                           temperature=temperature, top_p=top_p, seed=seed, max_num_seqs=max_num_seqs,
                           batch_size=batch_size)
    prompts = load(eval_set, limit=limit)
    if not isinstance(prompts[0], EvalPrompt):
        from .data import DataError

        raise DataError(eval_set, None, None, "is not an eval set of prompts")
    generator = generator or Path(resolve(model)).name
    out = Path(output_dir) if output_dir else Path("results") / "generations" / _slug(generator) / _slug(eval_set)
    name = backend_name(backend)
    options = {"max_num_seqs": max_num_seqs} if name == "vllm" else {"batch_size": batch_size}
    sampling = Sampling(max_new_tokens, temperature, top_p, seed)
    return generate_eval(model, prompts, out, name, sampling, generator, eval_set, backend_options=options,
                         allow_template_change=allow_template_change)


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
    allow_template_change=typer.Option(help="generate even if the checkpoint's chat template changed since training "
                                            "(recorded in generation_meta.json)"),
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
    allow_template_change: Annotated[bool, _GEN_OPTIONS["allow_template_change"]] = False,
):
    """Answer an eval set's prompts with a checkpoint (its own chat template). Re-running resumes."""
    out = _generate(model, eval_set, output_dir, backend, limit, max_new_tokens, temperature, top_p, seed, max_num_seqs,
                    batch_size, generator, allow_template_change)
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
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs per engine (CPU: worker processes, cores split)")] = 1,
    data_parallel_size: Annotated[int, typer.Option(help="engines side by side, requests balanced between them")] = 1,
    gpu_memory_utilization: Annotated[Optional[float], typer.Option(
        help="share of each GPU's memory the server may take (default 0.85; on CPU 0.3 of memory)")] = None,
):
    """Serve a checkpoint with vLLM's OpenAI-compatible API until Ctrl-C."""
    from .procs import exit_code
    from .serve import Parallel, serve as serve_ctx
    from .validate import between, check_option, int_at_least

    for option, value, rule in (("--tensor-parallel-size", tensor_parallel_size, int_at_least(1)),
                                ("--data-parallel-size", data_parallel_size, int_at_least(1)),
                                ("--gpu-memory-utilization", gpu_memory_utilization, between(0, 1))):
        check_option(option, value, rule)
    parallel = Parallel(tensor_parallel_size, data_parallel_size, gpu_memory_utilization)

    # Ctrl-C and SIGTERM stop the server cleanly (fail_cleanly installs both handlers explicitly: a background job
    # of a script inherits SIGINT ignored), then exit 130 / 143.
    try:
        with serve_ctx(model, host, port, api_key, name, max_model_len=max_model_len, parallel=parallel) as server:
            console.print(f"[bold green]serving[/] {server.url}  (OpenAI-compatible; Ctrl-C stops)", highlight=False)
            server.wait()
    except KeyboardInterrupt as e:
        console.print("stopped")
        raise typer.Exit(exit_code(e)) from None


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
                      json_out: Optional[Path], limit: Optional[int] = None, allow_unvalidated: bool = False) -> dict:
    from .judges.gate import require_validated
    from .judges.run import judge_pair, outputs_side, reference_side, write_annotations
    from .metrics import paired_difference

    reference = reference_side(against, limit)  # read (and validate) every input before any judge starts
    sides = [outputs_side(path) for path in outputs]
    gate = require_validated(judge_name, allow_unvalidated)
    judge = _judge(judge_name, judge_options)
    rows, frames = [], []
    for path, side in zip(outputs, sides):
        t0 = time.time()
        summary, frame, verdicts = judge_pair(judge, side, reference, n_boot, seed)
        summary["judge_seconds"] = round(time.time() - t0, 2)
        summary["outputs"] = str(path)
        summary["validated"], summary["reason"] = gate["validated"], gate["reason"]
        rows.append(summary)
        frames.append((side.name, frame))
        ann = Path(json_out).with_suffix("") if json_out else None
        where = Path(str(ann) + f".{_slug(side.name)}.annotations.jsonl") if ann else \
            (Path(path) if Path(path).is_dir() else Path(path).parent) / f"annotations_{judge_name}_vs_{_slug(reference.name)}.jsonl"
        write_annotations(where, frame, verdicts, side, reference)
    diffs = [{"a": frames[0][0], "b": name, **paired_difference(frames[0][1], frame, n_boot, seed)} for name, frame in frames[1:]]
    report = {"results": rows, "paired_differences": diffs, "validated": gate["validated"], "reason": gate["reason"],
              "judge_card": gate["summary"]}
    console.print(_table(rows, diffs))
    agreement = (gate["summary"].get("agreement") or {}).get("value")
    if agreement is not None:
        ci = gate["summary"]["agreement"].get("ci95") or [float("nan")] * 2
        longer = gate["summary"]["longer_wins_agreement"]["value"]
        console.print(f"judge {judge_name}: agreement {100 * agreement:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] on its "
                      f"card's held-out pairs" + (f" ('longer answer wins': {100 * longer:.1f}%)" if longer is not None else ""))
    if not gate["validated"]:
        console.print(f"[bold yellow]unvalidated judge:[/] {gate['reason']}; these win rates are recorded as unvalidated.")
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
        console.print(f"[bold green]json:[/] {json_out}")
    else:
        console.print_json(data=report)
    return report


AllowUnvalidated = Annotated[bool, typer.Option("--allow-unvalidated-judge",
                                                help="use a judge without a passing judge card; results are marked unvalidated")]


@app.command()
@clean_errors
def judge(
    outputs: Annotated[list[str], typer.Argument(help="model outputs (model_outputs.json, generations.jsonl or their dir); "
                                                  "with several, each is also compared with the first (paired)")],
    against: Annotated[str, typer.Option(help="reference: an eval set name (its reference outputs) or an outputs file")] = "alpaca_eval",
    judge: JudgeOpt = DEFAULT_JUDGE,
    judge_option: JudgeOptions = None,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report here")] = None,
    allow_unvalidated_judge: AllowUnvalidated = False,
):
    """Win rate, length-controlled win rate and 95% CIs of outputs judged against a reference."""
    _judge_and_report(outputs, against, judge, judge_option, n_boot, seed, json_out, allow_unvalidated=allow_unvalidated_judge)


@app.command("eval")
@clean_errors
def eval_(
    model: Annotated[str, typer.Argument(help="checkpoint dir, Hub id or smollm2-135m-instruct")],
    against: Annotated[str, typer.Option(help="reference: eval set name (its reference outputs) or an outputs file")] = "alpaca_eval",
    eval_set: Annotated[str, _GEN_OPTIONS["eval_set"]] = "alpaca_eval",
    judge: JudgeOpt = DEFAULT_JUDGE,
    judge_option: JudgeOptions = None,
    limit: Annotated[Optional[int], _GEN_OPTIONS["limit"]] = None,
    backend: Annotated[str, _GEN_OPTIONS["backend"]] = "auto",
    max_new_tokens: Annotated[int, _GEN_OPTIONS["max_new_tokens"]] = 256,
    max_num_seqs: Annotated[int, _GEN_OPTIONS["max_num_seqs"]] = 256,
    output_dir: Annotated[Optional[Path], _GEN_OPTIONS["output_dir"]] = None,
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report here")] = None,
    allow_unvalidated_judge: AllowUnvalidated = False,
    allow_template_change: Annotated[bool, _GEN_OPTIONS["allow_template_change"]] = False,
):
    """Generate (greedy) with a checkpoint and judge the answers against a reference, in one go."""
    from .judges.gate import require_validated

    require_validated(judge, allow_unvalidated_judge)  # refuse before spending time on generation
    out = _generate(model, eval_set, output_dir, backend, limit, max_new_tokens, 0.0, 1.0, 0, max_num_seqs, 16, None,
                    allow_template_change)
    _judge_and_report([str(out)], against, judge, judge_option, n_boot, 0,
                      json_out or out / f"eval_{_slug(judge)}_vs_{_slug(against)}.json", limit, allow_unvalidated_judge)


@judges_app.command("list")
def judges_list():
    """The judges, with their judge cards' headline figures (agreement with GPT-4 on held-out pairs, null battery)."""
    from .judges import judges
    from .judges.gate import card_summary

    def fig(entry):
        if not entry or entry.get("value") is None:
            return ""
        ci = entry.get("ci95")
        return f"{100 * entry['value']:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")

    table = Table("judge", "description", "agreement % [95% CI]", "near-equal length %", "longer wins %",
                  "system Spearman", "null battery")
    for name, spec in sorted(judges().items()):
        c = card_summary(name)
        if not c:
            table.add_row(name, spec.description.split(". ")[0], "not measured", "", "", "", "")
            continue
        null = c["null_battery"]
        rho = c["system_spearman"]
        table.add_row(name, spec.description.split(". ")[0], fig(c["agreement"]), fig(c["near_equal_agreement"]),
                      fig(c["longer_wins_agreement"]), "" if rho.get("value") is None else f"{rho['value']:.2f}",
                      f"{'pass' if null['passed'] else 'FAIL'} (worst loses {100 * null['worst_loss_rate']:.0f}%)")
    console.print(table)


@judges_app.command("train")
@clean_errors
def judges_train(
    name: Annotated[str, typer.Argument(help="the trainable judge: mimic-gpt4 or local-rm")] = "mimic-gpt4",
    limit: Annotated[Optional[int], typer.Option(help="local-rm: at most N training pairs per human-labelled set")] = None,
    seed: Annotated[int, typer.Option(help="split / model seed")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="where to write the model (default: beside the judge)")] = None,
):
    """Rebuild a local judge from the data kit (mimic-gpt4: every GPT-4 judgement; local-rm: human pairs)."""
    if name == "mimic-gpt4":
        from .judges.mimic_gpt4 import DEFAULT_MODEL, train

        meta = train(out or DEFAULT_MODEL, seed)
        console.print(f"[bold green]model:[/] {out or DEFAULT_MODEL} ({meta['pairs']} pairs, {meta['train_seconds']} s)")
        return
    if name != "local-rm":
        raise KeyError(f"judge '{name}' is not trainable here (mimic-gpt4 and local-rm are)")
    from .judges.local_rm import DEFAULT_HEAD, train_head

    head = train_head(out or DEFAULT_HEAD, seed=seed, limit=limit)
    console.print(f"[bold green]head:[/] {out or DEFAULT_HEAD} (layer {head.layer}, C {head.meta['C']}, "
                  f"validation agreement {head.meta['validation_agreement']:.3f})")


@judges_app.command("measure")
@clean_errors
def judges_measure(
    name: Annotated[str, typer.Argument(help="judge name")] = "mimic-gpt4",
    judge_option: JudgeOptions = None,
    pairs: Annotated[Optional[Path], typer.Option(help="a pair file in the kit's format (judge/ae1_gpt4_pairs.jsonl.gz) "
                                                       "the judge never trained on (default: the kit, cross-validated)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="a seeded subsample of at most N pairs per set (slow judges)")] = None,
    folds: Annotated[int, typer.Option(help="grouped cross-validation folds (judges refitted per fold)")] = 3,
    seed: Annotated[int, typer.Option(help="split seed")] = 0,
    compare: Annotated[Optional[str], typer.Option(help="another judge measured beside it on a subsample")] = "local-rm",
    compare_pairs: Annotated[int, typer.Option(help="test pairs per set for --compare")] = 300,
    human_labels: Annotated[bool, typer.Option(help="the older card: agreement with held-out human preference pairs")] = False,
    card_out: Annotated[Optional[Path], typer.Option("--card", help="where to write the card (default: beside the judge)")] = None,
):
    """Measure a judge against GPT-4's verdicts on pairs it never trained on and write its judge card."""
    from .config import parse_overrides
    from .judges import write_card

    if human_labels:
        from .judges.card import measure
        from .judges.local_rm import human_pairs

        data = measure(_judge(name, judge_option), {k: v for k, (_, v) in human_pairs(seed).items()}, 100,
                       "held-out = the 30% hash split of each human-labelled set that local-rm never trains on")
    else:
        from .judges.card_gpt4 import measure_judge, reproduce_check

        data = measure_judge(name, parse_overrides(judge_option or []), str(pairs) if pairs else None, folds, seed, limit,
                             compare if compare and compare != name else None, compare_pairs)
        if name == "mimic-gpt4" and not pairs:
            data["reproduce"] = reproduce_check(seed)
    path = write_card(name, data, card_out)
    console.print(f"[bold green]card:[/] {path}")
    from .judges.gate import card_summary

    if card_out is None:
        console.print_json(data=card_summary(name))
