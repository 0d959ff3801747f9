"""SFT and FIGA through the shared loop on the tiny model: checkpoints reload, resume works, LoRA merges."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench import registry
from bench.config import build_config
from bench.data import DataError


def run(recipe, tmp_path, model, **options):
    spec, cls = registry.get(recipe)
    base = dict(model=model, data="jfleg", limit=8, max_length=128, batch_size=2, max_steps=2,
                output_dir=str(tmp_path / recipe), save_steps=1, logging_steps=1, val_fraction=0.1)
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults), ("test", {**base, **options})])
    return cls().run(cfg)


def reload_and_generate(out):
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    gen = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > ids.shape[1]
    return model


@pytest.mark.parametrize("recipe", ["sft", "figa"])
def test_recipe_trains_and_saves_a_loadable_checkpoint(recipe, tmp_path, tiny_model_dir):
    out = run(recipe, tmp_path, tiny_model_dir)
    reload_and_generate(out)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    if recipe == "figa":
        assert all({"n_positive", "n_negative_kept", "frac_negative_kept", "loss_positive"} <= r.keys() for r in steps)
    info = json.loads((out / "bench_run.json").read_text())
    assert info["recipe"] == recipe and info["n_train"] == 8 and info["chat_template_hash"]


def test_training_changes_the_weights_in_the_loss_direction(tmp_path, tiny_model_dir):
    out = run("sft", tmp_path, tiny_model_dir, max_steps=6, learning_rate=1e-3, limit=4, val_fraction=0.0)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert log[-1]["loss"] < log[0]["loss"]


def test_rerun_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir):
    run("figa", tmp_path, tiny_model_dir, max_steps=2)
    out = run("figa", tmp_path, tiny_model_dir, max_steps=4)
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == [1, 2, 3, 4]  # steps 1-2 were not trained again


def test_lora_checkpoint_is_merged_into_an_ordinary_model(tmp_path, tiny_model_dir):
    out = run("sft", tmp_path, tiny_model_dir, lora_r=4, learning_rate=1e-3)
    assert not (out / "adapter_config.json").exists()
    model = reload_and_generate(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    diff = sum((a - b).abs().sum().item() for a, b in zip(model.parameters(), base.parameters()))
    assert diff > 0  # the adapters were trained and merged


def test_text_longer_than_the_context_names_file_line_and_field(tmp_path, tiny_model_dir):
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"q": "Say it.", "a": "word " * 3000, "b": "word " * 2999 + "end"}) + "\n")
    with pytest.raises(DataError) as err:
        run("figa", tmp_path, tiny_model_dir, data=f"{data}?prompt=q&initial=a&revised=b", val_fraction=0.0)
    assert err.value.path == str(data) and err.value.line == 1 and err.value.field == "revised"
    assert "exceed the model's context of 2048" in str(err.value)


def test_unknown_option_names_its_source(tmp_path, tiny_model_dir):
    with pytest.raises(DataError, match="unknown option"):
        run("figa", tmp_path, tiny_model_dir, alpah=2.0)


def test_changed_config_retrains_instead_of_resuming_the_old_run(tmp_path, tiny_model_dir):
    first = run("sft", tmp_path, tiny_model_dir, learning_rate=1e-3)
    weights = (first / "model.safetensors").read_bytes()
    out = run("sft", tmp_path, tiny_model_dir, learning_rate=2e-3)
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == [1, 2]  # trained again from the start, not "resumed" from the old run's checkpoint-2
    assert (out / "model.safetensors").read_bytes() != weights
    assert json.loads((out / "bench_run.json").read_text())["config"]["learning_rate"] == 2e-3


def test_ppo_retrains_when_its_reward_model_is_retrained(tmp_path, tiny_model_dir):
    """PPO's checkpoint is keyed on its reward model's content: a retrained RM (new weights) makes PPO
    retrain; an unchanged RM, or an identical retrain of it, does not."""
    from baselines.ppo import Ppo
    from baselines.reward_model import SequenceRewardModel

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": i, "q": f"Question {i}?", "c": "A kind answer.", "r": "No."}) + "\n"
                             for i in range(8)))
    data = f"{pairs}?prompt=q&chosen=c&rejected=r&id=id"
    rm_dir, ppo_dir = tmp_path / "rm", tmp_path / "ppo"

    def train_rm(lr):
        opts = dict(model=tiny_model_dir, data=data, output_dir=str(rm_dir), max_steps=1, batch_size=4, learning_rate=lr,
                    val_fraction=0.0, eval_pairs=2, calibration_pairs=2, save_steps=100)
        SequenceRewardModel().run(build_config(SequenceRewardModel.Config, [("test", opts)]))

    def train_ppo():
        opts = dict(model=tiny_model_dir, data=data, output_dir=str(ppo_dir), reward_model=str(rm_dir), max_steps=1,
                    rollout_batch=2, batch_size=2, max_new_tokens=4, lora_r=4, val_fraction=0.0, save_steps=100)
        Ppo().run(build_config(Ppo.Config, [("test", opts)]))
        info = (ppo_dir / "bench_run.json")
        return info.stat().st_mtime_ns, json.loads(info.read_text())["inputs"]["reward_model"]

    train_rm(1e-3)
    first, fp1 = train_ppo()
    assert train_ppo() == (first, fp1)  # nothing changed: not retrained
    (rm_dir / "bench_run.json").unlink()
    train_rm(1e-3)  # the same config again: the same weights, the same fingerprint
    assert train_ppo() == (first, fp1)
    train_rm(1e-2)  # retrained with another learning rate: new weights
    second, fp2 = train_ppo()
    assert fp2 != fp1 and second != first
