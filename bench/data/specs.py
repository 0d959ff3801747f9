"""A file data spec, ``PATH?prompt=f&initial=f&revised=f``, checked key by key before any record is built.

A typo must not change what a file means: ``revized=b`` used to be dropped silently, which turned a file of
revision pairs into eval prompts, and ``bench train`` then said only that it "is a eval dataset". So every
query key is checked against the keys a record has, every mapped field against the file's first row, and the
kind of record the mapping gives against the kind the command needs; each failure is one sentence that says
what was found and what is missing. A missing path, a directory and an empty file get their own sentences.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from .errors import DataError
from .readers import CANONICAL, read_rows

# The keys of a record (what a query maps file fields to), and which of them make each kind of record.
QUERY_KEYS = ("prompt", "initial", "revised", "chosen", "rejected", "reference", "id")
KINDS = {"revision": ("prompt", "initial", "revised"), "preference": ("prompt", "chosen", "rejected"),
         "eval": ("prompt",)}
KIND_NAMES = {"revision": "revision pairs", "preference": "preference pairs", "eval": "eval prompts",
              "sft": "demonstrations"}
SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".gz")


def is_file_spec(spec: str) -> bool:
    """Whether a spec names a file (a path, or a query) rather than a dataset name."""
    path = spec.partition("?")[0]
    return "?" in spec or "/" in path or path.endswith(SUFFIXES) or Path(path).exists()


def kind_of(keys) -> str | None:
    """The kind of record a set of mapped keys makes: revision, preference, eval, or None (half a pair:
    ``initial`` without ``revised`` is a mistake, not eval prompts)."""
    kind = next((kind for kind in ("revision", "preference", "eval") if set(KINDS[kind]) <= set(keys)), None)
    half_a_pair = {"initial", "revised", "chosen", "rejected"} & set(keys)
    return None if kind == "eval" and half_a_pair else kind


def _first_row(path: Path) -> tuple[int | None, dict] | None:
    for line, row in read_rows(path):
        return line, row
    return None


def file_spec(spec: str) -> tuple[Path, dict[str, str], str, list[str]]:
    """The path, the field mapping, the record kind and the first row's fields of a file spec; a ``DataError``
    names what is wrong."""
    raw, _, query = spec.partition("?")
    path = Path(raw)
    if not path.exists():
        raise DataError(path, None, None, "file not found (check the path of the data spec)")
    if path.is_dir():
        raise DataError(path, None, None, "is a directory; a data spec names one file (JSONL, JSON or CSV, .gz ok)")
    pairs = parse_qsl(query, keep_blank_values=True)
    for key, value in pairs:
        if key not in QUERY_KEYS:
            raise DataError(spec, None, None, f"unknown key '{key}' in the data spec's query; valid keys are "
                                              f"{', '.join(QUERY_KEYS)}")
        if not value:
            raise DataError(spec, None, None, f"key '{key}' in the data spec's query names no field (write {key}=FIELD)")
    first = _first_row(path)
    if first is None:
        raise DataError(path, None, None, "the file is empty (no rows to read)")
    line, row = first
    fields = ", ".join(sorted(row)) or "none"
    mapping = dict(pairs) or next((dict(m) for names, m in CANONICAL if names <= row.keys()), {})
    if not mapping:
        raise DataError(path, line, None, f"the fields found ({fields}) are none of the known layouts; map them in "
                                          "the spec, e.g. FILE?prompt=FIELD&initial=FIELD&revised=FIELD "
                                          "(or chosen=&rejected=, or prompt= alone for eval prompts)")
    for key, name in mapping.items():
        if key != "id" and name.split(".")[0] not in row:
            raise DataError(path, line, name, f"not in the file (mapped by '{key}={name}'; fields found: {fields})")
    kind = kind_of(mapping)
    if kind is None:
        raise DataError(spec, None, None, f"maps {', '.join(mapping)}: a record needs prompt plus initial and revised "
                                          "(revision pairs), chosen and rejected (preference pairs), or nothing more "
                                          "(eval prompts)")
    return path, mapping, kind, sorted(row)


def check_kind(spec: str, got: str, needed: str | None, mapped=None, fields=()) -> None:
    """Refuse records of the wrong kind, saying what the spec gives and what is missing for ``needed``."""
    if needed is None or got == needed or (needed == "preference" and got == "revision"):
        return
    what = f"holds {KIND_NAMES.get(got, got)}"
    missing = ""
    if mapped is not None:  # a file: its fields, and which of the needed keys its mapping lacks
        what = (f"has fields {', '.join(fields)}, read as {', '.join(k for k in mapped if k != 'id')} "
                f"({KIND_NAMES.get(got, got)})")
        lacking = [k for k in KINDS.get(needed, ()) if k not in mapped]
        if lacking:
            missing = f"; missing: {', '.join(lacking)} (add {'&'.join(f'{k}=FIELD' for k in lacking)} to the spec)"
    raise DataError(spec, None, None, f"{what}, but {KIND_NAMES.get(needed, needed)} are needed here{missing}")
