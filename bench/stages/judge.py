"""Judge every policy against the eval set's references; each policy's difference to ``base`` is paired by
prompt. Judge calls are cached by content hash, so re-judging unchanged outputs costs nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .config import BASE, RunConfig
from .generate import output_dir

log = logging.getLogger("bench.run")

NAME = "judge"
DEPENDS = ("eval_set", "eval_limit", "judge", "judge_options")


def judged_path(run: RunConfig, policy: str) -> Path:
    return run.dir / "judged" / f"{policy}.json"


def reads(run: RunConfig) -> list[Path]:
    return [output_dir(run, p) / "generations.jsonl" for p in run.policies()]


def writes(run: RunConfig) -> list[Path]:
    return [judged_path(run, p) for p in run.policies()]


def run(run: RunConfig) -> None:
    from ..judges import get
    from ..judges.run import eval_set_side, judge_pair, outputs_side
    from ..metrics import paired_difference

    judge = get(run.judge, **run.judge_options)
    reference = eval_set_side(run.eval_set, run.eval_limit)
    frames = {}
    for policy in run.policies():
        log.info("[judge] %s with %s", policy, run.judge)
        summary, frames[policy], _ = judge_pair(judge, outputs_side(output_dir(run, policy)), reference)
        if policy != BASE:
            summary["vs_base"] = paired_difference(frames[policy], frames[BASE])
        path = judged_path(run, policy)
        path.parent.mkdir(parents=True, exist_ok=True)
        frames[policy].to_csv(path.with_suffix(".csv"), index=False)
        path.write_text(json.dumps(summary, indent=2))
