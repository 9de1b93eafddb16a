"""The leakage-free evaluation protocol.

Per user, events in time order (ties by item id):
- ``future``  = the last ``n_future`` events: what methods are scored on, never shown to them;
- ``history`` = everything before; with ``min_gap > 0`` only events at least ``min_gap`` seconds before the
  user's first future event are kept (the ones in between are dropped, so a method cannot exploit the
  same browsing session); the metrics still count the dropped events' categories as seen
  (:meth:`Split.seen_before_future`): a category taken up in the gap is not new in the future;
- ``short_term`` = the distinct categories of the last ``n_short`` history events (most recent last), or of the
  history events within ``short_window`` seconds of the last history event when that option is set;
- users with fewer than ``min_history`` history events are *cold-start*: kept apart and scored separately;
- ``validation``: the last ``n_future`` events are removed first and never read, and the rules above run on the
  rest, so settings can be chosen on a validation window and reported on the test future.

Leakage rule: a method is fitted on :class:`Histories` only, which carries no future event. The category
universe (the list of category names) is catalogue metadata taken from the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coea.config import SplitConfig
from coea.data.schema import CATEGORY, TIMESTAMP, USER, sort_events
from coea.dsie.short_term import short_term_sets
from coea.errors import CoeaInputError


@dataclass(frozen=True)
class Histories:
    """Everything a method may be fitted on."""

    interactions: pd.DataFrame  # history events of every user (warm and cold)
    short_term: dict[str, list[str]]  # user -> distinct recent categories, most recent last
    categories: list[str]  # the category universe, sorted

    def user_categories(self) -> dict[str, set[str]]:
        """H_u: the set of categories in each user's history."""
        return {u: set(g) for u, g in self.interactions.groupby(USER, sort=False)[CATEGORY]}


@dataclass(frozen=True)
class Split:
    """The protocol's output: fit on ``histories``, score on ``future``."""

    histories: Histories
    future: pd.DataFrame
    warm_users: list[str]  # evaluated in the main slice
    cold_users: list[str]  # fewer than min_history history events
    config: SplitConfig
    dropped_by_gap: int = 0  # history events removed by min_gap
    cold_by_gap: int = 0  # cold users who would be warm without min_gap
    future_categories: dict[str, set[str]] = field(default_factory=dict)  # T_u
    gap_categories: dict[str, set[str]] = field(default_factory=dict)  # categories of the events min_gap dropped

    def seen_before_future(self) -> dict[str, set[str]]:
        """H of the metrics: each user's categories before the future, the events ``min_gap`` kept from the methods
        included (a category the user took up in the gap is not new when it comes back in the future: session 56,
        before which the 1-day view counted it as a serendipitous hit). Without a gap, the histories' categories."""
        seen = self.histories.user_categories()
        for user, cats in self.gap_categories.items():
            seen[user] = seen.get(user, set()) | cats
        return seen


def _last_events(df: pd.DataFrame, n: int) -> np.ndarray:
    """Mask of each user's last ``n`` events of a time-sorted table."""
    return (df.groupby(USER, sort=False).cumcount(ascending=False) < n).to_numpy()


def chronological_split(interactions: pd.DataFrame, cfg: SplitConfig) -> Split:
    """Split a canonical table per user; see the module docstring for the rules. With ``cfg.validation`` each
    user's last ``n_future`` events (the test future) are removed first and the split runs on the rest: its
    future is a validation window inside the test split's history."""
    df = sort_events(interactions)
    categories = sorted(df[CATEGORY].unique())  # catalogue metadata of the whole log, as in the test split
    if cfg.validation:
        df = df[~_last_events(df, cfg.n_future)]
    is_future = _last_events(df, cfg.n_future)
    future = df[is_future].reset_index(drop=True)
    history = df[~is_future]
    dropped = cold_by_gap = 0
    gap: dict[str, set[str]] = {}
    if cfg.min_gap > 0 and len(history):
        warm_before_gap = set(history.groupby(USER).size().loc[lambda n: n >= cfg.min_history].index)
        first_future = future.groupby(USER)[TIMESTAMP].min()
        cutoff = history[USER].map(first_future) - cfg.min_gap
        keep = (history[TIMESTAMP] <= cutoff).to_numpy()
        dropped = int((~keep).sum())
        gap = {u: set(g) for u, g in history[~keep].groupby(USER, sort=False)[CATEGORY]}
        history = history[keep]
    history = history.reset_index(drop=True)
    n_hist = history.groupby(USER).size()
    users = sorted(df[USER].unique())
    warm = [u for u in users if n_hist.get(u, 0) >= cfg.min_history]
    warm_set = set(warm)
    cold = [u for u in users if u not in warm_set]
    if dropped:
        cold_by_gap = sum(u in warm_before_gap for u in cold)
    short = short_term_sets(history, cfg.n_short, cfg.short_window)
    histories = Histories(history, short, categories)
    future_cats = {str(u): set(g) for u, g in future.groupby(USER, sort=False)[CATEGORY]}
    return Split(histories, future, warm, cold, cfg, dropped, cold_by_gap, future_cats, gap)


MOSTLY_COLD_SHARE = 0.5  # above this share of cold-start users :func:`cold_start_warning` warns


def cold_start_warning(split: Split) -> str | None:
    """A warning when most users are cold-start under the split (fewer than ``min_history`` history events once
    their last ``n_future`` are held out), else None: then the LLMs and DSIE see few histories and most users get
    the cold-start ranking. Typical of a log of short histories read with the default split (a 5-15-event log:
    2,517 of 2,999 users cold; docs/results.md, session 19)."""
    users = len(split.warm_users) + len(split.cold_users)
    if not users or len(split.cold_users) <= MOSTLY_COLD_SHARE * users:
        return None
    c = split.config
    head = (f"{len(split.cold_users)} of {users} users ({len(split.cold_users) / users:.0%}) have fewer than "
            f"split.min_history={c.min_history} history events once their last {held_out(c)} are held out")
    if split.cold_by_gap > len(split.cold_users) / 2:  # the gap, not short histories, makes most of them cold
        return (f"{head} and split.min_gap={c.min_gap} s has removed the events closer than that to their future "
                f"({split.cold_by_gap} users are cold only because of it), so they are scored as cold-start; that is "
                f"what a min_gap view measures; lower split.min_gap to score more of them warm")
    return (f"{head}, so they are scored as cold-start; for a log of short histories lower both "
            f"(e.g. split: {{n_future: 2, min_history: 2}}), or run with --config short, which does and also sets "
            f"the LLMs' prompt and training measured on such logs")


def require_warm_users(split: Split, source: str | None = None) -> None:
    """A :class:`~coea.errors.CoeaInputError` when no user keeps ``min_history`` history events under the split:
    nothing could be fitted or scored (every user would be cold-start), so a run stops here instead of writing
    an empty table with exit 0."""
    if split.warm_users:
        return
    c = split.config
    users = len(split.cold_users)
    gap = f" and split.min_gap={c.min_gap} s" if c.min_gap > 0 else ""
    validation = " (or drop split.validation)" if c.validation else ""
    raise CoeaInputError(
        f"none of the {users} users has split.min_history={c.min_history} history events once their last "
        f"{held_out(c)} are held out{gap}: nothing to fit or score", source=source, option="split",
        fix="lower them for short histories: split: {n_future: 2, min_history: 2} in the --config file (coea "
            f"evaluate: --n-future 2 --min-history 2), or --config short{validation}")


def held_out(c: SplitConfig) -> str:
    """The events a split holds out of each user's end, in words: ``split.n_future=N`` events, twice that with
    ``validation`` (the test window, then the validation window scored before it)."""
    if c.validation:
        return f"2 x split.n_future={2 * c.n_future} (split.validation: the test and the validation windows)"
    return f"split.n_future={c.n_future}"


@dataclass(frozen=True)
class Period:
    """One global time window ``[start, end)`` of the log."""

    index: int
    start: int
    end: int
    interactions: pd.DataFrame


def split_periods(interactions: pd.DataFrame, periods: int, *, equal: str = "count") -> list[Period]:
    """Cut the log into ``periods`` consecutive global time windows.

    ``equal="count"`` puts (about) the same number of events in each window (timestamp quantiles);
    ``equal="time"`` gives windows of the same duration. Every event lands in exactly one window.
    """
    if periods < 1:
        raise ValueError(f"periods must be >= 1, got {periods}")
    if equal not in ("count", "time"):
        raise ValueError(f"equal must be 'count' or 'time', got {equal!r}")
    ts = interactions[TIMESTAMP].to_numpy()
    lo, hi = int(ts.min()), int(ts.max()) + 1
    if equal == "count":
        inner = np.quantile(ts, np.linspace(0, 1, periods + 1)[1:-1], method="higher").astype(np.int64)
    else:
        inner = np.linspace(lo, hi, periods + 1)[1:-1].astype(np.int64)
    bounds = [lo, *[int(b) for b in inner], hi]
    out = []
    for i in range(periods):
        mask = (ts >= bounds[i]) & (ts < bounds[i + 1])
        out.append(Period(i, bounds[i], bounds[i + 1], interactions[mask].reset_index(drop=True)))
    return out
