"""What the pages show, computed from one results document: rows grouped by tier, the head-to-head matrix, and
the two honesty rules (an interval too wide to mean anything; a judge that is near the length baseline).

Everything here is plain data for the templates; formatting lives in the templates' filters (``build.py``).
"""

from __future__ import annotations

import hashlib
import re

HIDDEN_SUITE = {"reward", "figa_avg"}  # reward: scored by the RM PPO optimised, dropped; figa_avg: own columns
# An interval wider than this (in units of the rate, 0.5 = 50 percentage points) is no estimate: it spans half of
# everything a win rate can be, so the page prints "not estimable" with the interval as the reason.
TOO_WIDE = 0.5
WIDE_RULE = (f"a 95% interval wider than {100 * TOO_WIDE:.0f} percentage points (half of a win rate's whole range) "
             "is shown as not estimable, the estimate and interval in small print: the data do not pin the number down")
# The judge card's own target: a judge must beat "the longer answer wins" by this much agreement to be reading
# more than length; below it, length control removes most of what the judge measures.
NEAR_LENGTH_MARGIN = 0.03


def slug(name: str) -> str:
    """A file name for any run or method name: safe characters kept, a short hash when anything was replaced
    (two hostile names that clean to the same text still get different files)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)).strip("._")[:60] or "x"
    return clean if clean == str(name) else f"{clean}-{hashlib.sha256(str(name).encode()).hexdigest()[:8]}"


def estimable(ci) -> bool:
    return not ci or (ci[1] - ci[0]) <= TOO_WIDE


def near_length_baseline(summary: dict | None) -> str | None:
    """Why LC win rates mean little under this judge (its agreement is within the margin of longer-wins), or None."""
    s = summary or {}
    agree, longer = (s.get("agreement") or {}).get("value"), (s.get("longer_wins_agreement") or {}).get("value")
    if agree is None or longer is None or agree - longer >= NEAR_LENGTH_MARGIN:
        return None
    return (f"the judge agrees with its labels {100 * agree:.1f}% of the time, 'the longer answer wins' "
            f"{100 * longer:.1f}%: it reads little beyond length, so controlling for length leaves little signal")


def figa_label(entry: dict) -> str:
    """Column title naming the terms in FIGA's average, e.g. "FIGA avg (4 of 7 terms: no reward, vicuna, wizardlm)"."""
    terms, of = entry["terms"], entry["of"]
    missing = [t for t in of if t not in terms]
    return f"FIGA avg (all {len(of)} terms)" if not missing else \
        f"FIGA avg ({len(terms)} of {len(of)} terms: no {', '.join(missing)})"


def figa_columns(methods: list[dict]) -> list[str]:
    """One column per distinct term set, in order of first appearance."""
    return list(dict.fromkeys(figa_label(m["suite"]["figa_avg"]) for m in methods
                              if (m.get("suite") or {}).get("figa_avg")))


def degeneration_tag(d: dict | None) -> dict | None:
    """The row's flag, worded by what it compares (``bench.degeneration.assess``): a trained method against the
    untrained base ("+12.0 pts degenerate vs base"), the base model and the controls (and every method of a document
    written before the comparison) against the absolute threshold ("degenerate 37%"); None when not flagged."""
    if not d or not d.get("flagged"):
        return None
    vs = d.get("vs_base") if d.get("flag_basis") == "base" else None
    share = "–" if d.get("degenerate") is None else f"{100 * d['degenerate']:.0f}"
    reason = d.get("flag_reason") or (f"{share}% of answers degenerate (looping or empty), above the absolute "
                                      f"{100 * (d.get('threshold') or 0):.0f}% threshold")
    text = f"{100 * vs['diff']:+.1f} pts degenerate vs base" if vs else f"degenerate {share}%"
    return {"text": text, "title": reason}


def _row(name: str, m: dict, v: dict | None, run: dict) -> dict:
    wr = m.get("winrate") or {}
    vm = (v or {}).get("methods", {}).get(name)
    head = {h["a"]: h for h in (v or {}).get("headline", []) if h["b"] == "base"}
    if vm:  # the verdicts aggregate every seed: prefer them to the single-seed summary
        win, lc = vm["win_rate"], vm["lc_win_rate"]
        cells = {"win": win["value"], "win_ci": win["ci95"], "lc": lc["value"], "lc_ci": lc["ci95"],
                 "sd": win.get("sd_seeds"), "n_seeds": vm["n_seeds"]}
    else:
        cells = {"win": wr.get("win_rate"), "win_ci": wr.get("ci"), "lc": wr.get("lc_win_rate"),
                 "lc_ci": wr.get("lc_ci"), "sd": None, "n_seeds": len(m.get("seeds") or []) or None}
    if name in head:
        vs = {"diff": head[name]["win_rate"]["value"], "ci": head[name]["win_rate"]["ci95"],
              "p_holm": head[name]["win_rate"].get("p_holm")}
    else:  # a row outside the headline pairs (the controls): its difference vs base has no Holm p
        vs = {"p_holm": None, **m["vs_base"]} if m.get("vs_base") else None
    suite = m.get("suite") or {}
    figa = suite.get("figa_avg")
    return {"name": name, "slug": slug(name), **cells, "vs_base": vs, "avg_length": wr.get("avg_length"),
            "len": "–" if wr.get("avg_length") is None else f"{wr['avg_length']:.0f}",
            "suite": suite, "figa": {figa_label(figa): figa} if figa else {},
            "control": next((role for role, c in (run.get("controls") or {}).items() if c["method"] == name), None),
            "train": m.get("train"), "degeneration": m.get("degeneration"),
            "degeneration_tag": degeneration_tag(m.get("degeneration"))}


def groups(run: dict) -> list[dict]:
    """Methods grouped by tier (alphabetical inside a tier); without verdicts one group in document order."""
    v = run.get("verdicts")
    rows = {name: _row(name, m, v, run) for name, m in run["methods"].items()}
    if not v:
        return [{"tier": None, "rows": list(rows.values())}]
    out = [{"tier": i + 1, "rows": [rows[n] for n in sorted(t) if n in rows]} for i, t in enumerate(v["tiers"])]
    untiered = [r for n, r in rows.items() if not any(n in t for t in v["tiers"])]
    return out + ([{"tier": "not judged", "rows": untiered}] if untiered else [])


def matrix(run: dict) -> dict | None:
    """Head-to-head: cell (a, b) is a − b in win rate with its interval and Holm p, for every judged pair."""
    v = run.get("verdicts")
    if not v or not v.get("pairs"):
        return None
    names = [n for t in v["tiers"] for n in sorted(t)]
    cells: dict = {}
    for pr in v["pairs"]:
        wr = pr["win_rate"]
        for a, b, sign in ((pr["a"], pr["b"], 1), (pr["b"], pr["a"], -1)):
            cells[(a, b)] = {"diff": sign * wr["value"], "ci": sorted(sign * x for x in wr["ci95"]),
                             "p_holm": wr.get("p_holm"), "significant": (wr.get("p_holm") or 1) < v["alpha"]}
    return {"names": names, "cells": {f"{a}\x00{b}": c for (a, b), c in cells.items()}, "alpha": v["alpha"]}


def view(run: dict) -> dict:
    judge = run["judge"]
    methods = list(run["methods"].values())
    rows = [r for g in groups(run) for r in g["rows"]]
    return {**run, "slug": slug(run["run"]), "groups": groups(run), "rows": rows, "figa_cols": figa_columns(methods),
            "suite_cols": [s for s in run.get("suite") or [] if s not in HIDDEN_SUITE],
            "unvalidated": not judge.get("validated", False),
            "unvalidated_reason": judge.get("reason") or "no validation of this judge was recorded",
            "near_length": near_length_baseline(judge.get("summary")), "matrix": matrix(run)}


def across_runs(runs: list[dict]) -> dict:
    """FIGA averages of every run's methods; runs whose averages cover different terms never share a column."""
    rows = [{"run": r["run"], "method": name, "figa": {figa_label(m["suite"]["figa_avg"]): m["suite"]["figa_avg"]}}
            for r in runs for name, m in r["methods"].items() if (m.get("suite") or {}).get("figa_avg")]
    cols = list(dict.fromkeys(c for row in rows for c in row["figa"]))
    return {"rows": rows, "cols": cols}
