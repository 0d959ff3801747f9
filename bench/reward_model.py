"""The reward-model API the framework codes against (PPO rewards, judges, the suite): load a checkpoint written
by the ``reward-model`` or ``token-reward-model`` recipe (``baselines/``) and score responses.

Public API (judges and PPO code against it; keep it stable)::

    rm = load_reward_model("results/checkpoints/reward-model")
    rm.kind                                   # "sequence" or "token"
    rm.score(prompts, responses, batch_size=8) -> list[float]              # one reward per response
    rm.token_scores(prompts, responses, batch_size=8) -> list[list[float]] # one per response token (+ eos)
    rm.calibration                            # {"mean", "std", "n"} of score() on the RM's training pairs

``prompts`` are chat messages (``[{"role", "content"}, ...]``), rendered by ``bench.chat`` exactly as in
training. A sequence RM reads its head at the response's final token (the end-of-turn token), so its
``token_scores`` are zero except that last token; a token RM reads its head at every response token and its
``score`` is their sum. Either way ``sum(token_scores) == score``, which is what lets PPO treat both as one
reward plugin (``bench.rewards``).

A checkpoint is a directory holding an ordinary ``AutoModelForTokenClassification`` checkpoint with one
label (the backbone and its ``score`` head: transformers loads it directly), the tokenizer, and
``reward_model.json`` = {kind, chat_template_hash, base_model, calibration, heldout}. One architecture for
both kinds keeps loading trivial: the kind only decides where the head is read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from . import chat, data, models
from .atomic import atomic_write_json
from .training import pad

log = logging.getLogger("bench.reward_model")

META = "reward_model.json"
KINDS = ("sequence", "token")


class RewardModel:
    """A loaded reward model; see the module docstring for the contract."""

    def __init__(self, model, tokenizer, meta: dict):
        if meta.get("kind") not in KINDS:
            raise data.DataError(META, None, "kind", f"expected one of {KINDS}, got {meta.get('kind')!r}")
        self.model, self.tokenizer, self.meta = model.eval(), tokenizer, meta
        self.kind: str = meta["kind"]

    @property
    def calibration(self) -> dict:
        return self.meta.get("calibration") or {"mean": 0.0, "std": 1.0, "n": 0}

    @torch.no_grad()
    def token_scores_ids(self, prompt_ids: list[list[int]], response_ids: list[list[int]],
                         batch_size: int = 8) -> list[list[float]]:
        """Per-response-token rewards for already tokenized sequences (the PPO path: no re-tokenisation)."""
        out: list[list[float]] = []
        dev = next(self.model.parameters()).device
        for i in range(0, len(prompt_ids), batch_size):
            ps, rs = prompt_ids[i: i + batch_size], response_ids[i: i + batch_size]
            seqs = [p + r for p, r in zip(ps, rs)]
            ids = pad(seqs, self.tokenizer.pad_token_id).to(dev)
            mask = pad([[1] * len(s) for s in seqs], 0).to(dev)
            head = self.model(input_ids=ids, attention_mask=mask).logits[..., 0].float().cpu()
            for b, (p, r) in enumerate(zip(ps, rs)):
                per_token = head[b, len(p): len(p) + len(r)]
                if self.kind == "sequence" and len(r):
                    last = per_token[-1].clone()
                    per_token = torch.zeros_like(per_token)
                    per_token[-1] = last
                out.append(per_token.tolist())
        return out

    def _encode(self, prompts, responses) -> tuple[list[list[int]], list[list[int]]]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return ([chat.prompt_ids(self.tokenizer, p) for p in prompts],
                [chat.response_ids(self.tokenizer, r) for r in responses])

    def token_scores(self, prompts: list[data.Messages], responses: list[str], batch_size: int = 8) -> list[list[float]]:
        return self.token_scores_ids(*self._encode(prompts, responses), batch_size=batch_size)

    def score(self, prompts: list[data.Messages], responses: list[str], batch_size: int = 8) -> list[float]:
        return [sum(t) for t in self.token_scores(prompts, responses, batch_size)]


def load_reward_model(path: str | Path) -> RewardModel:
    """Load a checkpoint written by the ``reward-model`` or ``token-reward-model`` recipe."""
    from transformers import AutoModelForTokenClassification

    path = Path(path)
    if not (path / META).exists():
        raise data.DataError(path / META, None, None, "not a reward model checkpoint (missing reward_model.json)")
    meta = json.loads((path / META).read_text())
    model = AutoModelForTokenClassification.from_pretrained(path, dtype=models.default_dtype()).to(models.device())
    tokenizer = models.load_tokenizer(str(path))
    if meta.get("chat_template_hash") != chat.template_hash(tokenizer):
        log.warning("%s: chat template differs from the one the reward model was trained with", path)
    return RewardModel(model, tokenizer, meta)


def save_reward_model(model, tokenizer, out: Path, kind: str, base_model: str) -> None:
    """Write a trained reward model (a one-label token-classification model, LoRA merged) as a clean
    token-classification checkpoint."""
    from transformers import AutoModelForTokenClassification

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.num_labels, config.classifier_dropout = 1, 0.0
    config.architectures = None
    rm = AutoModelForTokenClassification.from_config(config, dtype=model.dtype)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("lm_head.")}
    missing, unexpected = rm.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"reward model weights do not fit: missing {missing}, unexpected {unexpected}")
    rm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta_path = out / META
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update(kind=kind, chat_template_hash=chat.template_hash(tokenizer), base_model=base_model)
    atomic_write_json(meta_path, meta)  # bench/atomic.py
