"""Named datasets (the data kit in ../shared/data, or the Hub when online) and generic files.

A data spec is one string, so it fits on a command line and in a recipe YAML:

- ``expertqa``, ``qa_feedback``, ``summedits``, ``jfleg``, ``hh_rlhf``, ``alpaca_eval``, ... (see ``DATASETS``)
- ``spa`` (FIGA's SPA set from the Hub, ``RUCAIBox/SPA``) or ``spa:/path/to/SPA.json``
- ``NAME:/path/to/file`` reads a named set's format from another file
- ``/path/to/file.jsonl?prompt=question&initial=answer&revised=fixed`` maps fields of any JSONL/JSON/CSV;
  the mapped keys decide the record type (initial+revised, chosen+rejected, or prompt[+reference]).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, Skips
from .readers import Row, data_dir, read_rows, text_field
from .records import EvalPrompt, PreferencePair, RevisionTriple, user

log = logging.getLogger("bench.data")

Builder = Callable[[Iterable[Row], str, Skips], list]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "revision" | "preference" | "eval"
    file: str | None  # relative to the data kit
    build: Builder
    hub: tuple[str, dict] | None = None  # (dataset id, load_dataset kwargs) when the kit file is absent
    description: str = ""


def _checked_triple(prompt, initial, revised, source_id, path, line, skips, reference=None):
    if initial.strip() == revised.strip():
        skips.handle(DataError(path, line, "revised", "identical to the initial response (no edit to learn from)"))
        return None
    return RevisionTriple(prompt, initial, revised, source_id, f"{path}:{line}", reference)


def _unchanged_filter(items: list, dropped: int, name: str) -> list:
    if dropped:
        log.info("%s: %d pairs without any edit were left out", name, dropped)
    return items


def build_expertqa(rows, path, skips):
    """(system answer -> expert revision); the 12 answers the experts left unchanged are left out."""
    out, unchanged = [], 0
    for line, row in rows:
        question = text_field(row, "question", path, line)
        for system, ans in sorted((row.get("answers") or {}).items()):
            initial, revised = ans.get("answer_string") or "", ans.get("revised_answer_string") or ""
            if not initial.strip() or not revised.strip() or initial.strip() == revised.strip():
                unchanged += 1
                continue
            out.append(RevisionTriple(user(question), initial, revised, f"expertqa:{line}:{system}", f"{path}:{line}"))
    return _unchanged_filter(out, unchanged, "expertqa")


def _qa_prompt(row) -> str:
    passages = "\n".join(f"{p[0]}: {' '.join(p[1:])}" for p in row.get("passages") or [])
    return f"Answer the question using the passages.\n\nQuestion: {row['question']}\n\nPassages:\n{passages}"


def build_qa_feedback(rows, path, skips):
    """QA-Feedback: ``prediction 1`` -> its human-corrected version (481 of 500 differ)."""
    out, unchanged = [], 0
    for line, row in rows:
        text_field(row, "question", path, line)
        initial = text_field(row, "prediction 1", path, line)
        revised = (row.get("feedback") or {}).get("corrected-prediction") or ""
        if not revised.strip() or initial.strip() == revised.strip():
            unchanged += 1
            continue
        out.append(RevisionTriple(user(_qa_prompt(row)), initial, revised, f"qa_feedback:{line}", f"{path}:{line}"))
    return _unchanged_filter(out, unchanged, "qa_feedback")


def build_summedits(rows, path, skips):
    """Factually inconsistent summaries (label 0) -> the consistent seed summary they were edited from."""
    out = []
    for line, row in rows:
        if row.get("label") != 0:
            continue
        doc = text_field(row, "doc", path, line)
        initial, revised = text_field(row, "summary", path, line), text_field(row, "original_summary", path, line)
        if initial.strip() != revised.strip():
            prompt = user(f"Summarize the following document.\n\n{doc}")
            out.append(RevisionTriple(prompt, initial, revised, f"summedits:{row.get('id', line)}", f"{path}:{line}"))
    return out


def build_jfleg(rows, path, skips):
    """A learner sentence -> its first human fluency correction that differs from it."""
    out = []
    for line, row in rows:
        source = text_field(row, "source", path, line).strip()
        refs = [r.strip() for r in row.get("references") or row.get("corrections") or [] if r and r.strip()]
        revised = next((r for r in refs if r != source), None)
        if revised is None:
            continue
        prompt = user(f"Correct the grammar of this sentence:\n{source}")
        out.append(RevisionTriple(prompt, source, revised, f"jfleg:{row.get('split', '')}:{row.get('id', line)}", f"{path}:{line}"))
    return out


def build_spa(rows, path, skips):
    """FIGA's SPA schema: instruction, input, output, original_output, revised_output."""
    out = []
    for line, row in rows:
        try:
            instruction = text_field(row, "instruction", path, line)
            extra = row.get("input") or ""
            prompt = user(f"{instruction}\n\n{extra}" if extra.strip() else instruction)
            t = _checked_triple(
                prompt, text_field(row, "original_output", path, line), text_field(row, "revised_output", path, line),
                f"spa:{line}", path, line, skips, reference=row.get("output") or None,
            )
        except DataError as e:
            skips.handle(e)
            continue
        if t:
            out.append(t)
    return out


def split_dialogue(text: str, path, line, field) -> tuple[list[dict], str]:
    """Split an HH-RLHF transcript into prompt messages and the final assistant reply."""
    messages = []
    for chunk in text.split("\n\nHuman: ")[1:]:
        human, *assistant = chunk.split("\n\nAssistant: ")
        messages.append({"role": "user", "content": human.strip()})
        messages.extend({"role": "assistant", "content": a.strip()} for a in assistant)
    if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["content"]:
        raise DataError(path, line, field, "expected a dialogue ending in a non-empty 'Assistant:' turn")
    return messages[:-1], messages[-1]["content"]


def build_hh_rlhf(rows, path, skips):
    out = []
    for line, row in rows:
        try:
            prompt, chosen = split_dialogue(text_field(row, "chosen", path, line), path, line, "chosen")
            prompt_r, rejected = split_dialogue(text_field(row, "rejected", path, line), path, line, "rejected")
            if prompt != prompt_r:
                raise DataError(path, line, "rejected", "does not share the dialogue prefix of 'chosen'")
            if chosen == rejected:
                raise DataError(path, line, "rejected", "identical to 'chosen'")
        except DataError as e:
            skips.handle(e)
            continue
        out.append(PreferencePair(prompt, chosen, rejected, f"hh_rlhf:{line}", f"{path}:{line}"))
    return out


def _eval_builder(id_field: str, text: Callable[[dict, str, int], str], reference: Callable[[dict], str | None], name: str) -> Builder:
    def build(rows, path, skips):
        return [
            EvalPrompt(str(row.get(id_field, line)), user(text(row, path, line)), reference(row), row.get("dataset", name),
                       {k: v for k, v in row.items() if k in ("category", "Skill", "Difficulty", "dataset")}, f"{path}:{line}")
            for line, row in rows
        ]

    return build


def _alpaca_text(row, path, line):
    instruction = text_field(row, "instruction", path, line)
    extra = row.get("input") or ""
    return f"{instruction}\n\n{extra}" if extra.strip() else instruction


@functools.cache
def _ae1_references(path: Path) -> dict:
    """{id: text} and {instruction: text} of the kit's ``text_davinci_003_ae1`` column (judge/references.jsonl.gz)."""
    if not path.exists():
        raise DataError(path, None, None, "AlpacaEval 1's reference texts are missing (the data kit's judge/ folder); "
                        "use the eval set alpaca_eval-davinci003-regen for the re-generated davinci-003 column")
    rows = [row for _, row in read_rows(path)]
    return {**{row["instruction_id"]: row["text_davinci_003_ae1"] for row in rows},
            **{row["instruction"]: row["text_davinci_003_ae1"] for row in rows}}


def _ae1_reference(row) -> str | None:
    """AlpacaEval 1's reference: joined on ``id`` = ``instruction_id`` (on the instruction text for Hub rows)."""
    refs = _ae1_references(data_dir() / "judge/references.jsonl.gz")
    return refs.get(row.get("id"), refs.get(row.get("instruction")))


def _first_turn(row, path, line):
    turns = row.get("turns")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], str) or not turns[0].strip():
        raise DataError(path, line, "turns", "expected a non-empty list of strings")
    return turns[0]


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("expertqa", "revision", "revision_pairs/expertqa_revised_answers.jsonl.gz", build_expertqa,
                    description="ExpertQA system answers and their expert revisions (467 pairs)"),
        DatasetInfo("qa_feedback", "revision", "revision_pairs/qa_feedback_dev.jsonl.gz", build_qa_feedback,
                    description="QA-Feedback dev: T5 answers and human corrections (481 pairs)"),
        DatasetInfo("summedits", "revision", "revision_pairs/summedits.jsonl.gz", build_summedits,
                    description="SummEdits: inconsistent summary -> consistent seed summary"),
        DatasetInfo("jfleg", "revision", "revision_pairs/jfleg.jsonl", build_jfleg, ("jhu-clsp/jfleg", {"split": "validation"}),
                    "JFLEG: learner sentence -> fluency correction (short texts)"),
        DatasetInfo("spa", "revision", None, build_spa, ("RUCAIBox/SPA", {"split": "train"}),
                    "FIGA's SPA set (Hub only; or spa:/path/to/SPA.json)"),
        DatasetInfo("hh_rlhf", "preference", "preference/hh_rlhf_harmless_base_test.jsonl.gz", build_hh_rlhf,
                    ("Anthropic/hh-rlhf", {"data_dir": "harmless-base", "split": "test"}),
                    "Anthropic HH-RLHF harmless-base test pairs (2,312)"),
        DatasetInfo("alpaca_eval", "eval", "eval/alpaca_eval_805.jsonl",
                    _eval_builder("id", _alpaca_text, _ae1_reference, "alpaca_eval"),
                    ("tatsu-lab/alpaca_eval", {"name": "alpaca_eval", "split": "eval"}),
                    "AlpacaEval 805 instructions, reference = the text-davinci-003 answers GPT-4 judged in AlpacaEval 1"),
        DatasetInfo("alpaca_eval-davinci003-regen", "eval", "eval/alpaca_eval_805.jsonl",
                    _eval_builder("id", _alpaca_text, lambda r: r.get("output_text_davinci_003") or r.get("output"), "alpaca_eval"),
                    ("tatsu-lab/alpaca_eval", {"name": "alpaca_eval", "split": "eval"}),
                    "AlpacaEval 805 instructions, the later re-generated text-davinci-003 reference (not AlpacaEval 1's)"),
        DatasetInfo("alpaca_eval-gpt4turbo", "eval", "eval/alpaca_eval_805.jsonl",
                    _eval_builder("id", _alpaca_text, lambda r: r.get("output_gpt4_1106_preview"), "alpaca_eval"),
                    description="AlpacaEval 805 instructions, GPT-4-turbo reference (AlpacaEval 2)"),
        DatasetInfo("alpaca_eval_gpt4", "eval", "eval/alpaca_eval_805.jsonl",
                    _eval_builder("id", _alpaca_text, lambda r: r.get("output_gpt4_1106_preview"), "alpaca_eval"),
                    description="old name of alpaca_eval-gpt4turbo"),
        DatasetInfo("alpacafarm", "eval", "eval/alpacafarm_eval_805_gpt35turbo0301.jsonl",
                    _eval_builder("id", _alpaca_text, lambda r: r.get("output"), "alpacafarm"),
                    description="AlpacaFarm eval prompts, gpt-3.5-turbo reference"),
        DatasetInfo("alpaca_libre", "sft", "sft/alpaca_libre_ok.jsonl",
                    _eval_builder("id", _alpaca_text, lambda r: r.get("output"), "alpaca_libre"),
                    description="Alpaca-Libre instruction/output demonstrations (3,142; CC0)"),
        DatasetInfo("alpaca_en_demo", "sft", "sft/llamafactory_alpaca_en_demo.jsonl",
                    _eval_builder("id", _alpaca_text, lambda r: r.get("output"), "alpaca_en_demo"),
                    description="LLaMA-Factory alpaca_en_demo demonstrations (999)"),
        DatasetInfo("vicuna", "eval", "eval/vicuna_bench_question.jsonl",
                    _eval_builder("question_id", _first_turn, lambda r: None, "vicuna"),
                    description="Vicuna-80 questions (first turn)"),
        DatasetInfo("mt_bench", "eval", "eval/mt_bench_question.jsonl",
                    _eval_builder("question_id", _first_turn, lambda r: None, "mt_bench"),
                    description="MT-bench 80 questions (first turn)"),
        DatasetInfo("wizardlm", "eval", "eval/wizardlm_testset.jsonl",
                    _eval_builder("idx", lambda r, p, n: text_field(r, "Instruction", p, n), lambda r: None, "wizardlm"),
                    description="WizardLM test set (218 instructions)"),
    ]
}

def _generic_builder(mapping: dict[str, str], kind: str) -> Builder:
    def build(rows, path, skips):
        out = []
        for line, row in rows:
            try:
                get = {k: text_field(row, v, path, line) for k, v in mapping.items() if k != "id"}
                sid = f"{Path(str(path)).stem}:{row.get(mapping.get('id', 'id'), line)}"
                if kind == "revision":
                    t = _checked_triple(user(get["prompt"]), get["initial"], get["revised"], sid, path, line, skips,
                                        get.get("reference"))
                    if t:
                        out.append(t)
                elif kind == "preference":
                    if get["chosen"].strip() == get["rejected"].strip():
                        raise DataError(path, line, mapping["rejected"], "identical to the chosen response")
                    out.append(PreferencePair(user(get["prompt"]), get["chosen"], get["rejected"], sid, f"{path}:{line}"))
                else:
                    out.append(EvalPrompt(sid, user(get["prompt"]), get.get("reference"), Path(str(path)).stem, origin=f"{path}:{line}"))
            except DataError as e:
                skips.handle(e)
        return out

    return build


def _hub_rows(hub_id: str, kwargs: dict) -> Iterator[Row]:
    import datasets

    ds = datasets.load_dataset(hub_id, **kwargs)
    for i, row in enumerate(ds):
        yield i + 1, dict(row)


def load(spec: str, kind: str | None = None, skip_invalid: bool = False, limit: int | None = None) -> list:
    """Load records for a data spec (see the module docstring); ``kind`` checks the record type."""
    from .specs import check_kind, file_spec, is_file_spec

    skips = Skips(skip_invalid)
    name, _, rest = spec.partition(":") if not Path(spec.split("?")[0]).exists() else ("", "", spec)
    mapped = None
    if name in DATASETS and (rest or DATASETS[name].file or DATASETS[name].hub):
        info = DATASETS[name]
        check_kind(spec, info.kind, kind)
        local = Path(rest) if rest else (data_dir() / info.file if info.file else None)
        # The kit's own files and the Hub copies are known to hold a few malformed rows (e.g. HH-RLHF
        # dialogues with an empty last turn): those are counted and logged. A user's file stays strict.
        skips = Skips(skip_invalid or not rest)
        if local is not None and (rest or local.exists()):
            records = info.build(read_rows(local), str(local), skips)
        elif info.hub:
            records = info.build(_hub_rows(*info.hub), f"hub:{info.hub[0]}", skips)
        else:
            raise DataError(local, None, None, f"dataset '{name}' not found (set BENCH_DATA to the data kit)")
        got = info.kind
    elif is_file_spec(spec):
        path, mapped, got, fields = file_spec(spec)  # every query key, mapped field and the kind, before any row is built
        check_kind(spec, got, kind, mapped, fields)
        records = _generic_builder(mapped, got)(read_rows(path), str(path), skips)
    else:
        raise DataError(spec, None, None, f"unknown data spec '{spec}': use one of {', '.join(DATASETS)}, NAME:PATH, "
                                          "or PATH?prompt=..&initial=..&revised=..")
    skips.report(spec)
    if kind == "preference" and got == "revision":
        from .records import as_preference

        records = [as_preference(t) for t in records]
    if not records:
        raise DataError(spec, None, None, "no usable records")
    return records[:limit] if limit else records
