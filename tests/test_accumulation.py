"""Gradient accumulation changes nothing: for every offline recipe, one optimiser step over the same 4 records
gives the same loss and the same gradient whether it is split 4x1, 2x2 or 1x4 (batch x accumulation).

"The same" means the loss of the whole 4-record batch under each recipe's own normalisation: SFT's mean
over response tokens, FIGA's sum of weighted CE over its weighted tokens (after the tau rule), DPO's and
the sequence RM's mean over pairs, the token RM's mean over pairs (pairwise term) plus its mean over
weighted tokens (token term). Tolerance: 1e-4 relative (float32, summation order and padding width differ
between splits; a wrong normalisation is off by a factor of 2 or more).
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from bench import registry
from bench.config import build_config
from bench.training import train

# Different lengths, so micro-batches pad differently; each revision has substitutions, an insertion and a
# deletion, so FIGA and the token RM have positive, negative and neutral tokens.
PAIRS = [
    ("What colour is the sky?", "The sky is green and I hate you.", "The sky is blue and I like you."),
    ("Name a fruit.", "A potato is a fruit, obviously.", "An apple is a fruit."),
    ("Say hello politely.", "Go away.", "Hello, it is nice to meet you today!"),
    ("How many legs has a spider?", "Spiders have six legs and two wings.", "Spiders have eight legs."),
]
SPLITS = [(4, 1), (2, 2), (1, 4)]
RECIPES = ["sft", "figa", "dpo", "reward-model", "token-reward-model"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("acc") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "q": q, "init": a, "rev": b}) + "\n" for i, (q, a, b) in enumerate(PAIRS)))
    return f"{path}?prompt=q&initial=init&revised=rev&id=id"


@pytest.fixture(scope="module")
def figa_tau(tiny_model_dir, pairs_file, tokenizer):
    """The median CE of the tiny model on FIGA's negative tokens: the tau rule then keeps some and drops
    others, so FIGA's denominator depends on the model, as it does in real runs."""
    from transformers import AutoModelForCausalLM

    from bench import data
    from bench.data import Skips
    from bench.logprobs import token_ce
    from figa.recipe import Figa

    cfg = build_config(Figa.Config, [("test", {"data": pairs_file})])
    recipe = Figa()
    batch = recipe.collate([recipe.encode(r, tokenizer, cfg, Skips(False)) for r in data.load(pairs_file)],
                           tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        ce = token_ce(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["input_ids"])
    return float(ce[batch["negative"][:, 1:]].median())


class GradCapture(TrainerCallback):
    """The accumulated gradient just before the (only) optimiser step."""

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.grad = torch.cat([p.grad.flatten().clone() for p in model.parameters() if p.grad is not None])


def one_step(recipe, model, data, out, batch_size, grad_accum, **options):
    spec, cls = registry.get(recipe)
    base = dict(model=model, data=data, output_dir=str(out), batch_size=batch_size, grad_accum=grad_accum,
                max_steps=1, max_length=128, val_fraction=0.0, max_grad_norm=0.0, learning_rate=1e-4,
                warmup_ratio=0.0, lr_scheduler="constant", save_steps=1000, logging_steps=1)
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", {**base, **options})])
    capture = GradCapture()
    path = train(cls(), cfg, callbacks=[capture])
    logged = [json.loads(line) for line in (path / "train_log.jsonl").read_text().splitlines()]
    loss = next(r["loss"] for r in logged if "loss" in r)
    return loss, capture.grad


@pytest.mark.parametrize("recipe", RECIPES)
def test_loss_and_gradient_are_invariant_to_the_accumulation_split(recipe, tiny_model_dir, pairs_file, figa_tau, tmp_path):
    options = {"tau": figa_tau} if recipe == "figa" else {}
    results = {split: one_step(recipe, tiny_model_dir, pairs_file, tmp_path / f"{split[0]}x{split[1]}", *split, **options)
               for split in SPLITS}
    loss_ref, grad_ref = results[(4, 1)]
    assert loss_ref > 0 and grad_ref.norm() > 0
    for split, (loss, grad) in results.items():
        assert loss == pytest.approx(loss_ref, rel=1e-4), (split, loss, loss_ref)
        assert float((grad - grad_ref).norm() / grad_ref.norm()) < 1e-4, split
