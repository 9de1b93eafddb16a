"""Fixtures of the integration tests: one tiny SFT run folder shared by the PCO tests; the ``coea`` warnings of a
test (``warnings_seen``), which keeps the CLI's log setup away from later tests' captured stderr."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.helpers import WarningCollector, build_once


@pytest.fixture(scope="session")
def tiny_sft_run(tmp_path_factory) -> Path:
    """A run folder (data/, dsie/, llm/ and config.json) of :func:`tests.pipeline.pipeline_helpers.tiny_config`
    trained once per test session (all workers) up to the SFT models; copy it before writing into it."""
    import torch

    from coea.config import save_config
    from coea.evaluation.registry import Need
    from coea.flow import run_flow
    from coea.layout import RunLayout
    from tests.pipeline.pipeline_helpers import tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config()

    def build(root: Path) -> None:
        run_flow(cfg, RunLayout(root), needs=frozenset({Need.LLMS}), evaluate=False)
        save_config(cfg, RunLayout(root).config)

    return build_once(tmp_path_factory, "tiny_sft_run", build)


@pytest.fixture
def warnings_seen(monkeypatch) -> list[str]:
    """The ``coea`` warnings of this test. The logger holds only this collector, so the CLI's log setup (once
    per process, bound to the stderr of its time) stays out of the way whatever ran before."""
    collect = WarningCollector()
    logger = logging.getLogger("coea")
    monkeypatch.setattr(logger, "handlers", [collect])
    monkeypatch.setattr(logger, "propagate", False)
    return collect.messages
