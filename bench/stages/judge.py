"""Judge every answer set (base, each policy at each seed, the controls) against the eval set's references,
then turn the per-prompt verdicts into the run's verdicts (``bench.verdicts``): hierarchical intervals over
seeds and prompts, every method-vs-method difference with Holm-corrected p-values, tiers, the controls' check.
Judge calls are cached by content hash, so re-judging unchanged outputs costs nothing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from typing import TYPE_CHECKING

from .config import RunConfig
from .generate import output_dir

if TYPE_CHECKING:
    import pandas as pd  # imported where used: a no-op re-run should not pay for it

log = logging.getLogger("bench.run")

NAME = "judge"
DEPENDS = ("eval_set", "eval_limit", "judge", "judge_options", "judge_serve", "seeds", "controls")


def judged_path(run: RunConfig, name: str, seed: int | None = None) -> Path:
    """``judged/<name>.json`` (seedless) or ``judged/<name>/seed-<s>.json``; the per-prompt table is the .csv."""
    return run.path("judged", name, seed).with_suffix(".json")


def verdicts_path(run: RunConfig) -> Path:
    return run.dir / "judged" / "verdicts.json"


def reads(run: RunConfig) -> list[Path]:
    return [output_dir(run, p, s) for p, s in run.units()]


def writes(run: RunConfig) -> list[Path]:
    return [judged_path(run, p, s) for p, s in run.units()] + [verdicts_path(run)]


def frames(run: RunConfig) -> dict[str, dict[int, pd.DataFrame]]:
    """{name: {seed: per-prompt frame}} from the judged files (seedless answer sets count as seed 0)."""
    import pandas as pd

    out: dict[str, dict[int, pd.DataFrame]] = {}
    for name, seed in run.units():
        path = judged_path(run, name, seed).with_suffix(".csv")
        if path.exists():
            out.setdefault(name, {})[seed or 0] = pd.read_csv(path, dtype={"id": str})
    return out


@contextlib.contextmanager
def served_judge(run: RunConfig) -> Iterator[dict]:
    """The judge's options; with ``judge_serve`` (an LLM judge the run serves itself), ``bench serve`` is started
    for its model first, the judge pointed at it, and the server stopped when judging ends (also on errors).
    The served name is the model spec, so the judge's call cache never mixes two judge models."""
    if not run.judge_serve:
        yield dict(run.judge_options)
        return
    from ..serve import Parallel, serve

    spec = dict(run.judge_serve)
    model = spec.pop("model")
    sizes = {k: spec.pop(k) for k in ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization") if k in spec}
    log.info("[judge] serving %s for the %s judge", model, run.judge)
    with serve(model, port=0, name=model, parallel=Parallel(**sizes), log_path=run.dir / "judged" / "judge_server.log",
               **spec) as server:
        yield {**run.judge_options, "base_url": server.url, "model": model}


def run(run: RunConfig) -> None:
    from ..judges.run import eval_set_side

    reference = eval_set_side(run.eval_set, run.eval_limit)  # a bad eval set fails before a server starts
    (run.dir / "judged").mkdir(parents=True, exist_ok=True)
    with served_judge(run) as options:
        judge_all(run, options, reference)


def judge_all(run: RunConfig, options: dict, reference) -> None:
    from ..atomic import atomic_to_csv, atomic_write_json
    from ..judges import get
    from ..judges.run import judge_pair, outputs_side
    from ..verdicts import verdicts

    from ..console import progress

    judge = get(run.judge, **options)
    units = run.units()
    for i, (name, seed) in enumerate(units):
        progress(f"answer sets judged (now {name}{'' if seed is None else f' seed {seed}'})", i, len(units))
        log.info("[judge] %s%s with %s", name, "" if seed is None else f" seed {seed}", run.judge)
        summary, frame, _ = judge_pair(judge, outputs_side(output_dir(run, name, seed)), reference)
        path = judged_path(run, name, seed)
        atomic_to_csv(frame, path.with_suffix(".csv"), index=False)
        atomic_write_json(path, summary)
    result = verdicts(frames(run), controls={kind: name for name, kind in run.controls_named().items()})
    atomic_write_json(verdicts_path(run), result, default=float)
