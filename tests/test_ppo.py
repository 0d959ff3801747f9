"""PPO core arithmetic against hand computation, learning a toy reward, and real-model runs of ppo/fg-ppo."""

from __future__ import annotations

import collections
import json
import math

import pytest
import numpy as np
import torch

from bench import ppo_core, rewards


def test_gae_by_hand():
    rewards_ = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third position is padding: its reward and value are ignored
    adv, ret = ppo_core.gae(rewards_, values, mask, gamma=0.9, lam=0.8)
    a1 = 2.0 - 0.2                       # delta_1 = r_1 + gamma*0 - V_1 (no value after the last token)
    a0 = (1.0 + 0.9 * 0.2 - 0.5) + 0.9 * 0.8 * a1
    assert adv.tolist()[0] == pytest.approx([a0, a1, 0.0])
    assert ret.tolist()[0] == pytest.approx([a0 + 0.5, a1 + 0.2, 0.0])


def test_reward_assembly_terminal_dense_and_kl():
    logp = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    kl_expected = [0.5, -1.0, 0.0, 0.0]
    terminal = torch.tensor([[0.0, 0.0, 2.0, 0.0]])
    dense = torch.tensor([[1.0, 0.0, 1.0, 5.0]])
    r_t, kl = ppo_core.assemble_rewards(terminal, logp, ref, mask, kl_coef=0.1)
    assert kl.tolist()[0] == pytest.approx(kl_expected)
    assert r_t.tolist()[0] == pytest.approx([-0.05, 0.1, 2.0, 0.0])
    r_d, _ = ppo_core.assemble_rewards(dense, logp, ref, mask, kl_coef=0.1)
    assert r_d.tolist()[0] == pytest.approx([0.95, 0.1, 1.0, 0.0])
    # A response that never ended loses no_eos_penalty on its last real token; an ended one does not.
    both = torch.cat([terminal, terminal])
    r, _ = ppo_core.assemble_rewards(both, torch.cat([logp, logp]), torch.cat([ref, ref]), torch.cat([mask, mask]), 0.0,
                                     ended=torch.tensor([True, False]), no_eos_penalty=1.0)
    assert r.flatten().tolist() == pytest.approx([0, 0, 2.0, 0, 0, 0, 1.0, 0])


def test_policy_and_value_losses_by_hand():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 1.5]]))
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, clip_frac, _ = ppo_core.policy_loss(new, old, adv, mask, clip=0.2)
    # token 1: A>0, ratio 1.5 -> clipped to 1.2: -1.2; token 2: A<0 -> the pessimistic unclipped 1.5
    assert float(loss) == pytest.approx((-1.2 + 1.5) / 2)
    assert float(clip_frac) == pytest.approx(0.5)
    v_loss, v_clip = ppo_core.value_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.1]]),
                                         mask, clip=0.2)
    # token 1: unclipped (1-2)^2=1, clipped (0.2-2)^2=3.24 -> 3.24; token 2: both 0.01
    assert float(v_loss) == pytest.approx(0.5 * (3.24 + 0.01) / 2)
    assert float(v_clip) == pytest.approx(0.5)


def test_whiten_and_adaptive_kl():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = ppo_core.masked_whiten(x, mask)
    assert w.tolist()[0] == pytest.approx([-1.0, 1.0, 0.0], abs=1e-4)
    kl = ppo_core.KLController(0.1, target=6.0, horizon=100)
    kl.update(12.0, n_samples=10)  # error clipped to +0.2
    assert kl.coef == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    fixed = ppo_core.KLController(0.1)
    fixed.update(100.0, 10)
    assert fixed.coef == 0.1


def test_token_id_reward_dense_vs_terminal():
    ids = [[5, 7, 5, 2], [7]]
    assert rewards.TokenIdReward(5, dense=True)(None, None, ids) == [[1, 0, 1, 0], [0]]
    assert rewards.TokenIdReward(5, dense=False)(None, None, ids) == [[0, 0, 0, 2], [0]]


@pytest.fixture(scope="module")
def peaked_model(tmp_path_factory, tiny_model_dir):
    """The tiny model with 5x embeddings: a peaked distribution (entropy ~0.8 nats) in which one token is
    common enough for a +1-per-token reward to have signal at all (a flat 49k-way one never emits it)."""
    from transformers import AutoModelForCausalLM

    from bench.models import load_tokenizer

    out = tmp_path_factory.mktemp("peaked")
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        m.model.embed_tokens.weight.mul_(5.0)
    m.save_pretrained(out)
    load_tokenizer(tiny_model_dir).save_pretrained(out)
    return str(out), m


def _prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "q": f"Question {i}: name a colour."}) + "\n" for i in range(40)))
    return f"{path}?prompt=q&id=id"


def _run(cls, model, data, out, **kw):
    from bench.config import build_config

    base = dict(model=model, data=data, output_dir=str(out), max_steps=8, rollout_batch=32, max_new_tokens=12,
                batch_size=16, learning_rate=1e-3, lora_r=8, kl_coef=0.0, no_eos_penalty=0.0, val_fraction=0.0,
                save_steps=4, rollout_backend="hf")
    cfg = build_config(cls.Config, [("test", {**base, **kw})])
    path = cls().run(cfg)
    return path, [json.loads(l) for l in (path / "ppo_log.jsonl").read_text().splitlines()]


def test_ppo_learns_a_token_reward_and_fg_ppo_at_least_as_fast(peaked_model, tmp_path):
    from baselines.fg_ppo import FgPpo
    from baselines.ppo import Ppo
    from bench import chat
    from bench.models import load_tokenizer

    model_dir, model = peaked_model
    tok = load_tokenizer(model_dir)
    q = torch.tensor([chat.prompt_ids(tok, [{"role": "user", "content": "Question 3: name a colour."}])] * 16)
    torch.manual_seed(0)
    sample = model.generate(q, attention_mask=torch.ones_like(q), do_sample=True, top_k=0, max_new_tokens=12,
                            pad_token_id=tok.pad_token_id)[:, q.size(1):]
    target = collections.Counter(sample.flatten().tolist()).most_common(1)[0][0]
    data = _prompts_file(tmp_path)
    _, ppo_log = _run(Ppo, model_dir, data, tmp_path / "ppo", reward_model=f"token-id:{target}")
    _, fg_log = _run(FgPpo, model_dir, data, tmp_path / "fg", reward_model=f"token-id:{target}")
    ppo_r = [r["reward_mean"] for r in ppo_log]
    fg_r = [r["reward_mean"] for r in fg_log]
    assert ppo_r[0] == fg_r[0]  # same seed, same first rollout: only the credit assignment differs
    assert sum(ppo_r[-3:]) / 3 > ppo_r[0] + 0.3, ppo_r  # measured: 0.28 -> ~0.85 (fg-ppo ~0.9)
    assert sum(fg_r[1:]) >= 0.9 * sum(ppo_r[1:]), (fg_r, ppo_r)
    for key in ("kl", "entropy", "response_length", "value_loss", "clip_frac", "time_rollout", "time_scoring", "time_update"):
        assert all(math.isfinite(r[key]) for r in ppo_log), key


def test_ppo_resumes_from_its_state(peaked_model, tmp_path):
    """An interrupted run continues from ppo_state.pt and logs each iteration exactly once."""
    from baselines.ppo import Ppo

    model_dir, _ = peaked_model
    data = _prompts_file(tmp_path)
    out = tmp_path / "ppo"
    _run(Ppo, model_dir, data, out, reward_model="token-id:30", max_steps=3, save_steps=2, rollout_batch=8)
    (out / "bench_run.json").unlink()  # pretend it stopped after the iteration-2 save and one more logged line
    state = torch.load(out / "ppo_state.pt", weights_only=False)
    assert state["iteration"] == 2
    _, log = _run(Ppo, model_dir, data, out, reward_model="token-id:30", max_steps=4, save_steps=2, rollout_batch=8)
    assert [r["iteration"] for r in log] == [1, 2, 3, 4]


def test_policy_weights_merge_lora_into_checkpoint_names(peaked_model, tmp_path):
    """What PPO pushes into the rollout engine: the merged weights, named and shaped like the checkpoint."""
    from safetensors.torch import load_file

    from baselines.ppo import Ppo
    from bench.rollouts import policy_weights
    from bench.config import build_config

    model_dir, model = peaked_model
    cfg = build_config(Ppo.Config, [("test", dict(model=model_dir, lora_r=4))])
    policy = Ppo().build_policy(cfg)
    with torch.no_grad():
        for name, p in policy.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    state = policy_weights(policy.lm)
    saved = load_file(f"{model_dir}/model.safetensors")
    assert set(state) == set(saved) and all(state[k].shape == saved[k].shape for k in saved)
    merged = policy.lm.merge_and_unload()
    for k, v in merged.state_dict().items():
        if k in state:
            assert torch.allclose(state[k], v, atol=1e-6), k
    assert not torch.equal(state["model.layers.0.self_attn.q_proj.weight"], saved["model.layers.0.self_attn.q_proj.weight"])


def test_policy_keeps_fp32_master_weights_where_compute_is_bf16(peaked_model, monkeypatch):
    """On CUDA (default dtype bf16) an AdamW step at PPO's swept rate (1e-6) is far below a bf16 weight's
    resolution: trained bf16 weights would not move. The policy keeps fp32 weights that such a step moves; only the
    frozen reference takes the compute dtype."""
    from baselines.ppo import Ppo
    from bench import models
    from bench.config import build_config

    monkeypatch.setattr(models, "default_dtype", lambda: torch.bfloat16)
    model_dir, _ = peaked_model
    policy = Ppo().build_policy(build_config(Ppo.Config, [("test", dict(model=model_dir))]))
    assert {p.dtype for p in policy.lm.parameters()} == {torch.float32} == {p.dtype for p in policy.value_head.parameters()}
    assert {p.dtype for p in policy.reference.parameters()} == {torch.bfloat16}
    weight = policy.lm.get_input_embeddings().weight
    before = weight.detach().clone()
    optimizer = torch.optim.AdamW([weight], lr=1e-6)
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    assert (weight.detach() != before).float().mean() > 0.99
    step, bf16 = (weight.detach() - before).bfloat16(), before.bfloat16()
    assert (bf16 + step != bf16).float().mean() < 0.01  # the same step on bf16 weights: lost to rounding


@pytest.mark.vllm
def test_vllm_rollouts_follow_the_policy_like_hf(peaked_model, tmp_path):
    """Greedy PPO with rollouts through vLLM (weights pushed every iteration) logs the same rollouts as
    with HF generate, while the policy changes under it (so a stale engine would show)."""
    from baselines.ppo import Ppo

    from bench import chat
    from bench.models import load_tokenizer

    model_dir, model = peaked_model
    tok = load_tokenizer(model_dir)
    q = torch.tensor([chat.prompt_ids(tok, [{"role": "user", "content": "Question 3: name a colour."}])])
    greedy = model.generate(q, attention_mask=torch.ones_like(q), do_sample=False, max_new_tokens=12,
                            pad_token_id=tok.pad_token_id)[0, q.size(1):]
    target = collections.Counter(greedy.tolist()).most_common(1)[0][0]  # a reward greedy decoding already earns
    data = _prompts_file(tmp_path)
    kw = dict(reward_model=f"token-id:{target}", max_steps=3, rollout_batch=8, temperature=0.0, learning_rate=3e-3,
              batch_size=8, rollout_kv_cache_gb=0.25)
    _, hf = _run(Ppo, model_dir, data, tmp_path / "hf", **kw)
    _, vl = _run(Ppo, model_dir, data, tmp_path / "vllm", **{**kw, "rollout_backend": "vllm"})
    keys = ("reward_mean", "response_length", "ended_frac")
    assert [[r[k] for k in keys] for r in vl] == [[r[k] for k in keys] for r in hf]
    assert len({(r["reward_mean"], r["response_length"]) for r in hf}) > 1, hf  # the rollouts did change
    assert all(r["time_sync"] > 0 for r in vl) and all(r["time_sync"] == 0 for r in hf)


@pytest.mark.integration
@pytest.mark.parametrize("recipe,kind", [("ppo", "sequence"), ("fg-ppo", "token")])
def test_ppo_smollm2_lora(smollm2_dir, tmp_path, recipe, kind):
    """One iteration on the real model with a real reward-model checkpoint (an untrained head: the
    checkpoint format and the plugin path are what is under test), then the merged checkpoint loads."""
    from transformers import AutoModelForCausalLM

    from bench.reward_model import save_reward_model
    from bench import registry
    from bench.models import load_tokenizer

    rm_dir = tmp_path / "rm"
    lm = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    lm.score = torch.nn.Linear(lm.config.hidden_size, 1)
    save_reward_model(lm, load_tokenizer(smollm2_dir), rm_dir, kind, smollm2_dir)
    _, cls = registry.get(recipe)
    out, log = _run(cls, smollm2_dir, "expertqa", tmp_path / recipe, reward_model=str(rm_dir), max_steps=1,
                    rollout_batch=2, max_new_tokens=6, batch_size=2, learning_rate=1e-5, no_eos_penalty=1.0,
                    normalize_reward=True, kl_coef=0.05, limit=8)
    assert len(log) == 1 and log[0]["response_length"] > 0 and np.isfinite(log[0]["reward_mean"])
    trained, base = AutoModelForCausalLM.from_pretrained(out), AutoModelForCausalLM.from_pretrained(smollm2_dir)
    moved = max((a - b).abs().max().item() for a, b in zip(trained.parameters(), base.parameters()))
    assert moved > 0  # the update was applied and merged into an ordinary checkpoint
