"""Shared fixtures: a tiny random llama with SmolLM2's tokenizer (seconds) and the real SmolLM2."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub here; fail fast instead of retrying
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The embedded SmolLM2-135M-Instruct as a safetensors checkpoint (converted once, then cached)."""
    from bench.models import EMBEDDED, resolve

    return resolve(EMBEDDED)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_dir) -> str:
    from bench.models import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tokenizer_from=smollm2_dir))


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    from bench.models import load_tokenizer

    return load_tokenizer(smollm2_dir)


def children_left(before: set[int], wait: float = 30) -> list:
    """This process's descendants started since ``before`` and still running after ``wait`` seconds. Exited
    zombies, multiprocessing's resource tracker and bench's watchdog do not count: the first two hold no memory,
    the watchdog outlives us by design."""
    import time

    import psutil

    from bench import procs

    def running(p) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())
        except psutil.Error:
            return False

    deadline = time.time() + wait
    while True:
        left = [p for p in psutil.Process().children(recursive=True)
                if p.pid not in before | procs.helpers() and running(p)]
        if not left or time.time() > deadline:
            return left
        time.sleep(0.5)
