"""Sampling from a policy that is being trained: prompts in a resumable order, rollouts through one vLLM engine
whose weights follow the policy (``policy_weights`` merges LoRA into the checkpoint's names for the swap), and
the padding both rollout paths share. PPO and fine-grained PPO use it; so can any later stage that samples."""

from __future__ import annotations

import contextlib
import os

import torch

from . import distributed, models

# What a launcher (accelerate, torchrun) tells its processes about their world; a rank's rollout engine is a
# world of its own, so its processes must not see them.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                      "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


class PromptSchedule:
    """Deterministic prompt order: a seeded permutation per pass, so iteration i always gets the same
    prompts and a resumed run continues exactly where it stopped."""

    def __init__(self, prompts: list, seed: int):
        self.prompts, self.seed = prompts, seed

    def batch(self, iteration: int, size: int) -> list:
        out = []
        for k in range(iteration * size, (iteration + 1) * size):
            epoch, i = divmod(k, len(self.prompts))
            order = torch.randperm(len(self.prompts), generator=torch.Generator().manual_seed(self.seed + epoch))
            out.append(self.prompts[int(order[i])])
        return out


def cut_at(row: list[int], eos: int) -> list[int]:
    """A response up to and including its first end-of-turn token (all of it if it never ended)."""
    return row[: row.index(eos) + 1] if eos in row else row


def engine_rollout(engine, prompts: list[list[int]], cfg, eos: int, seed: int, first: int = 0) -> list[list[int]]:
    """One sampled response per prompt; prompt b is seeded by ``first + b``, its index in the iteration's prompts,
    so a rank holding part of them draws what one process holding all of them would."""
    from vllm import SamplingParams

    params = [SamplingParams(max_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=1.0,
                             seed=seed * 1009 + first + b, stop_token_ids=[eos], detokenize=False)
              for b in range(len(prompts))]
    out = []
    for o in engine.generate(prompts, params):
        c = o.outputs[0]
        ids = cut_at(list(c.token_ids), eos)
        if c.finish_reason == "stop" and (not ids or ids[-1] != eos):
            ids.append(eos)  # ended on the end-of-turn token: keep it, as HF generate does
        out.append(ids)
    return out


def policy_weights(lm) -> dict[str, torch.Tensor]:
    """The policy's weights under the checkpoint's names, LoRA adapters merged in (the model is not changed)."""
    inner = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    deltas = {name: m.get_delta_weight(m.active_adapters[0]) for name, m in inner.named_modules()
              if hasattr(m, "get_delta_weight") and getattr(m, "active_adapters", None) and not m.merged}
    state = {}
    for key, value in inner.state_dict().items():
        if ".lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        module = key.rsplit(".", 1)[0]
        state[key] = value + deltas[module] if key.endswith(".weight") and module in deltas else value
    if getattr(inner.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # the checkpoint format of a tied head: the embedding only
    return state


UPDATE_MARGIN = 0.1  # of the GPU, kept free for the PPO update's activations when the engine is sized at start


def rollout_gpu_share(cfg, optimizer_bytes: int) -> float | None:
    """The rollout engine's share of the GPU (None on CPU): ``rollout_gpu_memory_utilization`` if set, else sized
    against what PPO already holds: the memory free now (policy, reference, value head and reward model loaded)
    less the optimiser states still to come (``optimizer_bytes``, 0 on resume) and ``UPDATE_MARGIN``. A blind
    0.85 asks vLLM for memory the trainer already uses, and vLLM refuses to start."""
    if not torch.cuda.is_available():
        return None
    if cfg.rollout_gpu_memory_utilization:
        return cfg.rollout_gpu_memory_utilization
    free, total = torch.cuda.mem_get_info()
    share = (free - optimizer_bytes) / total - UPDATE_MARGIN
    if share < 0.05:
        raise ValueError(f"the PPO rollout engine would get {max(share, 0):.0%} of the GPU after the policy, its "
                         f"reference and optimiser ({(total - free + optimizer_bytes) / 2**30:.1f} of {total / 2**30:.1f}"
                         " GiB); use LoRA, a smaller model, or rollout_backend: hf")
    return round(share, 3)


@contextlib.contextmanager
def rollout_engine(cfg, prompts, optimizer_bytes: int = 0):
    """The vLLM engine rollouts go through (None with HF rollouts); shut down when training ends.
    ``optimizer_bytes``: optimiser state the update will still allocate (see ``rollout_gpu_share``)."""
    from .generation import backend_name

    if backend_name(cfg.rollout_backend) != "vllm":
        yield None
        return
    from .engine import Engine

    longest = max(len(ids) for _, ids in prompts)
    with own_devices():  # only while it starts: training goes on in the launcher's world
        engine = Engine(models.resolve(cfg.model), max_num_seqs=cfg.rollout_batch, kv_cache_gb=cfg.rollout_kv_cache_gb,
                        max_model_len=longest + cfg.max_new_tokens + 1, seed=cfg.seed, seeded_sampling=True,
                        gpu_memory_utilization=rollout_gpu_share(cfg, optimizer_bytes))
    with engine:
        yield engine


@contextlib.contextmanager
def own_devices():
    """While a rank starts its rollout engine: the engine's processes see only this rank's devices (its GPU, or on
    CPU its share of the cores, ``bench.data_parallel.rank_env``) and none of the launcher's variables. Alone:
    nothing changes."""
    if distributed.world_size() == 1:
        yield
        return
    from .data_parallel import rank_env

    local = int(os.environ.get("LOCAL_RANK", distributed.rank()))
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", distributed.world_size()))
    devices = rank_env(local, ranks, 1)
    saved = {name: os.environ.get(name) for name in (*LAUNCHER_VARIABLES, *devices)}
    for name in LAUNCHER_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(devices)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
