"""Several processes, one writer: what a recipe needs to be correct under ``accelerate launch``.

Every rank runs the same program. Decisions that read or change the output directory (is this run already
trained? which checkpoint do we resume?) are taken by rank 0 and broadcast, so no two ranks can disagree or
race on the same files; everything a run leaves behind (checkpoints, the final weights, ``bench_run.json``) is
written by rank 0 while the others wait at a barrier. Without a launcher (``WORLD_SIZE`` unset or 1) every
helper here is a no-op, so single-process runs pay nothing.

Sharded engines (DeepSpeed ZeRO-3, FSDP) hold each weight on one rank only: ``whole_model`` gathers them on
rank 0 for the final save.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from .data.errors import DataError

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the launcher's process group (gloo on CPU, NCCL on GPUs) and pin this rank's device, before any
    model loads; accelerate's ``PartialState`` does both, and the ``Trainer`` reuses the group."""
    if world_size() > 1 and not torch.distributed.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def engine_asked() -> str | None:
    """The sharded engine the launcher's accelerate config asks for (``"FSDP"``, ``"DeepSpeed ZeRO-N"``), or None
    (DDP, or no launcher): recipes that cannot honour it say so instead of silently running DDP."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "FSDP"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return f"DeepSpeed ZeRO-{os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '?')}"
    return None


def launch() -> dict:
    """How this run was launched, as part of a Trainer run's identity: nothing for one process, else the number
    of processes and the engine. ``batch_size`` is per process, so another number is another global batch, and a
    checkpoint written under one engine (FSDP's shards, DeepSpeed's) does not load under another."""
    return {} if world_size() == 1 else {"processes": world_size(), "engine": engine_asked() or "DDP"}


def _active() -> bool:
    return world_size() > 1 and torch.distributed.is_initialized()


def barrier() -> None:
    if _active():
        torch.distributed.barrier()


def decided_by_main(decide: Callable[[], T]) -> T:
    """``decide()`` on rank 0 only (it may write files), its result on every rank."""
    if not _active():
        return decide()
    box = [decide() if is_main() else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(items: list) -> list:
    """The concatenation of every rank's ``items``, in rank order, on every rank."""
    if not _active():
        return list(items)
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, list(items))
    return [x for part in out for x in part]


@contextlib.contextmanager
def main_writes() -> Iterator[bool]:
    """``with main_writes() as writer: if writer: ...``: rank 0 writes, then every rank leaves together."""
    barrier()  # nobody writes while another rank may still be reading or writing the same files
    try:
        yield is_main()
    finally:
        barrier()


def weightless_copy(model: torch.nn.Module) -> torch.nn.Module:
    """``model``'s modules with every parameter on the meta device (no memory): taken before a sharded engine
    wraps the model, it is what rank 0 later fills with the gathered weights (``whole_model``)."""
    memo = {id(p): torch.nn.Parameter(p.detach().to("meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)  # buffers (rotary tables) are small and copied as they are


def whole_model(trainer, skeleton: torch.nn.Module) -> torch.nn.Module | None:
    """The trained model with every weight whole, on rank 0 (None on the others); called on every rank.
    FSDP (1 and 2) and DeepSpeed ZeRO-3 shard parameters across ranks: their full state dict is gathered (to
    rank 0's host memory on GPUs; on CPU onto every rank, since torch's CPU offload of a CPU FSDP1 model
    segfaults) and fills ``skeleton`` (``weightless_copy`` of the model as the Trainer got it). Calling
    ``state_dict()`` inside ``summon_full_params`` instead segfaults too. DDP and ZeRO-1/2 keep a full copy
    everywhere: the model itself."""
    if getattr(trainer, "is_fsdp_enabled", False):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(trainer.model_wrapped, options=StateDictOptions(
            full_state_dict=True, cpu_offload=torch.cuda.is_available()))
    elif getattr(trainer, "is_deepspeed_enabled", False) and _zero_stage(trainer) == 3:
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)  # needs zero3_save_16bit_model
    else:
        return trainer.model if is_main() else None
    if not is_main():
        return None
    skeleton.load_state_dict(state, assign=True)
    if hasattr(skeleton, "tie_weights"):
        skeleton.tie_weights()  # one tensor again for weights the model shares (e.g. embeddings and LM head)
    return skeleton


def end_partitioned_construction() -> None:
    """Models built from here on are whole again. A DeepSpeed ZeRO-3 Trainer's arguments turn on a process-wide
    switch in transformers (``is_deepspeed_zero3_enabled``) that builds every later model already partitioned
    over the ranks (``deepspeed.zero.Init``, whose broadcasts every rank must join), and accelerate keeps it on
    for the life of the process. Left on, rank 0 building the reward-model checkpoint alone waits forever for the
    other ranks, and the next recipe's start model is born partitioned. Called once the weights are gathered."""
    from transformers.integrations import is_deepspeed_zero3_enabled, unset_hf_deepspeed_config

    if is_deepspeed_zero3_enabled():
        unset_hf_deepspeed_config()


def _zero_stage(trainer) -> int:
    plugin = trainer.accelerator.state.deepspeed_plugin
    return int(plugin.zero_stage) if plugin is not None else 0


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks (a new tensor, on every rank); ``t`` itself alone."""
    if not _active():
        return t
    t = t.detach().clone()
    torch.distributed.all_reduce(t)
    return t


def per_rank(n: int, field: str, source: str) -> int:
    """``n`` (``field`` of ``source``) split over the ranks: it must divide by their number, or the ranks would
    not take the same steps (one sentence otherwise)."""
    if n % world_size():
        raise DataError(source, None, field, f"{field} = {n} does not divide by the {world_size()} launched "
                                             f"processes: make it a multiple of {world_size()}")
    return n // world_size()


def share(items: list, field: str, source: str) -> list:
    """This rank's contiguous, equal share of ``items`` (``per_rank``); all of them alone."""
    k = per_rank(len(items), field, source)
    return items[rank() * k: (rank() + 1) * k]


def synchronised(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel under a launcher: its forward, then ``backward()``, leave every
    rank with the gradient averaged over ranks (rank 0's weights broadcast first); ``module`` itself alone."""
    if not _active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)
