"""Judges: registry, pointwise-to-pairwise verdicts, the LLM judge's parsing, position swap, retries and
errors (against a scripted client here; against a served model in test_serve.py), and the local judge's
training and cached scoring on the tiny model."""

from __future__ import annotations

import math
import socket

import pytest

from bench.cache import Cache
from bench.judges import ScorerJudge, get, judges
from bench.judges.llm import EndpointError, LLMJudge, parse, annotator_config

PROMPTS = [[{"role": "user", "content": f"Question {i}?"}] for i in range(3)]


def test_registry_lists_judges_and_rejects_unknown_names_and_options():
    assert {"local-rm", "llm", "reward-model"} <= set(judges())
    with pytest.raises(KeyError, match="unknown judge 'nope'"):
        get("nope")
    with pytest.raises(KeyError, match="no option"):
        get("llm", colour="red")


class LengthScorer:
    def score(self, prompts, responses, batch_size=8):
        return [float(len(r)) for r in responses]


def test_scorer_judge_prefers_the_higher_score_and_ties_equal_scores():
    j = ScorerJudge(LengthScorer())
    v = j.compare(PROMPTS, ["long answer", "a", "same"], ["short", "bb", "same"])
    assert [x.preference for x in v] == [1.0, 0.0, 0.5]
    assert v[0].detail == {"score_model": 11.0, "score_ref": 5.0}


def test_alpaca_eval_parsers_are_used():
    chatgpt = annotator_config("chatgpt")
    assert parse(chatgpt, "Output (b)") == 2.0
    assert parse(chatgpt, "Output (a) is better") == 1.0
    assert parse(chatgpt, "I cannot decide") is None
    ranking = annotator_config("alpaca_eval_gpt4")
    assert parse(ranking, "[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]") == 2.0
    for unsupported in ("weighted_alpaca_eval_cot_gpt4_turbo", "alpaca_eval_gpt4_fn", "alpaca_farm_greedy_gpt4"):
        with pytest.raises(KeyError, match="function calls, batching or chain-of-thought"):
            annotator_config(unsupported)
    weighted = annotator_config("weighted_alpaca_eval_gpt4_turbo")
    top = {"logprobs": {"content": [{"token": "M", "top_logprobs": [
        {"token": "M", "logprob": math.log(0.6)}, {"token": "m", "logprob": math.log(0.2)}, {"token": "x", "logprob": -1.0}]}]}}
    assert parse(weighted, top) == pytest.approx(2 - 0.25)  # P(m) / (P(m) + P(M)) = 0.2 / 0.8
    assert parse(weighted, {"logprobs": {"content": [{"token": "x", "top_logprobs": [{"token": "x", "logprob": 0.0}]}]}}) is None
    assert parse(weighted, {}) is None


class ScriptedClient:
    """An OpenAI client stand-in that answers from a function of the rendered prompt (unit tests only)."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []
        self.chat = self
        self.completions = self

    def create(self, **params):
        from types import SimpleNamespace

        self.calls.append(params)
        text = self.answer(params["messages"][-1]["content"], params)
        if isinstance(text, Exception):
            raise text
        if isinstance(text, dict):  # {token: probability}: the first token's top log-probabilities
            top = [SimpleNamespace(token=t, logprob=math.log(p)) for t, p in text.items()]
            logprobs = SimpleNamespace(content=[SimpleNamespace(token=top[0].token, logprob=top[0].logprob, top_logprobs=top)])
            return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=top[0].token), logprobs=logprobs)])
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=text))])


def scripted_judge(tmp_path, answer, **options) -> tuple[LLMJudge, ScriptedClient]:
    judge = LLMJudge(base_url="http://127.0.0.1:9/v1", model="scripted", **options)
    judge.client = ScriptedClient(answer)
    judge.cache = Cache("calls", tmp_path)
    return judge, judge.client


def first_output(prompt: str) -> str:
    """The text shown as Output (a) in the chatgpt annotator's prompt."""
    return prompt.rsplit("## Output (a):", 1)[1].split("## Output (b):")[0].strip()


def test_llm_judge_swaps_positions_and_counts_inconsistent_verdicts_as_ties(tmp_path):
    # A judge that prefers the model's answer in both orders, and one that always says "(a)" (position bias).
    fair, client = scripted_judge(tmp_path / "a", lambda p, _: "Output (a)" if first_output(p).startswith("GOOD") else "Output (b)")
    v = fair.compare(PROMPTS[:2], ["GOOD answer", "bad"], ["bad ref", "GOOD ref"])
    assert [x.preference for x in v] == [1.0, 0.0]
    assert len(client.calls) == 4  # two orders per pair
    biased, _ = scripted_judge(tmp_path / "b", lambda p, _: "Output (a)")
    v = biased.compare(PROMPTS[:2], ["x", "y"], ["r", "s"])
    assert [x.preference for x in v] == [0.5, 0.5]
    assert all(x.detail["consistent"] is False for x in v)


def test_llm_judge_retries_unparsable_answers_then_counts_the_failure(tmp_path):
    # Parsable only when the retry samples (temperature > 0): the retry is used.
    judge, client = scripted_judge(tmp_path / "a", lambda p, params: "Output (b)" if params["temperature"] > 0 else "hmm")
    v = judge.compare(PROMPTS[:1], ["out"], ["ref"])
    assert v[0].preference == 0.5 and len(client.calls) == 4  # (b) in both orders = inconsistent = tie
    never, client = scripted_judge(tmp_path / "b", lambda p, _: "no idea", parse_retries=2)
    v = never.compare(PROMPTS[:1], ["out"], ["ref"])
    assert v[0].preference is None and v[0].detail["failed"]
    assert len(client.calls) == 6  # 3 attempts per order, then counted as a failure


def good_is_first(prompt: str) -> bool:
    """In the weighted annotator's prompt, whether the output starting with GOOD is shown as model "m"."""
    return prompt.index("GOOD") < prompt.index('"model_identifier": "M"')


def test_weighted_annotator_reads_label_probabilities_and_averages_both_orders(tmp_path):
    """AlpacaEval 2's weighted annotator: one token, read from its top log-probabilities; the soft preferences
    of the two orders are averaged, so a judge with a position bias alone comes out at one half."""
    # Gives the GOOD output's label probability 0.8 (both labels in the top log-probabilities).
    fair, client = scripted_judge(tmp_path / "a", lambda p, _: {"m": 0.8, "M": 0.2} if good_is_first(p) else {"M": 0.8, "m": 0.2},
                                  annotator="weighted_alpaca_eval_gpt4_turbo")
    v = fair.compare(PROMPTS[:2], ["GOOD answer", "bad"], ["bad ref", "GOOD ref"])
    assert [x.preference for x in v] == [pytest.approx(0.8), pytest.approx(0.2)]
    assert all(x.detail["consistent"] for x in v)
    assert len(client.calls) == 4  # one call per order: no retries of a log-probability read
    assert all(c["logprobs"] is True and c["top_logprobs"] == 5 and c["max_tokens"] == 1 for c in client.calls)
    biased, _ = scripted_judge(tmp_path / "b", lambda p, _: {"m": 0.7, "M": 0.3}, annotator="weighted_alpaca_eval_gpt4_turbo")
    v = biased.compare(PROMPTS[:1], ["GOOD"], ["ref"])
    assert v[0].preference == pytest.approx(0.5) and v[0].detail["consistent"] is False
    # Labels missing from the top log-probabilities: that order fails; both orders failing is a counted failure.
    one, _ = scripted_judge(tmp_path / "c", lambda p, _: {"m": 0.9, "M": 0.1} if good_is_first(p) else {"the": 0.9},
                            annotator="weighted_alpaca_eval_gpt4_turbo")
    v = one.compare(PROMPTS[:1], ["GOOD"], ["ref"])
    assert v[0].preference == pytest.approx(0.9) and v[0].detail["one_order_failed"]
    none, _ = scripted_judge(tmp_path / "d", lambda p, _: {"the": 0.9}, annotator="weighted_alpaca_eval_gpt4_turbo")
    assert none.compare(PROMPTS[:1], ["GOOD"], ["ref"])[0].preference is None


def test_llm_judge_calls_are_cached_by_content(tmp_path):
    judge, client = scripted_judge(tmp_path, lambda p, _: "Output (a)")
    judge.compare(PROMPTS, ["x", "y", "z"], ["r", "s", "t"])
    n = len(client.calls)
    again = judge.compare(PROMPTS, ["x", "y", "z"], ["r", "s", "t"])
    assert len(client.calls) == n and len(again) == 3
    judge.compare(PROMPTS[:1], ["changed"], ["r"])
    assert len(client.calls) == n + 2


def test_llm_judge_backs_off_then_reports_a_down_endpoint(tmp_path, monkeypatch):
    import httpx
    import openai

    sleeps = []
    monkeypatch.setattr("bench.endpoint.time.sleep", sleeps.append)
    err = openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    judge, client = scripted_judge(tmp_path, lambda p, _: err, network_retries=3)
    with pytest.raises(EndpointError, match="unreachable or failing after 4 attempts.*bench serve"):
        judge.compare(PROMPTS[:1], ["x"], ["r"])
    assert sleeps == [1.0, 2.0, 4.0]


def test_llm_judge_against_a_closed_port_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setattr("bench.endpoint.time.sleep", lambda s: None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}.*unreachable"):
        LLMJudge(base_url=f"http://127.0.0.1:{port}/v1", network_retries=1)


def test_local_judge_trains_saves_and_scores_with_a_cache(tmp_path, tiny_model_dir, monkeypatch):
    from bench.judges import local_rm

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    head_path = tmp_path / "head.safetensors"
    head = local_rm.train_head(head_path, backbone=tiny_model_dir, limit=24, max_tokens=96, layers=(1, 2))
    assert head.layer in (1, 2) and head_path.exists()
    judge = local_rm.LocalRMJudge(head=str(head_path))
    v = judge.compare(PROMPTS[:2], ["A clear, correct answer.", "x"], ["x", "A clear, correct answer."])
    assert v[0].preference == 1 - v[1].preference  # pointwise scores: swapping the answers swaps the verdict
    judge.scorer._features = None  # the backbone must not be needed again: everything is cached
    monkeypatch.setattr(local_rm, "FrozenFeatures", None)
    assert [x.detail for x in judge.compare(PROMPTS[:2], ["A clear, correct answer.", "x"], ["x", "A clear, correct answer."])] == [x.detail for x in v]


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    """An empty result cache that still shares the converted SmolLM2 (no 30 s re-conversion)."""
    from bench.models import cache_dir

    root = tmp_path / "cache"
    root.mkdir()
    (root / "models").symlink_to(cache_dir() / "models")
    monkeypatch.setenv("BENCH_CACHE", str(root))
    return root


@pytest.mark.integration
def test_bench_eval_and_judge_end_to_end(tmp_path, tiny_model_dir, fresh_cache):
    """`bench eval` (HF backend, tiny model) judged by the shipped local judge; a re-run is served from cache;
    `bench judge` of two output sets reports their paired difference."""
    import json

    from typer.testing import CliRunner

    from bench.cache import Cache
    from bench.cli import app

    out, report = tmp_path / "out", tmp_path / "report.json"
    args = ["eval", tiny_model_dir, "--limit", "4", "--backend", "hf", "--max-new-tokens", "8", "--n-boot", "200",
            "--output-dir", str(out), "--json", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    r = json.loads(report.read_text())["results"][0]
    assert r["n"] == 4 and r["reference"] == "alpaca_eval-reference" and r["judge_failures"] == 0
    assert 0 <= r["win_rate_ci95"][0] <= r["win_rate"] <= r["win_rate_ci95"][1] <= 1
    annotations = [json.loads(x) for x in next(tmp_path.glob("report.*.annotations.jsonl")).read_text().splitlines()]
    assert len(annotations) == 4 and {"instruction", "output", "reference", "preference", "detail"} <= set(annotations[0])
    scores = len(Cache("judge_scores"))
    assert CliRunner().invoke(app, args).exit_code == 0
    assert json.loads((out / "generation_meta.json").read_text())["generated_now"] == 0
    assert len(Cache("judge_scores")) == scores
    both = tmp_path / "both.json"
    result = CliRunner().invoke(app, ["judge", str(out), str(out / "model_outputs.json"), "--against", "alpaca_eval",
                                      "--n-boot", "200", "--json", str(both)])
    assert result.exit_code == 0, result.output
    d = json.loads(both.read_text())["paired_differences"][0]
    assert d["win_rate_diff"] == 0 and d["win_rate_diff_ci95"] == [0.0, 0.0]


def test_bench_judge_names_the_bad_input(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    bad = tmp_path / "outs.jsonl"
    bad.write_text('{"instruction": "hi", "output": "hello"}\n{"instruction": "x", "output": 3}\n')
    result = CliRunner().invoke(app, ["judge", str(bad), "--judge", "llm", "--against", "alpaca_eval"])
    assert result.exit_code == 2
    assert "outs.jsonl, line 2: field 'output': expected a string" in " ".join(result.output.split())
