"""Judge a model's outputs against reference outputs, prompt by prompt, and summarise with ``bench.metrics``.

References come from an eval set's own reference answers (``EvalPrompt.reference``, e.g. AlpacaEval's
text-davinci-003 outputs) or from another model's outputs file. Outputs and references are matched on the
instruction text, as AlpacaEval does (with the occurrence number, so repeated instructions pair up in order).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data import DataError, user
from ..generation import instruction_text, read_outputs
from ..metrics import summarize
from .base import judged_frame

log = logging.getLogger("bench.judges")


@dataclass
class Side:
    """Outputs of one generator, keyed by (instruction, occurrence)."""

    name: str
    rows: dict[tuple[str, int], dict]  # key -> {"id", "prompt", "output"}
    source: str


def _keyed(items: list[tuple[str, dict]]) -> dict:
    seen: Counter = Counter()
    out = {}
    for instruction, row in items:
        out[(instruction, seen[instruction])] = row
        seen[instruction] += 1
    return out


def outputs_side(path: str | Path) -> Side:
    rows = read_outputs(path)
    items = [(r["instruction"], {"id": str(r.get("id", i)), "prompt": r.get("prompt") or user(r["instruction"]),
                                 "output": r["output"]}) for i, r in enumerate(rows)]
    name = rows[0].get("generator") or Path(path).stem
    return Side(str(name), _keyed(items), str(path))


def eval_set_side(spec: str, limit: int | None = None) -> Side:
    from ..data import EvalPrompt, load

    records = load(spec, limit=limit)
    if not isinstance(records[0], EvalPrompt):
        raise DataError(spec, None, None, "is not an eval set (needs prompts with reference outputs)")
    missing = [r for r in records if not (r.reference or "").strip()]
    if len(missing) == len(records):
        raise DataError(spec, None, "reference", "this eval set has no reference outputs: pass another model's outputs as --against")
    if missing:  # AlpacaEval's davinci-003 file itself has 2 empty outputs; those prompts cannot be judged
        log.warning("%s: %d of %d prompts have no reference output and are not judged (first: %s)",
                    spec, len(missing), len(records), missing[0].origin)
    records = [r for r in records if (r.reference or "").strip()]
    items = [(instruction_text(r.prompt), {"id": r.id, "prompt": r.prompt, "output": r.reference}) for r in records]
    return Side(f"{spec}-reference", _keyed(items), spec)


def reference_side(ref: str, limit: int | None = None) -> Side:
    """``ref`` is an outputs file/dir if it exists on disk, else an eval-set spec whose references are used."""
    return outputs_side(ref) if Path(ref).exists() else eval_set_side(ref, limit)


def judge_pair(judge, model: Side, reference: Side, n_boot: int = 2000, seed: int = 0) -> tuple[dict, pd.DataFrame, list]:
    """Judge every prompt both sides answered; returns (summary, per-prompt frame, judgements)."""
    keys = [k for k in model.rows if k in reference.rows]
    unmatched = len(model.rows) - len(keys)
    if not keys:
        raise DataError(model.source, None, "instruction", f"no output matches an instruction of {reference.source}")
    if unmatched:  # an instruction the reference answers, asked again, is a repeat, not a missing reference
        answered = {instruction for instruction, _ in reference.rows}
        repeats = sum(1 for k in model.rows if k not in reference.rows and k[0] in answered)
        if repeats:
            log.warning("%s: %d outputs repeat an instruction answered earlier in the file (%s answers it fewer "
                        "times) and are not judged", model.source, repeats, reference.source)
        if unmatched - repeats:
            log.warning("%s: %d outputs have no reference in %s and are not judged", model.source,
                        unmatched - repeats, reference.source)
    prompts = [model.rows[k]["prompt"] for k in keys]
    outputs = [model.rows[k]["output"] for k in keys]
    refs = [reference.rows[k]["output"] for k in keys]
    verdicts = judge.compare(prompts, outputs, refs)
    ids = [reference.rows[k]["id"] for k in keys]
    frame = judged_frame(ids, verdicts, outputs, refs)
    summary = {"model": model.name, "reference": reference.name, "judge": judge.identity(),
               **summarize(frame, n_boot, seed), "unmatched_outputs": unmatched}
    if hasattr(judge, "cfg"):  # LLM judge: how often the two orders disagreed
        summary["inconsistent_orders"] = sum(1 for v in verdicts if v.detail.get("consistent") is False)
    return summary, frame, verdicts


def write_annotations(path: Path, frame: pd.DataFrame, verdicts: list, model: Side, reference: Side) -> None:
    keys = [k for k in model.rows if k in reference.rows]
    with open(path, "w") as f:
        for (k, row), v in zip(zip(keys, frame.to_dict("records")), verdicts):
            f.write(json.dumps({**row, "instruction": k[0], "output": model.rows[k]["output"],
                                "reference": reference.rows[k]["output"], "detail": v.detail}, ensure_ascii=False) + "\n")
