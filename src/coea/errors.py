"""Typed errors that a person can act on.

Every error raised for bad input names the file, the column, the first bad row and the fix, so that the CLI
can print it as one line and exit with code 2. In a text file (CSV, MovieLens ``.dat``) the place is the
``line`` a person sees in an editor; in a table without lines (Parquet, a DataFrame) it is the 1-based ``row``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = str(source) if source is not None else None
        self.column = column
        self.option = option
        self.row = row
        self.line = line
        self.fix = fix
        super().__init__(self._render())

    def at_line(self, line: int) -> CoeaInputError:
        """This error placed at ``line`` of its file (the data row is kept in ``row``)."""
        return self.replace(line=line)

    def replace(self, **changes: Any) -> CoeaInputError:
        """A copy of this error (same class) with some of ``problem``, ``source``, ``column``, ``option``,
        ``row``, ``line`` and ``fix`` changed, e.g. a temporary copy's path replaced by the file it came from."""
        fields = {"source": self.source, "column": self.column, "option": self.option, "row": self.row,
                  "line": self.line, "fix": self.fix, **changes}
        return type(self)(fields.pop("problem", self.problem), **fields)

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.option:
            where.append(f"option {self.option}")
        if self.column:
            where.append(f"column '{self.column}'")
        if self.line is not None:
            where.append(f"line {self.line}")
        elif self.row is not None:
            where.append(f"row {self.row}")
        text = (", ".join(where) + ": " if where else "") + self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return " ".join(text.split())
