"""Read rows from JSONL / JSON / CSV files, turning every failure into a ``DataError`` with a location."""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import DataError

Row = tuple[int | None, dict]  # (1-based line number, the row)


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_rows(path: str | Path) -> Iterator[Row]:
    """Yield ``(line, row)``; ``line`` is None for a JSON list file (rows are then numbered by index)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "file not found" if not path.exists() else "not a regular file")
    name = path.name.removesuffix(".gz")
    try:
        with _open(path) as f:
            if name.endswith(".jsonl"):
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(path, n, None, f"invalid JSON ({e.msg} at column {e.colno})") from None
                    if not isinstance(row, dict):
                        raise DataError(path, n, None, f"expected a JSON object, got {type(row).__name__}")
                    yield n, row
            elif name.endswith(".json"):
                try:
                    data = json.load(f)
                except json.JSONDecodeError as e:
                    raise DataError(path, e.lineno, None, f"invalid JSON ({e.msg})") from None
                if not isinstance(data, list):
                    raise DataError(path, None, None, "expected a JSON list of objects")
                for i, row in enumerate(data):
                    if not isinstance(row, dict):
                        raise DataError(path, None, f"[{i}]", "expected a JSON object")
                    yield i + 1, row
            elif name.endswith((".csv", ".tsv")):
                reader = csv.DictReader(f, delimiter="\t" if name.endswith(".tsv") else ",")
                for row in reader:
                    yield reader.line_num, row
            else:
                raise DataError(path, None, None, "unknown format (expected .jsonl, .json, .csv, .tsv, optionally .gz)")
    except UnicodeDecodeError as e:
        line = _undecodable_line(path)
        raise DataError(path, line, None, f"not UTF-8 text ({e.reason} at byte 0x{e.object[e.start]:02x}); "
                                          "save the file as UTF-8") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(path, None, None, f"cannot read file: {e.strerror or e}") from None


def _undecodable_line(path: Path) -> int | None:
    """The 1-based number of the first line that is not valid UTF-8 (text files decode in blocks, so the
    decoder's own position does not say which line it was)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return n
    return None


# Field names a plain file may already use, so it needs no ``?prompt=..`` mapping; first match wins.
CANONICAL = [
    ({"prompt", "initial", "revised"}, {"prompt": "prompt", "initial": "initial", "revised": "revised"}),
    ({"prompt", "chosen", "rejected"}, {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}),
    ({"instruction", "output"}, {"prompt": "instruction", "reference": "output"}),
    ({"prompt", "reference"}, {"prompt": "prompt", "reference": "reference"}),
    ({"prompt"}, {"prompt": "prompt"}),
]


def text_field(row: dict, name: str, path, line: int | None) -> str:
    """A required, non-empty string field (dotted names reach into nested objects)."""
    value = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(path, line, name, "missing")
        value = value[part]
    if not isinstance(value, str):
        raise DataError(path, line, name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(path, line, name, "empty")
    return value


def data_dir() -> Path:
    """The data kit: ``BENCH_DATA`` if set, else ``../shared/data`` beside the checkout or the cwd."""
    if env := os.environ.get("BENCH_DATA"):
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    for candidate in (here.parent / "shared" / "data", Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return here.parent / "shared" / "data"
