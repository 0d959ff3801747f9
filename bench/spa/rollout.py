"""Step 1, rollout: the model to be trained answers the prompts (its *own* answers make the data on-policy).

Any data spec gives prompts: eval/SFT sets and prompt files (their reference answers, when they have them,
are what the judge scores against), preference pairs (the chosen response serves as the reference) and
revision pairs (the revised response does). Generation is ``bench.generation.generate_eval``: vLLM through
the shared engine (HF ``generate`` as the fallback), every row recording its sampling settings and seed,
appended and fsync'd per chunk and keyed by content, so a killed rollout resumes with the missing prompts.
"""

from __future__ import annotations

from pathlib import Path

from ..data import EvalPrompt, PreferencePair, RevisionTriple, load
from .config import SpaConfig


def as_prompt(record, n: int) -> EvalPrompt:
    """Any record as a prompt with its best-known reference answer."""
    if isinstance(record, EvalPrompt):
        return record
    reference = record.chosen if isinstance(record, PreferencePair) else record.revised
    return EvalPrompt(str(n), record.prompt, reference, record.source_id.split(":")[0], origin=record.origin)


def load_prompts(cfg: SpaConfig) -> list[EvalPrompt]:
    records = load(cfg.prompts, limit=cfg.limit or None)
    return [as_prompt(r, n) for n, r in enumerate(records)]


def load_pairs(cfg: SpaConfig) -> list[PreferencePair]:
    """Edit mode's input: preference pairs (a revision pair counts as one, its revision preferred)."""
    return load(cfg.prompts, kind="preference", limit=cfg.limit or None)


def rollout(cfg: SpaConfig, prompts: list[EvalPrompt], out: Path) -> list[dict]:
    """Rows of ``rollout/generations.jsonl`` in prompt order (id, prompt, output, finish_reason, seed, ...)."""
    from ..generation import Sampling, generate_eval, read_rows

    sampling = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
    # chunks of 64: a kill mid-rollout loses at most one chunk, and a chunk still fills vLLM's batch on a CPU
    where = generate_eval(cfg.model, prompts, out / "rollout", backend=cfg.backend, sampling=sampling,
                          generator="policy", dataset=cfg.prompts, chunk=64)
    rows = read_rows(where / "generations.jsonl")
    references = {p.id: p.reference for p in prompts}
    return [{**r, "reference": references.get(r["id"])} for r in rows]
