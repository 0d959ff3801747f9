"""Step 4, filter: keep the revisions that are minimal, real improvements; count why every other one went.

The rules, in the order they are applied (the first that fails names the drop):

- ``rejected``: the endpoint refused the request as invalid (e.g. longer than its context);
- ``empty``: nothing left after removing a reviser's preamble ("Here is the revised answer:");
- ``truncated``: the revision stopped at the token limit, so its end is missing;
- ``refused``: the revision is a refusal ("I'm sorry, but I can't ...") where neither the answer nor the
  reference refused (a reviser declining the task; a refusal the reference also makes is a real revision);
- ``identical``: the same text up to whitespace (nothing to learn from);
- ``edit_ratio_low`` / ``edit_ratio_high``: the token-level edit ratio (Levenshtein distance over the token ids
  of the model's tokenizer, divided by the longer length) lies outside the window: too small to matter, or a
  rewrite rather than a revision (FIGA's loss is built for minimal edits);
- ``unscored`` / ``score_gain``: the revision must score higher than the answer, by at least ``min_gain``
  (``None`` turns the check off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

REASONS = ("rejected", "empty", "truncated", "refused", "identical", "edit_ratio_low", "edit_ratio_high", "unscored",
           "score_gain")
_PREAMBLE = re.compile(r"^\s*(?:sure[,!.]?\s*)?(?:here(?: is|'s)|below is) (?:the|my|an?) (?:revised|edited|improved|"
                       r"corrected|updated)[^\n]*?:\s*\n", re.I)
_REFUSAL = re.compile(r"^\W*(?:i'?m sorry|i am sorry|sorry\b|i apologi[sz]e|i cannot|i can ?not|i can't|i won't|"
                      r"i'm unable|i am unable|i'm not able|i am not able|as an ai\b)", re.I)


def strip_preamble(text: str) -> str:
    """The revision without a leading "Here is the revised answer:" line that small revisers add."""
    return _PREAMBLE.sub("", text, count=1).strip()


def refuses(text: str | None) -> bool:
    return bool(text) and bool(_REFUSAL.match(text))


def edit_ratio(a_ids: list[int], b_ids: list[int]) -> float:
    """Levenshtein distance between two token-id sequences over the longer length (0 = same, 1 = all new)."""
    return float(Levenshtein.normalized_distance(a_ids, b_ids))


@dataclass
class Window:
    min_edit_ratio: float = 0.02
    max_edit_ratio: float = 0.6
    min_gain: float | None = 0.0


def drop_reason(original: str, result: dict, reference: str | None, ratio: float | None, gain: float | None,
                window: Window) -> str | None:
    """Why this revision is dropped, or None to keep it (``result`` is the reviser's answer for the item)."""
    if "rejected" in result:
        return "rejected"
    revised = strip_preamble(result.get("text") or "")
    if not revised:
        return "empty"
    if result.get("finish_reason") == "length":
        return "truncated"
    if refuses(revised) and not refuses(original) and not refuses(reference):
        return "refused"
    if " ".join(revised.split()) == " ".join(original.split()):
        return "identical"
    if ratio is not None and ratio < window.min_edit_ratio:
        return "edit_ratio_low"
    if ratio is not None and ratio > window.max_edit_ratio:
        return "edit_ratio_high"
    if window.min_gain is not None:
        if gain is None:
            return "unscored"
        if gain <= 0 or gain < window.min_gain:
            return "score_gain"
    return None
