"""Degeneration statistics on constructed answers: a loop, a truncation, an empty answer; the flag in results."""

from __future__ import annotations

import pytest

from bench.degeneration import FLAG_THRESHOLD, combine, describe, has_loop, is_degenerate, statistics


def row(output: str, tokens: list[int], finish: str = "stop") -> dict:
    return {"output": output, "token_ids": tokens, "finish_reason": finish}


def test_a_loop_in_the_last_tokens_is_found_and_ordinary_text_is_not():
    assert has_loop([5, 6, 7, 8] * 3)
    assert has_loop(list(range(100)) + [1, 2, 3, 4] * 3)
    assert not has_loop(list(range(100)))
    assert not has_loop([1, 2, 3, 4] * 3 + list(range(10, 80)))  # the loop is older than the last 64 tokens
    assert not has_loop([1, 2, 3, 4] * 2 + [9])  # twice is not a loop
    text = "The sky is blue because of Rayleigh scattering of sunlight by the air."
    assert not is_degenerate(text) and is_degenerate("I am sorry " * 4) and is_degenerate("  ")


def test_statistics_count_truncations_loops_and_empty_answers():
    rows = [row("fine answer", list(range(10))),
            row("cut", list(range(192)), "length"),  # truncated, not degenerate
            row("loop " * 60, [7, 8, 9, 10] * 48, "length"),  # truncated and looping
            row("", [])]
    s = statistics(rows)
    assert s["n"] == 4
    assert s["truncated"] == pytest.approx(0.5) and s["loop"] == pytest.approx(0.25)
    assert s["empty"] == pytest.approx(0.25) and s["degenerate"] == pytest.approx(0.5)
    assert s["mean_tokens"] == pytest.approx((10 + 192 + 192 + 0) / 4)


def test_rows_without_token_ids_count_words_and_have_no_truncation_figure():
    s = statistics([{"output": "I don't know."}, {"output": "I don't know."}])
    assert s["truncated"] is None and s["loop"] == 0.0 and s["mean_tokens"] == 3.0


def test_seeds_combine_by_size_and_a_method_above_the_threshold_is_flagged():
    looping = statistics([row("x", [1, 2, 3, 4] * 10, "length")] * 3 + [row("ok", list(range(5)))])
    clean = statistics([row("ok", list(range(5)))] * 4)
    both = combine([looping, clean])
    assert both["degenerate"] == pytest.approx(3 / 8) and both["flagged"] and both["threshold"] == FLAG_THRESHOLD
    assert not combine([clean])["flagged"] and combine([]) is None


def test_generated_sets_carry_their_statistics_into_the_results_document(tmp_path, tiny_model_dir):
    import json

    from bench.generation import Sampling, generate_eval
    from bench.data import EvalPrompt
    from bench.stages import report
    from bench.stages.config import RunConfig
    from bench.stages.generate import output_dir

    run = RunConfig(run="r", root=str(tmp_path), model=tiny_model_dir, methods=["dpo"], seeds=[0, 1],
                    controls={"null": "I don't know.", "positive": None})
    prompts = [EvalPrompt(str(i), [{"role": "user", "content": f"Question {i}?"}]) for i in range(2)]
    out = generate_eval(tiny_model_dir, prompts, output_dir(run, "base"), "hf", Sampling(max_new_tokens=4))
    meta = json.loads((out / "generation_meta.json").read_text())["degeneration"]
    assert meta["n"] == 2 and meta["mean_tokens"] <= 4 and meta["truncated"] is not None
    for seed in (0, 1):  # dpo: every answer loops to the limit
        where = output_dir(run, "dpo", seed)
        where.mkdir(parents=True)
        (where / "generations.jsonl").write_text("".join(json.dumps(row("so so so so", [3, 4, 5, 6] * 8, "length")) + "\n"
                                                         for _ in range(3)))
    (output_dir(run, "null-control")).mkdir(parents=True)
    (output_dir(run, "null-control") / "model_outputs.json").write_text(json.dumps([{"instruction": "q", "output": "I don't know."}]))
    doc = report.document(run)["methods"]
    assert doc["dpo"]["degeneration"]["flagged"] and doc["dpo"]["degeneration"]["n"] == 6
    assert doc["dpo"]["degeneration"]["truncated"] == 1.0 and doc["dpo"]["degeneration"]["loop"] == 1.0
    assert not doc["null-control"]["degeneration"]["flagged"]
    assert doc["base"]["degeneration"]["n"] == 2


# --- the flag: a trained method against the untrained base on the same prompts ---

LOOPING, CLEAN = [3, 4, 5, 6] * 8, list(range(20))


def answer_set(where, looping: set[int], n: int = 100) -> None:
    """``n`` prompts' generations, those in ``looping`` a loop to the limit, the rest a clean answer."""
    import json

    where.mkdir(parents=True, exist_ok=True)
    rows = [{"id": str(i), **(row("so so so so", LOOPING, "length") if i in looping else row(f"answer {i}", CLEAN))}
            for i in range(n)]
    (where / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def degeneration_of(tmp_path, tiny_model_dir, sets: dict) -> dict:
    """The report stage's degeneration per method for answer sets {(method, seed): looping prompt ids}."""
    from bench.stages import report
    from bench.stages.config import RunConfig
    from bench.stages.generate import output_dir

    run = RunConfig(run="r", root=str(tmp_path), model=tiny_model_dir, methods=["dpo", "sft"], seeds=[0, 1],
                    controls={"null": None, "positive": None})
    for (method, seed), looping in sets.items():
        answer_set(output_dir(run, method, seed), looping)
    return {name: m["degeneration"] for name, m in report.document(run)["methods"].items()}


def test_a_method_that_degenerates_no_more_than_base_is_not_flagged_though_both_exceed_the_threshold(
        tmp_path, tiny_model_dir):
    base = set(range(40))  # the untrained model loops on 40 % of the prompts
    d = degeneration_of(tmp_path, tiny_model_dir, {("base", None): base, ("dpo", 0): base, ("dpo", 1): base | {40},
                                                   ("sft", 0): set(range(2, 42)), ("sft", 1): base})
    for m in ("dpo", "sft"):
        assert d[m]["degenerate"] > FLAG_THRESHOLD and not d[m]["flagged"] and d[m]["flag_basis"] == "base"
        assert d[m]["vs_base"]["base"] == pytest.approx(0.4) and d[m]["vs_base"]["n_prompts"] == 100
        assert "over base" in d[m]["flag_reason"] and "not above base" in d[m]["flag_reason"]
    assert d["dpo"]["vs_base"]["diff"] == pytest.approx(0.005)
    assert d["sft"]["vs_base"]["diff"] == pytest.approx(0.0)  # as many loops, on other prompts: paired, still 0
    assert d["base"]["flagged"] and d["base"]["flag_basis"] == "absolute"  # the model, described absolutely


def test_a_method_clearly_above_base_is_flagged_with_its_difference_and_interval(tmp_path, tiny_model_dir):
    base, worse = set(range(30)), set(range(50))
    d = degeneration_of(tmp_path, tiny_model_dir, {("base", None): base, ("dpo", 0): worse, ("dpo", 1): worse - {49},
                                                   ("sft", 0): base, ("sft", 1): base})
    vs = d["dpo"]["vs_base"]
    assert d["dpo"]["flagged"] and vs["diff"] == pytest.approx(0.195) and vs["p_holm"] < 0.05
    lo, hi = vs["ci95"]
    assert 0 < lo < vs["diff"] < hi
    assert d["dpo"]["flag_reason"].startswith(f"+19.5 points [{100 * lo:+.1f}, {100 * hi:+.1f}] over base")
    assert "FLAGGED: +19.5 points" in describe(d["dpo"])
    assert not d["sft"]["flagged"] and d["sft"]["vs_base"]["diff"] == 0.0


def test_without_a_base_answer_set_the_absolute_threshold_flags_and_says_so(tmp_path, tiny_model_dir):
    d = degeneration_of(tmp_path, tiny_model_dir, {("dpo", 0): set(range(30)), ("dpo", 1): set(range(30)),
                                                   ("sft", 0): set(range(10)), ("sft", 1): set(range(10))})
    assert d["base"] is None
    assert d["dpo"]["flagged"] and d["dpo"].get("flag_reason", "").startswith("no base answer set in this run")
    assert d["dpo"]["flag_basis"] == "absolute" and "vs_base" not in d["dpo"]
    assert not d["sft"]["flagged"] and "within the absolute 20% threshold" in d["sft"]["flag_reason"]
