"""``bench run --executor ray``: the train, generate and suite stages' jobs as Ray tasks; judge and report stay
here, on the driver. Stages still run one after another (a stage reads what the previous one wrote); inside a
stage the jobs run side by side, as far as the cluster's resources allow, each a task that asks for what it
uses: one GPU per training run or suite pass, tensor x data parallel GPUs per engine group (on a cluster
without GPUs the same numbers in CPUs). A job that ``needs`` another (PPO its reward model) is given that
task's result, so Ray starts it only after. Finished work is read back by the job itself, so a re-run after
a killed task or driver resumes exactly as the local executor does.

Shared-filesystem assumptions: every node sees this checkout (``bench`` importable), the driver's working
directory (the run's ``root`` is relative to it), ``BENCH_DATA``, ``BENCH_CACHE`` (the converted model) and the
Hub cache at the same paths; ``BENCH_*``, ``HF_*`` and ``PYTHONPATH`` are passed to the workers.
"""

from __future__ import annotations

import logging
import os
import time

from .jobs import Job

log = logging.getLogger("bench.run")

PASSED_ENV = ("BENCH_", "HF_", "TRANSFORMERS_", "PYTHONPATH", "TOKENIZERS_PARALLELISM")


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` made on this node), or start a local
    one (``num_cpus`` for tests). Re-entrant: an already connected driver stays connected."""
    import ray

    if ray.is_initialized():
        return
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    started = time.perf_counter()
    ray.init(address=address, num_cpus=num_cpus, runtime_env={"env_vars": env}, log_to_driver=True,
             configure_logging=False)
    log.info("ray: connected in %.1f s; cluster %s", time.perf_counter() - started, ray.cluster_resources())


class JobError(RuntimeError):
    """A user error inside a task (bad data, a bad option), carried back as its one sentence: the original
    exception types (``DataError``) do not survive Ray's pickling."""

    user_error = True  # bench.cli prints it as one line, exit 2


def _run_job(cwd: str, job: Job, *after) -> tuple[str, float, str]:
    """A task: the job, in the driver's working directory (relative paths in the run config mean the same)."""
    import socket

    os.chdir(cwd)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    try:
        job()
    except Exception as e:
        from ..cli_common import user_error_message

        message = user_error_message(e)
        if message is None:
            raise  # a bug: Ray brings its traceback back
        raise JobError(f"{job.key}: {message}") from None
    return job.key, time.perf_counter() - started, socket.gethostname()


def check_memory(jobs: list[Job], largest: float) -> None:
    """A task asking for more memory than any node has would wait for ever (Ray only logs it as infeasible)."""
    from .memory import GIB

    for job in jobs:
        if job.memory > largest:
            raise JobError(f"{job.key}: asks Ray for {job.memory / GIB:.1f} GiB of memory, more than any node has "
                           f"({largest / GIB:.1f} GiB); set ray_memory_gb in the run config (bench/stages/memory.py "
                           "says how the request is estimated)")


def run_jobs(jobs: list[Job], stage: str) -> None:
    """Submit every job, dependencies as task arguments, and wait, logging each finished one; the first failure
    cancels the rest and is raised here as its own exception type (a user error stays one sentence). Ray does not
    retry a task whose worker died (``max_retries=0``): a retry would hide a kill or an out-of-memory death; the
    researcher re-runs, and each job resumes from what it finished (``bench.checkpoints``)."""
    import ray

    if len({job.key for job in jobs}) != len(jobs):
        raise ValueError(f"[{stage}] two jobs share a key: {sorted(job.key for job in jobs)}")
    gpu_cluster = ray.cluster_resources().get("GPU", 0) > 0
    check_memory(jobs, max((n["Resources"].get("memory", 0) for n in ray.nodes() if n["Alive"]), default=0))
    task = ray.remote(_run_job)
    refs: dict[str, ray.ObjectRef] = {}
    for job in jobs:
        resources = {"num_gpus": job.gpus, "num_cpus": 1} if gpu_cluster else {"num_cpus": job.cpus, "num_gpus": 0}
        resources["memory"] = job.memory
        deps = [refs[k] for k in job.needs if k in refs]
        refs[job.key] = task.options(name=job.key, max_retries=0, **resources).remote(os.getcwd(), job, *deps)
    keys = {ref: key for key, ref in refs.items()}
    pending, done = list(refs.values()), 0
    log.info("[%s] %d jobs sent to Ray", stage, len(pending))
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            key, seconds, node = ray.get(ready[0])
        except ray.exceptions.RayError as e:
            for ref in pending:
                ray.cancel(ref, force=True)
            if isinstance(e, ray.exceptions.RayTaskError):
                if isinstance(e.cause, JobError):
                    raise JobError(str(e.cause)) from None
                raise e.as_instanceof_cause() from None
            # the worker died (killed, out of memory) or the node was lost: nothing to report but that
            raise JobError(f"{keys[ready[0]]}: its Ray task was lost ({type(e).__name__}); run the same command "
                           "again to resume: finished jobs are read back") from None
        done += 1
        log.info("[%s] %d/%d done: %s in %.0f s on %s", stage, done, len(refs), key, seconds, node)
