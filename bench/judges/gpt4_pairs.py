"""The data kit's real GPT-4 pairwise judgements (``judge/`` in the kit, CC BY-NC 4.0: research use only).

One ``GPT4Pair`` per judgement: a generator's answer to one AlpacaEval instruction, the reference answer GPT-4
compared it with, and ``label`` = P(answer beats reference) as that judge gave it (hard 0/0.5/1 for
AlpacaEval 1's ``alpaca_eval_gpt4``, soft for AlpacaEval 2's log-prob weighted annotator). Rows flagged
``adversarial`` are a constant junk string that fooled the judge: they are kept only as certain losers
(label 0). ``grouped_folds`` splits by prompt *and* by generator, so a test fold shares neither with its
training fold. Reading a pair file of the same format (``--pairs FILE``) lets maintainers measure on their
held-out data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import DataError
from ..data.readers import data_dir, read_rows

SETS = {  # set name -> (pair file in the kit, reference column of references.jsonl.gz)
    "ae1": ("judge/ae1_gpt4_pairs.jsonl.gz", "text_davinci_003_ae1"),
    "ae2": ("judge/ae2_gpt4turbo_pairs.jsonl.gz", "gpt4_1106_preview"),
}
ANNOTATORS = {"ae1": ("alpaca_eval_gpt4",),
              "ae2": ("weighted_alpaca_eval_gpt4_turbo", "alpaca_eval_gpt4_turbo_fn", "alpaca_eval_cot_gpt4_turbo_fn")}


@dataclass(frozen=True)
class GPT4Pair:
    set: str
    instruction_id: int
    instruction: str
    generator: str
    output: str
    reference: str
    label: float
    adversarial: bool


def references(path: str | Path | None = None) -> dict[int, dict]:
    """instruction_id -> the kit's references row (instruction, text_davinci_003_ae1, gpt4_1106_preview)."""
    path = Path(path) if path else data_dir() / "judge/references.jsonl.gz"
    return {int(row["instruction_id"]): row for _, row in read_rows(path)}


def read_pairs(path: str | Path, set_name: str, refs: dict[int, dict] | None = None) -> list[GPT4Pair]:
    """Rows of a kit-format pair file; the reference text is the set's column of the references file."""
    refs = refs if refs is not None else references()
    column = SETS[set_name][1]
    pairs = []
    for line, row in read_rows(path):
        for field in ("instruction_id", "generator", "output", "preference"):
            if field not in row:
                raise DataError(path, line, field, "missing")
        iid = row["instruction_id"]
        if not isinstance(iid, int) or iid not in refs:
            raise DataError(path, line, "instruction_id", f"{iid!r} is not an id of the references file")
        annotator = row.get("annotator")
        if annotator is not None and annotator not in ANNOTATORS[set_name]:
            raise DataError(path, line, "annotator", f"{annotator!r} did not judge against {column}")
        pref = row["preference"]
        if not isinstance(pref, (int, float)) or not 0 <= pref <= 1:
            raise DataError(path, line, "preference", f"expected a probability in [0, 1], got {pref!r}")
        if not isinstance(row["output"], str):
            raise DataError(path, line, "output", "expected a string")
        adversarial = bool(row.get("adversarial", False))
        pairs.append(GPT4Pair(set_name, iid, refs[iid]["instruction"], str(row["generator"]), row["output"], refs[iid][column],
                              0.0 if adversarial else float(pref), adversarial))
    return pairs


def kit_pairs(sets=tuple(SETS), path: str | Path | None = None) -> list[GPT4Pair]:
    """All judgements of the named sets, from the kit (or from ``path``, whose set is guessed from its rows)."""
    refs = references()
    if path:
        first = next(read_rows(path))[1]
        return read_pairs(path, "ae2" if "annotator" in first else "ae1", refs)
    return [p for s in sets for p in read_pairs(data_dir() / SETS[s][0], s, refs)]


def _bucket(values, k: int, seed: int) -> dict:
    """Each distinct value -> one of k groups, by a seeded permutation of the sorted values (reproducible)."""
    uniq = sorted(set(values), key=str)
    order = np.random.default_rng(seed).permutation(len(uniq))
    return {uniq[i]: int(rank % k) for rank, i in enumerate(order)}


def grouped_folds(pairs: list[GPT4Pair], k: int = 3, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index arrays: test = prompts of group f AND generators of group f; train = prompts and
    generators of the other groups. Pairs mixing a test prompt with a training generator (or the reverse) are
    in neither, so no test prompt and no test generator is ever trained on. Adversarial rows are grouped like
    any generator."""
    prompt_group = _bucket([p.instruction_id for p in pairs], k, seed)
    gen_group = _bucket([p.generator for p in pairs], k, seed + 1)
    pg = np.array([prompt_group[p.instruction_id] for p in pairs])
    gg = np.array([gen_group[p.generator] for p in pairs])
    return [(np.flatnonzero((pg != f) & (gg != f)), np.flatnonzero((pg == f) & (gg == f))) for f in range(k)]
