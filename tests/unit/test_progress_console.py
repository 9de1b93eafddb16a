"""The command line's console (coea.console.ProgressConsole): the progress lines of a loop (an SFT's steps, the
DSIE epochs) as one status line rewritten in place on a terminal, and off a terminal at most one per PLAIN_EVERY_S
and loop; every other line as before. A new user's `coea evaluate` printed ~120 step and epoch lines before its
table."""

import io
import logging
import os
import shutil

import pytest

from coea.console import CLEAR, PLAIN_EVERY_S, ProgressConsole, clear_status, no_step_bar, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger():
    logger = logging.getLogger("coea.test_progress_console")
    saved = logger.handlers, logger.propagate, logger.level
    logger.handlers, logger.propagate = [], False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers, logger.propagate, logger.level = saved


def _emit(logger, clock, timeline) -> None:
    for at, loop, message in timeline:
        clock.now = at
        logger.info(message, extra=progress(loop) if loop else None)


def test_off_a_terminal_a_loop_shows_at_most_one_progress_line_per_interval(logger) -> None:
    clock, piped = _Clock(), io.StringIO()
    handler = ProgressConsole(piped, clock=clock)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    every = PLAIN_EVERY_S
    _emit(logger, clock, [(0, "novelty sft", "sft 1"), (5, "rqvae", "rqvae 10"), (10, "novelty sft", "sft 2"),
                          (20, None, "an info line"), (every - 1, "novelty sft", "sft 3"),
                          (every + 1, "novelty sft", "sft 4"), (every + 5, "rqvae", "rqvae 20"),
                          (2 * every, "novelty sft", "sft 5"), (2 * every + 1, "novelty sft", "sft 6")])
    assert piped.getvalue().splitlines() == ["sft 1", "rqvae 10", "an info line", "sft 4", "rqvae 20", "sft 6"]
    assert "\r" not in piped.getvalue() and not handler.live


def test_on_a_terminal_progress_is_one_status_line_that_gives_way_to_other_lines(logger, monkeypatch) -> None:
    monkeypatch.setattr(shutil, "get_terminal_size", lambda: os.terminal_size((200, 50)))
    clock, terminal = _Clock(), _Terminal()
    clock.now = 100.0
    handler = ProgressConsole(terminal, name="evaluate", clock=clock)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    _emit(logger, clock, [(101, "novelty sft", "novelty sft step 20/96"), (101.1, "novelty sft", "too soon"),
                          (102, "novelty sft", "novelty sft step 40/96"), (103, None, "novelty sft: done")])
    shown = terminal.getvalue()
    first, second, done = shown.split(CLEAR)[1:]
    assert first.split() == ["evaluate", "running", "1.0", "s", "novelty", "sft", "step", "20/96"]
    assert "step 40/96" in second and "\n" not in first + second and "too soon" not in shown
    assert done == "novelty sft: done\n"  # the status line erased first: the line starts clean
    _emit(logger, clock, [(104, "rqvae", "rqvae epoch 10/20")])
    monkeypatch.setattr(logging.getLogger("coea"), "handlers", [handler])
    assert no_step_bar() is True  # the loops' tqdm bars would overwrite the status line: off
    clear_status()
    assert terminal.getvalue().endswith("rqvae epoch 10/20" + CLEAR) and not handler.shown
