"""Degeneration statistics on constructed answers: a loop, a truncation, an empty answer; the flag in results."""

from __future__ import annotations

import pytest

from bench.degeneration import FLAG_THRESHOLD, combine, has_loop, is_degenerate, statistics


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
