"""The in-process job: data -> split -> DSIE -> methods (LLM methods train their LLMs in-process) ->
evaluation, under one run directory. The library path and the benchmark baseline; ``coea run`` runs the
``coea_training`` pipeline with kfp.local instead (``coea.kfp.local.run_training_locally``), whose steps call
the ``run_*`` functions of :mod:`coea.stages`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coea.config import RunConfig
from coea.data.loaders import LoadedData, load_data
from coea.data.split import Split, chronological_split
from coea.dsie.run import DsieResult, run_dsie
from coea.evaluation.evaluate import EvalResult, run_evaluate
from coea.evaluation.registry import method_context
from coea.utils import seed_everything

log = logging.getLogger(__name__)


@dataclass
class GroupJobResult:
    """What ``run_group`` produced."""

    dsie: DsieResult
    split: Split
    loaded: LoadedData
    paths: dict[str, Path] = field(default_factory=dict)


@dataclass
class JobResult:
    """What ``run_job`` produced."""

    evaluation: EvalResult
    groups: GroupJobResult
    summary: dict[str, Any] = field(default_factory=dict)


def _truth(loaded: LoadedData) -> dict[str, int] | None:
    if loaded.truth is None:
        return None
    return dict(zip(loaded.truth.groups["user_id"], loaded.truth.groups["group"].astype(int), strict=True))


def run_group(cfg: RunConfig, out_dir: Path, loaded: LoadedData | None = None) -> GroupJobResult:
    """``coea group``: load, split, fit DSIE on histories, write its outputs under ``out_dir``."""
    seed_everything(cfg.dsie.seed)
    loaded = loaded or load_data(cfg.data, cfg.synthetic)
    split = chronological_split(loaded.interactions, cfg.split)
    dsie = run_dsie(cfg.dsie, split.histories, split.warm_users, split.cold_users, out_dir, truth=_truth(loaded))
    return GroupJobResult(dsie, split, loaded, dsie.paths)


def run_job(cfg: RunConfig, run_dir: Path) -> JobResult:
    """The main job; DSIE outputs go to ``run_dir/dsie``, evaluation outputs to ``run_dir``."""
    loaded = load_data(cfg.data, cfg.synthetic)
    grouped = run_group(cfg, run_dir / "dsie", loaded)
    ctx = method_context(cfg)
    ctx.cache[("dsie", id(grouped.split.histories))] = grouped.dsie
    evaluation = run_evaluate(cfg, run_dir, loaded, split=grouped.split, ctx=ctx)
    return JobResult(evaluation, grouped, group_summary(grouped.dsie))


def group_summary(dsie: DsieResult) -> dict[str, Any]:
    """The handful of DSIE figures a person looks at first."""
    rep = dsie.report
    csid = rep["csid_groups"]
    out = {
        "M_N": csid["sizes"]["M_N"],
        "group_size_min_median_max": [csid["sizes"]["min"], csid["sizes"]["median"], csid["sizes"]["max"]],
        "category_cosine_ratio": round(csid["category_cosine"]["ratio"], 4),
        "kmeans_category_cosine_ratio": round(rep["kmeans_same_M_N"]["category_cosine"]["ratio"], 4),
        "codebook_utilisation": [round(c["utilisation"], 3) for c in rep["codebooks"]],
        "cold_start_users": rep["cold_start_users"],
    }
    if "ari_vs_planted" in csid:
        out["ari_vs_planted"] = round(csid["ari_vs_planted"], 4)
        out["kmeans_ari_vs_planted"] = round(rep["kmeans_same_M_N"]["ari_vs_planted"], 4)
    return out
