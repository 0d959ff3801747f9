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

Truncation alone is not degeneration: an untrained SmolLM2 runs to 192 tokens on 73 of 100 AlpacaEval prompts.

The flag (``assess``) says something about a method, not about the model: a small model loops on its own (the
untrained SmolLM2-135M on 37 of 100 prompts at 192 tokens), so a trained method is flagged when its degenerate
share is significantly above the untrained base model's on the same prompts: the per-prompt degenerate
indicators, paired by prompt over the method's seeds, through ``bench.verdicts.estimate`` (the hierarchical
bootstrap of the win-rate verdicts, the indicator in place of a preference), Holm-corrected over the trained
methods; the difference and its 95 % interval stand beside the flag. The base model and the controls are
described against ``FLAG_THRESHOLD`` (a share above it is flagged), and so is every method of a run without a
base answer set, which the flag's reason then says.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

LOOP_N, LOOP_REPEATS, LOOP_WINDOW = 4, 3, 64
FLAG_THRESHOLD = 0.2
DEFINITION = (f"truncated: stopped at max_new_tokens; loop: a {LOOP_N}-gram {LOOP_REPEATS}+ times in the last "
              f"{LOOP_WINDOW} tokens; empty: no visible text; degenerate: loop or empty; a trained method is flagged "
              f"when its degenerate share is significantly above the base model's on the same prompts (paired, "
              f"Holm), base and controls above {FLAG_THRESHOLD:.0%} degenerate")


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


def indicators(rows: list[dict]) -> dict[str, bool]:
    """{prompt id: the answer is degenerate}, counted as ``statistics`` counts (rows without an id are left out)."""
    return {str(r["id"]): is_degenerate(r["output"], r.get("token_ids")) for r in rows if r.get("id") is not None}


def versus_base(seeds: list[dict[str, bool]], base: dict[str, bool], n_boot: int = 2000, seed: int = 0) -> dict | None:
    """The method's degenerate share minus base's on the prompts every set answered: each seed's indicators paired
    by prompt with base's (``bench.verdicts.estimate``); None when they share no prompt. ``p``: two-sided."""
    import pandas as pd

    from .verdicts import estimate

    ids = [i for i in base if all(i in s for s in seeds)]
    if not seeds or not ids:
        return None

    def frame(ind: dict[str, bool]) -> pd.DataFrame:  # the indicator where a judged frame has its preference
        return pd.DataFrame({"id": ids, "preference": [float(ind[i]) for i in ids], "len_model": 0.0, "len_ref": 0.0})

    r = estimate([frame(s) for s in seeds], [frame(base)] * len(seeds), n_boot, seed, metrics=("win_rate",))["win_rate"]
    return {"diff": r["value"], "ci95": r["ci95"], "p": r["p"], "base": float(np.mean([base[i] for i in ids])),
            "n_prompts": len(ids), "n_seeds": len(seeds), "n_boot": n_boot}


def _absolute(stats: dict, why: str = "", then: str = "") -> dict:
    share = f"{stats['degenerate']:.0%} degenerate" if stats["degenerate"] is not None else "no degenerate share"
    side = "above" if stats["flagged"] else "within"
    return {**stats, "flag_basis": "absolute",
            "flag_reason": f"{why}{share}, {side} the absolute {stats['threshold']:.0%} threshold{then}"}


def assess(sets: dict[str, list[list[dict]]], base: str | None, absolute=(), n_boot: int = 2000, seed: int = 0,
           alpha: float | None = None) -> dict[str, dict | None]:
    """Every method's degeneration (``combine`` over its seeds' answer rows, ``sets[method]``) with its flag:
    methods in ``absolute`` (the controls) and ``base`` itself against the threshold; every other method against
    ``base`` on the same prompts, flagged when its difference is positive with a Holm-corrected p below ``alpha``
    (``bench.verdicts.ALPHA``), its ``vs_base`` figures beside; the threshold again, with the reason, without a
    base answer set."""
    from .verdicts import ALPHA, holm

    alpha = ALPHA if alpha is None else alpha
    out = {m: combine([statistics(rows) for rows in seeds]) for m, seeds in sets.items()}
    ref = indicators(sets[base][0]) if base in sets and sets[base] and sets[base][0] else None
    compared = {}
    for m, stats in out.items():
        if stats is None:
            continue
        if m == base:
            out[m] = _absolute(stats, then=" (the untrained model: the trained methods are flagged against it)")
        elif m in absolute:
            out[m] = _absolute(stats)
        elif not ref:
            out[m] = _absolute(stats, "no base answer set in this run, so the absolute threshold: ")
        elif (vs := versus_base([indicators(rows) for rows in sets[m]], ref, n_boot, seed)) is None:
            out[m] = _absolute(stats, "its answers share no prompt id with base's, so the absolute threshold: ")
        else:
            compared[m] = vs
    pts = lambda x: f"{round(100 * x, 1) + 0.0:+.1f}"  # noqa: E731  (+ 0.0: no "-0.0")
    for (m, vs), p in zip(compared.items(), holm([vs["p"] for vs in compared.values()])):
        vs["p_holm"] = float(p)
        flagged = bool(vs["diff"] > 0 and p < alpha)
        verdict = "degenerates more than the model it started from" if flagged else "not above base"
        out[m] = {**out[m], "flagged": flagged, "flag_basis": "base", "vs_base": vs,
                  "flag_reason": f"{pts(vs['diff'])} points [{pts(vs['ci95'][0])}, {pts(vs['ci95'][1])}] over base "
                                 f"(Holm p {p:.2g}): {verdict}"}
    return out


def describe(stats: dict) -> str:
    """One line for logs and tables: '95% loop, 100% truncated, 0% empty, mean 192.0 tokens' and the flag's reason."""
    pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    line = (f"{pct(stats.get('loop'))} loop, {pct(stats.get('truncated'))} truncated, {pct(stats.get('empty'))} empty, "
            f"mean {stats['mean_tokens']:.1f} tokens" if stats.get("mean_tokens") is not None else "no answers")
    reason = stats.get("flag_reason") or (f"> {stats['threshold']:.0%} degenerate" if stats.get("flagged") else "")
    return line + (f"  FLAGGED: {reason}" if stats.get("flagged") else f"; {reason}" if reason else "")
