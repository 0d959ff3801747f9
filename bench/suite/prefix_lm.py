"""lm-eval's ``hf`` model, scoring requests that share a prompt prefix from one cached forward pass.

Likelihood benchmarks repeat long prompts: every TruthfulQA question starts with the same six-shot
primer and is scored once per answer choice (about 12 times across MC1 and MC2); every MMLU question of
a subject starts with the same five solved examples. lm-eval's ``hf`` model runs the whole prompt again
for every request (its ``logits_cache`` only merges one-token answers to one prompt), which on two CPU
cores makes FIGA's suite take ~90 minutes. This model computes the same numbers as ``hf`` with far
fewer tokens: contexts are sorted so neighbours share prefixes; each context's key/value cache starts
from the longest prefix it shares with the previous one; the answers of a context run together on
copies of that cache. Everything else (tasks, prompts, few-shot, truncation, metrics) is lm-eval's.

Per request the model gives the same log-probability as ``hf`` up to float rounding (tested), and the
same greedy flag. Models whose cache is not a plain full-attention cache (sliding windows, recurrent
layers) and seq2seq models fall back to ``hf``'s own code path.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm


def common_prefix(a: tuple, b: tuple) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@register_model("hf-prefix")
class PrefixSharingHFLM(HFLM):
    """``hf`` with shared-prefix key/value reuse for ``loglikelihood`` requests."""

    max_batch_tokens = 4096  # answer rows x padded length per forward pass (bounds the logits tensor)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if self.backend != "causal" or not self._plain_cache():
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        # Group by context as the model will see it: lm-eval keeps the last max_length + 1 tokens of
        # context + continuation and scores the continuation from the tokens before it.
        groups: dict[tuple, list[int]] = {}
        conts = []
        for i, (_, context_enc, continuation_enc) in enumerate(requests):
            assert context_enc and continuation_enc and len(continuation_enc) <= self.max_length
            window = (context_enc + continuation_enc)[-(self.max_length + 1):]
            groups.setdefault(tuple(window[: -len(continuation_enc)]), []).append(i)
            conts.append(tuple(continuation_enc))
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        cache, cached = None, ()
        with torch.no_grad(), tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0,
                                   desc="Running loglikelihood requests (shared prefixes)") as bar:
            for context in sorted(groups):  # lexicographic: a context's neighbours share its longest prefixes
                keep = min(common_prefix(cached, context), len(context) - 1)  # >= 1 token to run for the logits
                if cache is not None and keep > 0:
                    cache.crop(keep - len(cached))
                else:
                    cache, keep = None, 0
                out = self.model(torch.tensor([context[keep:]], device=self.device), past_key_values=cache,
                                 use_cache=True, logits_to_keep=1)
                cache, cached = out.past_key_values, context
                first = F.log_softmax(out.logits[0, -1].float(), dim=-1)
                for i, answer in self._score_continuations(cache, first, [conts[i] for i in groups[context]]):
                    answers[groups[context][i]] = answer
                bar.update(len(groups[context]))
        for (request_str, _, _), answer in zip(requests, answers, strict=True):
            self.cache_hook.add_partial("loglikelihood", request_str, answer)
        return answers

    def _score_continuations(self, cache, first: torch.Tensor, conts: list[tuple]):
        """(index in ``conts``, (log-probability, greedy)) for each continuation after the cached context.

        ``first`` is the distribution over a continuation's first token. The remaining tokens come from
        one row per distinct ``cont[:-1]`` (the tokens fed after the context), run in batches on copies of
        the cache; a row serves every continuation that extends it by one token."""
        greedy_first = int(first.argmax())
        rows: dict[tuple, list[int]] = {}
        for i, cont in enumerate(conts):
            if len(cont) == 1:
                yield i, (float(first[cont[0]]), greedy_first == cont[0])
            else:
                rows.setdefault(cont[:-1], []).append(i)
        ordered = sorted(rows, key=len, reverse=True)  # a batch's first row is its longest: it sets the width
        start = 0
        while start < len(ordered):
            width = len(ordered[start])
            batch = ordered[start:start + max(1, min(self._rows_per_batch(), self.max_batch_tokens // width))]
            start += len(batch)
            inputs = torch.tensor([list(r) + [0] * (width - len(r)) for r in batch], device=self.device)
            rows_cache = copy.deepcopy(cache)
            rows_cache.batch_repeat_interleave(len(batch))
            # Right padding needs no mask: a causal model's real positions never see the pad after them.
            logprobs = F.log_softmax(self.model(inputs, past_key_values=rows_cache, use_cache=True).logits.float(), -1)
            for row, lp in zip(batch, logprobs):
                for i in rows[row]:
                    cont = conts[i]
                    steps = lp[: len(row)]
                    target = torch.tensor(cont[1:], device=self.device)
                    total = float(first[cont[0]] + steps.gather(1, target[:, None]).sum())
                    greedy = greedy_first == cont[0] and bool((steps.argmax(-1) == target).all())
                    yield i, (total, greedy)

    def _rows_per_batch(self) -> int:
        return self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else 32

    def _plain_cache(self) -> bool:
        """Cropping and copying a cache is exact only for full attention (no sliding window, no state)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        try:
            cache = DynamicCache(config=self.model.config)
        except (TypeError, ValueError):
            return False
        return all(type(layer) is DynamicLayer for layer in cache.layers)
