"""``local-rm``: the offline judge. A frozen SmolLM2 trunk + a linear Bradley-Terry head on human preferences.

Why this design: on 2 CPU cores, fine-tuning even a 135M model as a reward model takes hours, while a
forward pass through the first layers of the model is cheap (the first 12 of SmolLM2's 30 layers run at
~2,000 tokens/s here, ~3x faster than the full model). Middle layers of a language model carry most of what a
linear probe needs, so we pool hidden states (mean over the response tokens + the end-of-turn token) at a
few depths, and fit a logistic regression on feature differences of (chosen, rejected) pairs. Depth and
regularisation are chosen on a validation part of the training pairs; the judge then runs only as many
layers as the chosen depth.

Training data, from the data kit: HH-RLHF harmless-base pairs and QA-Feedback's pairwise human preferences
between four answers to each question (shown without their passages), plus constructed relevance pairs from
Alpaca-Libre demonstrations (see ``relevance_pairs``: without them the head rewarded empty answers). Every set
is split by a seeded hash of the source id; the held-out parts of the human sets are never seen in training
and measure the judge card.

Every score is cached on disk by content hash (head, backbone, rendered text), so re-judging is free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import Cache, content_key
from ..data import PreferencePair, train_val_split, user
from . import HERE, register
from .base import ScorerJudge

log = logging.getLogger("bench.judges")

DEFAULT_HEAD = HERE / "local-rm.head.safetensors"
CANDIDATE_LAYERS = (6, 9, 12)
HELD_OUT = 0.3  # fraction of each human-labelled set kept for the judge card


class FrozenFeatures:
    """Pooled hidden states of (prompt, response) at chosen depths of a frozen, truncated causal LM."""

    def __init__(self, backbone: str = "smollm2-135m-instruct", layers=CANDIDATE_LAYERS, max_tokens: int = 384,
                 batch_size: int = 16):
        import torch

        from ..generation import model_fingerprint
        from ..models import load_model, load_tokenizer, resolve

        self.backbone_dir = resolve(backbone)
        self.fingerprint = model_fingerprint(self.backbone_dir)
        self.tokenizer = load_tokenizer(self.backbone_dir)
        self.layers, self.max_tokens, self.batch_size = tuple(layers), max_tokens, batch_size
        model = load_model(self.backbone_dir, dtype=torch.float32).eval()
        self.trunk = model.model
        self.trunk.layers = self.trunk.layers[:max(self.layers)]  # layers past the deepest probe are never run

    def encode(self, prompt, response) -> tuple[list[int], int]:
        """Token ids and response start; long inputs keep the response head and the end of the prompt."""
        from ..chat import prompt_ids, response_ids

        p, r = prompt_ids(self.tokenizer, prompt), response_ids(self.tokenizer, response)
        if len(r) > self.max_tokens - 32:
            r = r[: self.max_tokens - 33] + r[-1:]  # keep the end-of-turn token the last-token feature reads
        p = p[-(self.max_tokens - len(r)):]
        return p + r, len(p)

    def __call__(self, prompts, responses) -> np.ndarray:
        """(N, len(layers), 2 * hidden) float32 features."""
        import torch

        enc = [self.encode(p, r) for p, r in zip(prompts, responses)]
        order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]))
        out = np.zeros((len(enc), len(self.layers), 2 * self.trunk.config.hidden_size), np.float32)
        pad = self.tokenizer.pad_token_id
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            width = max(len(enc[i][0]) for i in idx)
            ids = torch.tensor([enc[i][0] + [pad] * (width - len(enc[i][0])) for i in idx])
            mask = torch.tensor([[1] * len(enc[i][0]) + [0] * (width - len(enc[i][0])) for i in idx])
            with torch.inference_mode():
                hidden = self.trunk(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            for row, i in enumerate(idx):
                ids_i, start = enc[i]
                end = len(ids_i)
                for j, layer in enumerate(self.layers):
                    h = hidden[layer][row]
                    out[i, j] = torch.cat([h[start:end].mean(0), h[end - 1]]).numpy()
        return out


@dataclass
class Head:
    w: np.ndarray
    scale: np.ndarray  # per-feature standard deviation over training responses
    layer: int
    backbone: str
    max_tokens: int
    meta: dict

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        meta = {"layer": str(self.layer), "backbone": self.backbone, "max_tokens": str(self.max_tokens),
                "meta": json.dumps(self.meta)}
        save_file({"w": self.w.astype(np.float32), "scale": self.scale.astype(np.float32)}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Path) -> "Head":
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            m = f.metadata()
            return cls(f.get_tensor("w"), f.get_tensor("scale"), int(m["layer"]), m["backbone"], int(m["max_tokens"]),
                       json.loads(m["meta"]))


class LocalRM:
    """A reward model with the ``RewardModel.score`` API: frozen trunk features dotted with the head."""

    def __init__(self, head_path: str | Path = DEFAULT_HEAD, batch_size: int = 16):
        self.head_path = Path(head_path)
        if not self.head_path.exists():
            raise FileNotFoundError(f"{self.head_path}: no trained head; run `bench judges train local-rm`")
        self.head = Head.load(self.head_path)
        self.head_hash = hashlib.sha256(self.head_path.read_bytes()).hexdigest()[:16]
        self.batch_size = batch_size
        self._features: FrozenFeatures | None = None
        self.cache = Cache("judge_scores")

    @property
    def features(self) -> FrozenFeatures:
        if self._features is None:  # the backbone loads only when something is not cached
            self._features = FrozenFeatures(self.head.backbone, (self.head.layer,), self.head.max_tokens, self.batch_size)
        return self._features

    def identity(self) -> dict:
        return {"head": self.head_hash, "backbone": self.head.backbone, "layer": self.head.layer}

    def score(self, prompts, responses, batch_size: int = 8) -> list[float]:
        keys = [content_key("local-rm", self.head_hash, p, r) for p, r in zip(prompts, responses)]
        cached = self.cache.get_many(list(set(keys)))
        todo = sorted({k: i for i, k in enumerate(keys) if k not in cached}.values())
        if todo:
            feats = self.features([prompts[i] for i in todo], [responses[i] for i in todo])[:, 0]
            scores = (feats / self.head.scale) @ self.head.w
            new = {keys[i]: float(s) for i, s in zip(todo, scores)}
            self.cache.put_many(new)
            cached.update(new)
        return [cached[k] for k in keys]


@register("local-rm")
class LocalRMJudge(ScorerJudge):
    """Pairwise judge from ``LocalRM`` scores (see the module docstring)."""

    def __init__(self, head: str | None = None, batch_size: int = 16):
        rm = LocalRM(head or DEFAULT_HEAD, batch_size)
        super().__init__(rm, batch_size, rm.identity())


# ---- training -------------------------------------------------------------------------------------------

def qa_feedback_pairs() -> list[PreferencePair]:
    """QA-Feedback's human pairwise preferences among four answers per question (label 0 = no preference: skipped)."""
    from ..data.readers import data_dir, read_rows

    path = data_dir() / "revision_pairs/qa_feedback_dev.jsonl.gz"
    pairs = []
    combos = [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]
    for line, row in read_rows(path):
        for (i, j), label in zip(combos, row.get("preference") or []):
            a, b = row.get(f"prediction {i}"), row.get(f"prediction {j}")
            if label not in (1, 2) or not a or not b or a.strip() == b.strip():
                continue
            chosen, rejected = (a, b) if label == 1 else (b, a)
            # one source id per question, so all pairs of a question land on the same side of the split
            pairs.append(PreferencePair(user(row["question"]), chosen, rejected, f"qa_feedback:{line}", f"{path}:{line}"))
    return pairs


def human_pairs(seed: int = 0) -> dict[str, tuple[list[PreferencePair], list[PreferencePair]]]:
    """{set name: (train pairs, held-out pairs)} for every human-labelled preference set in the data kit."""
    from ..data import load

    return {name: train_val_split(pairs, HELD_OUT, seed)
            for name, pairs in (("hh_rlhf", load("hh_rlhf", kind="preference")), ("qa_feedback", qa_feedback_pairs()))}


def relevance_pairs(n: int = 1200, seed: int = 0) -> list[PreferencePair]:
    """Constructed (not human) pairs: an Alpaca-Libre demonstration is preferred, for its own instruction, to
    (even rows) the demonstration of another instruction, or (odd rows) a short generic chat reply taken from
    HH-RLHF's assistant turns ("I'm not sure what you mean", ...).

    Trained on human pairs alone, the head rewarded saying little (HH-RLHF harmless-base prefers evasive
    replies): an empty answer beat AlpacaEval's references on every prompt of the null-model check. Answering
    *this* instruction, and answering at all, is what those labels never reward, so we teach it here. The
    null-model check's own strings are excluded, so the check stays a held-out test; no AlpacaEval prompt or
    output is used.
    """
    import random

    from ..data import load
    from ..metrics import NULL_OUTPUTS

    rng = random.Random(seed)
    demos = [d for d in load("alpaca_libre") if (d.reference or "").strip()]
    rng.shuffle(demos)
    demos = demos[:n]
    banned = {t.strip().lower() for t in NULL_OUTPUTS}
    hh_train, _ = train_val_split(load("hh_rlhf", kind="preference"), HELD_OUT, seed)  # never the held-out replies
    short = sorted({r for p in hh_train for r in (p.chosen, p.rejected) if 10 <= len(r) <= 80 and r.strip().lower() not in banned})
    rng.shuffle(short)
    return [PreferencePair(d.prompt, d.reference, demos[(i + 1) % len(demos)].reference if i % 2 == 0 else short[i % len(short)],
                           d.source_id, d.origin) for i, d in enumerate(demos)]


def pair_features(extract: FrozenFeatures, pairs: list[PreferencePair], chunk: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Features of chosen and rejected responses, computed in chunks saved to disk so training resumes."""
    from ..models import cache_dir

    root = cache_dir() / "judge_features"
    root.mkdir(parents=True, exist_ok=True)
    texts = [(p.prompt, r) for p in pairs for r in (p.chosen,)] + [(p.prompt, p.rejected) for p in pairs]
    index: dict[str, int] = {}
    where = [index.setdefault(json.dumps(t), len(index)) for t in texts]  # QA-Feedback answers recur across pairs
    unique = [json.loads(k) for k in index]
    prompts, responses = [u[0] for u in unique], [u[1] for u in unique]
    parts, t0 = [], time.time()
    for s in range(0, len(prompts), chunk):
        key = content_key("features", extract.fingerprint, extract.layers, extract.max_tokens,
                          prompts[s:s + chunk], responses[s:s + chunk])
        f = root / f"{key[:32]}.npy"
        if not f.exists():
            np.save(f.with_suffix(".tmp.npy"), extract(prompts[s:s + chunk], responses[s:s + chunk]))
            f.with_suffix(".tmp.npy").replace(f)
        parts.append(np.load(f))
        log.info("features %d/%d (%.0f s)", min(s + chunk, len(prompts)), len(prompts), time.time() - t0)
    feats = np.concatenate(parts)[where]
    return feats[: len(pairs)], feats[len(pairs):]


def _fit(diff: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([diff, -diff])
    y = np.concatenate([np.ones(len(diff)), np.zeros(len(diff))])
    return LogisticRegression(C=C, fit_intercept=False, max_iter=2000).fit(x, y).coef_[0]


def train_head(out: Path = DEFAULT_HEAD, backbone: str = "smollm2-135m-instruct", seed: int = 0,
               limit: int | None = None, max_tokens: int = 384, layers=CANDIDATE_LAYERS) -> Head:
    """Fit the head on the training parts of every set; select depth and C on 20% of the human-labelled pairs."""
    extract = FrozenFeatures(backbone, layers, max_tokens)
    splits = {**human_pairs(seed), "alpaca_libre_relevance": train_val_split(relevance_pairs(seed=seed), HELD_OUT, seed)}
    per_set = {k: tr[:limit] if limit else tr for k, (tr, _) in splits.items()}
    train = [p for pairs in per_set.values() for p in pairs]
    feats = [pair_features(extract, pairs) for pairs in per_set.values()]  # per set: each set's chunks cache on their own
    fc, fr = np.concatenate([f[0] for f in feats]), np.concatenate([f[1] for f in feats])
    scale = np.concatenate([fc, fr]).std(0) + 1e-6  # (layers, features)
    diff = (fc - fr) / scale
    _, val_ids = train_val_split(train, 0.2, seed + 1)
    is_val = np.isin([p.source_id for p in train], [p.source_id for p in val_ids])
    human = np.array([not p.source_id.startswith("alpaca_libre") for p in train])  # select on human labels only
    best = None
    for j, layer in enumerate(layers):
        for C in (0.001, 0.003, 0.01, 0.03, 0.1):
            w = _fit(diff[~is_val, j], C)
            acc = float(np.mean(diff[is_val & human, j] @ w > 0))
            log.info("layer %d C %g: validation agreement %.3f", layer, C, acc)
            if best is None or acc > best[0]:
                best = (acc, j, layer, C)
    acc, j, layer, C = best
    head = Head(_fit(diff[:, j], C), scale[j], layer, backbone, max_tokens,
                {"C": C, "validation_agreement": acc, "train_pairs": {k: len(v) for k, v in per_set.items()},
                 "held_out_fraction": HELD_OUT, "seed": seed, "backbone_fingerprint": extract.fingerprint})
    head.save(out)
    log.info("head: layer %d, C %g, validation agreement %.3f -> %s", layer, C, acc, out)
    return head
