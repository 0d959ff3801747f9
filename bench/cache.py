"""An on-disk cache keyed by content hash, so re-running a judgement or an evaluation costs nothing.

The key is the sha256 of everything that determines the answer (model identity, the exact prompt, the
decoding parameters), so a changed input can never be served a stale answer, and an unchanged one is
never computed twice. SQLite gives atomic writes: an interrupted run leaves only finished entries.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from .models import cache_dir


def content_key(*parts) -> str:
    """sha256 of the JSON form of ``parts`` (sorted keys, so dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    """A JSON-valued key/value store in one SQLite file; safe to share between threads."""

    def __init__(self, name: str, root: str | Path | None = None):
        self.path = Path(root or cache_dir() / "cache") / f"{name}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get(self, key: str):
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict:
        found = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = self._db.execute(f"SELECT key, value FROM kv WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put(self, key: str, value) -> None:
        self.put_many({key: value})

    def put_many(self, items: dict) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                                 [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()])
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM kv").fetchone()[0]
