"""The leaderboard renders bench.results/2 documents: tiers instead of a ranking, headline pairs, MDD, controls,
A/A, the judge card, red win rates for an unvalidated judge, honest FIGA-average columns; bad input fails cleanly."""

import functools
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.verdicts import verdicts
from leaderboard.build import SCHEMA, ResultsError, build, figa_label, sparkline

ALL_TERMS = ["reward", "mmlu", "truthfulqa", "crows_pairs", "winogender", "vicuna", "wizardlm"]


def judged(rate, n, rng):
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)], "preference": (rng.random(n) < rate).astype(float),
                         "failed": False, "len_model": rng.normal(300, 60, n), "len_ref": rng.normal(300, 60, n)})


@functools.lru_cache
def run_verdicts(null_rate=0.0):
    # figa and sft are both far above base and close to each other (one tier); "sft" sorts after "figa" by name
    # but has the higher estimate, so alphabetical order inside the tier is visible.
    rng = np.random.default_rng(0)
    frames = {"base": {0: judged(0.2, 200, rng)},
              "figa": {s: judged(0.60, 200, rng) for s in range(3)}, "sft": {s: judged(0.62, 200, rng) for s in range(3)},
              "null": {0: judged(null_rate, 200, rng)}, "positive": {0: judged(0.97, 200, rng)}}
    return verdicts(frames, n_boot=200)


def figa_avg(value, missing):
    return {"value": value, "stderr": None, "terms": [t for t in ALL_TERMS if t not in missing], "of": ALL_TERMS}


def doc(verdicts_doc=None, validated=True, **over):
    v = run_verdicts() if verdicts_doc is None else verdicts_doc
    method = {"checkpoint": "ckpt", "winrate": {"win_rate": 0.3, "ci": [0.2, 0.4], "lc_win_rate": 0.3,
                                                "lc_ci": [0.2, 0.4], "n": 200, "avg_length": 300.0}}
    base = {
        "schema": SCHEMA, "run": "smoke", "created": "2026-11-23T10:00:00", "model": "smollm2-135m-instruct",
        "data": "expertqa", "budget": {"max_steps": 20}, "eval_set": "alpaca_eval", "reference": "text_davinci_003",
        "seeds": [0, 1],
        "judge": {"name": "local-rm", "validated": validated,
                  "reason": "passed the card's gates" if validated else "agreement 0.52 below the 0.60 gate",
                  "summary": {"agreement": {"value": 0.523, "ci95": [0.48, 0.56]},
                              "near_equal_agreement": {"value": 0.51, "ci95": [0.45, 0.57]},
                              "longer_wins_agreement": {"value": 0.7},
                              "system_spearman": {"value": 0.81, "ci95": [0.5, 0.95]},
                              "null_battery": {"passed": True, "worst_loss_rate": 0.9,
                                               "outputs": {"empty": 0.99, "refusal": 0.9}}}},
        "controls": {"null": {"method": "null", "what": "the empty answer"},
                     "positive": {"method": "positive", "what": "GPT-4-turbo answers"}},
        "suite": ["mmlu", "reward", "figa_avg"],
        "methods": {
            "base": {**method, "suite": {"mmlu": {"value": 30.0, "stderr": 1.0}, "reward": {"value": 4.2},
                                         "figa_avg": figa_avg(33.3, ["vicuna", "wizardlm"])}},
            "figa": {**method, "seeds": [0, 1],
                     "train": {"wall_s": 512.0, "steps": 20, "curve": [[1, 2.0], [2, 1.5], [3, 1.2]], "curve_name": "loss"},
                     "suite": {"mmlu": {"value": 31.5, "stderr": 1.2}, "figa_avg": figa_avg(34.4, ["vicuna"])}},
            "sft": {**method, "seeds": [0, 1], "suite": None},
            "null": {"checkpoint": "-", "winrate": None}, "positive": {"checkpoint": "-", "winrate": None},
        },
        "verdicts": v,
    }
    base.update(over)
    return json.loads(json.dumps(base))  # no shared sub-dicts between methods


def page_of(tmp_path, *docs):
    for i, d in enumerate(docs):
        (tmp_path / "runs" / f"r{i}").mkdir(parents=True)
        (tmp_path / "runs" / f"r{i}" / "results.json").write_text(json.dumps(d))
    return build(tmp_path / "runs", tmp_path / "site").read_text()


def test_methods_are_grouped_by_tier_not_ranked(tmp_path):
    v = run_verdicts()
    assert v["tiers"][0] == ["positive"] and sorted(v["tiers"][1]) == ["figa", "sft"] and v["tiers"][-1] == ["null"]
    assert v["methods"]["sft"]["win_rate"]["value"] > v["methods"]["figa"]["win_rate"]["value"]
    page = page_of(tmp_path, doc(v))
    order = [page.index(s) for s in ("Tier 1", ">positive", "Tier 2", ">figa", ">sft", "Tier 3", ">base", ">null")]
    assert order == sorted(order)  # tiers in order, alphabetical inside a tier (sft has the higher estimate)
    assert "Controls passed" in page and "✓ null control in the bottom tier" in page
    assert page.count("Tier ") >= 4


def test_headline_pairs_mdd_and_aa_are_shown(tmp_path):
    v = run_verdicts()
    page = page_of(tmp_path, doc(v))
    fs = next(h for h in v["headline"] if h["name"] == "figa - sft")
    row = page[page.index(">figa - sft<"):]
    row = row[:row.index("</tr>")]
    assert f"{100 * fs['win_rate']['value']:+.1f}" in row
    assert "[%.1f, %.1f]" % tuple(100 * x for x in fs["win_rate"]["ci95"]) in row
    assert f"{fs['win_rate']['p_holm']:.3f}" in row or fs["win_rate"]["p_holm"] < 0.001
    assert ">figa - base<" in page and ">sft - base<" in page
    assert "Minimum detectable difference" in page and f"{100 * v['mdd']['value']:.1f}" in page
    assert f"{v['aa']['different']} of {v['aa']['comparisons']} came out different" in page


def test_controls_show_their_difference_vs_base_without_a_holm_p(tmp_path):
    d = doc()
    d["methods"]["positive"]["vs_base"] = {"diff": 0.77, "ci": [0.7, 0.84]}  # as the report stage writes it
    page = page_of(tmp_path, d)
    row = page[page.index('>positive</a> <span class="tag">positive control'):]
    assert "+77.0" in row[:row.index("</tr>")] and "[70.0, 84.0]" in row[:row.index("</tr>")]


def test_unvalidated_judge_turns_every_win_rate_red_with_the_reason(tmp_path):
    page = page_of(tmp_path, doc(validated=False))
    assert "agreement 0.52 below the 0.60 gate" in page and "Judge not validated" in page
    for cell in re.findall(r"<td>(<span[^>]*>[-+]?\d+\.\d)", page):  # every number cell opening with a span
        assert 'class="unval"' in cell
    ok = page_of(tmp_path / "ok", doc(validated=True))
    assert 'class="unval"' not in ok and "✓ validated" in ok


def test_judge_card_summary_beside_the_run(tmp_path):
    page = page_of(tmp_path, doc())
    card = page[page.index('<aside class="card">'):page.index("</aside>")]
    assert "local-rm" in card and "52.3" in card and "[48.0, 56.0]" in card and "0.81" in card
    assert "refusal" in card and "90.0%" in card


def test_untrustworthy_run_names_the_failed_check(tmp_path):
    page = page_of(tmp_path, doc(run_verdicts(null_rate=0.97)))
    assert "Untrustworthy run:" in page and "null control in the bottom tier" in page
    assert "✗ null control in the bottom tier" in page


def test_figa_average_columns_name_their_terms_and_never_mix(tmp_path):
    assert figa_label(figa_avg(1, ["vicuna"])) == "FIGA avg (6 of 7 terms: no vicuna)"
    assert figa_label(figa_avg(1, [])) == "FIGA avg (all 7 terms)"
    other = doc(run="other", created="2026-11-24T10:00:00")
    other["methods"]["base"]["suite"]["figa_avg"] = figa_avg(30.0, [])
    page = page_of(tmp_path, doc(), other)
    smoke = page[page.index('<h2 id="smoke">'):]
    head = smoke[:smoke.index("<tbody>")]  # in one run, base and figa average different terms: two columns
    assert ('<th class="wrap sortable">FIGA avg (5 of 7 terms: no vicuna, wizardlm)</th>'
            '<th class="wrap sortable">FIGA avg (6 of 7 terms: no vicuna)</th>') in head
    across = page[page.index("FIGA averages across runs"):]
    assert across.count('<th class="wrap">FIGA avg (') == 3  # all 7, 5 of 7, 6 of 7: one column each
    assert "<th>reward</th>" not in page and "<th>figa_avg</th>" not in page  # the Reward column is dropped


def test_v1_documents_and_other_schemas_are_refused_clearly(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema": "bench.results/1", "run": "x", "methods": {}}))
    with pytest.raises(ResultsError, match=r"results.json: field 'schema'.*bench run report --force --config RUN_DIR/run_config.yaml"):
        build(tmp_path, tmp_path / "site")
    (tmp_path / "results.json").write_text(json.dumps(doc(schema="other/9")))
    with pytest.raises(ResultsError, match="results.json: field 'schema': expected 'bench.results/2'"):
        build(tmp_path, tmp_path / "site")


def test_a_string_where_a_number_belongs_names_file_and_field(tmp_path):
    bad = doc()
    bad["methods"]["figa"]["winrate"]["win_rate"] = "0.31"
    (tmp_path / "results.json").write_text(json.dumps(bad))
    with pytest.raises(ResultsError, match=r"results.json: field 'methods.figa.winrate.win_rate': expected a number"):
        build(tmp_path, tmp_path / "site")
    bad = doc()
    bad["verdicts"]["pairs"][2]["win_rate"]["p_holm"] = "small"
    (tmp_path / "results.json").write_text(json.dumps(bad))
    with pytest.raises(ResultsError, match=r"'verdicts.pairs\[2\].win_rate.p_holm'"):
        build(tmp_path, tmp_path / "site")
    bad = doc()
    del bad["methods"]["figa"]["suite"]["figa_avg"]["terms"]  # a v1-style partial average
    (tmp_path / "results.json").write_text(json.dumps(bad))
    with pytest.raises(ResultsError, match=r"'methods.figa.suite.figa_avg.terms': missing"):
        build(tmp_path, tmp_path / "site")
    from bench.cli import app

    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path), "--out", str(tmp_path / "site")])
    assert result.exit_code == 2 and "figa_avg.terms" in result.output and "Traceback" not in result.output


def test_a_document_without_verdicts_lists_methods_unranked(tmp_path):
    page = page_of(tmp_path, doc(verdicts_doc={}, validated=True) | {"verdicts": None})
    assert "No verdicts" in page and "Tier 1" not in page
    assert page.index(">base<") < page.index(">figa<") < page.index(">sft<")  # document order


def test_empty_results_still_build_a_page(tmp_path):
    assert "No runs yet" in build(tmp_path, tmp_path / "site").read_text()


def test_leaderboard_imports_nothing_from_bench():
    code = "import sys, leaderboard.build; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bench'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sparkline_scales_into_the_box():
    svg = sparkline([[0, 5.0], [10, 1.0]], width=100, height=20)
    assert 'points="2.0,2.0 98.0,18.0"' in svg
    assert sparkline([[0, 1.0]]) == ""
