"""Typed errors that a person can act on.

Every error raised for bad input names the file, the column, the first bad row and the fix, so that the CLI
can print it as one line and exit with code 2. In a text file (CSV, MovieLens ``.dat``) the place is the
``line`` a person sees in an editor; in a table without lines (Parquet, a DataFrame) it is the 1-based ``row``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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


@functools.cache
def _corrupt_errors() -> tuple[type[BaseException], ...]:
    """What reading a truncated or corrupt artifact raises: OS and parse errors, torch's zip reader
    (RuntimeError), pickle, and safetensors' own error class when it is installed."""
    import pickle

    errors: list[type[BaseException]] = [OSError, ValueError, RuntimeError, KeyError, EOFError, pickle.PickleError,
                                         TypeError, AttributeError, IndexError]  # valid JSON of the wrong shape
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors comes with transformers
        pass
    else:
        errors.append(SafetensorError)
    return tuple(errors)


@contextmanager
def reading(path: Path | str, fix: str) -> Iterator[None]:
    """Failures while reading the artifact at ``path`` (a run's model, encoder, parquet or JSON state: truncated,
    corrupt, or a file missing inside it) become one :class:`CoeaInputError` naming it, its error type and
    ``fix``, instead of a traceback. A :class:`CoeaInputError` raised inside passes unchanged."""
    try:
        yield
    except CoeaInputError:
        raise
    except _corrupt_errors() as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CoeaInputError(f"cannot be read ({type(err).__name__}: {first})", source=path, fix=fix) from err


def reads(fix: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """:func:`reading` around a whole function whose first argument is the path it reads."""

    def wrap(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def inner(path: Any, *args: Any, **kwargs: Any) -> T:
            with reading(path, fix):
                return func(path, *args, **kwargs)

        return inner

    return wrap
