"""Step 3, revise: a stronger model minimally revises each subpar answer, over any OpenAI-compatible endpoint
(a hosted model, vLLM on a GPU box, or ``bench serve`` of a local checkpoint).

The prompt is a versioned template file (``templates/<name>-vN.txt``; a changed text is a new version, and its
hash is recorded with every revision). Requests run with bounded concurrency; network errors and garbage
answers (not JSON, no choices) are retried with exponential back-off, then stop the build with one sentence
naming the endpoint and the item. Every answer is cached by content (endpoint model, template, item, sampling)
the moment it arrives, so after a crash or a kill nothing already revised is asked again. A request the endpoint
rejects as invalid (HTTP 400, e.g. longer than its context) is recorded for that item and counted by the filter.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..cache import Cache, content_key
from ..data import DataError
from ..endpoint import EndpointError, with_backoff

log = logging.getLogger("bench.spa")
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = {"spa": "revise-v1.txt", "edit": "edit-rejected-v1.txt"}


def read_template(name: str) -> tuple[str, str]:
    """(text, identity) of a template: a file in ``templates/`` or a path; identity = name + content hash."""
    path = Path(name) if Path(name).is_file() else TEMPLATES / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in TEMPLATES.glob("*.txt")))
        raise DataError(name, None, "template", f"no such template (shipped: {known}; or give a file path)")
    text = path.read_text(encoding="utf-8")
    missing = [f for f in ("{instruction}", "{response}") if f not in text]
    if missing:
        raise DataError(path, None, "template", f"lacks the placeholder(s) {', '.join(missing)}")
    return text, f"{path.name}@{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def instruction_of(prompt: list[dict]) -> str:
    """A single user turn verbatim; a dialogue as a transcript (the reviser must see the whole context)."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def fill(template: str, prompt: list[dict], response: str, reference: str | None) -> str:
    """Plain replacement (templates and texts may contain braces)."""
    return (template.replace("{instruction}", instruction_of(prompt)).replace("{reference}", reference or "(none)")
            .replace("{response}", response))


class Reviser:
    """Revisions by one reviser model; ``revise`` returns {"text", "finish_reason"} or {"rejected": why} per item.

    The cache key holds the reviser's model name, the template's identity and the sampling, not the endpoint's
    address: ``bench serve`` listens on a new port each time, and a resumed build must still find its answers."""

    def __init__(self, model: str | None, template: str, cache_root: Path, max_tokens: int = 512,
                 concurrency: int = 4, retries: int = 4, backoff: float = 1.0):
        self.model, self.max_tokens, self.concurrency = model, max_tokens, concurrency
        self.retries, self.backoff = retries, backoff
        self.template, self.template_id = read_template(template)
        self.cache = Cache("revisions", root=cache_root)
        self.base_url, self.client = None, None
        self.requests = 0  # sent to the endpoint by this object (the tests count them)
        self._abort = threading.Event()  # set when the build stops: in-flight items stop retrying

    def connect(self, base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 300.0) -> "Reviser":
        """Use this endpoint; without a model name, the first model it lists (the one ``bench serve`` serves)."""
        from openai import OpenAI

        key = os.environ.get(api_key_env) or "EMPTY"  # a local server started without --api-key accepts any key
        self.base_url = base_url
        self.client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout)
        self.model = self.model or self._first_model()
        return self

    def identity(self) -> dict:
        return {"model": self.model, "template": self.template_id, "max_tokens": self.max_tokens, "temperature": 0.0}

    def _call(self, fn, item: str):
        import openai

        return with_backoff(fn, role="reviser", base_url=self.base_url, retries=self.retries, delay=self.backoff,
                            garbage=(openai.APIResponseValidationError, ValueError, AttributeError, TypeError, IndexError),
                            abort=self._abort, where=f", at item {item}",
                            hint="; without --base-url the build serves --reviser-model itself")

    def _first_model(self) -> str:
        models = self._call(lambda: self.client.models.list().data, "(listing models)")
        if not models:
            raise EndpointError(f"reviser endpoint {self.base_url} serves no models; name one with --reviser-model")
        return models[0].id

    def _ask(self, text: str) -> dict:
        import openai

        self.requests += 1
        try:
            resp = self.client.chat.completions.create(model=self.model, messages=[{"role": "user", "content": text}],
                                                       max_tokens=self.max_tokens, temperature=0.0, seed=0)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
            return {"rejected": f"HTTP {e.status_code}: {str(e)[:200]}"}  # this item is invalid, not the endpoint
        choice = resp.choices[0]  # a str (non-JSON body) or an empty list raise: garbage, retried
        content = choice.message.content
        if not isinstance(content, str):
            raise TypeError("the choice has no message text")
        return {"text": content.strip(), "finish_reason": choice.finish_reason}

    def keys(self, items: list[dict]) -> list[str]:
        return [content_key("spa-revision", self.identity(), fill(self.template, i["prompt"], i["response"],
                                                                   i.get("reference"))) for i in items]

    def missing(self, items: list[dict]) -> int:
        """How many items have no cached revision (none: no endpoint is needed at all)."""
        keys = self.keys(items)
        return len(keys) - len(self.cache.get_many(keys))

    def revise(self, items: list[dict], stop: threading.Event | None = None) -> list[dict | None]:
        """One result per item ({"prompt", "response", "reference", "id"} each); cached ones are not asked again.
        When ``stop`` is set (the signal hook), no new request is sent and unfinished items are None."""
        keys = self.keys(items)
        done = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in done]
        log.info("[revise] %d of %d already revised (cached); asking %s (%s) for %d", len(items) - len(todo),
                 len(items), self.base_url, self.model, len(todo))
        abort = threading.Event()

        def one(i: int) -> None:
            if abort.is_set() or (stop is not None and stop.is_set()):
                return
            item = items[i]
            text = fill(self.template, item["prompt"], item["response"], item.get("reference"))
            try:
                answer = self._call(lambda: self._ask(text), str(item.get("id", i)))
            except EndpointError:
                abort.set()  # the other workers stop sending
                raise
            self.cache.put(keys[i], answer)  # at once: a kill loses at most the requests in flight
            done[keys[i]] = answer

        self._abort = abort
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            for f in [pool.submit(one, i) for i in todo]:
                f.result()  # the main thread waits here, where Ctrl-C reaches it
        except BaseException:
            abort.set()  # an endpoint error or an interrupt: queued items are dropped, nobody retries
            raise
        finally:
            pool.shutdown(wait=not abort.is_set(), cancel_futures=True)
        return [done.get(k) for k in keys]
