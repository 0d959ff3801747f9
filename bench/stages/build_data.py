"""Before training: SPA-style revision data built from the run's own model (``bench/spa``), so FIGA and the token
reward model learn from the policy's *own* subpar answers (on-policy), as FIGA's SPA data was built.

A run opts in with ``build_data:`` (the options of ``bench data build-spa``; ``model`` is the run's, the output
goes to ``<run>/data/``). Every method then trains on the built pairs (``RunConfig.train_data``), so all of
them still see the same prompts: SFT imitates the revisions, DPO and the sequence reward model read them as
(revised > answer) pairs, PPO samples their prompts. Without ``build_data`` this stage has nothing to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .config import RunConfig

log = logging.getLogger("bench.run")

NAME = "build_data"
DEPENDS = ("model", "build_data")


def output_dir(run: RunConfig) -> Path:
    return run.dir / "data"


def config(run: RunConfig):
    """The build's ``SpaConfig``: the run's model and output directory < the run's ``build_data`` options."""
    from ..config import build_config
    from ..data import DataError
    from ..spa.config import SpaConfig

    options = dict(run.build_data or {})
    for fixed in ("model", "out", "mode"):
        if fixed in options:
            raise DataError("run config", None, f"build_data.{fixed}", "is set by the run (its model, <run>/data, "
                                                                       "spa mode); leave it out")
    return build_config(SpaConfig, [("run", {"model": run.model, "out": str(output_dir(run))}),
                                    ("run config build_data", options)])


def data_spec(run: RunConfig) -> str:
    """The data spec every method of the run trains on once the data is built."""
    return f"spa:{output_dir(run) / 'spa.jsonl'}"


def reads(run: RunConfig) -> list[Path]:
    return []


def writes(run: RunConfig) -> list[Path]:
    return [output_dir(run) / "spa.jsonl", output_dir(run) / "report.json"] if run.build_data else []


def run(run: RunConfig) -> None:
    if not run.build_data:
        return
    from ..spa import build

    doc = build(config(run))
    log.info("[build_data] %d revision pairs kept of %d prompts -> %s", doc["steps"]["kept"]["count"],
             doc["steps"]["prompts"]["count"], data_spec(run))
