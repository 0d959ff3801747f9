"""SFT and FIGA on the real SmolLM2-135M-Instruct and real revision pairs: a few steps, then reload and chat."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench import registry
from bench.config import build_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("recipe", ["sft", "figa"])
def test_real_model_trains_and_the_checkpoint_is_the_trained_model(recipe, tmp_path, smollm2_dir, monkeypatch):
    spec, cls = registry.get(recipe)
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", dict(
        model=smollm2_dir, data="expertqa", limit=4, max_length=128, batch_size=2, max_steps=2,
        val_fraction=0.0, output_dir=str(tmp_path / recipe), save_steps=100, learning_rate=1e-4))])
    probe = torch.tensor([[1, 9690, 198, 2683, 1150, 253, 3479, 30, 2]])
    trained = {}
    save = cls.save

    def save_and_remember(self, model, tokenizer, out, cfg):  # the in-memory model's logits, as it is saved
        with torch.no_grad():
            trained["logits"] = model(input_ids=probe).logits.float()
        return save(self, model, tokenizer, out, cfg)

    monkeypatch.setattr(cls, "save", save_and_remember)
    out = cls().run(cfg)

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(log) == 2 and all(math.isfinite(r["loss"]) for r in log)
    if recipe == "figa":
        assert log[0]["n_positive"] > 0 and log[0]["n_negative"] > 0

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    with torch.no_grad():
        reloaded, untrained = model(input_ids=probe).logits, base(input_ids=probe).logits
    assert torch.allclose(reloaded, trained["logits"], atol=1e-4)  # the checkpoint is the model that trained
    assert (reloaded - untrained).abs().max() > 1e-3  # and training moved it

    tok = AutoTokenizer.from_pretrained(out)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Give one tip for staying healthy."}],
                                     add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    gen = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(text.split()) >= 3  # still a language model, not a broken one
