"""``run_pco``: PCO rounds on top of SFT models, with an optional per-round evaluation callback.

Outputs under ``out_dir``: the loop's checkpoints (``rounds/round_NNN/``, ``pco_state.json``), then
``pco_metrics.json`` (one row per round, round 0 = the starting models) and ``pco_metrics.png``. Each row holds
the loop's own round figures (pairs, DPO margin and KL estimate, acceptance before/after, seconds per step)
plus what ``evaluate`` returns (the split metrics of :class:`coea.evaluation.pco_metrics.SplitEvaluator`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coea.data.split import Histories
from coea.llm.models import ModelBundle
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo
from coea.pco.config import PcoConfig
from coea.pco.loop import Evaluate, PcoLoop, PcoResult
from coea.pco.plot import plot_rounds
from coea.utils import write_json_atomic

log = logging.getLogger(__name__)


def run_pco(cfg: PcoConfig, llm: LlmConfig, histories: Histories, groups: dict[str, GroupInfo],
            novelty: ModelBundle, relevance: ModelBundle, out_dir: Path | None, *, n_short: int, device: str,
            resume: bool = False, evaluate: Evaluate | None = None, encoder: Any = None,
            exposure: Mapping[str, Sequence[str]] | None = None) -> PcoResult:
    """PCO rounds on ``histories`` from the given models, which are trained in place (pass copies to keep
    them); ``evaluate(round, novelty, relevance)`` adds its metrics to every row. With ``resume`` the callback
    first sees the starting models (a stateful callback such as SplitEvaluator takes round 0 from them).
    ``encoder``: the DSIE long-term encoder (``EncoderResult``), which the teacher reward reads. ``exposure``: what
    the serving store showed each user before the history's period (user -> served categories, best first;
    ``pco.exposure_inject``)."""
    loop = PcoLoop(cfg, llm, histories.interactions, list(histories.categories), groups, novelty, relevance,
                   out_dir, evaluate, n_short=n_short, device=device, encoder=encoder, exposure=exposure)
    if evaluate is not None and resume and out_dir is not None:
        evaluate(0, loop.novelty, loop.relevance)
    result = loop.run(resume=resume)
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "pco_metrics.json", {"rounds": result.rounds, "k": cfg.k})
        plot_rounds(result.rounds, Path(out_dir) / "pco_metrics.png", "PCO rounds")
    return result
