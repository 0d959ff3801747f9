"""Cheap text statistics of an answer, of its instruction and of the answer it is compared with.

Why these: GPT-4's AlpacaEval verdicts are, to a large part, predictable from how much an answer says and
how it is laid out (length, lists, paragraphs, code), whether it says anything at all (refusals, hedges,
echoing the instruction, repeating itself, junk), and whether it covers the reference's content. All of them
are computed in plain Python in well under a millisecond per text, so a judge built on them scores
thousands of pairs per second on 2 CPU cores. ``FEATURE_VERSION`` enters every cache key: change it when a
feature changes.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

import numpy as np
from rapidfuzz import fuzz

FEATURE_VERSION = 1

WORD = re.compile(r"\w+", re.UNICODE)
LIST_ITEM = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[a-zA-Z][.)])\s+", re.M)
HEADING = re.compile(r"^\s*#{1,6}\s|^\s*\*\*[^*\n]{2,80}\*\*\s*:?\s*$", re.M)
SENTENCE_END = re.compile(r"[.!?。](?:\s|$)")
REFUSAL = re.compile(r"\b(?:i(?:'m| am) sorry|i apologi[sz]e|i can(?:not|'t|not) (?:help|assist|provide|answer|fulfil|comply|do)|"
                     r"as an ai|i(?:'m| am) (?:not able|unable)|i do not have (?:access|the ability)|i(?:'m| am) just an ai|"
                     r"against my (?:programming|guidelines)|not appropriate)\b", re.I)
HEDGE = re.compile(r"\b(?:i don'?t know|i(?:'m| am) not sure|i do not know|no idea|it depends|unclear|cannot be determined)\b", re.I)
STOP = frozenset("a an the of to in and or is are be for on with that this it as by at from what how why which who "
                 "please you your i me my can could would should do does write give make".split())

TEXT_FEATURES = [
    "chars", "log_chars", "log_words", "log_lines", "log_paragraphs", "list_items", "log_list_items", "code_blocks",
    "inline_code", "headings", "bold", "distinct1", "distinct2", "distinct3", "top_word_share", "compression",
    "alpha_frac", "nonascii_frac", "brace_frac", "digit_frac", "sentences", "words_per_sentence", "refusal", "hedge",
    "questions", "ends_cleanly", "max_line_repeat", "instr_precision", "instr_recall", "instr_fuzz", "starts_with_instr",
]
PAIR_FEATURES = ["ref_recall", "ref_precision", "ref_fuzz", "same_text"]
INSTRUCTION_FEATURES = ["instr_log_chars", "instr_question", "instr_asks_short", "instr_asks_list", "instr_asks_code",
                        "instr_asks_creative"]


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _distinct(tokens: list[str], n: int) -> float:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _content(tokens: list[str]) -> set[str]:
    return {t for t in tokens if t not in STOP}


def text_features(text: str, instruction: str) -> list[float]:
    """The ``TEXT_FEATURES`` of one answer to ``instruction``."""
    toks = words(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    n = max(len(text), 1)
    raw = text.encode("utf-8")
    sentences = max(len(SENTENCE_END.findall(text)), 1 if toks else 0)
    line_counts = Counter(lines)
    counts = Counter(toks)
    instr_toks = _content(words(instruction))
    out_content = _content(toks)
    stripped = text.strip()
    return [
        float(len(text)), np.log1p(len(text)), np.log1p(len(toks)), np.log1p(len(lines)), np.log1p(len(paragraphs)),
        float(len(LIST_ITEM.findall(text))), np.log1p(len(LIST_ITEM.findall(text))), float(text.count("```") // 2),
        float(text.count("`") - 3 * (text.count("```"))), float(len(HEADING.findall(text))), float(text.count("**") // 2),
        _distinct(toks, 1), _distinct(toks, 2), _distinct(toks, 3),
        counts.most_common(1)[0][1] / len(toks) if toks else 0.0,
        len(zlib.compress(raw)) / len(raw) if raw else 0.0,
        sum(c.isalpha() for c in text) / n, sum(ord(c) > 127 for c in text) / n,
        sum(c in "{}[]()<>\\|" for c in text) / n, sum(c.isdigit() for c in text) / n,
        float(sentences), len(toks) / sentences if sentences else 0.0,
        float(len(REFUSAL.findall(text))), float(len(HEDGE.findall(text))), float(text.count("?")),
        float(bool(stripped) and stripped[-1] in ".!?)]}\"'`*:;>|"),
        float(max(line_counts.values()) if line_counts else 0),
        len(out_content & instr_toks) / len(out_content) if out_content else 0.0,
        len(out_content & instr_toks) / len(instr_toks) if instr_toks else 0.0,
        fuzz.ratio(stripped.lower()[:2000], instruction.strip().lower()[:2000]) / 100.0,
        float(bool(stripped) and stripped.lower()[:60] == instruction.strip().lower()[:60]),
    ]


def pair_features(output: str, reference: str) -> list[float]:
    """How much of the reference's content the answer covers, and how close the two texts are."""
    o, r = _content(words(output)), _content(words(reference))
    both = len(o & r)
    return [both / len(r) if r else 0.0, both / len(o) if o else 0.0,
            fuzz.token_set_ratio(output[:3000], reference[:3000]) / 100.0, float(output.strip() == reference.strip())]


def instruction_features(instruction: str) -> list[float]:
    low = instruction.lower()
    return [np.log1p(len(instruction)), float("?" in instruction),
            float(bool(re.search(r"\b(?:one word|one sentence|short|brief|briefly|concise|in \d+ words|yes or no)\b", low))),
            float(bool(re.search(r"\b(?:list|steps|ideas|examples|tips|ways)\b", low))),
            float(bool(re.search(r"\b(?:code|function|python|javascript|sql|program|script|regex)\b", low))),
            float(bool(re.search(r"\b(?:poem|story|song|joke|essay|letter|haiku|rap|lyrics)\b", low)))]


def design(out_feats: np.ndarray, ref_feats: np.ndarray, pair: np.ndarray, instr: np.ndarray) -> np.ndarray:
    """One row per comparison: answer minus reference, both sides, their overlap and the instruction."""
    return np.hstack([out_feats - ref_feats, out_feats, ref_feats, pair, instr]).astype(np.float32)


def design_names() -> list[str]:
    return ([f"diff_{f}" for f in TEXT_FEATURES] + [f"out_{f}" for f in TEXT_FEATURES] + [f"ref_{f}" for f in TEXT_FEATURES]
            + PAIR_FEATURES + INSTRUCTION_FEATURES)
