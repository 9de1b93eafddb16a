"""Stage ``recommend``: the served top-K of one method for every user, fitted on every event of the log.

Serving holds nothing out: the histories are the whole prepared log (:func:`serving_histories`), so every
user's latest events shape their list. Each row's ``score`` is the method's own score of the category, from
the same computation as the ranking (higher is better; always finite).

Across periods (the recurring pipeline, whose log is one period): ``seen`` holds the categories each user had in
earlier periods (``user_id, category``, the state's ``seen.parquet``); a ``+x`` list excludes those as well as the
period's, and ``seen_out`` receives the union for the next period. ``served`` holds the lists served now (a
recommendations parquet): a user without an event in the period keeps theirs, so a publish never drops the users
who were inactive in one period.
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
_REC_DTYPES = {"user_id": str, "rank": "int64", "category": str, "score": "float64"}


@dataclass(frozen=True)
class RecommendResult:
    """A recommendations parquet (user_id, rank, category, score) and what it holds."""

    path: Path
    method: str
    k: int
    n_users: int
    n_rows: int
    short_users: int  # users with fewer than k rows (fewer than k allowed categories)
    kept_users: int = 0  # users without an event in the log whose served lists were kept (``served``)


def serving_histories(interactions: pd.DataFrame, cfg: RunConfig) -> Histories:
    """Every event counts as history when recommending for serving (nothing is held out)."""
    events = sort_events(interactions).reset_index(drop=True)
    short = short_term_sets(events, cfg.split.n_short, cfg.split.short_window)
    return Histories(events, short, sorted(events[CATEGORY].unique()))


def seen_pairs(interactions: pd.DataFrame, before: Path | None = None) -> pd.DataFrame:
    """Every (user_id, category) pair of the log, with the pairs of ``before`` (a seen parquet of earlier periods,
    when given), each once, sorted."""
    frames = [interactions[[USER, CATEGORY]].astype(str)]
    if before is not None:
        old = pd.read_parquet(before)
        if missing := sorted({USER, CATEGORY} - set(old.columns)):
            raise CoeaInputError(f"no column {missing[0]!r} in the seen categories", source=str(before),
                                 fix="it is written by the pipelines' recommend step: user_id, category")
        frames.append(old[[USER, CATEGORY]].astype(str))
    return pd.concat(frames).drop_duplicates().sort_values([USER, CATEGORY]).reset_index(drop=True)


def _carried(served: Path, users: list[str], k: int) -> pd.DataFrame:
    """The served rows (top ``k`` ranks) of the users who are not in ``users``: lists kept from the last publish."""
    old = pd.read_parquet(served)
    return old[~old[USER].astype(str).isin(users) & (old["rank"] <= k)][REC_COLUMNS]


def run_recommend(cfg: RunConfig, data_dir: Path, dirs: ArtifactDirs, method: str, k: int,
                  out_path: Path, *, seen: Path | None = None, served: Path | None = None,
                  seen_out: Path | None = None) -> RecommendResult:
    """Top-``k`` categories per user by ``method`` (``+x``: the categories the user has had excluded, in this log
    and in ``seen``), written as parquet (user_id, rank, category, score); the users of ``served`` who have no
    event in the log keep their lists; ``seen_out``: where the seen pairs go (module doc)."""
    seed_everything(cfg.eval.seed)
    if k < 1:
        raise CoeaInputError(f"k must be >= 1, got {k}", option="k", fix="pass a K of at least 1, e.g. 10")
    spec = parse_method(method)
    hist = serving_histories(read_prepared(data_dir).interactions, cfg)
    artifacts = load_artifacts([method], dirs, resolve_device(cfg.device))
    model = build_method(spec, method_context(cfg, artifacts)).fit(hist)
    users = sorted(hist.interactions[USER].astype(str).unique())
    pairs = seen_pairs(hist.interactions, seen)
    novel = spec.exclude_history or model.exclude_history  # `+x`, or a `_novel` method: the seen pairs are banned
    exclude = pairs.groupby(USER)[CATEGORY].agg(set).to_dict() if novel else None
    ranked = model.ranked(users, k, exclude=exclude)
    rows = [(u, rank, c, s) for u in users for rank, (c, s) in enumerate(ranked[u], start=1)]
    frame = pd.DataFrame(rows, columns=REC_COLUMNS).astype(_REC_DTYPES)
    kept = _carried(served, users, k) if served is not None else frame.iloc[:0]
    short = sum(len(ranked[u]) < k for u in users)
    if short:
        log.warning("recommendations: %d users have fewer than %d allowed categories", short, k)
    if len(kept):
        frame = pd.concat([frame, kept.astype(_REC_DTYPES)], ignore_index=True)
        log.info("recommendations: %d users without an event in this log keep their served lists",
                 kept[USER].nunique())
    with atomic_path(Path(out_path)) as tmp:
        frame.to_parquet(tmp, index=False)
    if seen_out is not None:
        with atomic_path(Path(seen_out)) as tmp:
            pairs.to_parquet(tmp, index=False)
    log.info("recommendations: %s top-%d for %d users -> %s", method, k, len(users), out_path)
    return RecommendResult(Path(out_path), method, k, int(frame[USER].nunique()), len(frame), short,
                           int(kept[USER].nunique()))
