"""The one prompt renderer: the model's own chat template, used for training and evaluation alike.

Training on one rendering and evaluating on another silently costs points, so every module that turns
messages into tokens goes through here.
"""

from __future__ import annotations

import hashlib

from .data.records import Messages


def render_prompt(tokenizer, messages: Messages) -> str:
    """The prompt text up to and including the assistant header the model answers after."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # Base models without a template: a plain transcript.
    turns = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages)
    return turns + "Assistant:"


def template_hash(tokenizer) -> str:
    """Recorded with every result, so a changed template is visible (as lm-eval does)."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()[:16]


def prompt_ids(tokenizer, messages: Messages) -> list[int]:
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def response_ids(tokenizer, response: str) -> list[int]:
    """Response tokens followed by the end-of-turn token, which the model must learn to emit."""
    return tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def sequence(tokenizer, messages: Messages, response: str) -> tuple[list[int], int]:
    """Token ids of prompt + response (+ end-of-turn) and the index where the response starts."""
    p = prompt_ids(tokenizer, messages)
    return p + response_ids(tokenizer, response), len(p)
