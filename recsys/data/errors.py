"""The one exception type for bad input data, so callers can report it to users as-is."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Input data that cannot be loaded; the message names the file, the place and the fix."""

    def __init__(
        self,
        path: Path | str,
        problem: str,
        *,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        where = [str(path)]
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")
        self.path = str(path)
        self.line = line
        self.row = row
        self.column = column
