"""Typed records every recipe and evaluator consumes, whatever file they came from.

``prompt`` is always a list of chat messages (``{"role", "content"}``) so that one renderer, the model's
own chat template, turns it into text everywhere (training and evaluation alike).
``origin`` is ``file:line`` so later errors (e.g. a text too long for the model) can point at the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Messages = list[dict[str, str]]


def user(text: str) -> Messages:
    return [{"role": "user", "content": text}]


@dataclass
class RevisionTriple:
    """An initial (subpar) response and its minimally revised, better version."""

    prompt: Messages
    initial: str
    revised: str
    source_id: str
    origin: str = ""
    reference: str | None = None  # a reference answer, when the set has one (SPA's ``output``)


@dataclass
class PreferencePair:
    prompt: Messages
    chosen: str
    rejected: str
    source_id: str
    origin: str = ""


@dataclass
class EvalPrompt:
    """A prompt with an optional reference answer: evaluation sets, and SFT demonstrations."""

    id: str
    prompt: Messages
    reference: str | None = None
    dataset: str = ""
    meta: dict = field(default_factory=dict)
    origin: str = ""

    @property
    def source_id(self) -> str:
        return f"{self.dataset}:{self.id}"


def as_preference(t: RevisionTriple) -> PreferencePair:
    """A revision pair is a preference pair: the revision is preferred to the initial response."""
    return PreferencePair(t.prompt, t.revised, t.initial, t.source_id, t.origin)
