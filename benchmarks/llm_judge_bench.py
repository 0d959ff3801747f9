"""How well a served model judges like GPT-4, measured (never asserted in tests): ``--judge llm`` with an
alpaca_eval annotator against an OpenAI-compatible endpoint, on a seeded sample of the data kit's real GPT-4
judgements (``judge/``: AlpacaEval 2's soft GPT-4-turbo preferences by default, or AlpacaEval 1's).

Prints the judge card's figures (``bench.judges.card_gpt4.figures``: agreement with GPT-4 overall and on
near-equal lengths, system-level Spearman and mean absolute error, 95 % intervals over prompts) for the judge
beside the card's baselines ("longer answer wins", ...) on the same pairs, so they compare with the card's;
then failures (no verdict in either order, left out of the figures) and pairs per second.

    bench serve smollm2-135m-instruct --port 8011 &
    python benchmarks/llm_judge_bench.py --base-url http://127.0.0.1:8011/v1 --n 100
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--annotator", default="weighted_alpaca_eval_gpt4_turbo")
    ap.add_argument("--set", default="ae2", choices=["ae1", "ae2"])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    import tempfile

    import numpy as np

    from bench.cache import Cache
    from bench.judges import get
    from bench.judges.card_gpt4 import baselines, figures
    from bench.judges.gpt4_pairs import kit_pairs

    pairs = [p for p in kit_pairs((args.set,)) if not p.adversarial]
    rng = np.random.default_rng(args.seed)
    sample = [pairs[i] for i in rng.choice(len(pairs), min(args.n, len(pairs)), replace=False)]
    judge = get("llm", base_url=args.base_url, annotator=args.annotator, concurrency=args.concurrency)
    judge.cache = Cache("calls", tempfile.mkdtemp(prefix="llm-judge-bench-"))  # cold: every call is timed
    t0 = time.perf_counter()
    verdicts = judge.compare([[{"role": "user", "content": p.instruction}] for p in sample],
                             [p.output for p in sample], [p.reference for p in sample])
    seconds = time.perf_counter() - t0

    kept = [i for i, v in enumerate(verdicts) if v.preference is not None]
    judged = [sample[i] for i in kept]
    preds = {"judge": np.array([verdicts[i].preference for i in kept]), **{k: f(judged) for k, f in baselines().items()}}
    result = {"endpoint_model": judge.model, "annotator": args.annotator, "set": args.set, "pairs": len(sample),
              "failures": len(sample) - len(kept),
              "one_order_failed": sum(bool(v.detail.get("one_order_failed")) for v in verdicts),
              "seconds": round(seconds, 1), "pairs_per_s": round(len(sample) / seconds, 2),
              "figures": figures(judged, preds, np.zeros(len(judged), dtype=int), seed=args.seed) if judged else None}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
