"""The ``ppo`` recipe (RLHF with a sequence-level reward) and the loop ``fg-ppo`` shares with it.

One iteration = rollout (sampling at ``temperature`` from the current policy: through a vLLM engine when
vLLM is installed, the policy's merged weights pushed into it before each rollout (bench/engine.py); else
HF ``generate``; both give the same greedy tokens from the same weights, tests/test_ppo.py), scoring
(the reward plugin, then the policy's and the reference's log-probs and the values of the sampled tokens),
and update (``ppo_epochs`` passes of clipped policy + value losses over minibatches of ``batch_size``
responses). The arithmetic is ``bench.ppo_core``; the reward is a ``bench.rewards`` plugin. ``ppo`` credits
the reward to the last token (``dense = False``); ``fg-ppo`` (baselines/fg_ppo.py) keeps one reward per
token. That is the only difference: both read every other setting from ``PpoConfig``'s defaults.

The value function is a linear head on the policy's last hidden state. With full fine-tuning (the default,
as for every method) a frozen copy of the start model is the reference; with LoRA the reference is the same
network with its adapters disabled, so no second copy is held. The policy keeps fp32 weights and computes in
bf16 on CUDA (``autocast``), like the Trainer recipes. Dropout is off throughout so log-probs at update time match
the rollout's.

Outputs in ``output_dir``: ``ppo_log.jsonl``, one line per iteration with ``reward_mean``/``reward_std``
(per-response total of the plugin's normalised reward), ``total_reward_mean`` (after KL and the no-eos
penalty), ``kl`` (per-response sum of log pi - log ref), ``kl_coef``, ``entropy`` (per token),
``response_length``, ``ended_frac``, ``policy_loss``, ``value_loss``, ``clip_frac``, ``value_clip_frac``,
``approx_kl`` and seconds per phase (``time_sync`` (weights into the engine), ``time_rollout``, ``time_scoring`` = ``time_reward`` +
``time_logprobs``, ``time_update``); ``ppo_state.pt`` (resume point, every ``save_steps`` iterations); and
at the end an ordinary merged causal-LM checkpoint plus ``bench_run.json``.

Under ``accelerate launch`` with N processes (as AlpacaFarm's PPO): each rank takes its contiguous 1/N of every
iteration's prompts, rolls them out (its own vLLM engine on its own devices), scores them and updates with
minibatches of ``batch_size / N``; the policy is wrapped in DistributedDataParallel, so gradients are averaged over
ranks, and each rank's loss is weighted by its share of the minibatch's tokens, so an update equals one process's
on the whole minibatch. Whitening and the logged statistics are over every rank's responses; rank 0 decides
"already trained" and alone writes the log, the resume state and the checkpoint. ``rollout_batch`` and
``batch_size`` must divide by N (one sentence otherwise).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import chat, data, distributed, models, ppo_core, rewards
from bench.atomic import atomic_write_json
from bench.config import TrainConfig, to_dict
from bench.console import progress
from bench.policy_value import PolicyWithValue, autocast, trim
from bench.registry import register
from bench.rollouts import PromptSchedule, cut_at, engine_rollout, left_pad, policy_weights, rollout_engine
from bench.checkpoints import already_trained, fingerprint
from bench.training import apply_lora, output_dir

log = logging.getLogger("bench.ppo")


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class PpoConfig(TrainConfig):
    """Defaults shared by ``ppo`` and ``fg-ppo`` (prompts, budget, KL): change them here for both."""

    reward_model: str = _help("reward model checkpoint dir, or 'token-id:N' (+1 per emitted token N; tests)",
                              "results/checkpoints/reward-model")
    normalize_reward: bool = _help("divide rewards by the RM's calibration std and remove its mean", True)
    rollout_batch: int = _help("prompts sampled per iteration", 32)
    max_new_tokens: int = _help("response length limit during rollouts", 96)
    max_prompt_length: int = _help("skip prompts longer than this many tokens", 256)
    temperature: float = _help("sampling temperature of rollouts", 1.0)
    ppo_epochs: int = _help("passes over each rollout batch", 2)
    kl_coef: float = _help("initial coefficient of the per-token KL penalty", 0.05)
    kl_target: float = _help("adaptive KL target per response (0 = fixed coefficient)", 0.0)
    kl_horizon: int = _help("adaptive KL horizon in samples", 10000)
    gamma: float = _help("GAE discount", 1.0)
    lam: float = _help("GAE lambda", 0.95)
    clip_range: float = _help("PPO policy ratio clip", 0.2)
    clip_range_value: float = _help("PPO value clip", 0.2)
    vf_coef: float = _help("weight of the value loss", 0.1)
    whiten_rewards: bool = _help("whiten per-token rewards over the batch before GAE", False)
    whiten_advantages: bool = _help("whiten advantages over the batch", True)
    no_eos_penalty: float = _help("subtracted from a response that hits max_new_tokens without ending", 1.0)
    forward_batch_size: int = _help("responses per no-grad forward while scoring", 8)
    rollout_backend: str = _help("rollouts through 'vllm' (one engine, weights pushed each iteration), 'hf' "
                                 "generate, or 'auto' (vllm when installed)", "auto")
    rollout_kv_cache_gb: float = _help("KV cache of the rollout engine on CPU (GiB)", 1.0)
    rollout_gpu_memory_utilization: float = _help("GPU share of the rollout engine (0 = sized at start against "
                                                  "what PPO holds, bench.rollouts.rollout_gpu_share)", 0.0)
    # Overridden TrainConfig defaults: an iteration is PPO's step; a minibatch is batch_size responses.
    max_steps: int = _help("PPO iterations (-1 = epochs over the prompts)", 20)
    batch_size: int = _help("responses per PPO minibatch (one optimiser step)", 8)
    learning_rate: float = _help("peak learning rate (full fine-tuning; `bench sweep ppo` chooses it with kl_coef)", 1e-5)
    lr_scheduler: str = _help("transformers scheduler name", "constant")
    lora_r: int = _help("LoRA rank (0 = full fine-tuning with a frozen reference copy, as every method)", 0)
    lora_dropout: float = _help("LoRA dropout (off: PPO ratios need deterministic log-probs)", 0.0)


@register("ppo")
class Ppo:
    Config = PpoConfig
    dense = False  # a sequence-level reward: the plugin's total goes on the last token

    # ------------------------------------------------------------------ setup
    def load_prompts(self, cfg, tokenizer) -> list[tuple[list, list[int]]]:
        """Unique prompts of the training split (held-out prompts stay unseen), with their token ids."""
        records = data.load(cfg.data, skip_invalid=cfg.skip_invalid)
        train_recs, _ = data.train_val_split(records, cfg.val_fraction, cfg.seed)
        seen, out, too_long = set(), [], 0
        for r in train_recs:
            key = json.dumps(r.prompt)
            if key in seen:
                continue
            seen.add(key)
            ids = chat.prompt_ids(tokenizer, r.prompt)
            if len(ids) > cfg.max_prompt_length:
                too_long += 1
                continue
            out.append((r.prompt, ids))
        if too_long:
            log.info("ppo: %d prompts longer than %d tokens left out", too_long, cfg.max_prompt_length)
        if cfg.limit:
            out = out[: cfg.limit]
        if not out:
            raise data.DataError(cfg.data, None, "prompt", f"no prompt of at most {cfg.max_prompt_length} tokens")
        return out

    def build_policy(self, cfg) -> PolicyWithValue:
        """fp32 master weights (``autocast`` computes in bf16 on CUDA); the frozen reference in the compute dtype."""
        lm = models.load_model(cfg.model, dtype=torch.float32)
        lm.generation_config.pad_token_id = lm.generation_config.pad_token_id or lm.config.eos_token_id
        if cfg.lora_r:
            return PolicyWithValue(apply_lora(lm, cfg))
        reference = copy.deepcopy(lm).to(models.default_dtype()).eval().requires_grad_(False)
        return PolicyWithValue(lm, reference)

    # ------------------------------------------------------------------ one iteration
    @torch.no_grad()
    def rollout(self, policy, batch, tokenizer, cfg, iteration: int, engine=None, first: int = 0):
        """Sample one response per prompt (greedy if ``temperature`` is 0); returns the padded sequences,
        their attention mask, where responses start, the response mask and which responses ended. ``first``:
        the index of ``batch[0]`` in the iteration's prompts (vLLM seeds each prompt by its index)."""
        query, qmask = left_pad([ids for _, ids in batch], tokenizer.pad_token_id)
        eos = tokenizer.eos_token_id
        seed = cfg.seed * 1_000_003 + iteration  # resume-stable sampling
        if engine is not None:
            responses = engine_rollout(engine, [ids for _, ids in batch], cfg, eos, seed, first)
        else:
            from transformers import GenerationConfig

            sample = cfg.temperature > 0
            gen = GenerationConfig(do_sample=sample, temperature=cfg.temperature if sample else None,
                                   top_k=0 if sample else None, top_p=1.0 if sample else None,
                                   max_new_tokens=cfg.max_new_tokens, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
            torch.manual_seed(seed + 7919 * distributed.rank())  # ranks draw different samples
            dev = policy.lm.device
            with autocast(dev):
                out = policy.lm.generate(input_ids=query.to(dev), attention_mask=qmask.to(dev), generation_config=gen).cpu()
            responses = [cut_at(row, eos) for row in out[:, query.size(1):].tolist()]
        ended = torch.tensor([bool(r) and r[-1] == eos for r in responses])
        width = max(1, max(map(len, responses)))
        response = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in responses])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in responses])
        seqs = torch.cat([query, response], 1)
        attn = torch.cat([qmask, mask], 1)
        return seqs, attn, query.size(1), mask.float(), ended

    @torch.no_grad()
    def score_batch(self, policy, seqs, attn, start, cfg):
        """Old log-probs, values, reference log-probs and entropy, in chunks of forward_batch_size."""
        parts = {"logp": [], "values": [], "ref": [], "entropy": []}
        dev = policy.lm.device
        for i in range(0, len(seqs), cfg.forward_batch_size):
            s, a = seqs[i: i + cfg.forward_batch_size].to(dev), attn[i: i + cfg.forward_batch_size].to(dev)
            s, a, st = trim(s, a, start)
            logp, values, logits = policy.score(s, a, st)
            parts["logp"].append(logp.cpu())
            parts["values"].append(values.cpu())
            parts["entropy"].append(ppo_core.entropy_from_logits(logits).cpu())
            parts["ref"].append(policy.score(s, a, st, values=False, reference=True)[0].cpu())
        return {k: torch.cat(v) for k, v in parts.items()}

    def update(self, model, optimizer, scheduler, seqs, attn, start, old, cfg, iteration: int) -> dict:
        """``ppo_epochs`` passes over this rank's responses in minibatches of its share of ``batch_size``.
        ``model``: the policy, wrapped by ``distributed.synchronised`` under a launcher."""
        stats = {"policy_loss": [], "value_loss": [], "clip_frac": [], "value_clip_frac": [], "approx_kl": []}
        dev = next(model.parameters()).device
        gen = torch.Generator().manual_seed(cfg.seed + iteration)
        params = [p for p in model.parameters() if p.requires_grad]
        size = distributed.per_rank(cfg.batch_size, "batch_size", f"{self.name} config")
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(len(seqs), generator=gen)
            for i in range(0, len(seqs), size):
                idx = order[i: i + size]
                s, a, st = trim(seqs[idx].to(dev), attn[idx].to(dev), start)
                logp, values, _ = model(s, a, st)
                m = old["mask"][idx].to(dev)
                pl, clip_frac, approx_kl = ppo_core.policy_loss(logp, old["logp"][idx].to(dev), old["advantages"][idx].to(dev),
                                                                m, cfg.clip_range)
                vl, vclip = ppo_core.value_loss(values, old["values"][idx].to(dev), old["returns"][idx].to(dev), m,
                                                cfg.clip_range_value)
                # the losses are means over this rank's tokens; weighted by its share of the minibatch's tokens
                # (and times N, which the ranks' gradient average divides out), the update is the whole minibatch's
                tokens = m.sum()
                share = tokens / distributed.all_sum(tokens).clamp(min=1)
                ((pl + cfg.vf_coef * vl) * share * distributed.world_size()).backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                summed = distributed.all_sum(torch.stack([pl, vl, clip_frac, vclip, approx_kl]).detach() * share)
                for k, v in zip(stats, summed.tolist()):
                    stats[k].append(v)
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def iteration(self, model, reward_fn, kl, optimizer, scheduler, batch, tokenizer, cfg, it: int,
                  engine=None) -> dict:
        """One rollout, scoring and update of the iteration's prompts ``batch`` (this rank's share of them)."""
        policy = getattr(model, "module", model)  # the policy itself, unwrapped where no gradient flows
        t0 = time.perf_counter()
        sync = engine.load_state_dict(policy_weights(policy.lm)) if engine is not None else 0.0
        batch = distributed.share(batch, "rollout_batch", f"{self.name} config")
        first = len(batch) * distributed.rank()
        seqs, attn, start, mask, ended = self.rollout(policy, batch, tokenizer, cfg, it, engine, first)
        t1 = time.perf_counter()
        response_ids = [seqs[b, start: start + int(mask[b].sum())].tolist() for b in range(len(seqs))]
        scores_rows = reward_fn([p for p, _ in batch], [ids for _, ids in batch], response_ids)
        scores = torch.zeros_like(mask)
        for b, row in enumerate(scores_rows):
            if len(row) != len(response_ids[b]):
                raise ValueError(f"reward plugin returned {len(row)} scores for a {len(response_ids[b])}-token response")
            scores[b, : len(row)] = torch.tensor(row)
        t2 = time.perf_counter()
        old = self.score_batch(policy, seqs, attn, start, cfg)
        t3 = time.perf_counter()
        token_rewards, kl_tokens = ppo_core.assemble_rewards(scores, old["logp"], old["ref"], mask, kl.coef, ended,
                                                             cfg.no_eos_penalty)
        if cfg.whiten_rewards:
            token_rewards = ppo_core.masked_whiten(token_rewards, mask, shift_mean=False, all_sum=distributed.all_sum)
        advantages, returns = ppo_core.gae(token_rewards, old["values"], mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            advantages = ppo_core.masked_whiten(advantages, mask, all_sum=distributed.all_sum)
        old.update(mask=mask, advantages=advantages, returns=returns)
        stats = self.update(model, optimizer, scheduler, seqs, attn, start, old, cfg, it)
        t4 = time.perf_counter()
        # per response, then every rank's responses together: the statistics of the whole batch
        per_response = torch.stack([scores.sum(1), (token_rewards * mask).sum(1), kl_tokens.sum(1), mask.sum(1),
                                    ended.float(), (old["entropy"] * mask).sum(1), (old["values"] * mask).sum(1)], 1)
        total, total_reward, kl_seq, length, ended_all, entropy, value = torch.tensor(
            distributed.gather(per_response.tolist())).T
        tokens = length.sum().clamp(min=1)
        record = {
            "iteration": it + 1,
            "reward_mean": float(total.mean()),
            "reward_std": float(total.std()) if len(total) > 1 else 0.0,
            "total_reward_mean": float(total_reward.mean()),
            "kl": float(kl_seq.mean()),
            "kl_coef": kl.coef,
            "entropy": float(entropy.sum() / tokens),
            "response_length": float(length.mean()),
            "ended_frac": float(ended_all.mean()),
            "value_mean": float(value.sum() / tokens),
            **stats,
            "lr": scheduler.get_last_lr()[0],
            "time_sync": sync,
            "time_rollout": t1 - t0 - sync,
            "time_scoring": t3 - t1,
            "time_reward": t2 - t1,
            "time_logprobs": t3 - t2,
            "time_update": t4 - t3,
            "time_total": t4 - t0,
        }
        kl.update(record["kl"], len(total))
        return record

    # ------------------------------------------------------------------ the run
    def run(self, cfg) -> Path:
        from transformers import get_scheduler, set_seed

        for field in ("rollout_batch", "batch_size"):  # before anything loads
            distributed.per_rank(getattr(cfg, field), field, f"{self.name} config")
        set_seed(cfg.seed)
        distributed.init()
        if distributed.engine_asked() and distributed.is_main():
            log.warning("%s does not shard: it runs as DDP under this %s config (every rank holds the policy, its "
                        "reference and the reward model whole; the updates are the same)", self.name,
                        distributed.engine_asked())
        out = output_dir(self, cfg)
        inputs = {} if cfg.reward_model.startswith("token-id:") else {"reward_model": fingerprint(cfg.reward_model)}
        if distributed.decided_by_main(  # a new RM: retrain
                lambda: already_trained(out, cfg, inputs, resume_state=("ppo_state.pt", "ppo_log.jsonl"))):
            return out
        tokenizer = models.load_tokenizer(cfg.model)
        prompts = self.load_prompts(cfg, tokenizer)
        iterations = cfg.max_steps if cfg.max_steps > 0 else math.ceil(len(prompts) * cfg.epochs / cfg.rollout_batch)
        reward_fn = rewards.build(cfg.reward_model, tokenizer, dense=self.dense, normalize=cfg.normalize_reward)
        policy = self.build_policy(cfg)
        policy.eval()  # no dropout anywhere: ratios compare deterministic log-probs
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        steps = iterations * cfg.ppo_epochs * math.ceil(cfg.rollout_batch / cfg.batch_size)
        scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * steps),
                                  num_training_steps=steps)
        kl = ppo_core.KLController(cfg.kl_coef, cfg.kl_target or None, cfg.kl_horizon)
        first = self.resume(out, policy, optimizer, scheduler, kl)
        schedule = PromptSchedule(prompts, cfg.seed)
        log_path = out / "ppo_log.jsonl"
        t0 = time.perf_counter()
        states = 0 if optimizer.state else 2 * sum(p.numel() * p.element_size() for p in params)  # AdamW's two moments
        model = distributed.synchronised(policy)
        with rollout_engine(cfg, prompts, states) if first < iterations else contextlib.nullcontext() as engine:
            for it in range(first, iterations):
                record = self.iteration(model, reward_fn, kl, optimizer, scheduler,
                                        schedule.batch(it, cfg.rollout_batch), tokenizer, cfg, it, engine)
                if distributed.is_main():
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    if (it + 1) % max(cfg.logging_steps, 1) == 0:
                        log.info("%s it %d: reward %.3f kl %.3f len %.1f (%.0fs)", self.name, it + 1,
                                 record["reward_mean"], record["kl"], record["response_length"], record["time_total"])
                    progress(f"{self.name} {out.name}: PPO iterations", it + 1, iterations)
                if (it + 1) % max(cfg.save_steps, 1) == 0 and it + 1 < iterations:
                    with distributed.main_writes() as writer:
                        if writer:
                            self.checkpoint(out, policy, optimizer, scheduler, kl, it + 1)
        with distributed.main_writes() as writer:
            if writer:
                self.save(policy, tokenizer, out)
                atomic_write_json(out / "bench_run.json", {  # bench/atomic.py; after the weights: finished
                    "recipe": self.name, "config": to_dict(cfg), "inputs": inputs, "model_source": models.resolve(cfg.model),
                    "chat_template_hash": chat.template_hash(tokenizer), "n_prompts": len(prompts),
                    "iterations": iterations, "train_seconds": time.perf_counter() - t0,
                    "processes": distributed.world_size(),
                }, default=str)
        return out

    def checkpoint(self, out: Path, policy, optimizer, scheduler, kl, iteration: int) -> None:
        trainable = {n: p.detach().cpu() for n, p in policy.named_parameters() if p.requires_grad}
        tmp = out / "ppo_state.pt.tmp"
        torch.save({"iteration": iteration, "params": trainable, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "kl_coef": kl.coef}, tmp)
        os.replace(tmp, out / "ppo_state.pt")

    def resume(self, out: Path, policy, optimizer, scheduler, kl) -> int:
        """Load ``ppo_state.pt`` if present; drop log lines written after it. Returns the next iteration."""
        path, log_path = out / "ppo_state.pt", out / "ppo_log.jsonl"
        state = torch.load(path, weights_only=False, map_location="cpu") if path.exists() else None
        first = state["iteration"] if state else 0
        with distributed.main_writes() as writer:
            if writer and log_path.exists():
                kept = [l for l in log_path.read_text().splitlines() if l and json.loads(l)["iteration"] <= first]
                log_path.write_text("".join(l + "\n" for l in kept))
        if state:
            missing = policy.load_state_dict(state["params"], strict=False)
            if missing.unexpected_keys:
                raise RuntimeError(f"{path} does not match this policy: {missing.unexpected_keys[:3]}")
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            kl.coef = state["kl_coef"]
            log.info("ppo: resuming at iteration %d from %s", first, path)
        return first

    def save(self, policy, tokenizer, out: Path) -> None:
        lm = policy.lm.merge_and_unload() if hasattr(policy.lm, "merge_and_unload") else policy.lm
        lm.save_pretrained(out)
        tokenizer.save_pretrained(out)
