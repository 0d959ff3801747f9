"""Dataset hooks for the FIGA task YAMLs: read the offline data kit at run time, shaped like the Hub sets.

Each YAML names its files relative to the data kit (``dataset_kwargs.data_files``); lm-eval calls the
hook named in ``custom_dataset`` with those and the task's ``metadata``. Resolving the path here, not in
the YAML, lets one task directory serve any checkout or machine (``BENCH_DATA`` moves the kit). The rows
get the field names of the Hub datasets lm-eval's own tasks read (``cais/mmlu``, ``truthful_qa``,
``crows_pairs_multilingual``, ``winogender``), so the prompts and metrics are lm-eval's, unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from bench.data import DataError
from bench.data.readers import data_dir, read_rows


def _rows(data_files: dict[str, str], config_source: str | None) -> dict[str, list[dict]]:
    """Every split's rows, or one DataError naming the task file and the missing data file."""
    out = {}
    for split, rel in data_files.items():
        path = Path(rel) if Path(rel).is_absolute() else data_dir() / rel
        if not path.is_file():
            raise DataError(path, None, None, f"data file of task {Path(config_source or '?').name} not found "
                            f"(data kit: {data_dir()}; set BENCH_DATA to the kit's directory)")
        out[split] = [row for _, row in read_rows(path)]
    return out


def _dataset(splits: dict[str, list[dict]]) -> datasets.DatasetDict:
    return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})


def mmlu(data_files: dict[str, str], subject: str, config_source: str | None = None, **_) -> datasets.DatasetDict:
    """One subject's test and dev rows (``subject``, ``question``, ``choices``, ``answer`` as in cais/mmlu)."""
    splits = _rows(data_files, config_source)
    keep = ("subject", "question", "choices", "answer")
    return _dataset({k: [{f: r[f] for f in keep} for r in v if r["subject"] == subject] for k, v in splits.items()})


def truthfulqa(data_files: dict[str, str], config_source: str | None = None, **_) -> datasets.DatasetDict:
    """mc_task.json keeps answers as ``{text: label}``; the Hub set (and lm-eval) uses choices + labels lists."""

    def targets(d: dict) -> dict:
        return {"choices": list(d), "labels": [int(v) for v in d.values()]}

    return _dataset({k: [{"question": r["question"], "mc1_targets": targets(r["mc1_targets"]),
                          "mc2_targets": targets(r["mc2_targets"])} for r in v]
                     for k, v in _rows(data_files, config_source).items()})


def crows_pairs(data_files: dict[str, str], config_source: str | None = None, **_) -> datasets.DatasetDict:
    keep = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
    return _dataset({k: [{f: r[f] for f in keep} for r in v] for k, v in _rows(data_files, config_source).items()})


PRONOUNS = {"male": ("he", "his", "him"), "female": ("she", "her"), "neutral": ("they", "their", "them")}


def winogender_row(sentid: str, sentence: str) -> dict:
    """``occupation.participant.answer.gender.txt`` -> the fields of lm-eval's winogender (label 0 = occupation)."""
    occupation, participant, answer, gender, _ = sentid.split(".")
    words = re.findall(r"[A-Za-z]+", sentence)
    pronoun = next(w.lower() for w in words if w.lower() in PRONOUNS[gender])
    return {"sentid": sentid, "sentence": sentence, "pronoun": pronoun, "occupation": occupation,
            "participant": participant, "gender": gender, "label": int(answer)}


def winogender(data_files: dict[str, str], gender: str | None = None, config_source: str | None = None,
               **_) -> datasets.DatasetDict:
    """All 720 sentences, or those whose pronoun has one gender (male / female / neutral)."""
    splits = {k: [winogender_row(r["sentid"], r["sentence"]) for r in v]
              for k, v in _rows(data_files, config_source).items()}
    return _dataset({k: [r for r in v if gender in (None, r["gender"])] for k, v in splits.items()})
