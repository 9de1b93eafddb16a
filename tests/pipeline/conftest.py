"""Fixtures of the pipeline tests: one prepared tiny log and its DSIE fit per session, and one kfp.local
coea_training run per test session shared by every pytest-xdist worker."""

from __future__ import annotations

import contextlib
import io
import json
import os
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


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every pytest-xdist worker of this session sees (the parent of the workers' base temps)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def training_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], str]:
    """(run dir, outputs, console text) of coea_training under kfp.local on the tiny config (rec_k 5), run ONCE
    per test session: the first worker to get the file lock runs it and records it; the others read the record
    (tests only read the run folder, or copy its state)."""
    from filelock import FileLock

    from pipelines.local import run_training_locally

    root = _session_root(tmp_path_factory) / "trained"
    record = root / "record.json"
    with FileLock(f"{root}.lock"):
        if not record.exists():
            (root / "run").mkdir(parents=True, exist_ok=True)
            console = io.StringIO()
            with contextlib.redirect_stdout(console):
                paths = run_training_locally(tiny_config(), root / "run", rec_k=5)
            record.write_text(json.dumps({"paths": {k: str(v) for k, v in paths.items()},
                                          "console": console.getvalue()}))
    done = json.loads(record.read_text())
    return root / "run", {k: Path(v) for k, v in done["paths"].items()}, done["console"]


@pytest.fixture(scope="session")
def trained(training_run: tuple[Path, dict[str, Path], str]) -> tuple[Path, dict[str, Path]]:
    """(run dir, outputs) of the session's training run."""
    return training_run[0], training_run[1]
