"""The ``coea`` command line. Bad input ends with one line on stderr and exit code 2.

Each command calls exactly one stage function (:mod:`coea.stages`), the in-process training flow
(:mod:`coea.flow`) or a pipeline runner (top-level ``pipelines``): ``coea.cli.data`` (data stats/synth),
``coea.cli.stages`` (evaluate, group, train-llms, pco, ablate, serve, recommend, report) and ``coea.cli.kubeflow``
(run, simulate, compile, upload, schedule).
"""

from __future__ import annotations

import os
import sys

import typer

from coea.cli import data, kubeflow, stages  # noqa: F401  (registers the commands)
from coea.cli.common import app
from coea.errors import CoeaInputError
from coea.utils import setup_logging

__all__ = ["app", "main"]


def _torch_threads(value: str | None) -> None:
    """``COEA_TORCH_THREADS=N`` pins torch's intra-op threads (oversubscribed CPUs are many times slower)."""
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise CoeaInputError(f"must be a positive integer, got {value!r}", option="COEA_TORCH_THREADS",
                             fix="set it to a thread count such as 2, or unset it")
    import torch

    os.environ["OMP_NUM_THREADS"] = value  # pipeline steps run by kfp.local are subprocesses: they inherit it
    torch.set_num_threads(int(value))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn input errors into one line on stderr and exit code 2."""
    setup_logging()
    try:
        _torch_threads(os.environ.get("COEA_TORCH_THREADS"))
        app(args=argv, prog_name="coea")
    except CoeaInputError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
