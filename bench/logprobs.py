"""Log-probabilities of given tokens under a model's logits: the one gatherer DPO, PPO, FIGA and the sweep share."""

from __future__ import annotations

import torch


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log p(tokens[..., t])`` under ``logits[..., t, :]``, in float32 (bf16 log-softmax loses the small ones)."""
    return torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)


def next_token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Causal-LM scoring: ``out[:, t]`` is ``log p(input_ids[:, t+1] | input_ids[:, :t+1])``."""
    return gather_logprobs(logits[:, :-1], input_ids[:, 1:])


def token_ce(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy of next-token prediction: ``ce[:, t]`` is the loss of ``input_ids[:, t+1]``."""
    return -next_token_logprobs(logits, input_ids)
