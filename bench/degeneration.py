"""Degeneration of a generated answer set, measured rather than discovered by reading answers.

A judge close to a length heuristic can rank an answer that loops to the token limit above a short correct
one, so every generated set carries these figures beside its win rate (generation metadata, ``results.json``,
``bench run report``, the sweep tables):

- ``truncated``: share of answers that stopped at ``max_new_tokens`` (finish reason "length");
- ``loop``: share with a repeated n-gram loop: some ``LOOP_N``-gram occurs ``LOOP_REPEATS`` or more times
  among the last ``LOOP_WINDOW`` tokens (a model that repeats itself does so at the end, where it got stuck);
- ``empty``: share of answers with no visible text;
- ``degenerate``: share that loops or is empty (the answers a sweep counts as losses);
- ``mean_tokens``: mean answer length in tokens.

A method whose ``degenerate`` share exceeds ``FLAG_THRESHOLD`` is flagged in the results document.
Truncation alone is not degeneration: an untrained SmolLM2 runs to 192 tokens on 73 of 100 AlpacaEval prompts.
"""

from __future__ import annotations

from collections import Counter

LOOP_N, LOOP_REPEATS, LOOP_WINDOW = 4, 3, 64
FLAG_THRESHOLD = 0.2
DEFINITION = (f"truncated: stopped at max_new_tokens; loop: a {LOOP_N}-gram {LOOP_REPEATS}+ times in the last "
              f"{LOOP_WINDOW} tokens; empty: no visible text; degenerate: loop or empty; flagged above "
              f"{FLAG_THRESHOLD:.0%} degenerate")


def has_loop(tokens: list, n: int = LOOP_N, repeats: int = LOOP_REPEATS, window: int = LOOP_WINDOW) -> bool:
    """True when some n-gram of ``tokens`` (ids or words) occurs ``repeats`` or more times in the last ``window``."""
    tail = list(tokens[-window:])
    grams = Counter(tuple(tail[i:i + n]) for i in range(len(tail) - n + 1))
    return bool(grams) and max(grams.values()) >= repeats


def is_degenerate(text: str, tokens: list | None = None) -> bool:
    """Empty, or looping (over ``tokens`` when given, else over whitespace words)."""
    return not text.strip() or has_loop(tokens if tokens is not None else text.split())


def statistics(rows: list[dict]) -> dict:
    """The shares above for generation rows (``output``, ``token_ids``, ``finish_reason``; rows without token ids,
    e.g. a control's ``model_outputs.json``, are counted in whitespace words and have no truncation figure)."""
    n = len(rows)
    if not n:
        return {"n": 0, "truncated": None, "loop": None, "empty": None, "degenerate": None, "mean_tokens": None}
    tokens = [r["token_ids"] if r.get("token_ids") is not None else r["output"].split() for r in rows]
    loop = [has_loop(t) for t in tokens]
    empty = [not r["output"].strip() for r in rows]
    known = [r.get("finish_reason") for r in rows if r.get("finish_reason")]
    return {"n": n,
            "truncated": sum(f == "length" for f in known) / len(known) if len(known) == n else None,
            "loop": sum(loop) / n, "empty": sum(empty) / n,
            "degenerate": sum(a or b for a, b in zip(loop, empty)) / n,
            "mean_tokens": sum(len(t) for t in tokens) / n}


def combine(parts: list[dict]) -> dict | None:
    """Several sets' statistics (a method's seeds) as one, weighted by their sizes; flagged above the threshold."""
    parts = [p for p in parts if p and p.get("n")]
    if not parts:
        return None
    n = sum(p["n"] for p in parts)
    out: dict = {"n": n}
    for key in ("truncated", "loop", "empty", "degenerate", "mean_tokens"):
        values = [p.get(key) for p in parts]
        out[key] = None if any(v is None for v in values) else sum(v * p["n"] for v, p in zip(values, parts)) / n
    out["flagged"] = out["degenerate"] is not None and out["degenerate"] > FLAG_THRESHOLD
    out["threshold"] = FLAG_THRESHOLD
    return out


def describe(stats: dict) -> str:
    """One line for logs and tables: '95% loop, 100% truncated, 0% empty, 192.0 tokens'."""
    pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    line = (f"{pct(stats.get('loop'))} loop, {pct(stats.get('truncated'))} truncated, {pct(stats.get('empty'))} empty, "
            f"mean {stats['mean_tokens']:.1f} tokens" if stats.get("mean_tokens") is not None else "no answers")
    return line + (f"  FLAGGED (> {stats['threshold']:.0%} degenerate)" if stats.get("flagged") else "")
