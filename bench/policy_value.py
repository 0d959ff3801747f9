"""The network PPO trains: a causal LM with a value head, scored over response tokens, and its mixed precision.

Shared by ``ppo``, ``fg-ppo`` and ``fg-ppo-terminal`` (baselines/ppo.py); the reference model rides along, so
the reference log-probs come from the same call with ``reference=True``.
"""

from __future__ import annotations

import torch

from .logprobs import gather_logprobs


class PolicyWithValue(torch.nn.Module):
    """The causal LM and a value head on its last hidden state; ``score`` runs both over response tokens (it is
    also ``forward``, so DistributedDataParallel sees the update's forward passes)."""

    def __init__(self, lm, reference=None):
        super().__init__()
        self.lm = lm
        self.value_head = torch.nn.Linear(lm.config.hidden_size, 1, dtype=lm.dtype, device=lm.device)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        self.reference = reference  # None: the LoRA model with adapters disabled

    def score(self, seqs, attn, start: int, values: bool = True, reference: bool = False):
        """Log-probs of ``seqs[:, start:]`` given their prefixes, (values), and the logits that gave them."""
        n = seqs.size(1) - start
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        kw = dict(input_ids=seqs, attention_mask=attn, position_ids=pos, logits_to_keep=n + 1,
                  output_hidden_states=values)
        with autocast(self.lm.device):
            if reference and self.reference is not None:
                out = self.reference(**kw)
            elif reference:
                with self.lm.disable_adapter():
                    out = self.lm(**kw)
            else:
                out = self.lm(**kw)
            v = self.value_head(out.hidden_states[-1][:, start - 1: -1]).squeeze(-1).float() if values else None
        logits = out.logits[:, :-1].float()
        logp = gather_logprobs(logits, seqs[:, start:])
        return logp, v, logits

    forward = score


def autocast(device: torch.device):
    """bf16 compute over fp32 master weights on CUDA, as the Trainer recipes do (at the swept learning rates an
    AdamW step is far below a bf16 weight's resolution, so bf16 weights would not move); nothing on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def trim(seqs, attn, start):
    """Drop leading columns that are padding in every row (prompts are left-padded to the longest)."""
    first = int((attn[:, :start].sum(0) > 0).nonzero()[0]) if attn[:, :start].any() else start - 1
    first = min(first, start - 1)
    return seqs[:, first:], attn[:, first:], start - first
