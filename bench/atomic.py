"""Atomic file writes: a reader (or a re-run after a crash) sees the old file or the new one, never half of one.

The text goes to a temporary file in the same directory (same filesystem), is flushed to disk, and then
``os.replace`` puts it in place in one step.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (parent directories are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, data, indent: int | None = 2, **kw) -> Path:
    """``json.dumps(data)`` written atomically."""
    return atomic_write_text(path, json.dumps(data, indent=indent, **kw))


def atomic_to_csv(frame, path: str | Path, **kw) -> Path:
    """A pandas frame's CSV written atomically."""
    return atomic_write_text(path, frame.to_csv(**kw))
