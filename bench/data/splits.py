"""Deterministic train/validation splits that do not depend on file order or Python's hash seed."""

from __future__ import annotations

import hashlib


def _unit(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def train_val_split(records: list, val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """Each record goes to validation iff hash(seed, source_id) < val_fraction: stable as the set grows."""
    train, val = [], []
    for r in records:
        (val if _unit(seed, r.source_id) < val_fraction else train).append(r)
    return train, val
