"""``Figa.encode`` / ``collate`` / ``loss`` against a hand-built example: which tokens carry which weight, the
one-token shift between weights and next-token cross-entropy, prompt masking and truncation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench import chat
from bench.data import RevisionTriple, user
from bench.data import Skips
from figa.recipe import Figa, FigaConfig


@pytest.fixture
def recipe():
    r = Figa()
    r.context = 2048
    return r


def encode(recipe, tokenizer, initial, revised, **cfg):
    record = RevisionTriple(user("Name an animal."), initial, revised, "hand:1", "hand:1")
    return recipe.encode(record, tokenizer, FigaConfig(model="x", **cfg), Skips(False))


def test_weights_sit_on_the_edited_tokens_and_never_on_the_prompt(recipe, tokenizer):
    enc = encode(recipe, tokenizer, "The cat sat on the mat.", "The dog sat on the mat.")
    revised, start = chat.sequence(tokenizer, user("Name an animal."), "The dog sat on the mat.")
    initial, _ = chat.sequence(tokenizer, user("Name an animal."), "The cat sat on the mat.")
    rev, ini = enc["rows"]
    assert rev["input_ids"] == revised and ini["input_ids"] == initial
    cat, dog = tokenizer(" cat", add_special_tokens=False)["input_ids"], tokenizer(" dog", add_special_tokens=False)["input_ids"]
    assert len(cat) == len(dog) == 1
    i = revised.index(dog[0])
    assert initial[i] == cat[0]  # a one-token substitution at the same position
    expect_rev = np.zeros(len(revised))
    expect_rev[i] = 1.0  # alpha on the substituted token
    expect_rev[-1] = 1.0  # and on the revision's end-of-turn token
    expect_ini = np.zeros(len(initial))
    expect_ini[i] = -0.5  # -beta on the token it replaced
    assert rev["weights"] == expect_rev.tolist() and ini["weights"] == expect_ini.tolist()
    assert ini["negative"] == (expect_ini != 0).tolist() and not any(rev["negative"])
    assert not any(rev["weights"][:start]) and not any(ini["weights"][:start])  # the prompt is never trained on


def test_loss_weights_the_cross_entropy_of_the_token_itself(recipe, tokenizer, tiny_model_dir):
    """Position t's weight multiplies -log p(token_t | tokens_<t): the one-token shift is right."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    cfg = FigaConfig(model="x", tau=100.0)  # keep every negative token, so the hand sum is plain
    enc = encode(recipe, tokenizer, "The cat sat.", "The big dog sat.")
    batch = recipe.collate([enc], tokenizer.pad_token_id)
    loss, _ = recipe.loss(model, batch, cfg)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    total, count = 0.0, 0
    for row in range(2):
        ids, w = batch["input_ids"][row], batch["weights"][row]
        for t in range(1, int(batch["attention_mask"][row].sum())):
            if w[t] != 0:
                total += float(w[t]) * float(-F.log_softmax(logits[row, t - 1], -1)[ids[t]])
                count += 1
    assert count >= 4 and float(loss.detach()) == pytest.approx(total / count, rel=1e-5)


def test_truncation_keeps_rows_aligned_and_a_full_prompt_is_dropped(recipe, tokenizer):
    _, start = chat.sequence(tokenizer, user("Name an animal."), "x")
    full = encode(recipe, tokenizer, "The cat sat on the mat today.", "The dog sat on the mat today.")
    enc = encode(recipe, tokenizer, "The cat sat on the mat today.", "The dog sat on the mat today.", max_length=start + 3)
    for row, whole in zip(enc["rows"], full["rows"]):
        assert len(row["input_ids"]) == len(row["weights"]) == len(row["negative"]) == start + 3
        assert row["input_ids"] == whole["input_ids"][:start + 3] and row["weights"] == whole["weights"][:start + 3]
    assert encode(recipe, tokenizer, "The cat.", "The dog.", max_length=start) is None
