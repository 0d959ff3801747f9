"""SPA-style revision data for any model (FIGA's data half): the model's own subpar answers, minimally revised
by a stronger model, filtered to real, small improvements; and, in edit mode, minimal edits of the rejected
response of preference pairs for the token reward model.

One module per step: ``rollout`` -> ``reward`` -> ``revise`` -> ``filter`` -> ``write``; ``pipeline.build``
runs them (resumable, content-cached), ``config.SpaConfig`` holds the options. Importing this package is
cheap (a run config names its options without loading torch); the steps import their libraries when run.
"""

from __future__ import annotations

from .config import SpaConfig

__all__ = ["SpaConfig", "build"]


def build(cfg: SpaConfig, stop=None) -> dict:
    """Run (or continue) a build; see ``bench.spa.pipeline.build``."""
    from .pipeline import build as run_build

    return run_build(cfg, stop)
