"""Reading ``results.json`` documents: the checkable form of the schema documented in ``leaderboard.build``.

The site reads these files only (no import from ``bench``), so every field the page uses is checked here and a
wrong type ends in one ``ResultsError`` naming the file and the field's path, never in a template traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA = "bench.results/2"
OLD_SCHEMAS = {"bench.results/1": "it predates verdicts (tiers, method-vs-method tests, controls); run "
                                  "`bench run report --force --config RUN_DIR/run_config.yaml` (the run_config.yaml "
                                  "beside it) to rewrite it as " + SCHEMA}


class ResultsError(ValueError):
    """A results document the site cannot show: names the file and the field. A user's mistake, not a bug
    (``user_error``: how a caller such as ``bench leaderboard`` tells them apart without importing this)."""

    user_error = True

    def __init__(self, path, field: str | None, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{path}: " + (f"field '{field}': " if field else "") + problem)


# Spec mini-language: "num", "int", "str", "bool", "key" (str or int), "ci" ([num, num]); a trailing "?" allows
# null or absence.
# A dict lists known keys (others are allowed and ignored); {"*": spec} is a map with any keys; [spec] a list.
CI, INTERVAL_STATS = "ci", {"value": "num", "ci95": "ci", "se": "num?", "p": "num?", "p_holm": "num?"}
SUITE_ENTRY = {"value": "num?", "stderr": "num?", "terms": ["str"], "of": ["str"], "partial": "bool?"}
METHOD = {"checkpoint": "str?", "seeds": ["key"],
          "train": {"wall_s": "num?", "steps": "int?", "curve": [["num"]], "curve_name": "str?",
                    "curves": {"*": [["num"]]}, "config": {}, "provenance": {},
                    "sweep": {"chosen": {}, "objective": "str?", "grid": [{}]}},
          "winrate": {"win_rate": "num", "ci": "ci?", "lc_win_rate": "num?", "lc_ci": "ci?", "n": "int?",
                      "avg_length": "num?"},
          "vs_base": {"diff": "num", "ci": "ci"}, "suite": {"*": SUITE_ENTRY},
          "degeneration": {"n": "int?", "truncated": "num?", "loop": "num?", "empty": "num?", "degenerate": "num?",
                           "mean_tokens": "num?", "flagged": "bool?", "threshold": "num?", "flag_basis": "str?",
                           "flag_reason": "str?", "vs_base": {"diff": "num", "ci95": "ci", "p": "num?",
                                                              "p_holm": "num?", "base": "num?"}}}
PAIR = {"a": "str", "b": "str", "name": "str?", "mdd": "num?", "win_rate": INTERVAL_STATS, "lc_win_rate": INTERVAL_STATS}
VERDICTS = {
    "alpha": "num", "tier_metric": "str", "tier_rule": "str", "tiers": [["str"]],
    "methods": {"*": {"n_seeds": "int", "n_prompts": "int", "tier": "int",
                      "win_rate": {**INTERVAL_STATS, "sd_seeds": "num?"},
                      "lc_win_rate": {**INTERVAL_STATS, "sd_seeds": "num?"}}},
    "pairs": [PAIR], "headline": [PAIR],
    "mdd": {"value": "num?", "holm_strictest": "num?", "formula": "str", "power": "num", "alpha": "num"},
    "controls": {"trusted": "bool?", "failed": ["str"], "checks": [{"check": "str", "passed": "bool", "detail": "str"}]},
    "aa": {"comparisons": "int", "different": "int", "expected": "num", "p_excess": "num?"},
}
JUDGE_SUMMARY = {"agreement": {"value": "num?", "ci95": "ci?"}, "near_equal_agreement": {"value": "num?", "ci95": "ci?"},
                 "longer_wins_agreement": {"value": "num?"}, "system_spearman": {"value": "num?", "ci95": "ci?"},
                 "null_battery": {"passed": "bool?", "worst_loss_rate": "num?", "outputs": {"*": "num?"}},
                 "labels": "str?"}
DOCUMENT = {"schema": "str", "run": "str", "created": "str?", "model": "str?", "data": "str?", "eval_set": "str?",
            "reference": "str?", "suite": ["str"], "seeds": ["key"],
            "judge": {"name": "str", "validated": "bool?", "reason": "str?", "summary": JUDGE_SUMMARY},
            "controls": {"*": {"method": "str", "what": "str?"}},
            "methods": {"*": METHOD}, "verdicts": VERDICTS,
            "stages": {"*": {"seconds": "num?", "finished": "str?"}}, "samples": "str?"}
REQUIRED = ("schema", "run", "methods", "judge")
SAMPLES_SCHEMA = "bench.samples/1"
SAMPLES = {"schema": "str", "run": "str?", "eval_set": "str?",
           "prompts": [{"id": "key", "instruction": "str", "reference": "str?"}],
           "sets": [{"method": "str", "seed": "key?", "output": ["str?"], "preference": ["num?"], "failed": ["bool?"]}]}


def _is(kind: str, v) -> bool:
    if kind == "num":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "key":
        return isinstance(v, (str, int)) and not isinstance(v, bool)
    if kind == "ci":
        return isinstance(v, list) and len(v) == 2 and all(_is("num", x) for x in v)
    return isinstance(v, {"str": str, "bool": bool}[kind])


def check(value, spec, field: str, path) -> None:
    """Raise ResultsError at the first value that does not fit ``spec``."""
    if value is None:
        return  # absent or null: the page shows a dash; required top-level keys are checked by load()
    if isinstance(spec, str):
        kind = spec.rstrip("?")
        if not _is(kind, value):
            want = {"num": "a number", "int": "an integer", "ci": "an interval [low, high]", "str": "a string",
                    "bool": "true or false", "key": "a string or an integer"}[kind]
            raise ResultsError(path, field, f"expected {want}, got {json.dumps(value)[:60]}")
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise ResultsError(path, field, "expected a list")
        for i, item in enumerate(value):
            check(item, spec[0], f"{field}[{i}]", path)
    else:
        if not isinstance(value, dict):
            raise ResultsError(path, field, "expected an object")
        for key, item in value.items():
            sub = spec.get("*", spec.get(key))
            if sub is not None:
                check(item, sub, f"{field}.{key}" if field else key, path)


def load(path: Path) -> dict:
    """One results document, checked; older schemas are refused with the reason and the fix."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(path, None, f"invalid JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(doc, dict):
        raise ResultsError(path, None, "expected a JSON object")
    schema = doc.get("schema")
    if schema in OLD_SCHEMAS:
        raise ResultsError(path, "schema", f"{schema!r} is no longer shown: {OLD_SCHEMAS[schema]}")
    if schema != SCHEMA:
        raise ResultsError(path, "schema", f"expected {SCHEMA!r}, got {schema!r}")
    for key in REQUIRED:
        if doc.get(key) is None:
            raise ResultsError(path, key, "missing")
    check(doc, DOCUMENT, "", path)
    for name, method in doc["methods"].items():
        avg = (method.get("suite") or {}).get("figa_avg")
        for key in ("terms", "of"):  # an average that does not name its terms cannot be put in an honest column
            if avg and avg.get("value") is not None and not avg.get(key):
                raise ResultsError(path, f"methods.{name}.suite.figa_avg.{key}", "missing: FIGA's average must "
                                   "name the terms it contains ('terms') and the paper's full list ('of')")
    return doc


def load_samples(doc: dict) -> dict | None:
    """The run's samples document (``samples``: a path relative to its results.json), checked; None without one."""
    if not doc.get("samples"):
        return None
    path = Path(doc["_path"]).parent / doc["samples"]
    try:
        samples = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(doc["_path"], "samples", f"names {path}, which does not exist") from None
    except json.JSONDecodeError as e:
        raise ResultsError(path, None, f"invalid JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(samples, dict) or samples.get("schema") != SAMPLES_SCHEMA:
        raise ResultsError(path, "schema", f"expected {SAMPLES_SCHEMA!r}")
    check(samples, SAMPLES, "", path)
    n = len(samples.get("prompts") or [])
    for i, s in enumerate(samples.get("sets") or []):
        for key in ("output", "preference"):
            if len(s.get(key) or []) != n:
                raise ResultsError(path, f"sets[{i}].{key}", f"has {len(s.get(key) or [])} entries for {n} prompts")
    return samples


def load_runs(root: Path) -> list[dict]:
    """Every ``results.json`` under ``root``, newest first."""
    if not Path(root).is_dir():
        raise ResultsError(root, None, "not a directory of runs (expected the folder that holds each run's "
                                       "results.json, e.g. results/runs)")
    runs = []
    for path in sorted(Path(root).rglob("results.json")):
        doc = load(path)
        doc["_path"] = str(path)
        runs.append(doc)
    return sorted(runs, key=lambda d: d.get("created") or "", reverse=True)
