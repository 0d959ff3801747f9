"""How much host memory a job asks Ray for (``Job.memory``), so that a node is not given more jobs than fit.

Derivation: a job holds some copies of the run's model, each ``parameters x 4`` bytes (fp32, what CPU runs use;
bf16 weights on a GPU need less host memory, so this is an upper bound there), plus the process itself (Python,
torch, transformers, the tokenizer and data: ``PROCESS_GIB``), plus a vLLM engine's KV cache where there is one:

- training: weights + gradients + Adam's two moments = 4 copies, +4 for activations, optimizer temporaries and
  the checkpoint's serialisation = 8 (measured: SFT with ``max_steps=2`` on the embedded SmolLM2, 163 M
  parameters, peaked at 6.07 GiB RSS; the estimate is 6.35 GiB; 6 copies would have been under it); DPO adds its
  frozen reference (9); PPO-style methods train a policy and a value model (2 x 4) beside a frozen reference and
  reward model (+2), +4 as above = 14, and their vLLM rollout engine (its KV cache, ``rollout_kv_cache_gb``, and its engine-core process);
- generation: the checkpoint and the engine's copy of it = 2 copies (measured: HF generation of 4 prompts on the
  embedded SmolLM2 peaked at 1.13 GiB RSS against the 2.71 GiB estimate), + vLLM's CPU KV cache (``engine.Engine``'s
  ``kv_cache_gb`` default, 2 GiB) and its engine-core process (another ``PROCESS_GIB``) when vLLM generates;
- suite: one model, +1 for scoring buffers = 2 copies.

A run config overrides the estimate per kind: ``ray_memory_gb: {train: 8, generate: 12, suite: 4}`` (GiB).
"""

from __future__ import annotations

from functools import lru_cache

GIB = 1 << 30
BYTES_PER_PARAM = 4
PROCESS_GIB = 1.5
COPIES = {"train": 8, "generate": 2, "suite": 2}
TRAIN_COPIES = {"dpo": 9, "ppo": 14, "fg-ppo": 14, "fg-ppo-terminal": 14}
ENGINE_KV_CACHE_GIB = 2.0  # bench.engine.Engine's kv_cache_gb default (the generate stage does not change it)
ENGINE_GIB = ENGINE_KV_CACHE_GIB + PROCESS_GIB  # what a vLLM engine adds to its job, per rank
KINDS = tuple(COPIES)


@lru_cache(maxsize=8)
def parameters(model: str) -> int:
    """The model's parameter count, from its config alone (no weights are read)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..models import resolve

    with init_empty_weights():
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve(model))).num_parameters()


def request(run, kind: str, method: str | None = None, engine_gib: float = 0.0) -> int:
    """Bytes of memory one ``kind`` job (train, generate, suite) of ``run`` asks for: the run config's
    ``ray_memory_gb`` for that kind if set, else the estimate above."""
    override = (getattr(run, "ray_memory_gb", None) or {}).get(kind)
    if override is not None:
        return int(override * GIB)
    copies = TRAIN_COPIES.get(method, COPIES[kind]) if kind == "train" else COPIES[kind]
    return int(parameters(run.model) * BYTES_PER_PARAM * copies + (PROCESS_GIB + engine_gib) * GIB)
