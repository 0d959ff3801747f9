"""``llm``: an LLM judge over any OpenAI-compatible chat endpoint, with AlpacaEval's annotator configurations.

The prompt templates and completion parsers are alpaca_eval's own (``evaluators_configs/<annotator>``), so a
verdict means what it means in AlpacaEval; the transport is ours, because we need what alpaca_eval's decoders
do not give together: an on-disk cache keyed by content hash, retries of unparsable answers, back-off on
network errors with a clear message when the endpoint is down, and both presentation orders.

Position swap: every pair is judged as (reference, model) and as (model, reference). Agreeing verdicts stand;
disagreeing ones are counted as inconsistent and scored as a tie. If one order stays unparsable after the
retries the other order decides; if both do, the pair is a counted failure (``preference=None``).

Endpoints: ``base_url`` (default ``$OPENAI_BASE_URL``, else OpenAI's), ``model`` (default: the endpoint's
first listed model, which is the one ``bench serve`` serves), the API key read from the environment variable
named by ``api_key_env``. ``choices`` (e.g. ``["Output (a)", "Output (b)"]``) asks a vLLM server to constrain
the answer to those strings (structured outputs), which makes small local judges always parseable.

Weighted annotators (AlpacaEval 2's ``weighted_alpaca_eval_gpt4_turbo`` and its kin) answer with one token and
are read from its log-probabilities: the preference is P(second label) / P(either label) over the endpoint's
``top_logprobs``, a continuous value, by alpaca_eval's ``logprob_parser``. Their two orders are averaged
(position bias cancels); a pair whose labels are absent from the top log-probabilities in both orders is a
counted failure. Servers must return log-probabilities (vLLM and OpenAI do).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from ..cache import Cache, content_key
from ..endpoint import EndpointError, with_backoff
from . import register
from .base import Judgement

log = logging.getLogger("bench.judges")


def annotator_config(name: str) -> dict:
    """alpaca_eval's configuration for ``name``, with its prompt template read in."""
    import alpaca_eval

    root = Path(alpaca_eval.__file__).parent / "evaluators_configs"
    path = root / name / "configs.yaml"
    if not path.exists():
        known = sorted(p.parent.name for p in root.glob("*/configs.yaml"))
        raise KeyError(f"unknown alpaca_eval annotator '{name}'; known: {', '.join(known)}")
    cfg = next(iter(yaml.safe_load(path.read_text()).values()))
    kwargs = cfg.get("completions_kwargs") or {}
    parser = cfg.get("fn_completion_parser", "regex_parser")
    weighted = parser == "logprob_parser" and bool(kwargs.get("logprobs")) and bool(kwargs.get("top_logprobs"))
    text = parser in ("regex_parser", "ranking_parser", "lmsys_parser", "json_parser") and "logprobs" not in kwargs
    if (cfg.get("fn_completions") != "openai_completions" or cfg.get("batch_size", 1) != 1 or not (text or weighted)
            or any(k in kwargs for k in ("functions", "tools", "function_call"))
            or (cfg.get("completion_parser_kwargs") or {}).get("log_prob_index", "batch") != "batch"):
        raise KeyError(f"annotator '{name}' needs function calls, batching or chain-of-thought log-probabilities; "
                       "choose one that answers in text with batch_size 1 (e.g. chatgpt, alpaca_eval_gpt4) or a "
                       "weighted one (weighted_alpaca_eval_gpt4_turbo)")
    cfg["template"] = (root / cfg["prompt_template"]).read_text()
    cfg["parser"] = parser
    cfg["weighted"] = weighted
    return cfg


def render(template: str, instruction: str, output_1: str, output_2: str) -> list[dict]:
    """Fill the template (plain replacement: templates contain literal braces) and split it into chat messages."""
    from alpaca_eval.utils import prompt_to_chatml

    text = template.replace("{instruction}", instruction).replace("{output_1}", output_1).replace("{output_2}", output_2)
    return prompt_to_chatml(text) if "<|im_start|>" in text else [{"role": "user", "content": text}]


def parse(cfg: dict, completion: str | dict) -> float | None:
    """alpaca_eval's parser: 1 = first output better, 2 = second, 0 = equal; a weighted annotator's value lies
    in [1, 2] (2 - P(first)); None when unparsable."""
    from alpaca_eval import completion_parsers

    if not completion or (isinstance(completion, str) and not completion.strip()):
        return None
    try:
        got = getattr(completion_parsers, cfg["parser"])(completion, **(cfg.get("completion_parser_kwargs") or {}))
    except Exception:  # noqa: BLE001 - alpaca_eval parsers raise anything on malformed text
        return None
    if not got or got[0] is None or (isinstance(got[0], float) and math.isnan(got[0])):
        return None
    if cfg.get("weighted"):
        return float(got[0]) if 1 <= got[0] <= 2 else None
    return float(got[0]) if got[0] in (0, 1, 2) else None


def second_preferred(verdict: float) -> float:
    """A parsed verdict as the probability that the second output is better (0 = equal counts one half)."""
    return 0.5 if verdict == 0 else verdict - 1


def instruction_of(prompt: list[dict]) -> str:
    """The instruction as the annotator sees it: a single user turn verbatim, a longer dialogue as a transcript."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


@register("llm")
class LLMJudge:
    def __init__(self, base_url: str | None = None, model: str | None = None, annotator: str = "chatgpt",
                 api_key_env: str = "OPENAI_API_KEY", temperature: float | None = None, max_tokens: int | None = None,
                 choices: list[str] | None = None, parse_retries: int = 2, network_retries: int = 5,
                 concurrency: int = 8, timeout: float = 120.0):
        from openai import OpenAI

        self.cfg = annotator_config(annotator)
        self.annotator = annotator
        kwargs = self.cfg.get("completions_kwargs") or {}
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.temperature = kwargs.get("temperature", 0) if temperature is None else temperature
        self.max_tokens = max_tokens or kwargs.get("max_tokens", 100)
        self.choices, self.parse_retries, self.network_retries = choices, parse_retries, network_retries
        self.concurrency = concurrency
        key = os.environ.get(api_key_env) or "EMPTY"  # a local server started without --api-key accepts any key
        self.client = OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=timeout)
        self.model = model or self._first_model()
        self.cache = Cache("judge_calls")

    def identity(self) -> dict:
        return {"judge": "llm", "model": self.model, "annotator": self.annotator, "temperature": self.temperature,
                "choices": self.choices}

    def _with_backoff(self, fn):
        return with_backoff(fn, role="judge", base_url=self.base_url, retries=self.network_retries)

    def _first_model(self) -> str:
        models = self._with_backoff(lambda: self.client.models.list()).data
        if not models:
            raise EndpointError(f"judge endpoint {self.base_url} serves no models")
        return models[0].id

    def _complete(self, messages: list[dict], attempt: int) -> str:
        # A retry after an unparsable answer samples (temperature 0 would only repeat the same text).
        temperature = self.temperature if attempt == 0 else max(self.temperature, 0.7)
        params = dict(model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=temperature, seed=attempt)
        if self.choices:
            params["extra_body"] = {"structured_outputs": {"choice": list(self.choices)}}
        if self.cfg["weighted"]:
            params.update(logprobs=True, top_logprobs=self.cfg["completions_kwargs"]["top_logprobs"])
        key = content_key("llm-judge", params)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        resp = self._with_backoff(lambda: self.client.chat.completions.create(**params))
        answer = self._top_logprobs(resp) if self.cfg["weighted"] else resp.choices[0].message.content or ""
        self.cache.put(key, answer)
        return answer

    @staticmethod
    def _top_logprobs(resp) -> dict:
        """The first token's top log-probabilities, in the shape alpaca_eval's ``logprob_parser`` reads."""
        content = (resp.choices[0].logprobs and resp.choices[0].logprobs.content) or []
        if not content:
            return {}
        top = [{"token": t.token, "logprob": t.logprob} for t in content[0].top_logprobs or []]
        return {"logprobs": {"content": [{"token": content[0].token, "top_logprobs": top}]}}

    def _one_order(self, instruction: str, first: str, second: str) -> tuple[float | None, list[str]]:
        """Parsed verdict (1 = first better, 2 = second, 0 = equal) with the raw completions tried."""
        messages = render(self.cfg["template"], instruction, first, second)
        raws = []
        # A weighted verdict is read from log-probabilities, which a retry would only fetch again.
        for attempt in range(1 if self.cfg["weighted"] else self.parse_retries + 1):
            raws.append(self._complete(messages, attempt))
            verdict = parse(self.cfg, raws[-1])
            if verdict is not None:
                return verdict, raws
        return None, raws

    def _pair(self, prompt, output, reference) -> Judgement:
        instruction = instruction_of(prompt)
        ref_first, raw_a = self._one_order(instruction, reference, output)  # model is output (b)
        model_first, raw_b = self._one_order(instruction, output, reference)  # model is output (a)
        p1 = None if ref_first is None else second_preferred(ref_first)
        p2 = None if model_first is None else 1.0 - second_preferred(model_first)
        detail = {"ref_first": raw_a, "model_first": raw_b, "pref_ref_first": p1, "pref_model_first": p2}
        if p1 is None and p2 is None:
            return Judgement(None, {**detail, "failed": True})
        if p1 is None or p2 is None:
            return Judgement(p1 if p2 is None else p2, {**detail, "one_order_failed": True})
        if self.cfg["weighted"]:  # soft preferences: the mean of both orders cancels position bias
            return Judgement((p1 + p2) / 2, {**detail, "consistent": (p1 - 0.5) * (p2 - 0.5) > 0 or p1 == p2})
        consistent = p1 == p2
        return Judgement(p1 if consistent else 0.5, {**detail, "consistent": consistent})

    def compare(self, prompts, outputs, references):
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._pair, prompts, outputs, references))
