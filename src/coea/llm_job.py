"""``coea train-llms`` and ``coea recommend-llm``: the LLM stage on top of a ``coea group`` output directory."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coea.config import RunConfig
from coea.data.loaders import load_data
from coea.data.split import chronological_split
from coea.errors import CoeaInputError
from coea.evaluation.baselines import top_k
from coea.evaluation.registry import build_method, method_context, parse_method
from coea.llm.run import LlmTrainResult, load_trained_llms, run_train_llms
from coea.utils import atomic_path

log = logging.getLogger(__name__)
LLM_METHODS = ("nllm_sft", "dual_best_of_n", "rllm_rank")


@dataclass(frozen=True)
class GroupsDir:
    """What the LLM stage reads from a ``coea group`` output directory."""

    groups: pd.DataFrame
    profiles: dict
    csid_levels: list[int]


def read_groups_dir(path: Path) -> GroupsDir:
    needed = ["groups.parquet", "profiles.json", "dsie_config.json"]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise CoeaInputError(f"missing {missing}", source=path, fix="pass the --out directory of `coea group`")
    dsie = json.loads((path / "dsie_config.json").read_text())
    levels = dsie["rqvae"]["codebook_sizes"][: dsie["group"]["depth"]]
    return GroupsDir(pd.read_parquet(path / "groups.parquet"), json.loads((path / "profiles.json").read_text()),
                     levels)


def run_train_llms_job(cfg: RunConfig, groups_dir: Path, out_dir: Path) -> LlmTrainResult:
    loaded = load_data(cfg.data, cfg.synthetic)
    split = chronological_split(loaded.interactions, cfg.split)
    g = read_groups_dir(groups_dir)
    return run_train_llms(cfg.llm, split.histories, g.groups, g.profiles, g.csid_levels, out_dir)


def run_recommend_llm(cfg: RunConfig, groups_dir: Path, models_dir: Path, method: str, k: int,
                      out_path: Path) -> pd.DataFrame:
    """Top-K of an LLM method (``name`` or ``name+x``) for every user into a Parquet file (user_id, rank,
    category, score)."""
    spec = parse_method(method)
    if spec.base not in LLM_METHODS:
        raise CoeaInputError(f"{method!r} is not an LLM method", option="--method", fix=f"choose from {LLM_METHODS}")
    loaded = load_data(cfg.data, cfg.synthetic)
    split = chronological_split(loaded.interactions, cfg.split)
    g = read_groups_dir(groups_dir)
    ctx = method_context(cfg)
    ctx.cache[("llms", id(split.histories))] = load_trained_llms(models_dir, g.groups, g.profiles)
    m = build_method(spec, ctx).fit(split.histories)
    users = sorted(set(split.warm_users) | set(split.cold_users))
    scores = np.array(m.score(users), dtype=np.float64)
    history = split.histories.user_categories()
    if spec.exclude_history or m.exclude_history:
        for row, u in enumerate(users):
            scores[row, [m.index[c] for c in history.get(u, ())]] = -np.inf
    recs = top_k(scores, users, m.categories, k)
    rows = [(u, r + 1, c, float(scores[i, m.index[c]])) for i, u in enumerate(users) for r, c in enumerate(recs[u])]
    frame = pd.DataFrame(rows, columns=["user_id", "rank", "category", "score"])
    with atomic_path(out_path) as tmp:
        frame.to_parquet(tmp, index=False)
    log.info("wrote %d recommendations for %d users to %s", len(frame), len(users), out_path)
    return frame
