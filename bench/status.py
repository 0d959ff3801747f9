"""``bench status [RUN]``: where a run stands, stage by stage, without importing torch or starting anything.

Each stage is **done** (its fingerprint matches the one it finished with), **running** (a live ``bench run``
holds the run's lock and is inside that stage), **stale** (it finished once, but something it depends on changed
since: the table says what, from the inputs recorded with its stamp), or **to do** (never finished).
"""

from __future__ import annotations

import json
from pathlib import Path

from .stages import STAGES, RunConfig, fingerprint, fingerprint_inputs


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _running(run: RunConfig, name: str) -> bool:
    from .runlock import LOCK_NAME, _holder_alive

    marker, owner = _read(run.dir / "stages" / f"{name}.running"), _read(run.dir / LOCK_NAME)
    return bool(marker) and marker.get("pid") == owner.get("pid") and _holder_alive(owner)


def why_stale(before: dict, now: dict, limit: int = 3) -> str:
    """The config fields and files that differ between two recorded fingerprint inputs, in words."""
    if not before:
        return "finished before bench recorded its inputs: what changed is unknown"
    changed = [f"{k}: {json.dumps(before['config'].get(k))} -> {json.dumps(v)}"
               for k, v in now["config"].items() if before["config"].get(k) != v]
    files_before, files_now = before.get("files", {}), now.get("files", {})
    for path in sorted(set(files_before) | set(files_now)):
        a, b = files_before.get(path), files_now.get(path)
        if a != b:
            changed.append(f"{path} " + ("is missing" if b is None else "is new" if a is None else "changed"))
    more = f" (+{len(changed) - limit} more)" if len(changed) > limit else ""
    return "; ".join(changed[:limit]) + more if changed else "its stage definition changed"


def stage_table(run: RunConfig) -> list[dict]:
    """One row per stage: name, state, seconds and finish time of its last work, and the reason it would re-run."""
    rows = []
    for name, stage in STAGES.items():
        stamp = _read(run.dir / "stages" / f"{name}.json")
        row = {"stage": name, "seconds": stamp.get("seconds"), "finished": stamp.get("finished")}
        if _running(run, name):
            row.update(state="running", why="a bench run is at work on it now")
        elif not stamp:
            row.update(state="to do", why="never finished")
        elif stamp.get("fingerprint") == fingerprint(stage, run):
            row.update(state="done", why="")
        else:
            row.update(state="stale", why=why_stale(stamp.get("inputs") or {}, fingerprint_inputs(stage, run)))
        rows.append(row)
    return rows
