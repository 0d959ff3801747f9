"""``mimic-gpt4``: the default offline judge, trained to reproduce GPT-4's AlpacaEval verdicts.

Why this design: the kit holds ~60,000 real GPT-4 pairwise judgements (AlpacaEval 1 against
text-davinci-003, AlpacaEval 2 against GPT-4-turbo). Those verdicts are largely explained by what cheap text
statistics see (length, layout, coverage of the reference, refusals, junk), so a gradient-boosted classifier
on the difference of the two answers' statistics (``mimic_features``) reproduces them on prompts *and*
generators it never saw (see the judge card), in microseconds per pair on 2 CPU cores, from a model file of a
few hundred kB. It is trained on both orders of every pair and its verdict averages the two orders, so it
has no position bias by construction. Degenerate losers are added from training rows only (see
``degenerate_pairs``) so answers that say nothing never win. Licence of the training data: CC BY-NC 4.0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import random
import re
import time
from pathlib import Path

import numpy as np

from ..cache import content_key
from ..chat import Messages
from . import HERE, register
from .base import Judgement
from .gpt4_pairs import GPT4Pair
from .mimic_features import (FEATURE_VERSION, design, design_names, instruction_features, pair_features,
                             text_features)

log = logging.getLogger("bench.judges")

DEFAULT_MODEL = HERE / "mimic-gpt4.model.pkl"
PARAMS = {"max_iter": 300, "learning_rate": 0.08, "max_leaf_nodes": 31, "min_samples_leaf": 40, "l2_regularization": 1.0}


def featurize(instructions: list[str], outputs: list[str], references: list[str], memo: dict | None = None) -> np.ndarray:
    """Design rows for (answer, reference) comparisons; the features of repeated texts are computed once."""
    memo = {} if memo is None else memo

    def text(t: str, q: str) -> list[float]:
        key = (t, q)
        if key not in memo:
            memo[key] = text_features(t, q)
        return memo[key]

    o = np.array([text(t, q) for t, q in zip(outputs, instructions)], np.float64).reshape(len(outputs), -1)
    r = np.array([text(t, q) for t, q in zip(references, instructions)], np.float64).reshape(len(outputs), -1)
    pair = np.array([pair_features(a, b) for a, b in zip(outputs, references)], np.float64).reshape(len(outputs), -1)
    instr = np.array([instruction_features(q) for q in instructions], np.float64).reshape(len(outputs), -1)
    return design(o, r, pair, instr)


_ROWS: dict[str, np.ndarray] = {}  # design rows by pair key, loaded from / saved to the cache dir


def _pair_key(instruction: str, output: str, reference: str) -> str:
    return hashlib.sha1(json.dumps([FEATURE_VERSION, instruction, output, reference]).encode()).hexdigest()


def cached_features(pairs: list[GPT4Pair], swapped: bool = False, chunk: int = 4000) -> np.ndarray:
    """``featurize`` over kit pairs; rows are kept by content key in chunk files under the cache dir, so a
    second run (or a cross-validation fold over a subset) computes nothing again and an interrupted run resumes."""
    from ..models import cache_dir

    root = cache_dir() / "mimic_gpt4_features"
    root.mkdir(parents=True, exist_ok=True)
    if not _ROWS:
        for f in sorted(root.glob("*.keys.json")):
            rows = np.load(f.with_name(f.name.replace(".keys.json", ".npy")))
            _ROWS.update(zip(json.loads(f.read_text()), rows))
    triples = [(p.instruction, p.reference, p.output) if swapped else (p.instruction, p.output, p.reference) for p in pairs]
    keys = [_pair_key(*t) for t in triples]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in _ROWS}.values())
    t0 = time.time()
    for s in range(0, len(todo), chunk):
        idx = todo[s:s + chunk]
        rows = featurize(*map(list, zip(*[triples[i] for i in idx])))
        name = content_key("mimic-features", [keys[i] for i in idx])[:32]
        np.save(root / f"{name}.npy", rows)
        (root / f"{name}.keys.json").write_text(json.dumps([keys[i] for i in idx]))  # written last: marks the chunk done
        _ROWS.update(zip([keys[i] for i in idx], rows))
        log.info("features %d/%d (%.0f s)", min(s + chunk, len(todo)), len(todo), time.time() - t0)
    return np.array([_ROWS[k] for k in keys], np.float32).reshape(len(keys), len(design_names()))


def _first_sentence(text: str) -> str:
    m = re.search(r"[.!?](?:\s|$)", text)
    return text[: m.end()].strip() if m else text[: max(1, len(text) // 4)]


def degenerate_pairs(pairs: list[GPT4Pair], n: int, seed: int = 0) -> list[GPT4Pair]:
    """Constructed certain losers, built from the given (training) rows only: a good answer's first sentence,
    its first few words, one of its words repeated, its instruction echoed back, and a short evasive reply.

    Each loses against the reference; the evasive replies lose half the time against a short winning answer
    instead (a number, a word, one line), because the kit has few short references and a length-led judge
    otherwise lets "I cannot say." beat "43". The judge card's null battery uses its own strings on prompts
    never trained on."""
    rng = random.Random(seed)
    winners = [p for p in pairs if p.label >= 0.5 and not p.adversarial]
    good = [p for p in winners if len(p.output) > 40]
    short = [p for p in winners if 0 < len(p.output.strip()) <= 80]
    evasive = ["Sorry, I am unable to answer that.", "I am not sure.", "No comment.", "I cannot say.", "Maybe.",
               "Unfortunately I can't do this.", "That depends.", "Please ask something else.", "?", "...",
               "I apologize, but I cannot assist with this request.", "I have no idea.", "Not sure, sorry.",
               "As an AI, I am not able to do that.", "I do not know the answer."]
    out = []
    for i in range(n):
        p = rng.choice(good)
        toks = p.output.split()
        kind = i % 5
        winner = p.reference
        if kind == 0:
            text = _first_sentence(p.output)
        elif kind == 1:
            text = " ".join(toks[: rng.randint(0, 6)])
        elif kind == 2:
            text = " ".join([rng.choice(toks)] * rng.randint(5, 300))
        elif kind == 3:
            text = p.instruction
        else:
            text = rng.choice(evasive)
            if short and rng.random() < 0.5:
                p = rng.choice(short)
                winner = p.output.strip()
        out.append(GPT4Pair(p.set, p.instruction_id, p.instruction, f"degenerate-{kind}", text, winner, 0.0, True))
    return out


def training_matrix(pairs: list[GPT4Pair]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both orders of every pair; soft labels become two weighted rows (label 1 weight p, label 0 weight 1-p)."""
    fwd, back = cached_features(pairs), cached_features(pairs, swapped=True)
    p = np.array([q.label for q in pairs])
    x = np.concatenate([fwd, fwd, back, back])
    y = np.concatenate([np.ones(len(p)), np.zeros(len(p)), np.ones(len(p)), np.zeros(len(p))])
    w = np.concatenate([p, 1 - p, 1 - p, p])
    keep = w > 0
    return x[keep], y[keep], w[keep]


def fit(pairs: list[GPT4Pair], seed: int = 0, degenerate: float = 0.05):
    """A gradient-boosted classifier on the pairs plus ``degenerate`` x len(pairs) constructed losers."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    pairs = list(pairs) + degenerate_pairs(pairs, int(degenerate * len(pairs)), seed)
    x, y, w = training_matrix(pairs)
    return HistGradientBoostingClassifier(**PARAMS, random_state=seed).fit(x, y, sample_weight=w)


TIE = 1e-9  # |p - 0.5| below this is a tie: floating-point noise, not a preference


def predict(model, instructions, outputs, references, memo: dict | None = None) -> np.ndarray:
    """P(answer beats reference): the mean of the two presentation orders (antisymmetric by construction)."""
    if not outputs:
        return np.zeros(0)
    fwd = model.predict_proba(featurize(instructions, outputs, references, memo))[:, 1]
    back = model.predict_proba(featurize(instructions, references, outputs, memo))[:, 1]
    return 0.5 * (fwd + 1 - back)


def save(model, path: Path, meta: dict) -> None:
    import sklearn

    path.write_bytes(pickle.dumps({"model": model, "sklearn": sklearn.__version__, "feature_version": FEATURE_VERSION,
                                   "features": design_names(), "meta": meta}))


def load(path: Path) -> dict:
    """The pickled model (a file this repository ships; never load one from an untrusted source)."""
    import sklearn

    blob = pickle.loads(Path(path).read_bytes())
    if blob["feature_version"] != FEATURE_VERSION or blob["features"] != design_names():
        raise ValueError(f"{path}: trained on other features; rebuild it with `bench judges train mimic-gpt4`")
    if blob["sklearn"].split(".")[:2] != sklearn.__version__.split(".")[:2]:
        log.warning("%s was saved with scikit-learn %s, this is %s", path, blob["sklearn"], sklearn.__version__)
    return blob


def _instruction(prompt: Messages) -> str:
    from ..generation import instruction_text

    return instruction_text(prompt)


@register("mimic-gpt4")
class MimicGPT4Judge:
    """Pairwise judge: answer vs reference -> 1 (answer wins) or 0, with ``p`` = P(answer wins) in the detail."""

    name = "mimic-gpt4"

    def __init__(self, model: str | None = None):
        self.path = Path(model) if model else DEFAULT_MODEL
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no trained model; run `bench judges train mimic-gpt4`")
        blob = load(self.path)
        self.model, self.meta = blob["model"], blob["meta"]
        self.hash = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]
        self.memo: dict = {}  # text features by (text, instruction): a reference is featurised once per run

    @classmethod
    def from_model(cls, model, label: str = "in-memory") -> "MimicGPT4Judge":
        """A judge around a freshly fitted model (the judge card's cross-validation folds)."""
        judge = cls.__new__(cls)
        judge.path, judge.model, judge.meta, judge.hash, judge.memo = None, model, {}, label, {}
        return judge

    def identity(self) -> dict:
        return {"judge": self.name, "model": self.hash, "feature_version": FEATURE_VERSION}

    def compare(self, prompts, outputs, references) -> list[Judgement]:
        instructions = [_instruction(p) for p in prompts]
        probs = predict(self.model, instructions, list(outputs), list(references), self.memo)
        # two identical answers give p = 0.5 up to rounding (fwd + 1 - back), which must stay a tie, not a loss
        return [Judgement(1.0 if p > 0.5 + TIE else 0.0 if p < 0.5 - TIE else 0.5, {"p": round(float(p), 4)})
                for p in probs]


def train(out: Path = DEFAULT_MODEL, seed: int = 0, pair_file: str | None = None) -> dict:
    """Fit on every kit judgement (both sets) and save; returns the model's metadata."""
    from .gpt4_pairs import kit_pairs

    t0 = time.time()
    pairs = kit_pairs(path=pair_file)
    model = fit(pairs, seed)
    meta = {"pairs": len(pairs), "sets": sorted({p.set for p in pairs}), "seed": seed, "params": PARAMS,
            "train_seconds": round(time.time() - t0, 1),
            "data": "AlpacaEval GPT-4 judgements from the data kit (CC BY-NC 4.0, research use only)"}
    save(model, out, meta)
    log.info("mimic-gpt4: %d pairs, %.0f s -> %s", len(pairs), time.time() - t0, out)
    return json.loads(json.dumps(meta))
