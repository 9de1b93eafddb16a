"""Deterministic synthetic interaction log with planted structure and its ground truth.

What is planted (all driven by one ``np.random.default_rng(seed)``):
- **long-tail popularity**: global category popularity follows a Zipf law (``popularity_exponent``);
- **groups**: each user belongs to one of ``n_groups`` groups; a group's long-term taste concentrates on
  ``core_categories`` categories (drawn with a mild popularity bias, so some are tail categories) mixed with
  15% global popularity; a user's latent *affinity* to every category is the group taste times log-normal
  personal noise, normalised;
- **short-term shifts**: at any time a user has a *focus* category (boosted by ``focus_strength``) that
  changes after a geometric number of events (mean ``focus_length``); events in one focus form a session;
- **adoption of new categories**: with probability ``explore_rate`` an event takes a category the user has
  never consumed, drawn by affinity among the unexplored ones, so serendipitous take-up follows affinity;
- **an interest shift** (only with ``shift_period`` set): the log is cut into ``shift_periods`` equal-count
  time periods (:func:`coea.data.split.split_periods`); from the start of period ``shift_period`` on, every
  event of a ``shift_strength`` share of the users moves from category ``c`` to ``pi(c)``, the category half
  the ranking away in the log's category popularity, counted over the whole log before the shift (rank ``r``
  of ``C`` -> rank ``(r + C // 2) mod C``, ties by index: the popular half and the tail half swap), and its
  item to the same-rank item of ``pi(c)``. Timestamps, activity and each user's
  diversity stay; what the users consume changes (mainstream tastes turn niche), and stays changed in the
  later periods. A separate generator (seeded by ``seed`` and a constant) picks the shifted users, so every
  event before the shift, and every event of a user not shifted, is exactly the one the same config without
  the shift (``shift_period=None``) gives.

The ground truth (planted group per user, affinity matrix users x categories) lets later stages measure group
recovery (ARI) and simulate whether a user would accept a recommended novel category. With a shift, the
affinities are the tastes before it.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coea.config import SyntheticConfig
from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER, sort_events

EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
_DAY = 86_400
_CAT, _ITEM = "_category_index", "_item_index"  # columns of the coded log, before the names are built
_SHIFT_STREAM = 0x5F1F7  # second seed word of the interest-shift generator (independent of the main one)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticData:
    """The log plus its ground truth."""

    interactions: pd.DataFrame  # canonical columns
    groups: pd.DataFrame  # user_id, group (planted)
    affinity: pd.DataFrame  # index user_id, one column per category, rows sum to 1

    def write_ground_truth(self, out_dir: Path) -> list[Path]:
        """Write ``truth_groups.parquet`` and ``truth_affinity.parquet`` under ``out_dir``."""
        from coea.utils import atomic_path

        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "truth_groups.parquet", out_dir / "truth_affinity.parquet"]
        for frame, path in zip((self.groups, self.affinity.reset_index()), paths, strict=True):
            with atomic_path(path) as tmp:
                frame.to_parquet(tmp, index=False)
        return paths


def category_names(n: int) -> list[str]:
    return [f"cat{i:02d}" for i in range(n)]


def _popularity(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    ranks = rng.permutation(cfg.n_categories) + 1
    pop = ranks.astype(float) ** -cfg.popularity_exponent
    return pop / pop.sum()  # (C,)


def _group_tastes(cfg: SyntheticConfig, pop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tastes = np.zeros((cfg.n_groups, cfg.n_categories))
    draw = np.sqrt(pop) / np.sqrt(pop).sum()
    for g in range(cfg.n_groups):
        cores = rng.choice(cfg.n_categories, size=cfg.core_categories, replace=False, p=draw)
        tastes[g, cores] = rng.dirichlet(np.full(cfg.core_categories, 2.0))
    tastes = 0.85 * tastes + 0.15 * pop[None, :]
    return tastes / tastes.sum(axis=1, keepdims=True)  # (G, C)


def _cdf(weights: np.ndarray) -> list[float]:
    """The cumulative distribution ``rng.choice(len(weights), p=weights / weights.sum())`` searches (the same
    arithmetic), as floats for :func:`bisect.bisect_right` (= its ``searchsorted(side="right")``)."""
    cdf = (weights / weights.sum()).cumsum()
    cdf /= cdf[-1]
    return cdf.tolist()


def _user_sequence(
    cfg: SyntheticConfig, affinity: np.ndarray, n_events: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Category index per event and whether the event starts a new session (bool), one user.

    Every random draw is the one of the plain recipe (``rng.choice(..., p=...)`` per event: one uniform searched
    in the same cumulative distribution, :func:`_cdf`), in the same order, so the log is bit-identical to it;
    the distribution of a repeat draw is reused until the explored set or the focus changes.
    """
    n_cat = cfg.n_categories
    explored = [int(c) for c in rng.choice(n_cat, size=min(3, n_cat), replace=False, p=affinity)]
    is_new = np.ones(n_cat, dtype=bool)
    is_new[explored] = False
    focus = 0  # position of the focus category in explored
    left_in_focus = rng.geometric(1.0 / cfg.focus_length)
    cats = np.empty(n_events, dtype=np.int64)
    starts = np.zeros(n_events, dtype=bool)
    repeat_cdf: list[float] | None = None  # valid until the explored set or the focus changes
    for e in range(n_events):
        if left_in_focus <= 0 or e == 0:
            if e > 0:
                focus = bisect.bisect_right(_cdf(affinity[explored]), rng.random())
                left_in_focus = rng.geometric(1.0 / cfg.focus_length)
            starts[e], repeat_cdf = True, None
        if len(explored) < n_cat and rng.random() < cfg.explore_rate:
            unexplored = np.flatnonzero(is_new)
            cat = int(unexplored[bisect.bisect_right(_cdf(affinity[unexplored]), rng.random())])
            explored.append(cat)
            is_new[cat], repeat_cdf = False, None
        else:
            if repeat_cdf is None:
                weights = affinity[explored]
                weights[focus] *= 1.0 + cfg.focus_strength
                repeat_cdf = _cdf(weights)
            cat = explored[bisect.bisect_right(repeat_cdf, rng.random())]
        cats[e] = cat
        left_in_focus -= 1
    return cats, starts


def _timestamps(cfg: SyntheticConfig, sessions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds for one user's events: minutes apart within a session, days apart between sessions."""
    span = cfg.span_days * _DAY
    start = EPOCH + rng.integers(0, int(0.3 * span))
    n_sessions = max(int(sessions.sum()), 1)
    between = rng.exponential(0.6 * span / n_sessions, size=sessions.size)
    within = rng.exponential(600.0, size=sessions.size) + 30.0
    gaps = np.where(sessions, between, within)
    gaps[0] = 0.0
    return (start + np.cumsum(gaps)).astype(np.int64)


def _inject_shift(cfg: SyntheticConfig, coded: pd.DataFrame, users: list[str]) -> pd.DataFrame:
    """Move the shifted users' events from period ``cfg.shift_period`` on to the categories half the popularity
    ranking away (module doc). ``coded`` holds category and item *indices* (columns ``_CAT``, ``_ITEM``), so
    an item follows its category."""
    from coea.data.split import split_periods

    assert cfg.shift_period is not None
    rng = np.random.default_rng([cfg.seed, _SHIFT_STREAM])
    counts = np.bincount(coded[_CAT].to_numpy(), minlength=cfg.n_categories)  # (C,) events per category
    order = np.argsort(-counts, kind="stable")  # (C,) category indices, most popular first
    swap = np.empty(cfg.n_categories, dtype=np.int64)
    swap[order] = np.roll(order, -(cfg.n_categories // 2))  # rank r -> rank (r + C // 2) mod C
    n_shifted = int(round(cfg.shift_strength * cfg.n_users))
    shifted = set(rng.choice(users, size=n_shifted, replace=False).tolist())
    start = split_periods(coded, cfg.shift_periods)[cfg.shift_period].start
    moved = (coded[TIMESTAMP] >= start).to_numpy() & coded[USER].isin(shifted).to_numpy()
    out = coded.copy()
    out.loc[moved, _CAT] = swap[out.loc[moved, _CAT].to_numpy()]
    log.info("interest shift: %d users, %d events from %d (period %d of %d) relabelled", n_shifted,
             int(moved.sum()), start, cfg.shift_period, cfg.shift_periods)
    return out


def _coded_log(users: list[str], parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """The log with category and item *indices*, users in order, each user's events in generation order."""
    counts = np.fromiter((len(c) for c, _, _ in parts), dtype=np.int64, count=len(parts))
    return pd.DataFrame({USER: np.repeat(np.asarray(users, dtype=object), counts),
                         _CAT: np.concatenate([c for c, _, _ in parts]),
                         _ITEM: np.concatenate([i for _, i, _ in parts]),
                         TIMESTAMP: np.concatenate([t for _, _, t in parts])})


def _named_log(cfg: SyntheticConfig, coded: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns: item ids ``i<category>_<item>`` and category names looked up from small tables."""
    cat_idx, item_idx = coded[_CAT].to_numpy(), coded[_ITEM].to_numpy()
    item_names = np.array([f"i{c:02d}_{i:03d}" for c in range(cfg.n_categories)
                           for i in range(cfg.items_per_category)], dtype=object)  # (C * items,)
    cats = np.array(category_names(cfg.n_categories), dtype=object)
    return pd.DataFrame({USER: coded[USER], ITEM: item_names[cat_idx * cfg.items_per_category + item_idx],
                         CATEGORY: cats[cat_idx], TIMESTAMP: coded[TIMESTAMP].astype(np.int64)},
                        index=coded.index)


def generate_synthetic(cfg: SyntheticConfig) -> SyntheticData:
    """Build the log and its ground truth; the same config always gives the same data."""
    rng = np.random.default_rng(cfg.seed)
    cats = category_names(cfg.n_categories)
    pop = _popularity(cfg, rng)
    tastes = _group_tastes(cfg, pop, rng)
    user_group = rng.integers(0, cfg.n_groups, size=cfg.n_users)
    noise = np.exp(rng.normal(0.0, 0.3, size=(cfg.n_users, cfg.n_categories)))
    affinity = tastes[user_group] * noise
    affinity /= affinity.sum(axis=1, keepdims=True)  # (U, C)
    item_pop = np.arange(1, cfg.items_per_category + 1, dtype=float) ** -1.0
    item_pop /= item_pop.sum()
    users = [f"u{u:04d}" for u in range(cfg.n_users)]
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per user: category, item, timestamp
    for u in range(cfg.n_users):
        n_events = max(cfg.min_interactions, int(rng.poisson(cfg.mean_interactions)))
        cat_idx, sessions = _user_sequence(cfg, affinity[u], n_events, rng)
        ts = _timestamps(cfg, sessions, rng)
        items = rng.choice(cfg.items_per_category, size=n_events, p=item_pop)
        parts.append((cat_idx, items, ts))
    coded = _coded_log(users, parts)
    coded = coded.drop_duplicates(subset=[USER, _CAT, _ITEM, TIMESTAMP])  # (category, item) <-> item id
    if cfg.shift_period is not None:
        coded = _inject_shift(cfg, coded, users)
    df = _named_log(cfg, coded)
    groups = pd.DataFrame({USER: users, "group": user_group.astype(int)})
    aff = pd.DataFrame(affinity, columns=cats, index=pd.Index(users, name=USER))
    return SyntheticData(interactions=sort_events(df), groups=groups, affinity=aff)
