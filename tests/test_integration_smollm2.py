"""SFT and FIGA on the real SmolLM2-135M-Instruct and real revision pairs: a few steps, then reload and chat."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench import registry
from bench.config import build_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("recipe", ["sft", "figa"])
def test_real_model_trains_and_the_checkpoint_chats(recipe, tmp_path, smollm2_dir):
    spec, cls = registry.get(recipe)
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", dict(
        model=smollm2_dir, data="expertqa", limit=4, max_length=128, batch_size=2, max_steps=2,
        val_fraction=0.0, output_dir=str(tmp_path / recipe), save_steps=100))])
    out = cls().run(cfg)

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(log) == 2 and all(r["loss"] == r["loss"] for r in log)  # two finite-loss steps
    if recipe == "figa":
        assert log[0]["n_positive"] > 0 and log[0]["n_negative"] > 0

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Give one tip for staying healthy."}],
                                     add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    gen = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(text.split()) >= 3  # still a language model, not a broken one
