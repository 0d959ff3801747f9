"""One error type for bad input, always naming where the problem is."""

from __future__ import annotations

import logging

log = logging.getLogger("bench.data")


class DataError(ValueError):
    """Bad input: names the file, the line (1-based) and the field."""

    def __init__(self, path, line: int | None, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path + (f", line {line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{problem}")


class Skips:
    """Counts input rows skipped under ``--skip-invalid`` so the total is reported, never hidden."""

    def __init__(self, skip_invalid: bool):
        self.skip_invalid = skip_invalid
        self.errors: list[DataError] = []

    def handle(self, error: DataError) -> None:
        if not self.skip_invalid:
            raise error
        self.errors.append(error)
        log.debug("skipped: %s", error)

    def report(self, what: str) -> None:
        if self.errors:
            log.warning("%s: skipped %d invalid rows (first: %s)", what, len(self.errors), self.errors[0])
