"""Each stage hands the device it resolved from ``cfg.device`` to what it trains and loads, instead of a device
of its own: on this CPU-only machine the resolved device is "cpu" either way, so it is marked here (a ``str``
subclass equal to "cpu") and the test checks that the very object reaches the SFT trainer, the PCO stage's model
loading and the evaluate and recommend stages' model loading. A stand-in for a GPU run: what the GPU then does
with the device is the trainers' (tests/unit/test_device.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from coea.layout import ArtifactDirs


class Resolved(str):
    """The device a stage resolved: equal to "cpu", told apart from a literal "cpu" by its type."""


class Reached(Exception):
    """Raised by a spy once it has the device: nothing after it needs to run."""


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> Resolved:
    from coea.stages import evaluate, pco, recommend, sft

    marker = Resolved("cpu")
    for module in (sft, pco, evaluate, recommend):
        monkeypatch.setattr(module, "resolve_device", lambda device: marker)
    return marker


def _spy(monkeypatch: pytest.MonkeyPatch, module, name: str) -> list:
    seen: list = []

    def spy(*args, device=None, **kwargs):
        seen.append(device)
        raise Reached

    monkeypatch.setattr(module, name, spy)
    return seen


def test_sft_stage_trains_on_the_resolved_device(fitted, resolved, monkeypatch, tmp_path: Path) -> None:
    from coea.llm import run as llm_run
    from coea.stages import run_sft_stage

    seen = _spy(monkeypatch, llm_run, "train_sft")
    with pytest.raises(Reached):
        run_sft_stage(fitted.cfg, fitted.data, fitted.dsie, tmp_path / "llm", which=("novelty",))
    assert seen and seen[0] is resolved


def test_pco_evaluate_and_recommend_load_the_models_on_the_resolved_device(fitted, llm_dirs, resolved, monkeypatch,
                                                                          tmp_path: Path) -> None:
    from coea.llm import models
    from coea.stages import run_evaluate_stage, run_pco_stage, run_recommend

    seen = _spy(monkeypatch, models, "load_bundle")  # coea.llm.artifact imports it when it loads
    with pytest.raises(Reached):
        run_pco_stage(fitted.cfg, fitted.data, fitted.dsie, (llm_dirs["novelty"], llm_dirs["relevance"]),
                      tmp_path / "pco")
    dirs = ArtifactDirs(dsie=fitted.dsie, llm=(llm_dirs["novelty"], llm_dirs["relevance"]))
    cfg = replace(fitted.cfg, eval=replace(fitted.cfg.eval, methods=["nllm_sft+x"]))
    with pytest.raises(Reached):
        run_evaluate_stage(cfg, fitted.data, tmp_path / "eval", dirs)
    with pytest.raises(Reached):
        run_recommend(cfg, fitted.data, dirs, "nllm_sft+x", 5, tmp_path / "recs.parquet")
    assert len(seen) == 3 and all(device is resolved for device in seen), seen
