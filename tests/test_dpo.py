"""DPO: loss parity with TRL, learning on its pairs, the on-disk reference cache, and a real-model run."""

from __future__ import annotations

import json

import pytest
import torch

from baselines.dpo import Dpo, DpoConfig, dpo_sigmoid_loss, sequence_logps
from bench.config import build_config

PAIRS = [
    ("Name a colour.", "Blue is a calm colour.", "No."),
    ("Say hello.", "Hello! Nice to meet you.", "Go away."),
    ("Count to three.", "One, two, three.", "I will not."),
    ("What is 2+2?", "2+2 equals 4.", "Fish."),
]


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "q": q, "good": c, "bad": r}) + "\n" for i, (q, c, r) in enumerate(PAIRS * 3)))
    return f"{path}?prompt=q&chosen=good&rejected=bad&id=id"


def _cfg(model, data, out, **kw):
    base = dict(model=model, data=data, output_dir=str(out), learning_rate=1e-3, max_steps=8, batch_size=4,
                val_fraction=0.0, save_steps=1000, warmup_ratio=0.0, lr_scheduler="constant", logging_steps=1)
    return build_config(DpoConfig, [("test", {**base, **kw})])


def _batch(recipe, tokenizer, data, cfg):
    from bench import data as bdata
    from bench.data import Skips

    recipe.context = 2048
    feats = [recipe.encode(r, tokenizer, cfg, Skips(False)) for r in bdata.load(data, kind="preference")[: len(PAIRS)]]
    return recipe.collate(feats, tokenizer.pad_token_id)


def test_loss_matches_trl_dpo_trainer(tiny_model_dir, tmp_path, tokenizer, pairs_file):
    """Our loss on our batch == TRL 1.16 DPOTrainer(loss_type='sigmoid').evaluate() on the same pairs, with a
    policy and a reference that differ (TRL's loss is inline in the trainer, so we compare trainer output)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from bench.chat import render_prompt
    from bench.models import make_tiny_model

    ref_dir = make_tiny_model(tmp_path / "ref", tokenizer_from=tiny_model_dir, seed=1)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ref = AutoModelForCausalLM.from_pretrained(ref_dir).eval()

    # Non-conversational rows: the prompt already rendered by our chat template, TRL appends eos itself.
    rows = [{"prompt": render_prompt(tokenizer, [{"role": "user", "content": q}]), "chosen": c, "rejected": r}
            for q, c, r in PAIRS]
    args = DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, loss_type=["sigmoid"], per_device_eval_batch_size=len(rows),
                     report_to=[], use_cpu=True, max_length=None, dataset_num_proc=None)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         eval_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    theirs = trainer.evaluate()["eval_loss"]
    # Computed after TRL has set the models up (its trainer adjusts them in place), on the very same models.
    cfg = _cfg(tiny_model_dir, pairs_file, tmp_path / "out", beta=0.1)
    batch = _batch(Dpo(), tokenizer, pairs_file, cfg)
    with torch.no_grad():
        batch["ref_logps"] = sequence_logps(ref, batch["input_ids"], batch["attention_mask"], batch["response_mask"]).view(-1, 2)
        ours, _ = Dpo().loss(policy, batch, cfg)
    assert abs(float(ours) - 0.6931) > 1e-3, "policy == reference would make the comparison vacuous"
    assert float(ours) == pytest.approx(theirs, abs=1e-4)


def test_sigmoid_loss_formula():
    losses, cr, rr = dpo_sigmoid_loss(torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-4.0]), torch.tensor([-4.5]), 0.1)
    margin = 0.1 * ((-3 + 4) - (-5 + 4.5))
    assert float(losses[0]) == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor(margin)).item())
    assert float(cr[0]) == pytest.approx(0.1) and float(rr[0]) == pytest.approx(-0.05)


def test_training_raises_margin_and_caches_reference(tiny_model_dir, tmp_path, tokenizer, pairs_file):
    from transformers import AutoModelForCausalLM

    cfg = _cfg(tiny_model_dir, pairs_file, tmp_path / "dpo")
    out = Dpo().run(cfg)
    batch = _batch(Dpo(), tokenizer, pairs_file, cfg)

    def margins(model_dir):
        m = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        with torch.no_grad():
            lp = sequence_logps(m, batch["input_ids"], batch["attention_mask"], batch["response_mask"]).view(-1, 2)
        return lp[:, 0] - lp[:, 1]

    gained = margins(out) - margins(tiny_model_dir)
    assert (gained > 0).all(), gained
    log = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines() if '"reward_margin"' in l]
    assert log[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # step 1: policy == reference
    assert log[-1]["reward_margin"] > log[0]["reward_margin"] and "accuracy" in log[-1]

    # The reference log-probs are read back from disk, not recomputed: a garbage model gives the same ones.
    cache = torch.load(out / "ref_logps.pt")
    assert len(cache["logps"]) == len(PAIRS)
    recipe = Dpo()
    _batch(recipe, tokenizer, pairs_file, cfg)
    garbage = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.nn.init.zeros_(garbage.model.embed_tokens.weight)
    recipe.prepare_model(garbage, cfg)
    assert [f["ref"] for f in recipe._features] == [cache["logps"][f["key"]] for f in recipe._features]


@pytest.mark.integration
def test_dpo_raises_the_chosen_vs_rejected_margin_on_smollm2(smollm2_dir, tmp_path, tokenizer):
    """Two LoRA steps on real ExpertQA pairs: the policy's log-likelihood margin (revised minus initial) over the
    reference's grows on the pairs it trained on, and the merged checkpoint carries that change."""
    from transformers import AutoModelForCausalLM

    cfg = _cfg(smollm2_dir, "expertqa", tmp_path / "dpo", limit=8, max_length=128, max_steps=2, batch_size=4,
               lora_r=8, learning_rate=5e-4, val_fraction=0.0)
    out = Dpo().run(cfg)
    assert json.loads((out / "bench_run.json").read_text())["n_train"] == 8
    recipe = Dpo()
    recipe.context = 2048
    from bench import data as bdata
    from bench.data import Skips

    feats = [f for f in (recipe.encode(r, tokenizer, cfg, Skips(False)) for r in bdata.load("expertqa", kind="preference")[:8]) if f]
    batch = recipe.collate(feats, tokenizer.pad_token_id)

    def margins(model_dir):
        m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            lp = sequence_logps(m, batch["input_ids"], batch["attention_mask"], batch["response_mask"]).view(-1, 2)
        return lp[:, 0] - lp[:, 1]

    gained = margins(out) - margins(smollm2_dir)
    assert gained.mean() > 0 and (gained > 0).float().mean() >= 0.75, gained
