"""Reward models: both kinds learn a separable toy set, report held-out accuracy, load back and score."""

from __future__ import annotations

import json

import numpy as np
import random

import pytest
import torch

from baselines.reward_model import SequenceRewardModel, wilson_interval
from bench.reward_model import load_reward_model
from baselines.token_reward_model import TokenRewardModel, token_reward_loss
from bench.config import build_config
from bench.data import DataError

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    """Preference pairs (polite > rude) and minimal-edit revisions (one word changed), 60 of each."""
    d = tmp_path_factory.mktemp("toy")
    rng = random.Random(0)
    good = ["Blue is a fine colour.", "I like green a lot.", "Red, certainly.", "Happy to help: yellow."]
    bad = ["No.", "I refuse to answer.", "Whatever, go away.", "Ask someone else."]
    with open(d / "pref.jsonl", "w") as f:
        for i in range(60):
            f.write(json.dumps({"id": i, "q": f"Question {i}: name a colour.", "c": rng.choice(good), "r": rng.choice(bad)}) + "\n")
    with open(d / "rev.jsonl", "w") as f:
        for i in range(60):
            w = rng.choice(["blue", "green", "red", "grey"])
            f.write(json.dumps({"id": i, "q": f"Question {i}: what colour is the sky?",
                                "init": f"The sky is {w} and I hate you.", "rev": f"The sky is {w} and I like you."}) + "\n")
    return f"{d}/pref.jsonl?prompt=q&chosen=c&rejected=r&id=id", f"{d}/rev.jsonl?prompt=q&initial=init&revised=rev&id=id"


def _train(cls, model, data, out, **kw):
    base = dict(model=model, data=data, output_dir=str(out), learning_rate=1e-3, max_steps=12, batch_size=8,
                val_fraction=0.3, save_steps=1000, warmup_ratio=0.0, lr_scheduler="constant")
    return cls().run(build_config(cls.Config, [("test", {**base, **kw})]))


@pytest.fixture(scope="module")
def sequence_rm(tiny_model_dir, toy_files, tmp_path_factory):
    return _train(SequenceRewardModel, tiny_model_dir, toy_files[0], tmp_path_factory.mktemp("rm") / "out")


@pytest.fixture(scope="module")
def token_rm(tiny_model_dir, toy_files, tmp_path_factory):
    return _train(TokenRewardModel, tiny_model_dir, toy_files[1], tmp_path_factory.mktemp("trm") / "out", max_steps=24)


def test_sequence_rm_beats_chance_and_scores(sequence_rm):
    meta = json.loads((sequence_rm / "reward_model.json").read_text())
    assert meta["kind"] == "sequence" and meta["heldout"]["n"] >= 10
    assert meta["heldout"]["ci95"][0] > 0.5, meta["heldout"]  # clearly above chance: the whole CI
    rm = load_reward_model(sequence_rm)
    good, bad = rm.score([HI, HI], ["Blue is a fine colour.", "No."])
    assert good > bad
    (tokens,) = rm.token_scores([HI], ["No."])
    assert len(tokens) == len(rm.tokenizer("No.", add_special_tokens=False)["input_ids"]) + 1  # + eos
    assert tokens[:-1] == [0.0] * (len(tokens) - 1) and tokens[-1] == pytest.approx(rm.score([HI], ["No."])[0])
    assert meta["calibration"]["std"] > 0 and meta["calibration"]["n"] > 0


def test_token_rm_beats_chance_labels_tokens_and_scores(token_rm):
    meta = json.loads((token_rm / "reward_model.json").read_text())
    assert meta["kind"] == "token"
    assert meta["heldout"]["ci95"][0] > 0.5 and meta["heldout"]["token_label_accuracy"] > 0.8, meta["heldout"]
    rm = load_reward_model(token_rm)
    liked, hated = rm.token_scores([HI, HI], ["The sky is blue and I like you.", "The sky is blue and I hate you."])
    ids = rm.tokenizer("The sky is blue and I like you.", add_special_tokens=False)["input_ids"]
    assert len(liked) == len(ids) + 1
    edit = ids.index(rm.tokenizer(" like", add_special_tokens=False)["input_ids"][0])
    assert liked[edit] > hated[edit]  # the edited token carries the difference between the two answers
    assert rm.score([HI], ["The sky is blue and I like you."])[0] == pytest.approx(sum(liked), rel=1e-5)


def test_checkpoint_loads_in_plain_transformers(token_rm):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(token_rm)
    assert model.config.num_labels == 1


def test_model_reward_plugin_normalises_by_calibration(sequence_rm, tokenizer):
    from bench import chat
    from bench.rewards import ModelReward

    plugin = ModelReward(str(sequence_rm), tokenizer, dense=True)
    rm = plugin.rm
    response = chat.response_ids(tokenizer, "Red, certainly.")
    (row,) = plugin([HI], [chat.prompt_ids(tokenizer, HI)], [response])
    raw = rm.score([HI], ["Red, certainly."])[0]
    cal = rm.calibration
    assert len(row) == len(response)
    assert sum(row) == pytest.approx((raw - cal["mean"]) / cal["std"], rel=1e-4)


def test_token_loss_objectives_are_separable():
    head = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([[-100, 1, 0], [-100, -1, 0]])
    pair_only, _ = token_reward_loss(head, labels, 1.0, 0.0, 1.0)
    assert float(pair_only) == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor(-1.0 - 0.5)).item())
    token_only, stats = token_reward_loss(head, labels, 0.0, 1.0, 0.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = (bce(torch.tensor(-1.0), torch.tensor(1.0)) + bce(torch.tensor(0.5), torch.tensor(0.0))) / 2
    assert float(token_only) == pytest.approx(float(expected))
    assert stats["token_accuracy"] == 0.0  # both labelled tokens have the wrong sign


def test_wilson_interval_and_bad_checkpoint(tmp_path):
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.49, 0.943)
    with pytest.raises(DataError, match="reward_model.json"):
        load_reward_model(tmp_path)


@pytest.mark.integration
@pytest.mark.parametrize("cls", [SequenceRewardModel, TokenRewardModel])
def test_reward_models_learn_on_smollm2_with_lora(smollm2_dir, tmp_path, cls):
    """A few LoRA steps on real ExpertQA pairs: the reward of the revision over the initial answer grows on the
    pairs it trained on (the untrained head starts at no preference), through the saved checkpoint."""
    from bench import data as bdata

    out = _train(cls, smollm2_dir, "expertqa", tmp_path / "rm", limit=8, max_length=128, max_steps=4, batch_size=4,
                 lora_r=8, learning_rate=1e-3, val_fraction=0.02, eval_pairs=4, calibration_pairs=4)
    rm = load_reward_model(out)
    assert rm.kind == cls.kind
    pairs = [p for p in bdata.load("expertqa", kind="preference") if p.chosen != p.rejected][:8]
    prompts = [p.prompt for p in pairs]
    gap = np.array(rm.score(prompts, [p.chosen for p in pairs])) - np.array(rm.score(prompts, [p.rejected for p in pairs]))
    assert gap.mean() > 0 and (gap > 0).mean() >= 0.75, gap
    meta = json.loads((out / "reward_model.json").read_text())
    assert meta["heldout"]["n"] == 4 and meta["calibration"]["std"] > 0


def test_token_labels_treat_both_end_tokens_alike(tokenizer):
    """Hand-built pair: "The sky is red." -> "The sky is blue today." The substituted word is negative in
    the initial and positive in the revision, the inserted word positive, everything else (both end-of-turn
    tokens included) neutral."""
    from baselines.token_reward_model import token_labels
    from bench import chat
    from bench.data import RevisionTriple, Skips

    eos = 2
    init_labels, rev_labels = token_labels([10, 11, 12, eos], [10, 13, 14, 12, eos])  # 11 -> 13, insert 14
    assert (init_labels, rev_labels) == ([0, -1, 0, 0], [0, 1, 1, 0, 0])
    assert token_labels([10, 11, eos], [10, 11, eos]) == ([0, 0, 0], [0, 0, 0])  # no edit: no signal, no stop bonus

    words = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    record = RevisionTriple(HI, "The sky is red.", "The sky is blue today.", "t:1", "t.jsonl:1")
    recipe = TokenRewardModel()
    cfg = build_config(TokenRewardModel.Config, [("test", {})])
    revised_row, initial_row = recipe.encode(record, tokenizer, cfg, Skips(False))["rows"]
    start = len(chat.prompt_ids(tokenizer, HI))
    rev, init = revised_row["labels"][start:], initial_row["labels"][start:]
    assert revised_row["labels"][:start] == [-100] * start
    assert [t for t, label in zip(words("The sky is blue today.") + [eos], rev) if label == 1] == words(" blue today")
    assert [t for t, label in zip(words("The sky is red.") + [eos], init) if label == -1] == words(" red")
    assert rev[-1] == init[-1] == 0 and revised_row["input_ids"][-1] == initial_row["input_ids"][-1] == eos


def test_fg_ppo_terminal_sums_the_token_rewards_onto_the_last_token(token_rm, tokenizer):
    """The ablation's reward: the token RM's per-token rewards (fg-ppo) moved onto the last token (as ppo)."""
    from bench import chat, registry
    from bench.rewards import ModelReward

    spec, cls = registry.get("fg-ppo-terminal")
    _, fg = registry.get("fg-ppo")
    assert cls.dense is False and fg.dense is True
    assert spec.defaults["reward_model"].endswith("token-reward-model")
    args = ([HI], [chat.prompt_ids(tokenizer, HI)], [chat.response_ids(tokenizer, "The sky is blue and I like you.")])
    (dense,) = ModelReward(str(token_rm), tokenizer, dense=True)(*args)
    (terminal,) = ModelReward(str(token_rm), tokenizer, dense=False)(*args)
    assert terminal[:-1] == [0.0] * (len(dense) - 1) and any(dense[:-1])
    assert terminal[-1] == pytest.approx(sum(dense), rel=1e-5)
