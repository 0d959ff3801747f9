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


def test_the_degeneration_flag_says_what_it_compares_and_older_documents_still_show_theirs(tmp_path):
    shares = {"n": 200, "truncated": 0.7, "loop": 0.5, "empty": 0.0, "mean_tokens": 160.0, "threshold": 0.2}
    reason = "+19.5 points [+10.0, +29.0] over base (Holm p 0.002): degenerates more than the model it started from"
    d = doc()
    d["methods"]["base"]["degeneration"] = {**shares, "degenerate": 0.37, "flagged": True, "flag_basis": "absolute",
                                            "flag_reason": "37% degenerate, above the absolute 20% threshold"}
    above = {"diff": 0.195, "ci95": [0.1, 0.29], "p": 0.001, "p_holm": 0.002, "base": 0.37}
    d["methods"]["figa"]["degeneration"] = {**shares, "degenerate": 0.56, "flagged": True, "flag_basis": "base",
                                            "flag_reason": reason, "vs_base": above}
    d["methods"]["sft"]["degeneration"] = {**shares, "degenerate": 0.38, "flagged": False, "flag_basis": "base",
                                           "flag_reason": "+1.0 points [-2.0, +4.0] over base (Holm p 1): not above",
                                           "vs_base": {"diff": 0.01, "ci95": [-0.02, 0.04], "p": 0.5, "p_holm": 1.0}}
    old = doc(run="older")
    old["methods"]["figa"]["degeneration"] = {**shares, "degenerate": 0.4, "flagged": True}  # before the comparison
    site = site_of(tmp_path, d, old)
    index = (site / "index.html").read_text()
    figa = index[index.index(">figa</a>"):]
    assert "+19.5 pts degenerate vs base" in figa[:figa.index("</td>")] and reason in figa[:figa.index("</td>")]
    base = index[index.index(">base</a>"):]
    assert "degenerate 37%" in base[:base.index("</td>")]
    sft = index[index.index(">sft</a>"):]
    assert "degenerate" not in sft[:sft.index("</td>")]
    assert "degenerate 40%" in index and "above the absolute 20% threshold" in index  # the older run
    method = (next(p for p in site.iterdir() if p.name == "smoke") / "figa.html").read_text()
    assert "Flagged: " + reason in method and "+19.5" in method and "[10.0, 29.0]" in method


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


# --- the site: pages, honesty rules, exports, escaping (the browser test is tests/test_site_browser.py) ---

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'


def site_of(tmp_path, *docs, samples=None):
    for i, d in enumerate(docs):
        folder = tmp_path / "runs" / f"r{i}"
        folder.mkdir(parents=True)
        if samples is not None:
            (folder / "samples.json").write_text(json.dumps(samples))
            d = {**d, "samples": "samples.json"}
        (folder / "results.json").write_text(json.dumps(d))
    return build(tmp_path / "runs", tmp_path / "site").parent


def samples_doc(names, n=3, text="answer"):
    prompts = [{"id": f"p{i}", "instruction": f"question {i}", "reference": "ref"} for i in range(n)]
    return {"schema": "bench.samples/1", "run": "smoke", "eval_set": "alpaca_eval", "prompts": prompts,
            "sets": [{"method": m, "seed": 0, "output": [f"{text} {m} {i}" for i in range(n)],
                      "preference": [1.0, 0.5, 0.0][:n] + [0.0] * (n - 3), "failed": [False] * n} for m in names]}


def test_hostile_names_and_answers_are_escaped_on_every_page(tmp_path):
    d = doc(run=f"run{HOSTILE}")
    d["methods"][f"m{HOSTILE}"] = d["methods"].pop("sft")
    d["verdicts"] = None
    site = site_of(tmp_path, d, samples=samples_doc(["figa", f"m{HOSTILE}"], text=HOSTILE))
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 8  # index, run, samples and one per method
    for page in pages:
        text = page.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text, page
        assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; script-src \'self\'' in text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), page  # nothing remote
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (site / "index.html").read_text()
    data = "".join(p.read_text() for p in site.rglob("samples/*.js"))
    assert "<" not in data and "\\u003cscript\\u003ealert(1)" in data  # JSON that cannot close a script
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", p.name) for p in site.rglob("*"))  # file names from names: cleaned


def test_js_json_cannot_end_a_script_or_split_a_line():
    from leaderboard.samples import js_json

    text = js_json({"a": "</script><!-- \u2028 \u2029 & é"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"a": "</script><!-- \u2028 \u2029 & é"}


def test_too_wide_intervals_are_not_estimable_with_the_rule(tmp_path):
    v = json.loads(json.dumps(run_verdicts()))
    v["methods"]["positive"]["lc_win_rate"].update(value=0.061, ci95=[0.014, 1.0])  # the default run's control
    page = (site_of(tmp_path, doc(v)) / "index.html").read_text()
    row = page[page.index('>positive</a>'):]
    row = row[:row.index("</tr>")]
    assert "not estimable" in row and "6.1 <" not in row and "[1.4, 100.0]" in row  # the number is no estimate
    assert "wider than 50 percentage points" in page  # the rule is stated


def test_judge_card_says_whose_labels_and_flags_lc_near_the_length_baseline(tmp_path):
    d = doc()
    d["judge"]["summary"].update(agreement={"value": 0.866, "ci95": [0.852, 0.880]},
                                 longer_wins_agreement={"value": 0.864}, labels="GPT-4's judgements (ae1)")
    page = (site_of(tmp_path, d) / "index.html").read_text()
    assert "agreement with GPT-4&#39;s judgements (ae1)" in page and "agreement with humans" not in page
    head = page[page.index("<thead>"):page.index("</thead>")]
    assert "judge ≈ length baseline" in head and "+0.2 points" in page
    far = doc()  # 25 points above the length baseline: LC is shown without the warning
    far["judge"]["summary"].update(agreement={"value": 0.95, "ci95": [0.94, 0.96]}, longer_wins_agreement={"value": 0.7})
    page = (site_of(tmp_path / "far", far) / "index.html").read_text()
    assert "judge ≈ length baseline" not in page and "agreement with the labels of the judge" in page


def test_site_builds_with_missing_sections(tmp_path):
    """No suite, no curves, one seed, no samples, no verdicts, no stage times, no judge summary."""
    d = doc(verdicts_doc={}, suite=[], seeds=[0])
    d["verdicts"] = None
    d["judge"]["summary"] = None
    for m in d["methods"].values():
        m.update(suite=None, train=None, seeds=[0])
    site = site_of(tmp_path, d)
    index = (site / "index.html").read_text()
    assert "sample browser" not in index
    run_dir = next(p for p in site.iterdir() if p.is_dir() and p.name != "static")
    assert (run_dir / "run.html").exists() and not (run_dir / "samples.html").exists()
    method = (run_dir / "figa.html").read_text()
    assert "not trained in this run" in method and "no degeneration statistics" in method
    run_page = (run_dir / "run.html").read_text()
    assert "no verdicts in this run" in run_page and "no stage times recorded" in run_page
    assert "<svg" in run_page  # win rate vs length still plots


def test_head_to_head_matrix_marks_holm_significance(tmp_path):
    v = run_verdicts()
    run_dir = next(p for p in site_of(tmp_path, doc(v)).iterdir() if p.is_dir() and p.name != "static")
    page = (run_dir / "run.html").read_text()
    pr = next(p for p in v["pairs"] if {p["a"], p["b"]} == {"figa", "null"})
    assert pr["win_rate"]["p_holm"] < 0.05
    sign = 1 if pr["a"] == "figa" else -1
    assert f"{100 * sign * pr['win_rate']['value']:+.1f}*" in page and f"{-100 * sign * pr['win_rate']['value']:+.1f}*" in page
    fs = next(p for p in v["pairs"] if {p["a"], p["b"]} == {"figa", "sft"})  # one tier: no mark
    assert fs["win_rate"]["p_holm"] >= 0.05 and f"{100 * abs(fs['win_rate']['value']):.1f}*" not in page


def test_exports_leaderboard_csv_and_model_outputs(tmp_path):
    import csv
    import io

    site = site_of(tmp_path, doc(), samples=samples_doc(["figa", "sft"]))
    rows = list(csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text())))
    assert {"name", "win_rate", "standard_error", "n_wins", "n_draws", "n_total", "avg_length",
            "length_controlled_winrate", "lc_standard_error"} <= set(rows[0])
    figa = next(r for r in rows if r["name"] == "figa")
    v = run_verdicts()
    assert float(figa["win_rate"]) == pytest.approx(100 * v["methods"]["figa"]["win_rate"]["value"], abs=1e-3)
    assert (figa["n_wins"], figa["n_draws"], figa["n_wins_base"], figa["n_total"]) == ("1", "1", "1", "3")
    run_dir = next(p for p in site.iterdir() if p.is_dir() and p.name != "static")
    outputs = json.loads((run_dir / "outputs" / "figa" / "seed-0" / "model_outputs.json").read_text())
    assert outputs[0] == {"instruction": "question 0", "output": "answer figa 0", "generator": "figa seed 0",
                          "dataset": "alpaca_eval"}
    assert 'href="outputs/figa/seed-0/model_outputs.json"' in (run_dir / "figa.html").read_text()


def test_a_samples_document_that_does_not_fit_is_refused_by_name(tmp_path):
    bad = samples_doc(["figa"])
    bad["sets"][0]["output"].pop()
    with pytest.raises(ResultsError, match=r"samples.json: field 'sets\[0\].output': has 2 entries for 3 prompts"):
        site_of(tmp_path, doc(), samples=bad)


def test_report_stage_samples_document_pairs_each_answer_with_its_verdict(tmp_path):
    """samples.json from the run's generations and judged tables, matched as the judge matched them (the answers
    are written in reverse prompt order: position in the file is not the prompt)."""
    import pandas as pd

    from bench.data import load
    from bench.generation import instruction_text
    from bench.stages.config import RunConfig
    from bench.stages.generate import output_dir
    from bench.stages.judge import judged_path
    from bench.stages.samples import samples_document
    from leaderboard.schema import SAMPLES, check

    run = RunConfig(run="r", root=str(tmp_path), methods=["figa"], seeds=[0], eval_limit=4, controls={})
    prompts = load(run.eval_set, limit=4)
    for name, seed in run.units():
        rows = [{"instruction": instruction_text(p.prompt), "output": f"{name} says {p.id}", "generator": name}
                for p in reversed(prompts)]
        out = output_dir(run, name, seed)
        out.mkdir(parents=True)
        (out / "model_outputs.json").write_text(json.dumps(rows))
        path = judged_path(run, name, seed).with_suffix(".csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"id": [p.id for p in reversed(prompts)], "preference": [1.0, 0.0, 0.5, 1.0], "failed": False,
                      "len_model": 1, "len_ref": 1}).to_csv(path, index=False)
    s = samples_document(run)
    check(s, SAMPLES, "", "samples.json")
    assert [p["id"] for p in s["prompts"]] == [p.id for p in prompts]
    assert [p["reference"] for p in s["prompts"]] == [p.reference for p in prompts]
    figa = next(x for x in s["sets"] if x["method"] == "figa")
    assert figa["seed"] == 0 and figa["output"] == [f"figa says {p.id}" for p in prompts]
    assert figa["preference"] == [1.0, 0.5, 0.0, 1.0]  # reversed back into prompt order


def test_a_difference_with_a_too_wide_interval_is_not_estimable(tmp_path):
    v = json.loads(json.dumps(run_verdicts()))
    h = next(h for h in v["headline"] if h["name"] == "figa - sft")
    h["win_rate"].update(value=0.01, ci95=[-0.343, 0.362])  # the default run's fg-PPO - PPO
    page = (site_of(tmp_path, doc(v)) / "index.html").read_text()
    row = page[page.index(">figa - sft<"):]
    row = row[:row.index("</tr>")]
    assert "not estimable" in row and "+1.0 [-34.3, 36.2]" in row


def test_plot_axes_have_round_ticks_and_labels():
    from leaderboard.plots import lines, ticks

    assert ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0] and ticks(3, 97)[0] == 0 and ticks(3, 97)[-1] == 100
    svg = str(lines({"figa": [[1, 2.0], [2, 1.0]]}, "optimiser step", "loss (nats)", "Training loss"))
    assert ">optimiser step</text>" in svg and ">loss (nats)</text>" in svg and ">Training loss</text>" in svg
    assert str(lines({"one point": [[1, 2.0]]}, "x", "y", "t")) == ""  # nothing to draw: no empty frame


def test_rounding_noise_is_never_shown_as_minus_zero():
    from leaderboard.build import _ci, _pct, _signed

    assert _signed(-1e-17) == "+0.0" and _pct(-1e-17) == "0.0" and _ci([-1e-17, -2e-16]) == "[0.0, 0.0]"
    assert _signed(-0.0123) == "-1.2"
