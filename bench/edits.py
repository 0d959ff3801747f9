"""Token-level edit labels from a Levenshtein alignment of two responses' token ids.

Tokens the revision inserted or substituted are *positive* (what the model should learn to say);
tokens of the initial response that were deleted or substituted are *negative* (what it should stop
saying); everything else is unchanged. The alignment is rapidfuzz's Levenshtein opcodes over the id
sequences (C++), so labelling costs microseconds per pair.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz.distance import Levenshtein


def edit_labels(initial: list[int], revised: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(negative, positive)``: bool masks over ``initial`` and over ``revised``."""
    negative = np.zeros(len(initial), dtype=bool)
    positive = np.zeros(len(revised), dtype=bool)
    for op in Levenshtein.opcodes(initial, revised):
        if op.tag in ("replace", "delete"):
            negative[op.src_start : op.src_end] = True
        if op.tag in ("replace", "insert"):
            positive[op.dest_start : op.dest_end] = True
    return negative, positive


def response_labels(initial_ids: list[int], revised_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Labels for responses that end in the end-of-turn token: the diff is over the text tokens, the
    revision's end token is positive (the model must learn where the better answer stops) and the
    initial response's end token is left neutral."""
    negative, positive = edit_labels(initial_ids[:-1], revised_ids[:-1])
    return np.append(negative, False), np.append(positive, True)
