"""Pluggable judges: one module + one YAML per judge (like recipes), and a measured "judge card" beside it.

``<name>.yaml`` holds ``judge:``, ``module:``, ``description:`` and default ``config:`` (constructor options);
the module registers its class with ``@register(name)`` and is imported only when the judge is used, so
``bench judges list`` stays light. ``<name>.card.yaml`` is written by ``bench judges measure``: agreement with
held-out human preference labels (with a bootstrap CI), position consistency, length bias, the null-model
check and speed, so every reported win rate can be read next to how far its judge can be trusted.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..atomic import atomic_write_text
from ..registry import PluginSpec, Registry
from .base import Judge, Judgement, ScorerJudge, judged_frame

HERE = Path(__file__).resolve().parent
JUDGES = Registry("judge")
register = JUDGES.register

__all__ = ["Judge", "Judgement", "ScorerJudge", "card", "get", "judged_frame", "judges", "register", "write_card"]


def judges() -> dict[str, PluginSpec]:
    specs = [JUDGES.read_spec(p) for p in sorted(HERE.glob("*.yaml")) if not p.name.endswith(".card.yaml")]
    return {spec.name: spec for spec in specs}


def get(name: str, **options) -> Judge:
    """Build judge ``name`` with its YAML defaults overridden by ``options``."""
    known = judges()
    if name not in known:
        raise KeyError(f"unknown judge '{name}'; known: {', '.join(sorted(known))}")
    spec = known[name]
    cls = JUDGES.load(spec)
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise KeyError(f"judge '{name}' has no option(s) {', '.join(sorted(unknown))}; options: {', '.join(sorted(spec.defaults))}")
    return cls(**{**spec.defaults, **options})


def card_path(name: str) -> Path:
    return HERE / f"{name}.card.yaml"


def card(name: str) -> dict | None:
    path = card_path(name)
    return yaml.safe_load(path.read_text()) if path.exists() else None


def write_card(name: str, data: dict, path: Path | None = None) -> Path:
    path = path or card_path(name)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))  # bench/atomic.py
    return path
