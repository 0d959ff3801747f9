"""The catalogue of a user's mistakes: each ends in exit status 2 and one sentence naming the culprit.

Cheap cases only: every check here must come before a model loads or an engine starts, so nothing trains.
A case that slipped through validation hits a guard (``passed validation``) instead of doing real work.
"""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from bench.cli import app

runner = CliRunner()

RUN = {"run": "catalogue", "model": "smollm2-135m-instruct", "data": "expertqa", "methods": ["sft"],
       "eval_set": "alpaca_eval", "eval_limit": 2, "judge": "mimic-gpt4", "suite": "figa"}

# (id, command line with {tmp} for the test's directory, text the message must name)
TRAIN = [
    ("unknown-recipe", "train no-such-method", "unknown recipe"),
    ("max-steps-negative", "train sft --max-steps -1", "--max-steps"),
    ("max-steps-zero", "train sft --max-steps 0", "--max-steps"),
    ("limit-negative", "train sft --limit -5", "--limit"),
    ("lora-r-negative", "train sft --lora-r -3", "--lora-r"),
    ("seed-negative", "train sft --seed -1", "--seed"),
    ("max-steps-not-a-number", "train sft --max-steps abc", "--max-steps"),
    ("batch-size-zero", "train sft --set batch_size=0", "batch_size"),
    ("learning-rate-negative", "train sft --set learning_rate=-1", "learning_rate"),
    ("learning-rate-text", "train sft --set learning_rate=fast", "learning_rate"),
    ("warmup-ratio-above-one", "train sft --set warmup_ratio=2", "warmup_ratio"),
    ("max-length-beyond-context", "train sft --set max_length=1000000000", "max_length"),
    ("unknown-option", "train sft --set foo=1", "foo"),
    ("set-without-equals", "train sft --set batch_size", "batch_size"),
    ("figa-beta-nan", "train figa --set beta=nan", "beta"),
    ("scheduler-unknown", "train sft --set lr_scheduler=sideways", "lr_scheduler"),
    ("model-missing-dir", "train sft --model {tmp}/no-such-model", "no-such-model"),
    ("model-dir-not-a-model", "train sft --model {tmp}/empty", "empty"),
    ("model-dir-empty-config", "train sft --model {tmp}/empty-config", "model_type"),
    ("model-dir-blank-config", "train sft --model {tmp}/blank-config", "blank-config"),
    ("model-unknown-offline-id", "train sft --model nobody/no-such-model-xyz", "nobody/no-such-model-xyz"),
    ("data-unknown-name", "train sft --data no-such-set", "no-such-set"),
    ("data-missing-file", "train sft --data {tmp}/missing.jsonl", "missing.jsonl"),
    ("config-missing-file", "train sft --config {tmp}/missing.yaml", "missing.yaml"),
    ("config-unknown-key", "train sft --config {tmp}/unknown-key.yaml", "bogus_option"),
    ("config-not-yaml", "train sft --config {tmp}/broken.yaml", "broken.yaml"),
    ("output-dir-is-a-file", "train sft --output-dir {tmp}/a-file/ckpt", "a-file"),
    ("reward-model-missing", "train ppo --set reward_model={tmp}/no-rm", "no-rm"),
]
DATA = [
    ("data-show-unknown", "data show no-such-set", "no-such-set"),
    ("data-show-bad-json-line", "data show {tmp}/pairs.jsonl", "line 2"),
    ("data-show-missing-field", "data show {tmp}/nofield.jsonl", "prompt"),
    ("data-show-not-utf8", "data show {tmp}/latin1.jsonl", "line 2"),
]
RUN_CASES = [
    ("run-unknown-stage", "run nonsense", "nonsense"),
    ("run-config-missing", "run all --config {tmp}/missing-run.yaml", "missing-run.yaml"),
    ("run-eval-limit-text", "run all --config {tmp}/run.yaml --set eval_limit=abc", "eval_limit"),
    ("run-eval-limit-zero", "run all --config {tmp}/run.yaml --set eval_limit=0", "eval_limit"),
    ("run-eval-limit-negative", "run all --config {tmp}/run.yaml --set eval_limit=-1", "eval_limit"),
    ("run-name-dotdot", "run all --config {tmp}/run.yaml --set run=../../x", "../../x"),
    ("run-name-slash", "run all --config {tmp}/run.yaml --set run=a/b", "a/b"),
    ("run-name-absolute", "run all --config {tmp}/run.yaml --set run=/tmp/x", "/tmp/x"),
    ("run-unknown-method", "run all --config {tmp}/run.yaml --set methods=[sft,nosuch]", "nosuch"),
    ("run-unknown-field", "run all --config {tmp}/run.yaml --set foo=1", "--set"),
    ("run-unknown-judge", "run all --config {tmp}/run.yaml --set judge=oracle", "oracle"),
    ("run-unknown-eval-set", "run all --config {tmp}/run.yaml --set eval_set=nowhere", "eval_set"),
    ("run-seeds-negative", "run all --config {tmp}/run.yaml --set seeds=[-1]", "seeds"),
    ("run-seeds-repeated", "run all --config {tmp}/run.yaml --set seeds=[0,0]", "seeds"),
    ("run-methods-empty", "run all --config {tmp}/run.yaml --set methods=[]", "methods"),
    ("run-model-missing", "run all --config {tmp}/run.yaml --set model={tmp}/gone", "gone"),
    ("run-max-new-tokens-zero", "run all --config {tmp}/run.yaml --set max_new_tokens=0", "max_new_tokens"),
    ("run-suite-limit-negative", "run all --config {tmp}/run.yaml --set suite_limit=-0.5", "suite_limit"),
    ("run-suite-backend-unknown", "run all --config {tmp}/run.yaml --set suite_backend=gpu", "suite_backend"),
    ("run-backend-unknown", "run all --config {tmp}/run.yaml --set generation_backend=tpu", "generation_backend"),
    ("run-positive-control-unknown", "run all --config {tmp}/run.yaml --set controls={{positive:nowhere}}", "controls"),
    ("run-method-options-unknown", "run all --config {tmp}/run.yaml --set method_options={{nosuch:{{}}}}", "nosuch"),
    ("run-root-read-only", "run all --config {tmp}/run.yaml --set root={tmp}/a-file/runs", "a-file"),
]
EVAL = [
    ("generate-missing-checkpoint", "generate {tmp}/no-ckpt", "no-ckpt"),
    ("generate-limit-negative", "generate smollm2-135m-instruct --limit -5", "--limit"),
    ("generate-unknown-eval-set", "generate smollm2-135m-instruct --eval-set nowhere", "nowhere"),
    ("generate-unknown-backend", "generate smollm2-135m-instruct --backend tpu", "tpu"),
    ("generate-temperature-negative", "generate smollm2-135m-instruct --temperature -1", "--temperature"),
    ("eval-max-new-tokens-zero", "eval smollm2-135m-instruct --max-new-tokens 0", "--max-new-tokens"),
    ("judge-missing-outputs", "judge {tmp}/no-outputs.json", "no-outputs.json"),
    ("judge-unknown-judge", "judge {tmp}/outputs.json --judge oracle", "oracle"),
    ("judge-unknown-reference", "judge {tmp}/outputs.json --against nowhere", "nowhere"),
    ("judge-outputs-not-json", "judge {tmp}/broken.json", "broken.json"),
    ("suite-unknown-task", "suite smollm2-135m-instruct --suite no_such_task_xyz", "no_such_task_xyz"),
    ("suite-missing-checkpoint", "suite {tmp}/no-ckpt", "no-ckpt"),
    ("suite-limit-negative", "suite smollm2-135m-instruct --limit -3", "--limit"),
    ("serve-missing-checkpoint", "serve {tmp}/no-ckpt", "no-ckpt"),
    ("serve-port-out-of-range", "serve smollm2-135m-instruct --port 70000", "70000"),
    ("leaderboard-missing-dir", "leaderboard {tmp}/no-results --out {tmp}/site", "no-results"),
    ("leaderboard-other-schema", "leaderboard {tmp}/bad-results --out {tmp}/site", "schema"),
    ("leaderboard-not-json", "leaderboard {tmp}/broken-results --out {tmp}/site", "invalid JSON"),
    ("sweep-unknown-recipe", "sweep no-such-method", "no-such-method"),
    ("sweep-bad-rates", "sweep sft --lrs fast,slow", "--lrs"),
    ("sweep-rate-negative", "sweep sft --lrs 1e-5,-1", "--lrs"),
]
CASES = TRAIN + DATA + RUN_CASES + EVAL


@pytest.fixture
def tmp(tmp_path):
    (tmp_path / "empty").mkdir()
    for name, text in (("empty-config", "{}"), ("blank-config", "")):  # a folder with an empty config.json
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(text)
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "unknown-key.yaml").write_text("bogus_option: 1\n")
    (tmp_path / "broken.yaml").write_text("key: [unclosed\n")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(RUN))
    good = {"prompt": "p", "initial": "a", "revised": "b"}
    (tmp_path / "pairs.jsonl").write_text(json.dumps(good) + "\n{oops\n")
    (tmp_path / "nofield.jsonl").write_text(json.dumps({"initial": "a", "revised": "b"}) + "\n")
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps(good).encode() + b"\n" + '{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    (tmp_path / "outputs.json").write_text(json.dumps([{"instruction": "hi", "output": "hello", "generator": "m"}]))
    (tmp_path / "broken.json").write_text("[{")
    for name, body in (("bad-results", {"run": "r", "rows": [{"method": "sft", "win_rate": "high"}]}),
                       ("broken-results", None)):
        (tmp_path / name / "r").mkdir(parents=True)
        (tmp_path / name / "r" / "results.json").write_text("{oops" if body is None else json.dumps(body))
    return tmp_path


@pytest.fixture(autouse=True)
def no_real_work(monkeypatch):
    """A case that passes validation must not train, generate or judge: it fails the test instead."""
    import bench.api
    import bench.generation
    import bench.serve
    import bench.stages
    import bench.suite.runner
    import bench.sweep

    def guard(*args, **kwargs):
        raise AssertionError("passed validation")

    real = bench.api.train_config

    class Guarded:
        def run(self, cfg):
            guard()

    monkeypatch.setattr(bench.api, "train_config", lambda *a, **k: (Guarded, real(*a, **k)[1]))
    monkeypatch.setattr(bench.stages, "run_all", guard)
    monkeypatch.setattr(bench.generation, "generate_eval", guard)
    monkeypatch.setattr(bench.serve, "server_command", guard)
    monkeypatch.setattr(bench.suite.runner.SuiteRunner, "lm", property(guard))
    monkeypatch.setattr(bench.sweep, "sweep", guard)


def test_the_catalogue_is_large_enough():
    assert len({case[0] for case in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("args,culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_one_clear_sentence(tmp, args, culprit):
    result = runner.invoke(app, args.format(tmp=tmp).split())
    text = " ".join(result.output.split())  # rich wraps long lines to the terminal width
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in text and "passed validation" not in text
    squeezed = "".join(result.output.split()).replace("'", "")  # a path may be wrapped mid-word
    assert "".join(culprit.format(tmp=tmp).split()) in squeezed, text
