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
