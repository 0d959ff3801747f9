"""SPA-style revision data for any model (FIGA's data half): the model's own subpar answers, minimally revised
by a stronger model, filtered to real, small improvements; and, in edit mode, minimal edits of the rejected
response of preference pairs for the token reward model.

One module per step: ``rollout`` -> ``reward`` -> ``revise`` -> ``filter`` -> ``write``; ``pipeline.build``
runs them (resumable, content-cached), ``config.SpaConfig`` holds the options.
"""

from .config import SpaConfig
from .pipeline import build

__all__ = ["SpaConfig", "build"]
