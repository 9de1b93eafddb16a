"""The ``coea`` command line. Bad input ends with one line on stderr and exit code 2.

Each command calls exactly one stage function (:mod:`coea.stages`), the in-process training flow
(:mod:`coea.flow`) or a pipeline runner (top-level ``pipelines``): ``coea.cli.data`` (data stats/synth),
``coea.cli.stages`` (evaluate, group, train-llms, pco, ablate, serve, recommend, report) and ``coea.cli.kubeflow``
(run, simulate, compile, upload, schedule).
"""

from __future__ import annotations

import inspect
import os
import sys

import typer

from coea.cli import data, kubeflow, stages  # noqa: F401  (registers the commands)
from coea.cli.common import app
from coea.device import pin_torch_threads
from coea.errors import CoeaInputError
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn input errors into one line on stderr and exit code 2."""
    setup_logging()
    # transformers' own progress bars (one "Loading weights" bar per model loaded) are noise on a console whose
    # steps print their own progress; the trainers' step bars are theirs and stay. Set it to 0 to see them.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        pin_torch_threads()  # COEA_TORCH_THREADS
        app(args=argv, prog_name="coea")
    except CoeaInputError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
