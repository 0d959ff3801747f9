"""The arithmetic of PPO for language models, shared by ``ppo`` and ``fg-ppo`` (tensors in, tensors out).

Shapes: every per-token tensor is (B, T) over *response* tokens, with ``mask`` 1 on real tokens (a prefix
of each row: the response up to and including its end-of-turn token) and 0 on padding.

- ``assemble_rewards``: r_t = score_t - kl_coef * (log pi(a_t|s_t) - log ref(a_t|s_t)), where ``score`` is
  what the reward plugin returned (a sequence RM puts its value on the last token, a token RM one value
  per token), minus a penalty on the last token of a response that never ended.
- ``gae``: generalised advantage estimation (Schulman et al., 2016) with V = 0 after the last token.
- ``policy_loss`` / ``value_loss``: the clipped PPO objectives (Schulman et al., 2017), token-averaged.
- ``KLController``: a fixed coefficient, or the adaptive one of Ziegler et al. (2019).

No model code lives here, so every function is checked against hand computation (tests/test_ppo.py).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, all_sum=None) -> torch.Tensor:
    """Zero mean (optionally), unit variance over the masked entries; padding stays where it was.
    ``all_sum`` sums a tensor over processes that each hold part of the batch: the moments are then the whole
    batch's (``bench.distributed.all_sum``), as one process holding all of it would compute them."""
    total = all_sum or (lambda t: t)
    count = total(mask.sum()).clamp(min=1)
    mean = total((x * mask).sum()) / count
    var = total(((x - mean) ** 2 * mask).sum()) / count
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def assemble_rewards(scores, logprobs, ref_logprobs, mask, kl_coef: float, ended=None, no_eos_penalty: float = 0.0):
    """Per-token rewards and the per-token KL estimate ``log pi - log ref`` (both (B, T), zero on padding)."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = scores * mask - kl_coef * kl
    if ended is not None and no_eos_penalty:
        last = (mask.sum(1).long() - 1).clamp(min=0)
        penalty = torch.where(ended, 0.0, -no_eos_penalty).to(rewards.dtype)
        rewards = rewards.index_put((torch.arange(len(last)), last), penalty, accumulate=True)
    return rewards, kl


def gae(rewards, values, mask, gamma: float, lam: float):
    """Advantages A_t = sum_k (gamma*lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t; returns A + V."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, (advantages + values) * mask


def policy_loss(logprobs, old_logprobs, advantages, mask, clip: float):
    """Clipped surrogate; also the fraction of tokens where clipping bit and an approximate KL(old||new)."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask)
    return loss, clip_frac.detach(), approx_kl.detach()


def value_loss(values, old_values, returns, mask, clip: float):
    """Clipped value loss: the value may not move further than ``clip`` from its rollout estimate for free."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask).detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


class KLController:
    """``target`` = None keeps ``coef`` fixed; otherwise coef is nudged towards KL = target, by at most
    20% of the error per ``horizon`` samples (Ziegler et al., 2019)."""

    def __init__(self, coef: float, target: float | None = None, horizon: int = 10000):
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        if not self.target:
            return
        error = max(min(kl / self.target - 1.0, 0.2), -0.2)
        self.coef *= 1.0 + error * n_samples / self.horizon
