"""The leaderboard renders result documents into one static page and refuses unknown schemas."""

import json

import pytest

from bench.data import DataError
from leaderboard.build import SCHEMA, build, sparkline


def doc(**over):
    base = {
        "schema": SCHEMA, "run": "smoke", "created": "2026-11-23T10:00:00", "model": "smollm2-135m-instruct",
        "data": "expertqa", "budget": {"max_steps": 20}, "eval_set": "alpaca_eval", "reference": "text_davinci_003",
        "judge": {"name": "local-rm", "card": {"agreement": 0.61}}, "suite": ["mmlu"],
        "methods": {
            "base": {"winrate": {"win_rate": 0.20, "ci": [0.15, 0.25], "lc_win_rate": 0.22, "lc_ci": [0.16, 0.28],
                                 "n": 100, "avg_length": 80.0}, "suite": {"mmlu": {"value": 30.0, "stderr": 1.0}}},
            "figa": {"winrate": {"win_rate": 0.31, "ci": [0.25, 0.37], "lc_win_rate": 0.29, "lc_ci": [0.22, 0.35],
                                 "n": 100, "avg_length": 95.0},
                     "vs_base": {"diff": 0.11, "ci": [0.04, 0.18]},
                     "train": {"wall_s": 512.0, "steps": 20, "curve": [[1, 2.0], [2, 1.5], [3, 1.2]], "curve_name": "loss"},
                     "suite": {"mmlu": {"value": 31.5, "stderr": 1.2}}},
            "sft": {"winrate": None, "suite": None},
        },
    }
    base.update(over)
    return base


def test_page_ranks_methods_and_shows_intervals(tmp_path):
    (tmp_path / "runs" / "smoke").mkdir(parents=True)
    (tmp_path / "runs" / "smoke" / "results.json").write_text(json.dumps(doc()))
    page = build(tmp_path / "runs", tmp_path / "site").read_text()
    assert page.index(">figa<") < page.index(">base<") < page.index(">sft<")  # by win rate, missing last
    assert "31.0" in page and "[25.0, 37.0]" in page and "+11.0" in page and "<svg" in page
    assert "31.5" in page and "±1.2" in page
    assert 'class="pos"' in page  # the CI of the difference excludes zero


def test_empty_results_still_build_a_page(tmp_path):
    assert "No runs yet" in build(tmp_path, tmp_path / "site").read_text()


def test_unknown_schema_names_the_file(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(doc(schema="other/9")))
    with pytest.raises(DataError, match="results.json.*schema"):
        build(tmp_path, tmp_path / "site")


def test_sparkline_scales_into_the_box():
    svg = sparkline([[0, 5.0], [10, 1.0]], width=100, height=20)
    assert 'points="2.0,2.0 98.0,18.0"' in svg
    assert sparkline([[0, 1.0]]) == ""
