"""Data parallelism for the offline vLLM engine, which vLLM does not offer inside one process
(``LLM(data_parallel_size>1)`` is refused): one process per rank, each with its own devices (GPUs, or on CPU its
share of the cores) and its own engine, the generate stage's checkpoints dealt round-robin between them."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("bench.generation")


def rank_env(rank: int, ranks: int, tensor_parallel_size: int) -> dict[str, str]:
    """The devices of data-parallel rank ``rank``: its ``tensor_parallel_size`` GPUs, or on CPU its share of the
    cores (its slice of the binding for all ``ranks x tensor_parallel_size`` worker processes)."""
    import torch

    from .engine import cpu_binding

    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if len(devices) < ranks * tensor_parallel_size:
            raise ValueError(f"data_parallel_size {ranks} x tensor_parallel_size {tensor_parallel_size} needs "
                             f"{ranks * tensor_parallel_size} GPUs; {len(devices)} visible")
        return {"CUDA_VISIBLE_DEVICES": ",".join(devices[rank * tensor_parallel_size:(rank + 1) * tensor_parallel_size])}
    lists = cpu_binding(list(os.sched_getaffinity(0)), ranks * tensor_parallel_size).split("|")
    return {"VLLM_CPU_OMP_THREADS_BIND": "|".join(lists[rank * tensor_parallel_size:(rank + 1) * tensor_parallel_size])}


def _rank_main(env: dict, *args) -> None:
    os.environ.update(env)  # before vLLM (and bench.engine) read it in this fresh process
    from .generation import generate_evals

    generate_evals(*args)


def data_parallel(jobs, ranks: int, prompts, sampling, dataset, chunk, options, allow_template_change) -> None:
    """Data parallelism for the offline engine, which vLLM does not offer in one process: ``ranks`` processes,
    each with its own devices and engine, the checkpoints dealt round-robin between them. Each checkpoint's rows
    are written by the one process that owns it, so resuming works as with one engine."""
    import multiprocessing

    from .procs import lifeline

    lifeline()  # the rank processes (and their engines) end with us, even if we are SIGKILLed
    ctx = multiprocessing.get_context("spawn")  # vLLM and CUDA need fresh processes
    procs = []
    for rank in range(min(ranks, len(jobs))):
        env = rank_env(rank, ranks, options.get("tensor_parallel_size", 1))
        args = (jobs[rank::ranks], prompts, "vllm", sampling, dataset, chunk, options, allow_template_change)
        log.info("[generate] data-parallel rank %d/%d (%s): %d checkpoints", rank, ranks, env, len(args[0]))
        procs.append(ctx.Process(target=_rank_main, args=(env, *args), name=f"bench-generate-dp{rank}"))
        procs[-1].start()
    for p in procs:
        p.join()
    failed = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"data-parallel generation failed in {', '.join(failed)}; its log is above; "
                           "re-running resumes the finished rows")
