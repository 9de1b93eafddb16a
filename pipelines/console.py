"""What a kfp.local run shows on the console: one line per pipeline step, the step logs in a file.

kfp.local prints every step's executor output (thousands of lines for ``coea_training``) and its own task banners
to ``sys.stdout``. :func:`kfp_step_log` stands in for ``sys.stdout`` while a pipeline runs: every line goes to the
log file (colour codes removed), each finished step becomes one progress line (``step  status  seconds``) on the
real console, and ``verbose`` echoes the whole log there as well. When a step fails, its last lines are shown. On a
terminal a running step also shows a status line, rewritten in place: its time so far and its last log line (e.g.
``novelty sft step 40/96 loss 2.53``), so a two-minute step is not two minutes of silence; elsewhere (a file, a
pipe, CI) the same as a plain line, at most every :data:`coea.console.PLAIN_EVERY_S` while the step logs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import time
import warnings
from collections import deque
from collections.abc import Collection, Iterator
from functools import cache
from pathlib import Path
from typing import TextIO

from coea.console import CLEAR, PLAIN_EVERY_S, STATUS_EVERY_S, write_status
from coea.errors import CoeaInputError
from coea.utils import log_formatter

STEPS_LOG = "steps.log"  # under the run's kfp/ directory
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
FAILED_TAIL = 40  # lines of a failed step's log shown on the console
INPUT_ERROR = "coea.errors.CoeaInputError: "  # how a step's traceback ends on bad input
_KFP_INDEX = re.compile(r"(.+)-([2-9]|[1-9][0-9]+)")  # kfp's suffix of a repeated task name: -2, -3, ...
# a step's log lines: kfp's executor format (a pipeline step, often behind a tqdm bar), or the CLI's (in process)
_PROGRESS = re.compile(r"(?:\[KFP Executor [\d-]+ [\d:,]+ (?:INFO|WARNING)\]|"
                       r"\d\d:\d\d:\d\d (?:INFO|WARNING) (?:coea|pipelines)[\w.]*): (.+)")


@cache
def project_steps() -> frozenset[str]:
    """The task names the project's components get in a pipeline (``pco-loop``: the function name, dashed)."""
    from components.functions import STAGES

    return frozenset(fn.__name__.replace("_", "-") for fn in STAGES)


def step_name(task: str, steps: Collection[str]) -> str:
    """The step a kfp.local task runs: ``task`` without the ``-2``, ``-3`` ... suffix kfp appends to a component's
    second, third ... task in a pipeline (``pco-loop-2``: the recurring pipeline's PCO step of a period without a
    regroup). The suffix is cut only when what is left is one of ``steps`` and ``task`` itself is not: a name
    whose digits are its own stays whole."""
    match = _KFP_INDEX.fullmatch(task)
    if match and match.group(1) in steps and task not in steps:
        return match.group(1)
    return task


class StepConsole(io.TextIOBase):
    """A write-only text stream that splits kfp.local's output into the log file and per-step progress lines.

    Args:
        log: the open log file; gets every line, without colour codes.
        console: where progress lines (and, with ``verbose``, every line) go.
        verbose: echo every line to ``console`` too.
        step_names: the pipeline's step names (default: the project's components, :func:`project_steps`); a task
            kfp de-duplicated (``evaluate-2``) is shown as its step (:func:`step_name`).
    """

    def __init__(self, log: TextIO, console: TextIO, *, verbose: bool = False,
                 step_names: Collection[str] | None = None) -> None:
        super().__init__()
        self.log, self.console, self.verbose = log, console, verbose
        self.step_names = project_steps() if step_names is None else step_names
        self.steps: list[tuple[str, str, float]] = []  # (step, status, seconds) in the order they finished
        self._pending = ""
        self._started: dict[str, float] = {}
        self._tail: deque[str] = deque(maxlen=FAILED_TAIL)
        self.input_error: str | None = None  # a failed step's CoeaInputError line: bad input, not a crash
        # on a terminal, a running step's status line (its time so far, its last log line), rewritten in place
        self.live = not verbose and bool(getattr(console, "isatty", lambda: False)())
        self._status_at = 0.0
        # elsewhere (a file, a pipe, CI), a running step's plain line at most every PLAIN_EVERY_S: not minutes of
        # silence; its last log line of ours (``_latest``) as the status line would show it
        self.plain = not verbose and not self.live
        self._plain_at, self._latest = 0.0, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.console.flush()

    def close_pending(self) -> None:
        """Handle a last line without a newline."""
        if self._pending:
            self._line(self._pending)
            self._pending = ""

    def _line(self, line: str) -> None:
        plain = _ANSI.sub("", line)
        self.log.write(plain + "\n")
        if self.verbose:
            self.console.write(line + "\n")
        self._tail.append(plain)
        if started := _STARTED.search(plain):
            self._started[started.group(1)] = self._plain_at = time.perf_counter()
            self._latest = ""
            self._tail.clear()
        elif finished := _FINISHED.search(plain):
            self._finish(finished.group(1), finished.group(2))
            return
        elif progress := _PROGRESS.search(plain):
            if self.live:
                self._status(progress.group(1))
            self._latest = progress.group(1)
        if self.plain and self._started:
            self._plain_line()

    def _status(self, message: str) -> None:
        """The running step's status line on a terminal: ``step  running  seconds  its last log line``."""
        now = time.perf_counter()
        if not self._started or now - self._status_at < STATUS_EVERY_S:
            return
        self._status_at = now
        task, since = next(reversed(self._started.items()))
        write_status(self.console, step_name(task, self.step_names), now - since, message)


    def _plain_line(self) -> None:
        """Off a terminal: the running step's line ``step  running  seconds  its last log line``, at most every
        PLAIN_EVERY_S (the first a minute after the step started), written when the step logs a line."""
        now = time.perf_counter()
        if now - self._plain_at < PLAIN_EVERY_S:
            return
        self._plain_at = now
        task, since = next(reversed(self._started.items()))
        line = f"  {step_name(task, self.step_names):<28} {'running':<8} {now - since:7.1f} s  {self._latest}"
        self.console.write(line.rstrip() + "\n")
        self.console.flush()

    def _finish(self, task: str, status: str) -> None:
        seconds = time.perf_counter() - self._started.pop(task, time.perf_counter())
        step = step_name(task, self.step_names)
        self.steps.append((step, status, seconds))
        errors = [line.split(INPUT_ERROR, 1)[1] for line in self._tail if INPUT_ERROR in line]
        if status != "SUCCESS" and errors:
            self.input_error = f"step {step}: {errors[-1]}"  # the CLI's one-line error: no traceback here
        if self.verbose:
            return
        if self.live:
            self.console.write(CLEAR)  # the status line gives way to the step's line
        self.console.write(f"  {step:<28} {status.lower():<8} {seconds:7.1f} s\n")
        if status != "SUCCESS" and not errors:
            self.console.write("".join(f"    | {line}\n" for line in self._tail))
        self.console.flush()


class _StatusHandler(logging.Handler):
    """An in-process flow's status line on a terminal: its ``coea`` INFO lines, at most every STATUS_EVERY_S."""

    def __init__(self, console: TextIO, name: str) -> None:
        super().__init__(logging.INFO)
        self.console, self.name_shown = console, name
        self.start = self.last = time.perf_counter()
        self.shown = False

    def emit(self, record: logging.LogRecord) -> None:
        now = time.perf_counter()
        if record.levelno >= logging.WARNING:  # printed by the console's own handler, after this one: on a clean line
            if self.shown:
                self.console.write(CLEAR)
                self.console.flush()
                self.shown = False
        elif now - self.last >= STATUS_EVERY_S:
            self.last, self.shown = now, True
            write_status(self.console, self.name_shown, now - self.start, record.getMessage())


@contextlib.contextmanager
def _warnings_to(stream: TextIO) -> Iterator[None]:
    """Warnings raised inside are written to ``stream`` (their usual one-line form), then the filters restored."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
            stream.write(warnings.formatwarning(message, category, filename, lineno, line)))
        yield


@contextlib.contextmanager
def kfp_step_log(log_path: Path, *, verbose: bool = False, console: TextIO | None = None) -> Iterator[StepConsole]:
    """Route ``sys.stdout`` (kfp.local's step logs and banners) through a :class:`StepConsole` writing to
    ``log_path`` (appended; its directory is created); progress lines go to ``console`` (default: the current
    ``sys.stdout``); so do the warnings kfp.local raises per step (e.g. that GPU requests have no effect locally).
    On an error the log's path is printed after the failed step's last lines, except for bad input (the CLI's one
    error line says it all)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = console or sys.stdout
    with log_path.open("a", encoding="utf-8") as log:
        stream = StepConsole(log, out, verbose=verbose)
        try:
            with contextlib.redirect_stdout(stream), _warnings_to(stream):
                yield stream
        except BaseException as err:
            stream.close_pending()
            if isinstance(err, RuntimeError) and stream.input_error is not None:  # kfp.local's "status FAILURE"
                # bad input: its one line says what to fix (and a run that wrote nothing removes its folder, log
                # included: pipelines.local.unfinished), so no pointer to the step log
                raise CoeaInputError(stream.input_error) from err
            out.write(f"  step logs: {log_path}\n")
            raise
        stream.close_pending()


@contextlib.contextmanager
def in_process_log(log_path: Path, *, console: TextIO | None = None, name: str = "in process") -> Iterator[Path]:
    """The console of an in-process flow (``coea simulate``'s period 0) kept as tidy as a kfp.local run's: its
    ``sys.stdout``/``sys.stderr`` (trainer dicts, progress bars), warnings and the ``coea`` log below WARNING go to
    ``log_path`` (appended); ``coea`` warnings still reach the console, and on a terminal a status line (``name``,
    seconds so far, the last log line) as a kfp.local step has. On an error the log's last :data:`FAILED_TAIL`
    lines and its path are printed on ``console`` (default: the current ``sys.stdout``)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = console or sys.stdout
    logger = logging.getLogger("coea")
    with log_path.open("a", encoding="utf-8") as log:
        to_file = logging.StreamHandler(log)
        to_file.setFormatter(log_formatter())
        levels = [(handler, handler.level) for handler in logger.handlers]
        for handler, level in levels:
            handler.setLevel(max(level, logging.WARNING))
        status = _StatusHandler(out, name) if getattr(out, "isatty", lambda: False)() else None
        logger.addHandler(to_file)
        if status is not None:
            logger.handlers.insert(0, status)  # before the console's handler: it clears its line for a warning
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _warnings_to(log):
                yield log_path
        except BaseException:
            log.flush()
            if status is not None and status.shown:
                out.write(CLEAR)
                status.shown = False
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-FAILED_TAIL:]
            out.write("".join(f"    | {_ANSI.sub('', line)}\n" for line in tail) + f"  logs: {log_path}\n")
            raise
        finally:
            logger.removeHandler(to_file)
            if status is not None:
                logger.removeHandler(status)
                if status.shown:
                    out.write(CLEAR)  # the status line gives way to what the caller prints next
            for handler, level in levels:
                handler.setLevel(level)
