"""The GPT-4 judge card and the gate: grouped splits never leak, the shipped judge loses with every null output,
the stored card is reproducible, and a judge without a passing card is refused unless the user allows it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bench.judges.gpt4_pairs import GPT4Pair, grouped_folds

KIT = pytest.importorskip("bench.data.readers").data_dir() / "judge" / "references.jsonl.gz"
needs_kit = pytest.mark.skipif(not KIT.exists(), reason="the data kit's judge/ files are not here (set BENCH_DATA)")


def _pairs(n_prompts=40, n_gens=9):
    return [GPT4Pair("ae1", i, f"q{i}", f"g{g}", "answer " * g, "reference", float(g % 2), False)
            for i in range(n_prompts) for g in range(n_gens)]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_grouped_folds_share_no_prompt_and_no_generator_with_their_training_rows(k):
    pairs = _pairs()
    folds = grouped_folds(pairs, k, seed=1)
    assert len(folds) == k
    for train, test in folds:
        assert len(train) and len(test)
        assert not {pairs[i].instruction_id for i in train} & {pairs[i].instruction_id for i in test}
        assert not {pairs[i].generator for i in train} & {pairs[i].generator for i in test}
    tested = np.concatenate([t for _, t in folds])
    assert len(tested) == len(set(tested.tolist()))  # every pair is tested at most once
    assert grouped_folds(pairs, k, seed=1)[0][1].tolist() == folds[0][1].tolist()  # seeded: reproducible


@needs_kit
def test_grouped_folds_on_the_kit_hold_out_prompts_and_generators():
    from bench.judges.gpt4_pairs import kit_pairs

    pairs = kit_pairs(("ae1",))
    for train, test in grouped_folds(pairs, 3, 0):
        assert not {pairs[i].instruction_id for i in train} & {pairs[i].instruction_id for i in test}
        assert not {pairs[i].generator for i in train} & {pairs[i].generator for i in test}


@pytest.fixture(scope="module")
def unseen50():
    from bench.judges.card_gpt4 import adversarial_junk, unseen_prompts
    from bench.judges.gpt4_pairs import kit_pairs

    return unseen_prompts(kit_pairs())["text_davinci_003_ae1"][:50], adversarial_junk()


@needs_kit
def test_shipped_judge_loses_with_every_null_output_on_50_unseen_prompts(unseen50):
    from bench.judges import get
    from bench.judges.card_gpt4 import judge_predictor, null_battery

    prompts, junk = unseen50
    assert len(prompts) == 50
    result = null_battery(judge_predictor(get("mimic-gpt4")), prompts, junk)
    assert result["passed"], result["outputs"]
    assert set(result["outputs"]) == {"empty", "i_dont_know", "refusal", "instruction_echo", "one_token_repeated",
                                      "adversarial_junk", "reference_first_sentence"}


@needs_kit
def test_the_shipped_judge_calls_two_identical_answers_a_tie():
    """A checkpoint that answers exactly as the reference (an untrained-looking rate in a sweep) neither wins nor
    loses: both presentation orders give the same probability, whose mean is 0.5 up to rounding."""
    from bench.data import user
    from bench.judges import get
    from bench.judges.gpt4_pairs import kit_pairs

    pairs = kit_pairs()[:300]
    answers = [p.output for p in pairs]
    verdicts = get("mimic-gpt4").compare([user(p.instruction) for p in pairs], answers, answers)
    assert [v.preference for v in verdicts] == [0.5] * len(pairs)


@needs_kit
def test_null_battery_fails_a_judge_that_only_reads_length(unseen50):
    from bench.judges.card_gpt4 import baselines, null_battery

    prompts, junk = unseen50
    result = null_battery(baselines()["longer_wins"], prompts, junk)
    assert not result["passed"] and result["outputs"]["adversarial_junk"] < 0.98


@needs_kit
def test_stored_card_is_reproduced_on_its_fixed_small_split():
    from bench.judges import card
    from bench.judges.card_gpt4 import reproduce_check

    stored = card("mimic-gpt4")["reproduce"]
    again = reproduce_check(stored["seed"], stored["instruction_id_below"])
    for key in ("agreement", "near_equal_agreement", "system_spearman"):
        assert again[key] == pytest.approx(stored[key], abs=stored["precision"]), key


def test_card_summary_has_the_leaderboard_shape():
    from bench.judges.gate import card_summary

    summary = card_summary("mimic-gpt4")
    assert set(summary) == {"agreement", "near_equal_agreement", "longer_wins_agreement", "system_spearman", "null_battery"}
    assert set(summary["agreement"]) == {"value", "ci95"} and set(summary["system_spearman"]) == {"value", "ci95"}
    assert set(summary["null_battery"]) == {"passed", "worst_loss_rate", "outputs"}
    assert summary["agreement"]["ci95"][0] <= summary["agreement"]["value"] <= summary["agreement"]["ci95"][1]
    assert card_summary("no-such-judge") == {}


def test_gate_refuses_a_failing_or_missing_card_in_one_sentence(monkeypatch, tmp_path):
    import bench.judges as judges_pkg
    from bench.data import DataError
    from bench.judges.gate import require_validated

    assert require_validated("mimic-gpt4", False)["validated"] is True
    with pytest.raises(DataError) as missing:
        require_validated("llm", False)
    assert "judge 'llm' has no judge card" in str(missing.value) and "--allow-unvalidated-judge" in str(missing.value)
    with pytest.raises(DataError) as failing:
        require_validated("local-rm", False)  # its card: an empty answer beat the reference on 67% of prompts
    message = str(failing.value)
    assert "judge 'local-rm' fails its null battery" in message and message.count(". ") == 0
    allowed = require_validated("local-rm", True)
    assert allowed["validated"] is False and "null battery" in allowed["reason"]


def _alpaca_outputs(tmp_path, n=6):
    from bench.data import load

    rows = [{"instruction": e.prompt[-1]["content"], "output": e.reference, "generator": "copycat"}
            for e in load("alpaca_eval-gpt4turbo", limit=n)]
    path = tmp_path / "model_outputs.json"
    path.write_text(json.dumps(rows))
    return path


@needs_kit
def test_bench_judge_is_stopped_by_a_failing_card_and_the_flag_is_recorded(monkeypatch, tmp_path):
    import bench.judges as judges_pkg
    from bench.cli import app

    outputs = _alpaca_outputs(tmp_path)
    failing = yaml.safe_load(judges_pkg.card_path("mimic-gpt4").read_text())
    failing["null_battery"]["text_davinci_003_ae1"]["passed"] = False
    failing["null_battery"]["text_davinci_003_ae1"]["outputs"]["empty"] = 0.4
    bad_card = tmp_path / "mimic-gpt4.card.yaml"
    bad_card.write_text(yaml.safe_dump(failing))
    monkeypatch.setattr(judges_pkg, "card_path", lambda name: bad_card if name == "mimic-gpt4" else tmp_path / "none")

    report = tmp_path / "report.json"
    args = ["judge", str(outputs), "--against", "alpaca_eval", "--n-boot", "100", "--json", str(report)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and not report.exists()
    text = " ".join(refused.output.split())
    assert "judge 'mimic-gpt4' fails its null battery" in text and "--allow-unvalidated-judge" in text

    allowed = CliRunner().invoke(app, args + ["--allow-unvalidated-judge"])
    assert allowed.exit_code == 0, allowed.output
    doc = json.loads(report.read_text())
    assert doc["validated"] is False and "null battery" in doc["reason"]
    assert doc["results"][0]["validated"] is False and doc["results"][0]["n"] == 6
    assert doc["results"][0]["model"] == "copycat"  # AlpacaEval's own model_outputs.json format, read as is
