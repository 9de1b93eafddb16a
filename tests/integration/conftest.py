"""Fixtures of the integration tests: one tiny SFT run folder shared by the PCO tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sft_run(tmp_path_factory) -> Path:
    """A run folder (data/, dsie/, llm/ and config.json) of :func:`tests.pipeline.pipeline_helpers.tiny_config`
    trained once per session up to the SFT models; copy it before writing into it."""
    import torch

    from coea.config import save_config
    from coea.evaluation.registry import Need
    from coea.flow import run_flow
    from coea.layout import RunLayout
    from tests.pipeline.pipeline_helpers import tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config()
    root = tmp_path_factory.mktemp("tiny_sft_run")
    run_flow(cfg, RunLayout(root), needs=frozenset({Need.LLMS}), evaluate=False)
    save_config(cfg, RunLayout(root).config)
    return root

