"""Recipes are discovered from YAML, configs layer predictably, and the CLI fails cleanly on bad input."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from bench import registry
from bench.cli import app
from bench.config import build_config, parse_overrides
from bench.data import DataError

runner = CliRunner()


def test_builtin_recipes_are_listed():
    names = registry.recipes()
    assert {"figa", "sft"} <= names.keys()
    result = runner.invoke(app, ["recipes", "list"])
    assert result.exit_code == 0 and "figa" in result.output and "sft" in result.output


def test_a_new_method_is_one_module_plus_one_yaml(tmp_path, monkeypatch):
    (tmp_path / "halfbeta.yaml").write_text(textwrap.dedent("""\
        recipe: halfbeta
        module: halfbeta
        description: FIGA with a smaller penalty
        config:
          beta: 0.25
        """))
    (tmp_path / "halfbeta.py").write_text(textwrap.dedent("""\
        from bench.registry import register
        from figa.recipe import Figa

        @register("halfbeta")
        class HalfBeta(Figa):
            pass
        """))
    monkeypatch.setenv("BENCH_RECIPES", str(tmp_path))
    spec, cls = registry.get("halfbeta")
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults)])
    assert cfg.beta == 0.25 and cfg.alpha == 1.0
    assert "halfbeta" in runner.invoke(app, ["recipes", "list"]).output


def test_config_layers_and_types():
    spec, cls = registry.get("figa")
    cfg = build_config(cls.Config, [(str(spec.yaml_path), spec.defaults),
                                    ("--set", parse_overrides(["beta=0.3", "tau_min=0.1", "lora_r=8"]))])
    assert (cfg.beta, cfg.tau_min, cfg.lora_r, cfg.alpha) == (0.3, 0.1, 8, 1.0)
    with pytest.raises(DataError, match="'lora_r'.*expected int"):
        build_config(cls.Config, [("--set", {"lora_r": "eight"})])


def test_unknown_recipe_is_a_clean_error():
    result = runner.invoke(app, ["train", "no-such-method"])
    assert result.exit_code == 2 and "unknown recipe" in result.output


def test_bad_data_file_is_one_red_line_not_a_traceback(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"q": "x", "a": "y", "b": "z"}) + "\n{oops\n")
    result = runner.invoke(app, ["train", "figa", "--data", f"{bad}?prompt=q&initial=a&revised=b"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())  # rich wraps long lines to the terminal width
    assert "pairs.jsonl, line 2" in text and "invalid JSON" in text and "Traceback" not in text
