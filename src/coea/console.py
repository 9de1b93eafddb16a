"""What a ``coea`` command shows on its console while a loop a person waits for runs.

The library marks the log line that reports a loop's progress (an SFT's or DPO's step line, the DSIE encoder's and
RQ-VAE's epochs, a distillation's epochs) with ``extra=progress(loop)``; log files and pipeline step logs get every
one. The command line's console handler, :class:`ProgressConsole`, shows them on a terminal as one status line
rewritten in place (``name  running  seconds  message``, at most every :data:`STATUS_EVERY_S`; the loops' tqdm bars
are then off: :func:`no_step_bar`), and off a terminal (a file, a pipe, CI) as ordinary log lines, at most one per
:data:`PLAIN_EVERY_S` for each loop (its first at once). Every other line is printed as before, the status line
cleared first. `coea run`'s console (:mod:`pipelines.console`) writes the same status line for a running pipeline
step on a terminal and, elsewhere, a plain ``running`` line at most every PLAIN_EVERY_S.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

PROGRESS = "progress"  # the log record's attribute naming the loop whose progress the line reports
STATUS_EVERY_S = 0.5  # a terminal's status line is rewritten at most this often
PLAIN_EVERY_S = 60.0  # off a terminal, at most one progress line this often per loop (per pipeline step)
CLEAR = "\r\x1b[K"  # back to the line's start, the line erased


def progress(loop: str) -> dict[str, str]:
    """``extra`` of a log call whose line reports the progress of ``loop`` (e.g. ``novelty sft``): shown as the
    console's status line, or thinned out off a terminal (module doc)."""
    return {PROGRESS: loop}


def write_status(console: TextIO, name: str, seconds: float, message: str, *, pad: int = 28) -> None:
    """A status line in place of the last one: ``name  running  seconds  message``, cut to the terminal's width;
    ``name`` padded to ``pad`` characters (a pipeline's step lines: their column)."""
    line = f"  {name:<{pad}} running  {seconds:7.1f} s  {message}"
    console.write(CLEAR + line[:shutil.get_terminal_size().columns - 1])
    console.flush()


class ProgressConsole(logging.StreamHandler):
    """The command line's log handler (stderr by default): progress lines (:func:`progress`) as a status line on a
    terminal, at most one per :data:`PLAIN_EVERY_S` and loop elsewhere; every other line as a plain handler writes it.

    Args:
        stream: where the lines go (default ``sys.stderr``).
        name: the status line's name (the command).
        clock: seconds, monotonic (a test's fake clock).
    """

    def __init__(self, stream: TextIO | None = None, *, name: str = "coea",
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream)
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.name_shown, self.clock = name, clock
        self.start = clock()
        self.shown = False  # a status line is on the terminal's last line
        self._status_at = -math.inf
        self._plain_at: dict[str, float] = {}  # loop -> when its last progress line was written (off a terminal)

    def emit(self, record: logging.LogRecord) -> None:
        loop = getattr(record, PROGRESS, None)
        if loop is None:
            self.clear()
            super().emit(record)
            return
        now = self.clock()
        if self.live:
            if now - self._status_at >= STATUS_EVERY_S:
                self._status_at, self.shown = now, True
                write_status(self.stream, self.name_shown, now - self.start, record.getMessage(), pad=0)
        elif now - self._plain_at.get(loop, -math.inf) >= PLAIN_EVERY_S:
            self._plain_at[loop] = now
            super().emit(record)

    def clear(self) -> None:
        """Erase the status line, if one is shown: what is printed next starts on a clean line."""
        if self.shown:
            self.shown = False
            self.stream.write(CLEAR)
            self.stream.flush()


def name_status(name: str) -> None:
    """Name the ``coea`` console's status line (the command)."""
    for handler in logging.getLogger("coea").handlers:
        if isinstance(handler, ProgressConsole):
            handler.name_shown = name


def status_line_on() -> bool:
    """Whether the ``coea`` logger's console shows progress as a status line (a :class:`ProgressConsole` on a
    terminal)."""
    return any(isinstance(h, ProgressConsole) and h.live for h in logging.getLogger("coea").handlers)


def clear_status() -> None:
    """Erase the ``coea`` console's status line, if one is shown (before a command's own output or its end)."""
    for handler in logging.getLogger("coea").handlers:
        if isinstance(handler, ProgressConsole):
            handler.clear()


def no_step_bar() -> bool:
    """tqdm's ``disable`` for the loops' bars (the trainers' steps, the DSIE encoder's and RQ-VAE's epochs): a bar
    only where stderr is a terminal, tqdm's own rule for ``disable=None``, and none where the console shows our
    status line instead (:func:`status_line_on`: two lines rewritten in place would overwrite each other).
    transformers' ``None`` decides by log level instead, and at INFO wrote every bar update as a line into a
    pipeline step's log (1,160 of the 1,656 lines of a `coea run`'s steps.log, session 52); the progress lines say
    the same once per N steps."""
    return not sys.stderr.isatty() or status_line_on()
