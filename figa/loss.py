"""The FIGA loss (Guo et al., ICLR 2024, Eq. 3-4 and the official implementation's defaults).

    L = sum_t w_t * CE_t / #{t : w_t != 0}

with w_t = alpha on tokens the revision added or substituted, gamma on its unchanged tokens, and
-beta on tokens of the initial response that were deleted or substituted, but only where the model
still finds them likely (CE_t <= tau): pushing down a token that is already unlikely only destroys the
model (unbounded unlikelihood), so those are dropped. The older rule keeps a window tau_min <= CE_t <= tau.
"""

from __future__ import annotations

import torch


def effective_weights(ce, weights, negative, tau: float = 0.6, tau_min: float | None = None) -> torch.Tensor:
    """The weights after the tau rule: negative tokens the model already finds unlikely get 0."""
    risky = ce.detach() <= tau
    if tau_min is not None:
        risky &= ce.detach() >= tau_min
    return torch.where(negative & ~risky, torch.zeros_like(weights), weights)


def figa_loss(
    ce: torch.Tensor,
    weights: torch.Tensor,
    negative: torch.Tensor,
    tau: float = 0.6,
    tau_min: float | None = None,
    total_weighted: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """``ce``, ``weights`` (signed, already alpha/gamma/-beta) and ``negative`` (bool) are aligned (B, T).
    ``total_weighted``: the denominator when this batch is part of a larger one (default: its own count).

    Returns the loss and the statistics FIGA's behaviour depends on."""
    w = effective_weights(ce, weights, negative, tau, tau_min)
    n_weighted = (w != 0).sum()
    denominator = n_weighted if total_weighted is None else total_weighted
    loss = (w * ce).sum() / denominator.clamp(min=1)  # an edit-free batch gives 0, not NaN
    positive = (w > 0) & ~negative
    kept = negative & (w != 0)
    n_neg = int(negative.sum())
    stats = {
        "n_positive": float(positive.sum()),
        "n_negative": float(n_neg),
        "n_negative_kept": float(kept.sum()),
        "frac_negative_kept": float(kept.sum()) / n_neg if n_neg else 0.0,
        "loss_positive": float((w * ce).detach()[positive].sum() / n_weighted.clamp(min=1)),
        "loss_negative": float((w * ce).detach()[kept].sum() / n_weighted.clamp(min=1)),
        "ce_positive": float(ce.detach()[positive].mean()) if positive.any() else 0.0,
        "ce_negative": float(ce.detach()[negative].mean()) if n_neg else 0.0,
    }
    return loss, stats
