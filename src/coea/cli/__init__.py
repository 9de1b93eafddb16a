"""The ``coea`` command line. Bad input ends with one line on stderr and exit code 2.

Each command calls exactly one stage function (:mod:`coea.stages`), the in-process training flow
(:mod:`coea.flow`) or a pipeline runner (top-level ``pipelines``): ``coea.cli.data`` (data stats/synth),
``coea.cli.stages`` (evaluate, group, train-llms, pco, ablate, serve, recommend, report) and ``coea.cli.kubeflow``
(run, simulate, compile, upload, schedule).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import os
import signal
import sys
from typing import NoReturn

import typer

from coea.cli import data, kubeflow, stages  # noqa: F401  (registers the commands)
from coea.cli.common import app, interrupt_notes, interrupt_rerun, os_input_error
from coea.console import clear_status, name_status
from coea.device import pin_torch_threads
from coea.errors import CoeaInputError
from coea.interrupts import interruptible, received
from coea.utils import setup_logging

__all__ = ["app", "main"]


def _one_line_summaries(typer_app: typer.Typer) -> None:
    """Give each command without one a ``short_help``: its docstring's first paragraph on one line. Typer's rich
    command list otherwise keeps the docstring's source line breaks, so ``coea --help`` wrapped mid-sentence."""
    for info in typer_app.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _one_line_summaries(group.typer_instance)


_one_line_summaries(app)


# The exceptions of the click that typer runs on: its own copy (typer >= 0.2x) or the click package (older typer).
click_errors = importlib.import_module(typer.BadParameter.__module__)


def usage_error(err, argv: list[str]) -> CoeaInputError:
    """A usage error of the command line (a value of the wrong type, a missing option, an unknown option or command)
    as the one-line error of bad input, not Typer's multi-line box; the fix names the command's --help."""
    words = itertools.takewhile(lambda arg: not arg.startswith("-"), argv)  # the command (no positional arguments)
    see = f"see `{err.ctx.command_path if err.ctx else ' '.join(['coea', *words])} --help`"
    param = getattr(err, "param", None)
    option = None if param is None else max(param.opts or [param.name or ""], key=len) or None
    if isinstance(err, click_errors.MissingParameter) and option:
        return CoeaInputError("missing: the command needs it", option=option, fix=f"pass {option}; {see}")
    if isinstance(err, click_errors.NoSuchOption):
        near = f"did you mean {' or '.join(sorted(err.possibilities))}? " if err.possibilities else ""
        return CoeaInputError("no such option", option=err.option_name, fix=f"{near}{see}")
    if isinstance(err, click_errors.BadOptionUsage) and err.option_name:
        return CoeaInputError("needs a value", option=err.option_name, fix=f"pass {err.option_name} VALUE; {see}")
    if isinstance(err, click_errors.BadParameter) and option and err.message:
        given = _given(argv, param.opts)
        problem = _sentence(err.message.removeprefix("Value error, "))
        shown = given is None or repr(given) in problem
        return CoeaInputError(problem if shown else f"got {given!r}: {problem}", option=option,
                              fix=f"pass a valid value; {see}")
    return CoeaInputError(_sentence(err.format_message()), fix=see)


def _given(argv: list[str], opts: list[str]) -> str | None:
    """The value the command line gave the option ``opts`` (its last, as click takes it), or None."""
    given = None
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                given = argv[i + 1]
            elif arg.startswith(f"{opt}="):
                given = arg.removeprefix(f"{opt}=")
    return given


def _sentence(message: str) -> str:
    """Click's message as the rest of one error line: lower-case first letter, no closing full stop."""
    message = " ".join(message.split()).rstrip(".")
    return message[:1].lower() + message[1:]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn input errors (usage errors and a full disk among them) into one line on stderr
    and exit code 2, and Ctrl-C or SIGTERM into one line and exit code 130 or 143
    (:func:`coea.interrupts.interruptible`: finally blocks and context managers run first)."""
    args = sys.argv[1:] if argv is None else argv
    setup_logging()
    name_status(_command(args) or "coea")  # the status line of its loops' progress (coea.console)
    # transformers' own progress bars (one "Loading weights" bar per model loaded) are noise on a console whose
    # steps print their own progress (the status line; set it to 0 to see them)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    received.clear()
    interrupt_notes.clear()
    interrupt_rerun.clear()
    try:
        with interruptible():
            pin_torch_threads()  # COEA_TORCH_THREADS
            code = app(args=argv, prog_name="coea", standalone_mode=False)  # click's errors come here, not its box
    except KeyboardInterrupt:  # outside the command (click turns one inside it into exit code 130)
        _interrupted(received[0] if received else signal.SIGINT, args)
    except click_errors.UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # no arguments, or a group without its command: the help is printed
        _fail(usage_error(err, args))
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except CoeaInputError as err:
        _fail(err)
    except OSError as err:
        if (full := os_input_error(err)) is None:
            raise
        _fail(full)
    if received:
        _interrupted(received[0], args)
    clear_status()
    sys.exit(code if isinstance(code, int) else 0)  # as click's standalone mode: typer.Exit(N), Ctrl-C 130, else 0


RESUME_NOTES = {  # what re-running an interrupted command does, by command, where it could not say more
    "pco": " (coea pco --resume continues after the last complete round, if one was saved)",
    "train-llms": (" (it keeps a model that finished, and resumes an SFT from its checkpoint where one was saved: "
                   "every llm.<model>.checkpoint_minutes of training)"),
}


def _interrupted(signum: int, argv: list[str]) -> NoReturn:
    """One line on stderr (after a newline: a progress bar may hold the line) and exit code 128 + the signal's
    number (130 for SIGINT, 143 for SIGTERM), as a shell reports a command a signal ended. The line says what the
    command left (:data:`~coea.cli.common.interrupt_notes`, e.g. `coea run`'s incomplete run folder) and what
    re-running it does: what `coea train-llms` and `coea pco` read from their run folder when the signal came
    (:data:`~coea.cli.common.interrupt_rerun`, :mod:`coea.cli.rerun`: a finished model kept, an SFT resumed from its
    checkpoint's step or started over, the PCO rounds ``--resume`` continues after), else the command's general
    :data:`RESUME_NOTES` (``argv``'s command)."""
    resume = interrupt_rerun[0] if interrupt_rerun else RESUME_NOTES.get(_command(argv) or "", "")
    left = "".join(f"{note}; " for note in interrupt_notes)
    typer.echo(f"\ninterrupted: {signal.Signals(signum).name}; {left}re-run the command{resume}", err=True)
    sys.exit(128 + signum)


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` runs (its first word that is no option), None for none."""
    return next(itertools.takewhile(lambda arg: not arg.startswith("-"), argv), None)


def _fail(err: CoeaInputError) -> NoReturn:
    clear_status()
    typer.echo(f"error: {err}", err=True)
    sys.exit(2)
