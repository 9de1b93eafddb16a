"""Fixtures of the pipeline tests: one prepared tiny log and its DSIE fit per session."""

from __future__ import annotations

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
