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
    ("sweep-objective-mismatch", "sweep ppo --objective nll", "--objective"),
    ("sweep-lrs-text", "sweep sft --lrs fast", "--lrs"),
    ("sweep-prompts-zero", "sweep sft --prompts 0", "--prompts"),
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
    # a data spec is checked key by key: query keys, mapped fields, the kind of record, the path itself
    ("data-query-unknown-key", "data show {tmp}/qa.jsonl?prompt=q&bogus=q", "unknown key bogus"),
    ("data-query-typo-revized", "data show {tmp}/qa.jsonl?prompt=q&initial=a&revized=b", "unknown key revized"),
    ("data-query-key-not-value", "data show {tmp}/qa.jsonl?prompt=q&x=y", "unknown key x"),
    ("data-query-lists-valid-keys", "data show {tmp}/qa.jsonl?prompt=q&bogus=q", "prompt, initial, revised, chosen"),
    ("data-query-empty-value", "data show {tmp}/qa.jsonl?prompt=", "key prompt in the data specs query names no field"),
    ("data-mapped-field-missing", "data show {tmp}/qa.jsonl?prompt=q&initial=a&revised=zz", "field zz: not in the file"),
    ("data-mapped-field-lists-found", "data show {tmp}/qa.jsonl?prompt=q&initial=a&revised=zz", "fields found: a, b, q"),
    ("data-half-a-pair", "data show {tmp}/qa.jsonl?prompt=q&initial=a", "prompt plus initial and revised"),
    ("data-no-known-layout", "data show {tmp}/qa.jsonl", "fields found (a, b, q)"),
    ("data-empty-file", "data show {tmp}/empty.jsonl", "the file is empty"),
    ("data-directory", "data show {tmp}/empty", "is a directory"),
    ("data-missing-path", "data show {tmp}/missing.jsonl", "missing.jsonl: file not found"),
    ("data-kind-mismatch", "data show {tmp}/evals.jsonl --kind revision", "revision pairs are needed here; missing: initial, revised"),
    ("data-kind-found-fields", "data show {tmp}/evals.jsonl --kind preference", "has fields prompt, reference"),
    ("data-kind-unknown", "data show {tmp}/evals.jsonl --kind pairs", "--kind pairs"),
    ("train-data-typo-key", "train figa --data {tmp}/qa.jsonl?prompt=q&initial=a&revized=b", "unknown key revized"),
    ("train-data-directory", "train sft --data {tmp}/empty", "is a directory"),
    ("train-data-empty-file", "train sft --data {tmp}/empty.jsonl", "the file is empty"),
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
    ("run-yaml-empty", "run all --config {tmp}/empty-run.yaml", "empty-run.yaml: the run YAML is empty"),
    ("run-yaml-only-comments", "run all --config {tmp}/comments-run.yaml", "comments-run.yaml: the run YAML is empty (or only comments)"),
    ("run-data-unknown-key", "run all --config {tmp}/run.yaml --set data={tmp}/qa.jsonl?prompt=q&bogus=q", "unknown key bogus"),
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
    ("leaderboard-old-schema-hint", "leaderboard {tmp}/v1-results --out {tmp}/site", "bench run report --force --config"),
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
    (tmp_path / "qa.jsonl").write_text(json.dumps({"q": "p", "a": "x", "b": "y"}) + "\n")
    (tmp_path / "evals.jsonl").write_text(json.dumps({"prompt": "p", "reference": "r"}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "empty-run.yaml").write_text("")
    (tmp_path / "comments-run.yaml").write_text("# a run\n# (nothing here yet)\n")
    (tmp_path / "v1-results" / "r").mkdir(parents=True)
    (tmp_path / "v1-results" / "r" / "results.json").write_text(json.dumps({"schema": "bench.results/1", "run": "r"}))
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
    assert len({case[0] for case in CASES}) == len(CASES) >= 90


@pytest.mark.parametrize("args,culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_one_clear_sentence(tmp, args, culprit):
    result = runner.invoke(app, args.format(tmp=tmp).split())
    text = " ".join(result.output.split())  # rich wraps long lines to the terminal width
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in text and "passed validation" not in text
    squeezed = "".join(result.output.split()).replace("'", "")  # a path may be wrapped mid-word
    assert "".join(culprit.format(tmp=tmp).split()) in squeezed, text


def test_a_budget_error_names_the_run_yaml_not_the_run_budget(tmp):
    """The budget is checked inside the train stage (after the guard above), so this calls that check directly."""
    from bench.stages import load_run_config
    from bench.stages import train as train_stage
    from bench.validate import check_recipe_configs

    path = tmp / "bad-budget.yaml"
    path.write_text(yaml.safe_dump({**RUN, "budget": {"batch_size": 0}}))
    run = load_run_config(path)
    layers = [(m, *train_stage.recipe_layers(run, m)[1:]) for m in run.methods]
    with pytest.raises(Exception, match=r"bad-budget.yaml: budget: field 'batch_size'"):
        check_recipe_configs(layers, run.model)


def test_the_old_schema_hint_names_a_command_that_works(tmp, monkeypatch):
    """The hint's command, run as written on the run that wrote the old file, re-runs its report stage."""
    import re

    import bench.stages
    from bench.stages import load_run_config

    result = runner.invoke(app, ["leaderboard", str(tmp / "v1-results"), "--out", str(tmp / "site")])
    command = re.search(r"`(bench run [^`]+)`", " ".join(result.output.split())).group(1)
    run_dir = tmp / "runs" / "catalogue"
    run_dir.mkdir(parents=True)
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump({**RUN, "root": str(tmp / "runs")}))
    calls = []
    monkeypatch.setattr(bench.stages, "run_all", lambda run, stages, force, **kw: calls.append((run.run, stages, force)) or run_dir)
    args = command.replace("RUN_DIR", str(run_dir)).split()[1:]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert calls == [("catalogue", ["report"], True)]
    assert load_run_config(run_dir / "run_config.yaml").run == "catalogue"


def test_a_repeated_instruction_is_called_a_repeat_not_a_missing_reference(tmp, caplog):
    outputs = [{"instruction": "hi", "output": "hello", "generator": "m"}, {"instruction": "hi", "output": "hey", "generator": "m"},
               {"instruction": "bye", "output": "ciao", "generator": "m"}]
    reference = [{"instruction": "hi", "output": "hello there", "generator": "ref"}]
    (tmp / "twice.json").write_text(json.dumps(outputs))
    (tmp / "ref.json").write_text(json.dumps(reference))
    result = runner.invoke(app, ["judge", str(tmp / "twice.json"), "--against", str(tmp / "ref.json"), "--judge", "mimic-gpt4"])
    assert result.exit_code == 0, result.output
    text = " ".join(caplog.text.split())
    assert "1 outputs repeat an instruction answered earlier in the file" in text
    assert "1 outputs have no reference" in text  # 'bye' really has none
