"""The report stage's second document, ``samples.json`` (schema ``bench.samples/1``, documented in
``leaderboard/build.py``): every eval prompt with its reference, and every answer set's answer and judge verdict.

Why a document of its own: the site is built from the report's documents only, and its sample browser and
``model_outputs.json`` exports need the answers themselves (805 prompts x 12 answer sets is megabytes of text),
which would make ``results.json`` slow to read for every run. Answers are matched to verdicts exactly as the
judge matched them (``bench.judges.run``: instruction text and occurrence), so row i of a judged table is the
answer the judge saw.
"""

from __future__ import annotations

import csv
import logging

from .config import RunConfig
from .generate import output_dir
from .judge import judged_path

log = logging.getLogger("bench.run")
SCHEMA = "bench.samples/1"


def samples_document(run: RunConfig) -> dict | None:
    """None when no answer set has been judged yet."""
    from ..judges.run import eval_set_side, outputs_side

    judged = [(n, s) for n, s in run.units() if judged_path(run, n, s).with_suffix(".csv").exists()]
    if not judged:
        return None
    reference = eval_set_side(run.eval_set, run.eval_limit)
    keys = list(reference.rows)
    position = {k: i for i, k in enumerate(keys)}
    prompts = [{"id": reference.rows[k]["id"], "instruction": k[0], "reference": reference.rows[k]["output"]}
               for k in keys]
    sets = []
    for name, seed in judged:
        side = outputs_side(output_dir(run, name, seed))
        with open(judged_path(run, name, seed).with_suffix(".csv"), newline="") as f:
            verdicts = list(csv.DictReader(f))
        matched = [k for k in side.rows if k in position]
        if [reference.rows[k]["id"] for k in matched] != [v["id"] for v in verdicts]:
            log.warning("[report] %s seed %s: answers no longer match their verdicts (re-run `bench run judge`); "
                        "left out of the sample browser", name, seed)
            continue
        entry = {"method": name, "seed": seed, "output": [None] * len(keys), "preference": [None] * len(keys),
                 "failed": [None] * len(keys)}
        for k, v in zip(matched, verdicts):
            i = position[k]
            entry["output"][i] = side.rows[k]["output"]
            entry["preference"][i] = float(v["preference"])
            entry["failed"][i] = v["failed"] == "True"
        sets.append(entry)
    return {"schema": SCHEMA, "run": run.run, "eval_set": run.eval_set, "prompts": prompts, "sets": sets}
