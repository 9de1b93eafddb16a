"""kfp.local's console output routed by ``pipelines.console.kfp_step_log``: the step logs go to the log file, the
console gets one line per step (name, status, seconds), everything with ``verbose``, a failed step's last lines."""

# no `from __future__ import annotations`: kfp reads the components' annotations as types
import io
import os
import shutil
from pathlib import Path

import pytest
from kfp import dsl

from pipelines.console import STEPS_LOG, StepConsole, kfp_step_log
from pipelines.local import init_local


@dsl.component(base_image="python:3.11")
def chatty(n: int) -> int:
    for i in range(n):
        print(f"executor line {i}")
    return n


@dsl.component(base_image="python:3.11")
def fails() -> None:
    print("about to fail")
    raise ValueError("the reason it failed")


@dsl.pipeline(name="two-steps")
def two_steps(n: int = 300) -> None:
    first = chatty(n=n)
    chatty(n=first.output).set_caching_options(False)


@dsl.pipeline(name="failing")
def failing() -> None:
    fails()


def _run(pipeline, run_dir: Path, *, verbose: bool = False) -> tuple[str, Path]:
    init_local(run_dir)
    console = io.StringIO()
    with kfp_step_log(run_dir / "kfp" / STEPS_LOG, verbose=verbose, console=console):
        pipeline()
    return console.getvalue(), run_dir / "kfp" / STEPS_LOG


@pytest.mark.slow
def test_a_real_kfp_local_run_prints_one_line_per_step(tmp_path: Path) -> None:
    console, log = _run(two_steps, tmp_path)
    lines = console.splitlines()
    assert len(lines) == 2 and all("chatty" in line and "success" in line for line in lines), console
    assert all(line.rstrip().endswith(" s") and float(line.split()[-2]) > 0 for line in lines)
    text = log.read_text()
    assert text.count("executor line 299") == 2 and "\x1b[" not in text  # every step's output, no colour codes


@pytest.mark.slow
def test_verbose_shows_the_step_logs_and_a_failure_its_last_lines(tmp_path: Path) -> None:
    console, _ = _run(two_steps, tmp_path / "verbose", verbose=True)
    assert console.count("executor line 299") == 2
    with pytest.raises(RuntimeError, match="fails"):
        _run(failing, tmp_path / "failing")


def test_a_failed_step_shows_its_tail_and_the_log_path(tmp_path: Path) -> None:
    console = io.StringIO()
    with pytest.raises(RuntimeError), kfp_step_log(tmp_path / STEPS_LOG, console=console) as stream:
        print("\x1b[96m'fails'\x1b[0m")  # noise before the step
        print("12:00:00.000 - INFO - Executing task \x1b[96m'fails'\x1b[0m")
        for i in range(100):
            print(f"    traceback line {i}")
        print("12:00:01.000 - ERROR - Task \x1b[96m'fails'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m")
        raise RuntimeError("Task 'fails' finished with status FAILURE")
    out = console.getvalue().splitlines()
    assert out[0].split()[:2] == ["fails", "failure"] and stream.steps[0][:2] == ("fails", "FAILURE")
    assert "traceback line 99" in console.getvalue() and "traceback line 50" not in console.getvalue()
    assert out[-1] == f"  step logs: {tmp_path / STEPS_LOG}"
    assert (tmp_path / STEPS_LOG).read_text().count("traceback line") == 100


@pytest.mark.parametrize("verbose", [False, True])
def test_a_step_failing_on_bad_input_is_the_cli_one_line_error(tmp_path: Path, verbose: bool) -> None:
    """A step whose traceback ends in a CoeaInputError (bad input): kfp.local's "status FAILURE" becomes that
    CoeaInputError (the CLI's one-line error, exit 2), and the console shows no traceback tail; the log keeps it."""
    from coea.errors import CoeaInputError

    console = io.StringIO()
    line = "bad.csv, column 'timestamp', line 2: non-numeric timestamp 'x' (fix: convert timestamps)"
    with pytest.raises(CoeaInputError) as err, kfp_step_log(tmp_path / STEPS_LOG, console=console,
                                                            verbose=verbose):
        print("12:00:00.000 - INFO - Executing task \x1b[96m'prepare-data'\x1b[0m")
        print("    Traceback (most recent call last):")
        print(f"    coea.errors.CoeaInputError: {line.replace('line 2', 'row 1')}")  # the inner one
        print("    The above exception was the direct cause of the following exception:")
        print(f"    coea.errors.CoeaInputError: {line}")
        print("12:00:01.000 - ERROR - Task \x1b[96m'prepare-data'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m")
        raise RuntimeError("Pipeline 'coea-training' finished with status FAILURE")
    assert str(err.value) == f"step prepare-data: {line}" and isinstance(err.value.__cause__, RuntimeError)
    if not verbose:
        assert "Traceback" not in console.getvalue() and "prepare-data" in console.getvalue()
    assert "step logs" not in console.getvalue()  # the run folder holding it may be removed (nothing written)
    assert "Traceback" in (tmp_path / STEPS_LOG).read_text()


def test_partial_writes_are_joined_into_lines() -> None:
    log, console = io.StringIO(), io.StringIO()
    stream = StepConsole(log, console)
    stream.write("Executing task 'a")
    stream.write("'\nTask 'a' finished with status SUCC")
    stream.write("ESS\nlast")
    stream.close_pending()
    assert log.getvalue() == "Executing task 'a'\nTask 'a' finished with status SUCCESS\nlast\n"
    assert [s[:2] for s in stream.steps] == [("a", "SUCCESS")] and console.getvalue().split()[:2] == ["a", "success"]


def test_an_in_process_flow_keeps_its_output_in_the_log_and_warnings_on_the_console(tmp_path: Path) -> None:
    """``in_process_log`` (simulate's period 0): prints, stderr writes (progress bars), warnings and the ``coea``
    log below WARNING go to the file only; ``coea`` warnings still reach the console handler; afterwards the
    handlers are as before. On an error the console gets the log's tail and its path."""
    import logging
    import sys
    import warnings

    from pipelines.console import in_process_log

    logger = logging.getLogger("coea")
    console_log = io.StringIO()
    handler = logging.StreamHandler(console_log)
    saved = logger.handlers, logger.level, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    console = io.StringIO()
    try:
        with in_process_log(tmp_path / STEPS_LOG, console=console) as path:
            print("trainer dict {'loss': 1.0}")
            sys.stderr.write("progress 50%\n")
            warnings.warn("gradient_checkpointing is deprecated", FutureWarning, stacklevel=1)
            logger.info("acceptance 0.000 -> 0.000")
            logger.warning("the R-LLM's held-out AUC is 0.496")
        text = path.read_text()
        for line in ("trainer dict", "progress 50%", "gradient_checkpointing is deprecated",
                     "INFO coea: acceptance 0.000", "WARNING coea: the R-LLM's held-out AUC"):
            assert line in text, line
        assert console_log.getvalue() == "the R-LLM's held-out AUC is 0.496\n" and console.getvalue() == ""
        assert logger.handlers == [handler] and handler.level == logging.NOTSET
        with pytest.raises(ValueError, match="boom"), in_process_log(tmp_path / "fail.log", console=console):
            print("the last thing it did")
            raise ValueError("boom")
        assert "    | the last thing it did\n" in console.getvalue()
        assert console.getvalue().endswith(f"  logs: {tmp_path / 'fail.log'}\n")
    finally:
        logger.handlers, logger.level, logger.propagate = saved


def test_a_task_kfp_de_duplicated_is_shown_as_its_step() -> None:
    """``coea simulate`` showed kfp's task names ``pco-loop-2``, ``evaluate-2``, ``recommend-2``,
    ``export-recommendations-2`` (a component's second task in the recurring pipeline: the periods without a
    regroup): the console shows the step. A trailing ``-N`` that kfp did not add stays."""
    from pipelines.console import project_steps, step_name

    log, console = io.StringIO(), io.StringIO()
    stream = StepConsole(log, console)
    tasks = ["pco-loop-2", "evaluate-2", "recommend-2", "export-recommendations-2", "sft-novelty-11", "monitor-drift"]
    for task in tasks:
        stream.write(f"Executing task '{task}'\nTask '{task}' finished with status SUCCESS\n")
    shown = ["pco-loop", "evaluate", "recommend", "export-recommendations", "sft-novelty", "monitor-drift"]
    assert [s[0] for s in stream.steps] == shown
    assert [line.split()[0] for line in console.getvalue().splitlines()] == shown
    assert "pco-loop-2" in log.getvalue()  # the log file keeps kfp's own lines
    assert {"pco-loop", "evaluate", "export-recommendations"} <= project_steps()
    assert step_name("chatty-2", project_steps()) == "chatty-2"  # not a project step: nothing to go back to
    assert step_name("evaluate-1", project_steps()) == "evaluate-1"  # kfp numbers repeats from 2
    assert step_name("stage-2", {"stage", "stage-2"}) == "stage-2"  # a real name ending in digits
    assert step_name("stage-2-2", {"stage", "stage-2"}) == "stage-2"
    assert step_name("stage-02", {"stage"}) == "stage-02"


def test_a_failed_de_duplicated_task_names_its_step_in_the_input_error() -> None:
    log, console = io.StringIO(), io.StringIO()
    stream = StepConsole(log, console)
    stream.write("Executing task 'evaluate-2'\n    coea.errors.CoeaInputError: bad k\n"
                 "Task 'evaluate-2' finished with status FAILURE\n")
    assert stream.input_error == "step evaluate: bad k"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_running_step_shows_its_time_and_last_log_line_in_place(monkeypatch) -> None:
    """A two-minute SFT or PCO step printed nothing until it finished. On a terminal its status line (seconds so far,
    its last log line of ours) is rewritten in place, at most every STATUS_EVERY_S, and gives way to the step's
    line; kfp's own lines and other output do not show; a file or pipe gets only the step lines, as before."""
    import pipelines.console as console_module

    clock = iter(float(t) for t in range(0, 100, 1))
    monkeypatch.setattr(console_module.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(shutil, "get_terminal_size", lambda: os.terminal_size((200, 50)))
    lines = ["Executing task 'sft-novelty-2'",  # a step's log line as kfp.local writes it, behind tqdm's bar
             "  2%|▏  | 19/60 [00:01<00:44, 19.39it/s][KFP Executor 2026-12-05 21:24:22,731 INFO]: novelty sft step "
             "20/60 loss 2.5", "{'loss': 2.5} a trainer line",
             "12:00:02 INFO coea.llm.sft: novelty sft step 40/60 loss 2.1",  # the CLI's format (in process)
             "Task 'sft-novelty-2' finished with status SUCCESS"]
    terminal, log = _Terminal(), io.StringIO()
    stream = StepConsole(log, terminal)
    stream.write("\n".join(lines) + "\n")
    shown = terminal.getvalue()
    assert shown.count("\r\x1b[K") == 3  # two status lines, then the step's own line in their place
    first, second, final = shown.split("\r\x1b[K")[1:]
    assert first.split() == ["sft-novelty", "running", "1.0", "s", "novelty", "sft", "step", "20/60", "loss", "2.5"]
    assert "step 40/60 loss 2.1" in second and "trainer line" not in shown
    assert final.split() == ["sft-novelty", "success", "3.0", "s"] and final.endswith("\n")
    piped = io.StringIO()
    StepConsole(io.StringIO(), piped).write("\n".join(lines) + "\n")
    assert "running" not in piped.getvalue() and "\r" not in piped.getvalue()
    monkeypatch.setattr(shutil, "get_terminal_size", lambda: os.terminal_size((40, 50)))
    narrow = _Terminal()
    StepConsole(io.StringIO(), narrow).write("\n".join(lines[:2]) + "\n")
    assert len(narrow.getvalue().split("\r\x1b[K")[1]) == 39  # cut to the terminal's width: it stays one line


def test_an_in_process_flow_on_a_terminal_shows_a_status_line_and_clears_it(tmp_path: Path, monkeypatch) -> None:
    """`coea simulate`'s period 0 (the in-process flow) was two minutes of silence: on a terminal its `coea` INFO
    lines show as a status line in place (at most every STATUS_EVERY_S), cleared when the flow ends; the log file
    gets every line; a pipe gets none of it."""
    import logging

    import pipelines.console as console_module
    from pipelines.console import in_process_log

    clock = iter(float(t) for t in range(0, 100))
    monkeypatch.setattr(console_module.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(shutil, "get_terminal_size", lambda: os.terminal_size((200, 50)))
    monkeypatch.setattr(logging.getLogger("coea"), "level", logging.INFO)  # as the CLI's setup_logging sets it
    logger = logging.getLogger("coea.test_flow")
    terminal, piped = _Terminal(), io.StringIO()
    for console in (terminal, piped):
        with in_process_log(tmp_path / f"{id(console)}.log", console=console, name="period 0"):
            logger.info("novelty sft step %d/60", 20)
            logger.info("novelty sft step %d/60", 40)
            logger.warning("a warning")  # shown by the console's handler: the status line is cleared first
    shown = terminal.getvalue()
    assert shown.endswith("step 40/60\r\x1b[K")  # cleared once, for the warning; nothing left to clear at the end
    assert shown.split("\r\x1b[K")[1].split() == ["period", "0", "running", "1.0", "s", "novelty", "sft", "step",
                                                  "20/60"]
    assert piped.getvalue() == ""
    assert "novelty sft step 40/60" in (tmp_path / f"{id(terminal)}.log").read_text()


def test_off_a_terminal_a_running_step_prints_a_plain_line_at_most_every_interval(monkeypatch) -> None:
    """`make demo > log`, CI, `| tee`: nothing came between a step's start and its line (sft-novelty 121 s, pco-loop
    175 s). Now, while the step logs, a plain ``running`` line (seconds so far, its last log line of ours) at most
    every PLAIN_EVERY_S; none with -v (every line is shown), none for a short step."""
    import pipelines.console as console_module
    from coea.console import PLAIN_EVERY_S

    now = [0.0]
    monkeypatch.setattr(console_module.time, "perf_counter", lambda: now[0])
    timeline = [(0, "Executing task 'sft-novelty'"), (20, "12:00:20 INFO coea.llm.sft: novelty sft step 20/96 loss 3"),
                (PLAIN_EVERY_S + 1, "12:01:01 INFO coea.llm.sft: novelty sft step 40/96 loss 2"),
                (PLAIN_EVERY_S + 30, "12:01:30 INFO coea.llm.sft: novelty sft step 60/96 loss 1"),
                (2 * PLAIN_EVERY_S + 5, "{'loss': 1.0} a trainer line"),
                (2 * PLAIN_EVERY_S + 9, "Task 'sft-novelty' finished with status SUCCESS")]
    piped, verbose = io.StringIO(), io.StringIO()
    streams = [StepConsole(io.StringIO(), piped), StepConsole(io.StringIO(), verbose, verbose=True)]
    for at, line in timeline:
        now[0] = float(at)
        for stream in streams:
            stream.write(line + "\n")
    lines = piped.getvalue().splitlines()
    assert [line.split() for line in lines] == [
        ["sft-novelty", "running", "61.0", "s", "novelty", "sft", "step", "40/96", "loss", "2"],
        ["sft-novelty", "running", "125.0", "s", "novelty", "sft", "step", "60/96", "loss", "1"],
        ["sft-novelty", "success", "129.0", "s"]]
    assert "running" not in verbose.getvalue()
