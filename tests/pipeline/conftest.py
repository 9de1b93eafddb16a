"""Fixtures of the pipeline tests: one prepared tiny log and its DSIE fit per session; one ``coea run``
(``coea_training`` under kfp.local) of the tiny config per session."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from coea.config import RunConfig
from tests.pipeline.pipeline_helpers import tiny_config


@dataclass(frozen=True)
class Fitted:
    cfg: RunConfig
    data: Path  # prepared data dir
    dsie: Path  # DSIE dir fitted on it


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    from coea.stages import run_dsie_group, run_prepare_data

    root = tmp_path_factory.mktemp("fitted")
    cfg = tiny_config()
    run_prepare_data(cfg, root / "data")
    run_dsie_group(cfg, root / "data", root / "dsie")
    return Fitted(cfg, root / "data", root / "dsie")


@pytest.fixture(scope="session")
def llm_dirs(fitted: Fitted, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The N-LLM and the R-LLM trained one at a time (as the two SFT steps do), each in its own dir."""
    from coea.stages import run_sft_stage

    root = tmp_path_factory.mktemp("llms")
    return {name: run_sft_stage(fitted.cfg, fitted.data, fitted.dsie, root / name, which=(name,)).out_dir
            for name in ("novelty", "relevance")}


@pytest.fixture(scope="session")
def console() -> io.StringIO:
    """What the training run below printed on the console (its stdout)."""
    return io.StringIO()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, console: io.StringIO) -> tuple[Path, dict[str, Path]]:
    """The run folder of ``coea run`` on :func:`tiny_config` (``run_training_locally``, what the command calls,
    with K=5) and its paths; copy it before writing into it."""
    from pipelines.local import run_training_locally

    run_dir = tmp_path_factory.mktemp("training")
    with contextlib.redirect_stdout(console):
        return run_dir, run_training_locally(tiny_config(), run_dir, rec_k=5)
