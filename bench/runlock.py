"""One ``bench run`` at a time per run directory.

Two runs of one config writing the same files interleave their answers and checkpoints, so the second is
refused at once. The lock is a file holding the owner's pid and start time, taken with ``O_EXCL``; a lock
whose process is gone (killed, machine rebooted) is taken over with a warning, so a crash never leaves the
run stuck.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .data.errors import DataError

log = logging.getLogger("bench.runlock")
LOCK_NAME = ".bench_run.lock"


class RunLocked(DataError):
    """Another live process holds the run's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def run_lock(run_dir: str | Path, name: str) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` for the ``with`` block; raise ``RunLocked`` if a live process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    me = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read(path)
            pid = owner.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
                raise RunLocked(run_dir, None, None,
                                f"run {name} is already running (pid {pid}, since {owner.get('since', '?')}); "
                                "wait for it to finish or stop that process") from None
            if not owner:  # being written this instant by another starter, or an empty leftover
                time.sleep(0.2)
                if _read(path):
                    continue
            log.warning("run %s: taking over the lock left by pid %s (since %s), which is no longer running",
                        name, pid, owner.get("since", "?"))
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:
        raise RunLocked(run_dir, None, None, f"run {name}: could not take the lock {path}")
    try:
        yield path
    finally:
        if _read(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
