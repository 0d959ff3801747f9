"""The untrained model (``base``) and every trained policy at every seed answer the eval prompts; the controls'
answers are written beside them (a constant answer; another eval set's reference answers)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import BASE, RunConfig
from .jobs import Job, run_locally
from .memory import ENGINE_GIB, request

log = logging.getLogger("bench.run")

NAME = "generate"
DEPENDS = ("model", "methods", "seeds", "eval_set", "eval_limit", "max_new_tokens", "generation_backend", "controls",
           "allow_template_change")


def output_dir(run: RunConfig, name: str, seed: int | None = None) -> Path:
    return run.path("generations", name, seed)


def reads(run: RunConfig) -> list[Path]:
    return [Path(run.checkpoint(p, s)) / "bench_run.json" for p, s in run.units() if p != BASE and s is not None]


def writes(run: RunConfig) -> list[Path]:
    return [output_dir(run, p, s) / ("generations.jsonl" if p in ([BASE] + run.policies()) else "model_outputs.json")
            for p, s in run.units()]


def control_outputs(run: RunConfig, kind: str, prompts: list) -> list[str]:
    """The null control answers every prompt with one constant text; the positive control answers with the
    reference outputs of another eval set over the same instructions (matched by id)."""
    from ..data import load

    value = run.controls[kind]
    if kind == "null":
        return [str(value)] * len(prompts)
    answers = {p.id: p.reference for p in load(value)}
    missing = [p.id for p in prompts if not (answers.get(p.id) or "").strip()]
    if missing:
        from ..data import DataError

        raise DataError(value, None, "reference", f"no answer for prompt id {missing[0]} of {run.eval_set} "
                                                  f"({len(missing)} missing): it cannot be the positive control")
    return [answers[p.id] for p in prompts]


def write_control(run: RunConfig, name: str, kind: str, prompts: list) -> None:
    """An AlpacaEval-format ``model_outputs.json`` (instruction, output, generator) for a control."""
    from ..generation import instruction_text

    rows = [{"instruction": instruction_text(p.prompt), "output": out, "generator": name, "dataset": run.eval_set,
             "id": p.id, "prompt": p.prompt} for p, out in zip(prompts, control_outputs(run, kind, prompts))]
    from ..atomic import atomic_write_json

    atomic_write_json(output_dir(run, name) / "model_outputs.json", rows, indent=1, ensure_ascii=False)


def jobs(run: RunConfig) -> list[Job]:
    """The controls are written here (they need no model); then one job per engine group: the checkpoints that
    share an ``engine_key`` go to one vLLM engine, which swaps each one's weights in (HF: one job each)."""
    from ..data import load
    from ..generation import backend_name

    prompts = load(run.eval_set, limit=run.eval_limit)
    for name, kind in run.controls_named().items():
        write_control(run, name, kind, prompts)
    todo = [(policy, run.checkpoint(policy, seed), output_dir(run, policy, seed))
            for policy, seed in run.units() if policy not in run.controls_named()]
    log.info("[generate] %d checkpoints on %d %s prompts", len(todo), len(prompts), run.eval_set)
    groups: dict[str, list] = {}
    vllm = backend_name(run.generation_backend) == "vllm"
    for job in todo:
        groups.setdefault(_engine_group(job[1]) if vllm else str(job[2]), []).append(job)
    ranks = run.tensor_parallel_size * run.data_parallel_size if vllm else 1
    memory = request(run, "generate", engine_gib=ENGINE_GIB * ranks if vllm else 0.0)
    return [Job("generate/" + "+".join(str(out.relative_to(run.dir / "generations")) for _, _, out in group),
                generate_group, (run, group, prompts), gpus=ranks, cpus=ranks, memory=memory)
            for group in groups.values()]


def _engine_group(checkpoint: str) -> str:
    from ..engine import engine_key
    from ..models import load_tokenizer, resolve

    return engine_key(resolve(checkpoint), load_tokenizer(checkpoint))


def generate_group(run: RunConfig, group: list, prompts: list) -> None:
    from ..generation import Sampling, generate_evals

    generate_evals(group, prompts, run.generation_backend, Sampling(max_new_tokens=run.max_new_tokens),
                   dataset=run.eval_set, backend_options=engine_options(run),
                   allow_template_change=run.allow_template_change)


def run(run: RunConfig) -> None:
    run_locally(jobs(run))


def engine_options(run: RunConfig) -> dict:
    """The vLLM engine's sizes (HF ``generate`` ignores them); they change speed, not answers, so they are not
    in ``DEPENDS``."""
    from ..generation import backend_name

    if backend_name(run.generation_backend) != "vllm":
        return {}
    share = {"gpu_memory_utilization": run.gpu_memory_utilization} if run.gpu_memory_utilization else {}
    return {"tensor_parallel_size": run.tensor_parallel_size, "data_parallel_size": run.data_parallel_size, **share}
