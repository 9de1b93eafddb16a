"""Stage ``recommend``: the served top-K of one method for every user, fitted on every event of the log.

Serving holds nothing out: the histories are the whole prepared log (:func:`serving_histories`), so every
user's latest events shape their list. Each row's ``score`` is the method's own score of the category, from
the same computation as the ranking (higher is better; always finite).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from coea.config import RunConfig
from coea.data.prepared import read_prepared
from coea.data.schema import CATEGORY, USER, sort_events
from coea.data.split import Histories
from coea.device import resolve_device
from coea.dsie.short_term import short_term_sets
from coea.errors import CoeaInputError
from coea.evaluation.registry import build_method, method_context, parse_method
from coea.layout import ArtifactDirs
from coea.stages.artifacts import load_artifacts
from coea.utils import atomic_path, seed_everything

log = logging.getLogger(__name__)
REC_COLUMNS = ["user_id", "rank", "category", "score"]


@dataclass(frozen=True)
class RecommendResult:
    """A recommendations parquet (user_id, rank, category, score) and what it holds."""

    path: Path
    method: str
    k: int
    n_users: int
    n_rows: int
    short_users: int  # users with fewer than k rows (fewer than k allowed categories)


def serving_histories(interactions: pd.DataFrame, cfg: RunConfig) -> Histories:
    """Every event counts as history when recommending for serving (nothing is held out)."""
    events = sort_events(interactions).reset_index(drop=True)
    short = short_term_sets(events, cfg.split.n_short, cfg.split.short_window)
    return Histories(events, short, sorted(events[CATEGORY].unique()))


def run_recommend(cfg: RunConfig, data_dir: Path, dirs: ArtifactDirs, method: str, k: int,
                  out_path: Path) -> RecommendResult:
    """Top-``k`` categories per user by ``method`` (``+x``: the user's seen categories excluded), written as
    parquet (user_id, rank, category, score)."""
    seed_everything(cfg.eval.seed)
    if k < 1:
        raise CoeaInputError(f"k must be >= 1, got {k}", option="k", fix="e.g. k=10")
    spec = parse_method(method)
    hist = serving_histories(read_prepared(data_dir).interactions, cfg)
    artifacts = load_artifacts([method], dirs, resolve_device(cfg.device))
    model = build_method(spec, method_context(cfg, artifacts)).fit(hist)
    users = sorted(hist.interactions[USER].astype(str).unique())
    exclude = hist.user_categories() if spec.exclude_history else None
    ranked = model.ranked(users, k, exclude=exclude)
    rows = [(u, rank, c, s) for u in users for rank, (c, s) in enumerate(ranked[u], start=1)]
    frame = pd.DataFrame(rows, columns=REC_COLUMNS)
    short = sum(len(ranked[u]) < k for u in users)
    if short:
        log.warning("recommendations: %d users have fewer than %d allowed categories", short, k)
    with atomic_path(Path(out_path)) as tmp:
        frame.to_parquet(tmp, index=False)
    log.info("recommendations: %s top-%d for %d users -> %s", method, k, len(users), out_path)
    return RecommendResult(Path(out_path), method, k, int(frame[USER].nunique()), len(frame), short)
