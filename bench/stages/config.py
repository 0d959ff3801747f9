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


DEFAULT_JUDGE = "mimic-gpt4"  # the judge of `bench judge`, `bench eval`, bench.judge and a run that names none
_PPO_OPTIONS = {"max_steps": 2, "rollout_batch": 16, "max_new_tokens": 64, "batch_size": 8}


@dataclass
class RunConfig:
    """One comparison: which methods, on what, with which shared budget, evaluated how.

    The defaults are the default run's values (``runs/smollm2-cpu.yaml``, which a test keeps equal to
    ``RunConfig()``): a run YAML that leaves a field out gets what the default run uses, never another value."""

    run: str = "smollm2-cpu"
    model: str = "smollm2-135m-instruct"
    data: str = "expertqa"
    build_data: dict | None = None  # build SPA-style data from the run's model first (bench/spa); methods train on it
    methods: list = field(default_factory=lambda: ["sft", "figa", "dpo", "ppo", "fg-ppo"])
    budget: dict = field(default_factory=lambda: {  # TrainConfig options every method gets (steps, batch, length)
        "max_steps": 8, "batch_size": 4, "grad_accum": 1, "limit": 32, "max_length": 256, "val_fraction": 0.1,
        "val_limit": 16, "lora_r": 0, "save_steps": 4})
    seeds: list = field(default_factory=lambda: [0, 1])  # every method (and reward model) is trained once per seed
    method_options: dict = field(default_factory=lambda: {  # per-method extra options, e.g. {"ppo": {"max_steps": 3}}
        m: dict(_PPO_OPTIONS) for m in ("ppo", "fg-ppo", "fg-ppo-terminal")})
    eval_set: str = "alpaca_eval"
    eval_limit: int = 100
    max_new_tokens: int = 192
    generation_backend: str = "auto"
    # vLLM on real hardware (generate stage): GPUs per engine (CPU: worker processes, the cores split between
    # them), engines side by side (checkpoints dealt between them), each GPU's memory share (null: 0.85)
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    judge: str = DEFAULT_JUDGE
    judge_options: dict = field(default_factory=dict)
    # An LLM judge the run serves itself (`judge: llm`): {model, tensor_parallel_size, data_parallel_size,
    # gpu_memory_utilization, max_model_len, startup_timeout}; the judge stage starts `bench serve` for it and
    # stops it. Empty: the judge's own options say where it is (judge_options.base_url, $OPENAI_BASE_URL).
    judge_serve: dict = field(default_factory=dict)
    allow_unvalidated_judge: bool = False  # judge with a judge whose card fails (its numbers are marked so)
    allow_template_change: bool = False  # generate with a checkpoint whose chat template changed since training
    # Judged beside the methods: a constant answer that must land in the bottom tier, and an eval set whose
    # reference answers are known to beat this run's reference (e.g. GPT-4-turbo vs davinci-003), the top tier.
    controls: dict = field(default_factory=lambda: {"null": "I don't know.", "positive": "alpaca_eval-gpt4turbo"})
    suite: str = "figa"
    suite_limit: float | None = 0.1  # documents per task, or a fraction of each task if < 1; None = all
    suite_shots: dict = field(default_factory=dict)  # few-shot overrides per suite entry, e.g. {"figa_mmlu": 0}
    suite_backend: str = "hf-prefix"
    suite_all_seeds: bool = False  # False: the suite runs on each method's first seed only (it costs minutes each)
    root: str = "results/runs"
    ray_memory_gb: dict = field(default_factory=dict)  # --executor ray: GiB per task by kind (train/generate/suite),
    # instead of the estimate from the model's size (bench/stages/memory.py)

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.run

    def source(self, key: str) -> str:
        """Where option ``key`` was set: the run YAML's path, ``--set``, or "run config" (built in code)."""
        return getattr(self, "sources", {}).get(key, "run config")

    @property
    def train_data(self) -> str:
        """What every method trains on: the pairs the build_data stage built, or ``data``."""
        if not self.build_data:
            return self.data
        from .build_data import data_spec

        return data_spec(self)

    def checkpoint(self, method: str, seed: int | None = None) -> str:
        """Where a method's checkpoint for ``seed`` is (``base``: the untrained model)."""
        if method != BASE:
            return str(self.path("checkpoints", method, seed))
        from ..models import resolve  # imports torch: only when the base model is asked for

        return resolve(self.model)

    def path(self, kind: str, name: str, seed: int | None = None) -> Path:
        """``<run>/<kind>/<name>/seed-<seed>``; seedless things (base, controls) have no seed folder."""
        where = self.dir / kind / name
        return where if seed is None else where / f"seed-{seed}"

    def policies(self) -> list[str]:
        """The trained methods that answer the eval prompts (reward models do not: ``policy: false``)."""
        from ..registry import recipes

        known = recipes()
        return [m for m in self.methods if m not in known or known[m].policy]

    def controls_named(self) -> dict[str, str]:
        """{policy name: control kind} for the controls this run judges."""
        return {f"{kind}-control": kind for kind, value in self.controls.items() if value is not None}

    def units(self) -> list[tuple[str, int | None]]:
        """Everything judged: (name, seed) for base, every policy at every seed, and the controls."""
        return ([(BASE, None)] + [(m, s) for m in self.policies() for s in self.seeds]
                + [(c, None) for c in self.controls_named()])


_TYPES = {"methods": list, "budget": dict, "method_options": dict, "judge_options": dict, "judge_serve": dict,
          "suite_shots": dict,
          "seeds": list, "controls": dict}


def load_run_config(path: str | Path | None, overrides: dict | None = None) -> RunConfig:
    doc = {}
    if path:
        path = Path(path)
        doc = load_yaml(path)
        if doc is None or doc == {}:  # an empty run would silently be the code's defaults, not the documented run
            raise DataError(path, None, None, "the run YAML is empty (or only comments); write the run's options, e.g. "
                                              "start from a copy of runs/smollm2-cpu.yaml")
        if not isinstance(doc, dict):
            raise DataError(path, None, None, "expected a mapping of run options")
    sources = {key: str(path) for key in doc} | {key: "--set" for key in overrides or {}}
    doc.update(overrides or {})
    names = {f.name for f in dataclasses.fields(RunConfig)}
    for key, value in doc.items():
        if key not in names:
            raise DataError(sources.get(key, "run config"), None, key, f"unknown option (known: {', '.join(names)})")
        want = _TYPES.get(key)
        if want and not isinstance(value, want):
            raise DataError(sources.get(key, "run config"), None, key, f"expected a {want.__name__}")
    run = RunConfig(**doc)
    run.sources = sources  # not a field: where each option came from, for messages (the YAML file, or --set)
    from ..validate import check_run_config

    check_run_config(run, sources)  # every field, before the first stage
    if run.build_data is not None:
        if not isinstance(run.build_data, dict):
            raise DataError(sources.get("build_data", "run config"), None, "build_data",
                            "expected a mapping of build options (those of `bench data build-spa`)")
        from .build_data import config

        config(run)  # unknown build options and bad values name their source before any stage starts
    return run
