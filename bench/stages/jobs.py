"""A stage's work as a list of independent jobs, so that an executor can place them: the local executor runs
them in order in this process (``bench run``'s default), the Ray executor (``bench.stages.ray_executor``)
sends them to a cluster as tasks. A job is one resumable unit (a training run, one engine's checkpoints, one
suite pass): whoever runs it twice gets the finished work read back, not redone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Job:
    """``call(*args)``, named ``key``; ``needs`` are the keys of jobs of the same stage that must finish first
    (a reward model before its PPO). ``gpus``/``cpus``: what the job uses on a GPU node and on a CPU node."""

    key: str
    call: Callable
    args: tuple = ()
    needs: tuple[str, ...] = ()
    gpus: int = 1
    cpus: int = 1
    memory: int = 0  # bytes of host memory it asks Ray for (``bench.stages.memory``); 0: none
    options: dict = field(default_factory=dict)  # keyword arguments of ``call``

    def __call__(self):
        return self.call(*self.args, **self.options)


def run_locally(jobs: list[Job]) -> list:
    """The default executor: every job in list order (which already honours ``needs``), in this process."""
    from ..console import progress

    out = []
    for i, job in enumerate(jobs):
        progress(f"jobs done (now {job.key})", i, len(jobs))
        out.append(job())
    return out
