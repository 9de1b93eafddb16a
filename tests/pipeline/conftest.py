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
