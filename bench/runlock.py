"""One ``bench run`` per run directory, one trainer per checkpoint directory.

Two runs of one config writing the same files interleave their answers and checkpoints, and two trainers
writing one ``--output-dir`` crash each other's saves and log every step twice; so the second is refused at
once, naming the holder's pid and start time. The lock is a file taken with ``O_EXCL`` holding the owner's
pid, its process start time (pid and start time together name one process for good) and, refreshed while it
is held, the processes it started (``children``). A lock whose process is gone (killed, machine rebooted) is
taken over with a warning, and the dead holder's children that still run (same pid *and* start time: proof
that they are its own) are ended first: a SIGKILLed run's vLLM engine no longer outlives it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .data.errors import DataError

log = logging.getLogger("bench.runlock")
LOCK_NAME = ".bench_run.lock"
TRAIN_LOCK_NAME = ".bench_train.lock"
REFRESH = 2.0  # seconds between two records of the holder's children


class RunLocked(DataError):
    """Another live process holds the lock."""


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _holder_alive(owner: dict) -> bool:
    from .procs import is_running

    pid = owner.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and is_running(pid, owner.get("started"))


def _take_over(path: Path, owner: dict, what: str) -> None:
    """End the dead holder's surviving children (those it recorded, still the same processes), then drop its lock."""
    from .procs import end

    children = [c for c in owner.get("children") or [] if isinstance(c, list) and len(c) == 2]
    ended = end(children) if children else []
    log.warning("%s: taking over the lock left by pid %s (since %s), which is no longer running%s", what,
                owner.get("pid"), owner.get("since", "?"),
                f"; ended {len(ended)} of its processes still running (pids {', '.join(map(str, ended))})" if ended else "")
    path.unlink(missing_ok=True)


def _record_children(path: Path, me: dict, stop: threading.Event) -> None:
    """Keep the lock's ``children`` up to date until ``stop`` (only while the file is still ours)."""
    from .atomic import atomic_write_json
    from .procs import descendants

    while not stop.wait(REFRESH):
        children = descendants()
        if children != me["children"] and _read(path).get("pid") == me["pid"]:
            me["children"] = children
            with contextlib.suppress(OSError):
                atomic_write_json(path, me)


@contextlib.contextmanager
def hold_lock(directory: str | Path, lock_name: str, what: str) -> Iterator[Path]:
    """Hold ``directory/lock_name`` for the ``with`` block; raise ``RunLocked`` if a live process holds it."""
    from .procs import identity

    directory = Path(directory)
    created = not directory.exists()  # a job that fails before writing anything leaves no empty directory behind
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / lock_name
    me = {"pid": os.getpid(), "started": identity(os.getpid())[1], "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "children": []}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read(path)
            if _holder_alive(owner):
                raise RunLocked(directory, None, None,
                                f"{what} is already running (pid {owner['pid']}, since {owner.get('since', '?')}); "
                                "wait for it to finish or stop that process") from None
            if not owner:  # being written this instant by another starter, or an empty leftover
                time.sleep(0.2)
                if _read(path):
                    continue
            _take_over(path, owner, what)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise RunLocked(directory, None, None, f"{what}: could not take the lock {path}")
    stop = threading.Event()
    recorder = threading.Thread(target=_record_children, args=(path, me, stop), daemon=True, name="bench-lock")
    recorder.start()
    try:
        yield path
    finally:
        stop.set()
        recorder.join()
        if _read(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):  # not empty: what the job wrote stays
                directory.rmdir()


def run_lock(run_dir: str | Path, name: str):
    """The lock of a run directory: one ``bench run`` of a run at a time."""
    return hold_lock(run_dir, LOCK_NAME, f"run {name}")


def train_lock(output_dir: str | Path):
    """The lock of a checkpoint directory: one trainer writing it at a time."""
    return hold_lock(output_dir, TRAIN_LOCK_NAME, f"training into {output_dir}")
