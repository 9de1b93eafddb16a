"""SIGTERM (a preempted or timed-out pod, ``kill``) and Ctrl-C unwind the running code: ``finally`` blocks and
context managers run, so temporary files and folders (``.NAME.*.tmp`` beside an output, ``.current.json.*.tmp`` on
a state, the trainers' ``coea-*`` folders) are removed. Python's default SIGTERM ends the process without them.

:func:`interruptible` is what the ``coea`` command line runs under (``coea.cli.main`` reports the signal);
:func:`pipeline_step` wraps the body of every pipeline component (``components/functions.py``) and then ends the
step's process with one line and exit code 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

received: list[int] = []  # the signals (SIGINT, SIGTERM) that interrupted the running code, in order


def _raise_interrupt(signum: int, _frame: object) -> None:
    received.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM (a preempted or timed-out pod, ``kill``) unwinds the code as Ctrl-C does: ``finally`` blocks and
    context managers run, so the temporary files and folders (``.NAME.*.tmp`` beside an output, the trainers'
    ``coea-*`` folders) are removed; Python's default SIGTERM ends the process without them. A signal the caller
    ignores (SIG_IGN: a background job's SIGINT) stays ignored; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in saved.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def pipeline_step() -> Iterator[None]:
    """A pipeline step's body under :func:`interruptible`: a SIGTERM (the pod preempted, deleted or past its
    deadline) or SIGINT unwinds it, then the process ends with one line on stderr and exit code 128 + the signal's
    number (143 for SIGTERM), a failed step that KFP's retry policy may run again."""
    received.clear()
    try:
        with interruptible():
            yield
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        print(f"interrupted: {signal.Signals(signum).name}; the step's temporary files were removed", file=sys.stderr)
        raise SystemExit(128 + signum) from None
