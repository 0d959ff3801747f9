"""Recipe registry: a recipe is one Python module plus one YAML file beside it.

The YAML names the recipe, says what it is, points at its module and holds its default hyper-parameters:

    recipe: figa
    module: figa.recipe
    description: Token-weighted loss from Levenshtein edits of (initial, revised) pairs
    config:
      data: expertqa
      alpha: 1.0

Recipes are discovered by scanning the YAML files in every package named in the ``bench.recipes`` entry-point
group (this project declares ``figa`` and ``baselines``; any installed package can add its own) and in any
directory in ``BENCH_RECIPES`` (``os.pathsep``-separated), so ``bench recipes list`` needs no heavy import; the
module is imported only when the recipe runs, and registers its class with ``@register``.
Judges (bench/judges) are plugins of the same shape and use the same ``Registry``.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PluginSpec:
    """What a recipe's (or a judge's) YAML says: its name, module, description and default options; for a recipe
    also what ``bench run`` must know to place it: ``needs`` (the recipe whose checkpoint becomes its
    ``reward_model``, trained first with the same seed) and ``policy`` (false: it trains a scorer, not a model that
    answers prompts, so it is neither generated from nor judged)."""

    name: str
    module: str
    description: str
    yaml_path: Path
    defaults: dict
    needs: str | None = None
    policy: bool = True


class Registry:
    """Plugins of one kind (``recipe``, ``judge``): YAML specs named by the ``kind`` key, and the classes
    their modules register with ``@register(name)`` when imported."""

    def __init__(self, kind: str):
        self.kind = kind
        self.classes: dict[str, type] = {}

    def register(self, name: str):
        """Class decorator: ``@register("figa")`` makes the class the code behind plugin ``figa``."""

        def wrap(cls):
            cls.name = name
            self.classes[name] = cls
            return cls

        return wrap

    def read_spec(self, path: Path) -> PluginSpec:
        from .config import load_yaml
        from .data.errors import DataError

        doc = load_yaml(path)
        for key in (self.kind, "module"):
            if not isinstance(doc, dict) or not isinstance(doc.get(key), str):
                raise DataError(path, None, key, f"missing (a {self.kind} YAML needs '{self.kind}' and 'module')")
        for key, kind in (("needs", str), ("policy", bool)):
            if key in doc and not isinstance(doc[key], kind):
                raise DataError(path, None, key, f"expected {'a recipe name' if kind is str else 'true or false'}")
        return PluginSpec(doc[self.kind], doc["module"], doc.get("description", ""), path, doc.get("config") or {},
                          doc.get("needs"), doc.get("policy", True))

    def load(self, spec: PluginSpec) -> type:
        """Import the spec's module and return the class it registered."""
        importlib.import_module(spec.module)
        if spec.name not in self.classes:
            raise KeyError(f"module {spec.module} does not register {self.kind} '{spec.name}' (missing @register?)")
        return self.classes[spec.name]


RECIPES = Registry("recipe")
register = RECIPES.register
read_spec = RECIPES.read_spec


def _package_dirs() -> list[Path]:
    """The directories of the packages registered under the ``bench.recipes`` entry-point group."""
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    dirs = []
    for ep in sorted(entry_points(group="bench.recipes"), key=lambda e: e.name):
        spec = find_spec(ep.value)  # locates the package without importing its recipe modules
        if spec is not None and spec.submodule_search_locations:
            dirs += [Path(p) for p in spec.submodule_search_locations]
    return dirs


def _plain_dirs() -> list[Path]:
    """Directories named in ``BENCH_RECIPES``: a recipe's module sits beside its YAML there."""
    return [Path(p) for p in os.environ.get("BENCH_RECIPES", "").split(os.pathsep) if p]


def _search_dirs() -> list[Path]:
    return _package_dirs() + _plain_dirs()


def recipes() -> dict[str, PluginSpec]:
    found: dict[str, PluginSpec] = {}
    for d in _search_dirs():
        for path in sorted(d.glob("*.yaml")):
            spec = read_spec(path)
            found.setdefault(spec.name, spec)
    return found


def get(name_or_yaml: str) -> tuple[PluginSpec, type]:
    """Find a recipe by name (or by the path of a recipe YAML) and import its code."""
    path = Path(name_or_yaml)
    if path.suffix in (".yaml", ".yml") and path.exists():
        spec = read_spec(path)
    else:
        known = recipes()
        if name_or_yaml not in known:
            raise KeyError(f"unknown recipe '{name_or_yaml}'; known: {', '.join(sorted(known))}")
        spec = known[name_or_yaml]
    if spec.yaml_path.parent.resolve() not in {d.resolve() for d in _package_dirs()}:
        # A recipe outside any installed package: its module sits beside its YAML.
        sys.path.insert(0, str(spec.yaml_path.parent.resolve()))
    return spec, RECIPES.load(spec)
