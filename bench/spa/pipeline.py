"""The build, step by step: rollout -> reward -> revise -> filter -> write (``mode: spa``), or, in edit mode,
the rejected responses of preference pairs -> revise -> filter -> write.

Every step either appends to its own file as it goes (rollout) or caches each result by content the moment
it exists (scores, revisions), so a build killed in any step (SIGKILL included) continues from what is on disk
when run again, and a finished build re-runs in seconds without asking anyone anything.

Stopping: under the CLI, SIGINT and SIGTERM raise ``KeyboardInterrupt`` (``bench.procs.handle_signals``); the
revise step then drops its queued requests, lets no request retry, and the reviser it served is stopped.
Library callers can also pass ``build(cfg, stop=event)``: the ``threading.Event`` is checked between steps and
before every reviser request; once set, nothing new starts, finished work stays cached, and ``build`` raises
``KeyboardInterrupt``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

from ..atomic import atomic_write_json
from ..data import DataError
from .config import SpaConfig
from .filter import Window, drop_reason, edit_ratio, strip_preamble
from .revise import DEFAULT_TEMPLATE, Reviser
from .reward import Scorer, subpar
from .write import edit_row, report, spa_row, write_jsonl

log = logging.getLogger("bench.spa")


def check(cfg: SpaConfig) -> None:
    """Options that cannot work, before anything starts (one sentence each)."""
    problems = [("mode", cfg.mode not in ("spa", "edit"), "spa or edit"),
                ("subpar_quantile", not 0 < cfg.subpar_quantile <= 1, "a fraction in (0, 1]"),
                ("min_edit_ratio", not 0 <= cfg.min_edit_ratio <= cfg.max_edit_ratio <= 1,
                 "0 <= min_edit_ratio <= max_edit_ratio <= 1"),
                ("concurrency", cfg.concurrency < 1, "at least 1"), ("retries", cfg.retries < 0, "0 or more"),
                ("limit", cfg.limit < 0, "0 (all) or more")]
    for field, wrong, accepted in problems:
        if wrong:
            raise DataError("build config", None, field, f"got {getattr(cfg, field)!r}; expected {accepted}")


class _Steps:
    """Counts and wall time per step; raises KeyboardInterrupt at a step boundary once ``stop`` is set."""

    def __init__(self, stop: threading.Event | None):
        self.counts, self.seconds, self.stop, self.t = {}, {}, stop, time.perf_counter()

    def done(self, step: str, count: int | None = None, counted_as: str | None = None) -> None:
        now = time.perf_counter()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - self.t
        if count is not None:
            self.counts[counted_as or step] = count
        self.t = now
        log.info("[%s] %s(%.1f s)", step, "" if count is None else f"{count} ", self.seconds[step])
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt


def _spa_items(cfg: SpaConfig, out: Path, scorer: Scorer, steps: _Steps) -> list[dict]:
    """Rollout and reward: the subpar answers of the model, as items for the reviser."""
    from .rollout import load_prompts, rollout

    prompts = load_prompts(cfg)
    steps.done("load", len(prompts), "prompts")
    rows = rollout(cfg, prompts, out)
    steps.done("rollout", len(rows), "answered")
    scores = scorer.score([r["prompt"] for r in rows], [r["output"] for r in rows], [r["reference"] for r in rows])
    keep, cut = subpar(scores, cfg.subpar_threshold, cfg.subpar_quantile)
    write_jsonl(out / "scored.jsonl", [{"id": r["id"], "score": s, "subpar": k, "cut": cut}
                                       for r, s, k in zip(rows, scores, keep)])
    steps.counts["scored"] = sum(s is not None for s in scores)
    if not steps.counts["scored"]:
        raise DataError(cfg.prompts, None, "reference", f"no answer could be scored by {cfg.scorer}: a judge scores "
                        "against the prompt's reference answer, and these prompts have none; use rm:PATH (a reward model)")
    steps.done("reward", sum(keep), "subpar")
    return [{"id": r["id"], "prompt": r["prompt"], "response": r["output"], "reference": r["reference"],
             "score": s, "provenance": {"origin": cfg.prompts, "policy": cfg.model, "sampling": r["sampling"],
                                        "seed": r["seed"], "finish_reason": r["finish_reason"],
                                        "backend": r["backend"]}}
            for r, s, k in zip(rows, scores, keep) if k]


def _edit_items(cfg: SpaConfig, steps: _Steps) -> list[dict]:
    from .rollout import load_pairs

    pairs = load_pairs(cfg)
    steps.done("load", len(pairs), "pairs")
    return [{"id": p.source_id, "prompt": p.prompt, "response": p.rejected, "reference": p.chosen,
             "provenance": {"origin": p.origin or cfg.prompts}} for p in pairs]


def revise_items(cfg: SpaConfig, items: list[dict], out: Path, stop: threading.Event | None) -> tuple[Reviser, list]:
    """Revisions from the configured endpoint, or from ``bench serve`` of ``reviser_model`` (started only when
    something is not cached yet)."""
    base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL")
    template = cfg.template or DEFAULT_TEMPLATE[cfg.mode]
    options = dict(template=template, cache_root=out / "cache", max_tokens=cfg.revise_max_tokens,
                   concurrency=cfg.concurrency, retries=cfg.retries)
    if base_url:
        reviser = Reviser(cfg.reviser_model, **options).connect(base_url, cfg.api_key_env, cfg.timeout)
        return reviser, reviser.revise(items, stop)
    if not cfg.reviser_model:
        raise DataError("build config", None, "reviser_model", "no reviser: give an OpenAI-compatible endpoint "
                        "(--base-url URL, or OPENAI_BASE_URL) or a local checkpoint to serve (--reviser-model PATH)")
    from ..models import resolve
    from ..serve import serve

    model_dir = resolve(cfg.reviser_model)
    reviser = Reviser(Path(model_dir).name, **options)
    if not reviser.missing(items):
        return reviser, reviser.revise(items, stop)
    log.info("[revise] no endpoint configured: serving %s locally (bench serve)", model_dir)
    with serve(model_dir, port=0, name=Path(model_dir).name, log_path=out / "reviser-serve.log") as server:
        reviser.connect(server.url, cfg.api_key_env, cfg.timeout)
        return reviser, reviser.revise(items, stop)


def _pairs(cfg: SpaConfig, items: list[dict], results: list, scorer: Scorer, reviser: Reviser) -> list[dict]:
    """Every revised item with its edit ratio, scores and verdict (``drop``: the first rule it fails, or None)."""
    from ..models import load_tokenizer

    tok = load_tokenizer(cfg.model)
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    texts = [strip_preamble(r.get("text") or "") for r in results]
    refs = [i["reference"] for i in items]
    prompts = [i["prompt"] for i in items]
    before = scorer.score(prompts, [i["response"] for i in items], refs)
    after = scorer.score(prompts, [t or " " for t in texts], refs)
    window = Window(cfg.min_edit_ratio, cfg.max_edit_ratio, cfg.min_gain)
    pairs = []
    for item, result, text, s0, s1 in zip(items, results, texts, before, after):
        ratio = edit_ratio(ids(item["response"]), ids(text)) if text else None
        gain = None if s0 is None or s1 is None else s1 - s0
        pairs.append({"id": item["id"], "prompt": item["prompt"], "reference": item["reference"],
                      "original": item["response"], "revised": text, "edit_ratio": ratio,
                      "scores": {"original": s0, "revised": s1, "gain": gain},
                      "provenance": {**item["provenance"], "scorer": cfg.scorer, "reviser": reviser.identity(),
                                     "finish_reason_revision": result.get("finish_reason")},
                      "drop": drop_reason(item["response"], result, item["reference"], ratio, gain, window)})
    return pairs


def build(cfg: SpaConfig, stop: threading.Event | None = None) -> dict:
    """Run (or continue) the build into ``cfg.out``; returns the report (also written to report.json)."""
    check(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = _Steps(stop)
    scorer = Scorer(cfg.scorer, out / "cache")
    items = _spa_items(cfg, out, scorer, steps) if cfg.mode == "spa" else _edit_items(cfg, steps)
    reviser, results = revise_items(cfg, items, out, stop)
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt
    answered = [(i, r) for i, r in zip(items, results) if r is not None]
    write_jsonl(out / "revised.jsonl", [{"id": i["id"], **r} for i, r in answered])
    steps.done("revise", sum("rejected" not in r for _, r in answered), "revised")
    pairs = _pairs(cfg, [i for i, _ in answered], [r for _, r in answered], scorer, reviser)
    kept = [p for p in pairs if p["drop"] is None]
    steps.done("filter", len(kept), "kept")
    name = "spa.jsonl" if cfg.mode == "spa" else "edits.jsonl"
    write_jsonl(out / name, [(spa_row if cfg.mode == "spa" else edit_row)(p) for p in kept])
    write_jsonl(out / "pairs.jsonl", pairs)
    files = {"data": str(out / name), "pairs": str(out / "pairs.jsonl"),
             "data_spec": f"spa:{out / name}" if cfg.mode == "spa" else str(out / name)}
    steps.done("write")
    doc = report(steps.counts, pairs, steps.seconds, dataclasses.asdict(cfg), files)
    doc["reviser"], doc["scorer"] = reviser.identity(), {"spec": cfg.scorer, **scorer.identity}
    atomic_write_json(out / "report.json", doc)
    if not kept:
        log.warning("no pair passed the filter (drops: %s)", {k: v for k, v in doc["drops"].items() if v})
    return doc
