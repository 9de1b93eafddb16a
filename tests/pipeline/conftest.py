"""Fixtures of the pipeline tests, each built once per test session and shared by every pytest-xdist worker
(:func:`tests.helpers.build_once`): one prepared tiny log and its DSIE fit, its two SFT models, one kfp.local
coea_training run, and one compile of every component and pipeline with the default settings."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from coea.config import RunConfig
from tests.helpers import build_once
from tests.pipeline.pipeline_helpers import tiny_config, tiny_llm


@dataclass(frozen=True)
class Fitted:
    cfg: RunConfig
    data: Path  # prepared data dir
    dsie: Path  # DSIE dir fitted on it


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    """The tiny config's prepared log and DSIE fit, built once per test session (all workers)."""
    from coea.stages import run_dsie_group, run_prepare_data

    cfg = tiny_config()

    def build(root: Path) -> None:
        run_prepare_data(cfg, root / "data")
        run_dsie_group(cfg, root / "data", root / "dsie")

    root = build_once(tmp_path_factory, "fitted", build)
    return Fitted(cfg, root / "data", root / "dsie")


@pytest.fixture(scope="session")
def llm_dirs(fitted: Fitted, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The N-LLM and the R-LLM trained one at a time (as the two SFT steps do), each in its own dir; once per
    test session (all workers)."""
    from coea.stages import run_sft_stage

    names = ("novelty", "relevance")

    def build(root: Path) -> None:
        for name in names:  # as the two pipeline steps: sft-relevance gets sft-novelty's model (llm.relevance_init)
            run_sft_stage(fitted.cfg, fitted.data, fitted.dsie, root / name, which=(name,),
                          novelty_dir=root / "novelty" / "novelty")

    root = build_once(tmp_path_factory, "llms", build)
    return {name: root / name for name in names}


@pytest.fixture(scope="session")
def training_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], str]:
    """(run dir, outputs, console text) of coea_training under kfp.local on the tiny config (rec_k 5; each SFT step
    on a seeded sample of 300 examples: the tests read what the steps wrote, not how well the models learned), run
    once per test session (all workers; tests only read the run folder, or copy its state)."""
    from pipelines.local import run_training_locally

    def build(root: Path) -> None:
        (root / "run").mkdir()
        console = io.StringIO()
        with contextlib.redirect_stdout(console):
            paths = run_training_locally(tiny_config(llm=tiny_llm(max_examples=300)), root / "run", rec_k=5)
        (root / "paths.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
        (root / "console.txt").write_text(console.getvalue(), encoding="utf-8")

    root = build_once(tmp_path_factory, "trained", build)
    paths = json.loads((root / "paths.json").read_text())
    return root / "run", {k: Path(v) for k, v in paths.items()}, (root / "console.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def trained(training_run: tuple[Path, dict[str, Path], str]) -> tuple[Path, dict[str, Path]]:
    """(run dir, outputs) of the session's training run."""
    return training_run[0], training_run[1]


@pytest.fixture(scope="session")
def default_compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``components/`` and ``pipelines/`` freshly compiled with the default settings (:func:`pipelines.compile.
    compile_all`), once per test session (all workers); folder name -> folder. Tests only read them, or copy them."""
    from pipelines.compile import compile_all

    root = build_once(tmp_path_factory, "compiled-default",
                      lambda root: compile_all(root / "components", root / "pipelines"))
    return {folder: root / folder for folder in ("components", "pipelines")}
