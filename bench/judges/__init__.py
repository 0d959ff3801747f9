"""Pluggable judges: one module + one YAML per judge (like recipes), and a measured "judge card" beside it.

``<name>.yaml`` holds ``judge:``, ``module:``, ``description:`` and default ``config:`` (constructor options);
the module registers its class with ``@register(name)`` and is imported only when the judge is used, so
``bench judges list`` stays light. ``<name>.card.yaml`` is written by ``bench judges measure``: agreement with
held-out human preference labels (with a bootstrap CI), position consistency, length bias, the null-model
check and speed, so every reported win rate can be read next to how far its judge can be trusted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from .base import Judge, Judgement, ScorerJudge, judged_frame

HERE = Path(__file__).resolve().parent
_CLASSES: dict[str, type] = {}

__all__ = ["Judge", "Judgement", "JudgeSpec", "ScorerJudge", "card", "get", "judged_frame", "judges", "register", "write_card"]


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    module: str
    description: str
    yaml_path: Path
    defaults: dict


def register(name: str):
    """Class decorator: ``@register("local-rm")`` makes the class the code behind judge ``local-rm``."""

    def wrap(cls):
        cls.name = name
        _CLASSES[name] = cls
        return cls

    return wrap


def judges() -> dict[str, JudgeSpec]:
    from ..data import DataError

    found = {}
    for path in sorted(HERE.glob("*.yaml")):
        if path.name.endswith(".card.yaml"):
            continue
        doc = yaml.safe_load(path.read_text()) or {}
        for key in ("judge", "module"):
            if not isinstance(doc.get(key), str):
                raise DataError(path, None, key, "missing (a judge YAML needs 'judge' and 'module')")
        found[doc["judge"]] = JudgeSpec(doc["judge"], doc["module"], doc.get("description", ""), path, doc.get("config") or {})
    return found


def get(name: str, **options) -> Judge:
    """Build judge ``name`` with its YAML defaults overridden by ``options``."""
    known = judges()
    if name not in known:
        raise KeyError(f"unknown judge '{name}'; known: {', '.join(sorted(known))}")
    spec = known[name]
    importlib.import_module(spec.module)
    if name not in _CLASSES:
        raise KeyError(f"module {spec.module} does not register judge '{name}' (missing @register?)")
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise KeyError(f"judge '{name}' has no option(s) {', '.join(sorted(unknown))}; options: {', '.join(sorted(spec.defaults))}")
    return _CLASSES[name](**{**spec.defaults, **options})


def card_path(name: str) -> Path:
    return HERE / f"{name}.card.yaml"


def card(name: str) -> dict | None:
    path = card_path(name)
    return yaml.safe_load(path.read_text()) if path.exists() else None


def write_card(name: str, data: dict, path: Path | None = None) -> Path:
    path = path or card_path(name)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110))
    return path
