"""The SFT stage tells the R-LLM's held-out check which PCO reward the run's config uses (so a near-chance R-LLM
warns only when that reward scores with it)."""

from dataclasses import replace
from pathlib import Path

import pytest

from coea.stages import run_sft_stage


@pytest.mark.parametrize("reward", ["feedback", "serendipity"])
def test_sft_stage_passes_the_configs_pco_reward_to_the_heldout_check(tmp_path: Path, fitted, monkeypatch, reward):
    from coea.llm import run as llm_run
    from coea.llm.sft import SftResult

    seen = []
    monkeypatch.setattr(llm_run, "train_sft", lambda *args, **kwargs: SftResult(steps=1))
    monkeypatch.setattr(llm_run, "heldout_auc", lambda *args, **kwargs: seen.append(args[3]) or {})
    cfg = replace(fitted.cfg, pco=replace(fitted.cfg.pco, reward=reward))
    run_sft_stage(cfg, fitted.data, fitted.dsie, tmp_path / "llm", which=("relevance",))
    assert seen == [reward]
