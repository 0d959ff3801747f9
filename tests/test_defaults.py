"""One default everywhere: the judge a user gets from the CLI, a run YAML that names none and ``bench.judge`` is
the same and passes the same gate; ``RunConfig()`` is the default run (runs/smollm2-cpu.yaml)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import bench
from bench.judges.gate import UnvalidatedJudge, require_validated
from bench.stages.config import RunConfig, load_run_config

REPO = Path(__file__).resolve().parent.parent


def _cli_default(command: str, option: str):
    import typer.main

    from bench.cli import app

    click_cmd = typer.main.get_command(app).commands[command]
    return next(p.default for p in click_cmd.params if p.name == option)


def test_the_same_validated_judge_from_the_cli_a_run_yaml_and_the_python_api(tmp_path):
    api_default = inspect.signature(bench.judge).parameters["judge"].default
    cli = {_cli_default("judge", "judge"), _cli_default("eval", "judge")}
    path = tmp_path / "run.yaml"
    path.write_text("run: mine\n")  # names no judge
    assert cli == {RunConfig().judge} == {load_run_config(path).judge} == {api_default}
    assert require_validated(api_default)["validated"]  # the default passes its own card


def test_the_python_api_refuses_an_unvalidated_judge_like_the_cli(tmp_path):
    outputs = tmp_path / "model_outputs.json"
    outputs.write_text('[{"instruction": "Say hi.", "output": "Hi!"}]')
    with pytest.raises(UnvalidatedJudge, match="local-rm"):
        bench.judge([outputs], against=str(outputs), judge="local-rm")


def test_the_dataclass_defaults_are_the_default_run():
    assert load_run_config(REPO / "runs" / "smollm2-cpu.yaml") == RunConfig()
