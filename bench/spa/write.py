"""Step 5, write: the kept pairs in FIGA's SPA format (or, in edit mode, the revision-pair format the token
reward model trains on), every revised pair with its verdict, and the build's report.

SPA rows (``--data spa:PATH`` reads them): ``instruction``, ``input``, ``output`` (the reference answer, if
any), ``original_output`` (the model's answer), ``revised_output``; beside them ``prompt`` (the chat messages),
``scores`` {original, revised, gain}, ``edit_ratio`` and ``provenance`` (policy, sampling and seed, scorer,
reviser model and template). Edit-mode rows (``--data PATH``): ``prompt`` (the dialogue as text), ``initial``
(the rejected response), ``revised`` (its minimal edit), ``chosen``, and the same extras.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .filter import REASONS
from .revise import instruction_of


def spa_row(pair: dict) -> dict:
    extras = {k: pair[k] for k in ("prompt", "scores", "edit_ratio", "provenance")}
    return {"instruction": instruction_of(pair["prompt"]), "input": "", "output": pair.get("reference") or "",
            "original_output": pair["original"], "revised_output": pair["revised"], **extras}


def edit_row(pair: dict) -> dict:
    extras = {k: pair[k] for k in ("scores", "edit_ratio", "provenance")}
    return {"prompt": instruction_of(pair["prompt"]), "initial": pair["original"], "revised": pair["revised"],
            "chosen": pair.get("reference") or "", "messages": pair["prompt"], **extras}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """All rows at once through a temporary file: a killed write never leaves a half file under the name."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


def histogram(values: list[float], bins: int = 10, bounds: tuple[float, float] | None = None) -> dict:
    """{"edges", "counts"} over the finite values (empty lists give empty counts)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(finite, bins=bins, range=bounds)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def report(steps: dict, pairs: list[dict], seconds: dict, config: dict, files: dict) -> dict:
    """Counts at each step (and the share kept), why each drop happened, histograms over every revised pair."""
    reasons = Counter(p["drop"] for p in pairs if p["drop"])
    first = next(iter(steps.values()), 0) or 1
    return {
        "steps": {name: {"count": n, "share_of_input": round(n / first, 4)} for name, n in steps.items()},
        "drops": {r: reasons.get(r, 0) for r in REASONS},
        "edit_ratio": histogram([p["edit_ratio"] for p in pairs], bounds=(0.0, 1.0)),
        "score_gain": histogram([p["scores"]["gain"] for p in pairs]),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "files": files, "config": config,
    }
