"""Typed errors that a person can act on.

Every error raised for bad input names the file, the column, the first bad row and the fix, so that the CLI
can print it as one line and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path


class CoeaInputError(ValueError):
    """Bad input data or options. ``str(err)`` is one line naming what is wrong and how to fix it."""

    def __init__(
        self,
        problem: str,
        *,
        source: str | Path | None = None,
        column: str | None = None,
        option: str | None = None,
        row: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = str(source) if source is not None else None
        self.column = column
        self.option = option
        self.row = row
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.option:
            where.append(f"option {self.option}")
        if self.column:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        text = (", ".join(where) + ": " if where else "") + self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return " ".join(text.split())
