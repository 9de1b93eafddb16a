"""Readers of SFT model directories (the writer is :func:`coea.llm.run.run_train_llms`: ``novelty/`` and/or
``relevance/`` under one dir, or one dir per model when the two SFT steps ran apart)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coea.dsie.artifact import read_groups_dir
from coea.errors import CoeaInputError
from coea.llm.sft_config import MODELS


def model_dirs(llm_dirs: Sequence[Path]) -> dict[str, Path]:
    """``{"novelty": dir, "relevance": dir}``: the first of ``llm_dirs`` holding each model's folder."""
    found = {}
    for name in MODELS:
        hit = next((Path(d) for d in llm_dirs if (Path(d) / name).is_dir()), None)
        if hit is None:
            raise CoeaInputError(f"no {name}/ model in {[str(d) for d in llm_dirs]}",
                                 source=llm_dirs[0] if llm_dirs else "llm",
                                 fix="pass the dir(s) written by the SFT stage (`coea train-llms`, the sft_* steps)")
        found[name] = hit
    return found


def load_llms(llm_dirs: Sequence[Path], dsie_dir: Path, *, device: str = "cpu", trainable: bool = False):
    """Both LLMs (:class:`~coea.llm.run.LlmTrainResult`) from ``llm_dirs`` on ``device``, with the DSIE dir's
    groups."""
    from coea.llm.models import load_bundle
    from coea.llm.run import LlmTrainResult
    from coea.llm.sft_data import group_infos

    found = model_dirs(llm_dirs)
    g = read_groups_dir(dsie_dir)
    bundles = {name: load_bundle(found[name] / name, trainable=trainable, device=device) for name in MODELS}
    return LlmTrainResult(bundles["novelty"], bundles["relevance"], {}, group_infos(g.groups, g.profiles))
