"""The ``fg-ppo`` recipe: fine-grained PPO (Wu et al., 2023; Xu et al., ACL 2024), a reward per token.

Everything is ``ppo``'s loop and ``PpoConfig``'s defaults (same prompts, iterations, KL settings); only
the reward plugin differs: the token reward model's scores stay on the tokens they judge (``dense``), so
GAE sees credit where an edit happened instead of one number at the end of the response.

``fg-ppo-terminal`` is the ablation between the two: the token reward model, its per-token scores summed
onto the last token (``dense = False``). ppo vs fg-ppo-terminal isolates the reward model's objective
(sequence vs token supervision); fg-ppo-terminal vs fg-ppo isolates the credit assignment.
"""

from __future__ import annotations

from bench.registry import register

from .ppo import Ppo


@register("fg-ppo")
class FgPpo(Ppo):
    dense = True


@register("fg-ppo-terminal")
class FgPpoTerminal(Ppo):
    dense = False
