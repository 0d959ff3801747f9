"""A run: which methods, on what model and data, with which shared budget, evaluated how (one YAML in ``runs/``).

The stages read only this object and the files earlier stages wrote under ``results/runs/<run>/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config import load_yaml
from ..data.errors import DataError

BASE = "base"
# Methods that need a reward model trained first, and the recipe that trains it.
REWARD_DEPENDENCIES = {"ppo": "reward-model", "fg-ppo": "token-reward-model"}


@dataclass
class RunConfig:
    """One comparison: which methods, on what, with which shared budget, evaluated how."""

    run: str = "smollm2-cpu"
    model: str = "smollm2-135m-instruct"
    data: str = "expertqa"
    methods: list = field(default_factory=lambda: ["sft", "figa", "dpo", "ppo", "fg-ppo"])
    budget: dict = field(default_factory=dict)  # TrainConfig options every method gets (steps, batch, length, seed)
    method_options: dict = field(default_factory=dict)  # per-method extra options, e.g. {"ppo": {"max_steps": 3}}
    eval_set: str = "alpaca_eval"
    eval_limit: int = 100
    max_new_tokens: int = 256
    generation_backend: str = "auto"
    judge: str = "local-rm"
    judge_options: dict = field(default_factory=dict)
    suite: str = "figa"
    suite_limit: float | None = 0.25  # documents per task, or a fraction of each task if < 1; None = all
    suite_shots: dict = field(default_factory=dict)  # few-shot overrides per suite entry, e.g. {"figa_mmlu": 0}
    suite_backend: str = "hf-prefix"
    root: str = "results/runs"

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.run

    def checkpoint(self, method: str) -> str:
        """Where a method's checkpoint is (``base``: the untrained model)."""
        from ..models import resolve

        return resolve(self.model) if method == BASE else str(self.dir / "checkpoints" / method)

    def policies(self) -> list[str]:
        """Everything that answers the eval prompts: the untrained model and every trained policy."""
        return [BASE] + [m for m in self.methods if m not in REWARD_DEPENDENCIES.values()]


_TYPES = {"methods": list, "budget": dict, "method_options": dict, "judge_options": dict, "suite_shots": dict}


def load_run_config(path: str | Path | None, overrides: dict | None = None) -> RunConfig:
    doc = {}
    if path:
        path = Path(path)
        doc = load_yaml(path) or {}
    doc.update(overrides or {})
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for key, value in doc.items():
        if key not in names:
            raise DataError(path or "run config", None, key, f"unknown option (known: {', '.join(names)})")
        want = _TYPES.get(key)
        if want and not isinstance(value, want):
            raise DataError(path or "run config", None, key, f"expected a {want.__name__}")
    return RunConfig(**doc)
