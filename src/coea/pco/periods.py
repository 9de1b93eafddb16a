"""What one PCO round sees: its time window of the history, the prompts of its active users, and the
R-LLM (and, with ``refresh_novelty``, N-LLM) refresh examples cut from the window's new interactions.

Rounds follow time: with ``follow_periods`` the history (never the evaluation future: callers pass the
split's histories) is cut into ``rounds`` consecutive windows holding about the same number of events; round
r prompts the users active in window r with their state at the window's end (group, short-term set of their
last ``n_short`` events before it, everything seen before it excluded from sampling), and refreshes the R-LLM
on the categories taken up inside window r. Without it every round is a pass over the full history (the
prompts of the last window) and the R-LLM is not refreshed (there is no new feedback to learn from).

Feedback (``PcoConfig.uses_feedback``: the feedback/hybrid rewards, the on-policy R-LLM refresh): the history is
cut into ``rounds + 1`` periods instead; round r uses period r and its *feedback period* is period r + 1
(``Window.feedback_end``), so every round, the last included, has one, and the last period is only ever read as
the last round's feedback. Feedback periods lie inside the history by construction (the last one ends at the
history's last event), never in the evaluation future. What a user took up there: :mod:`coea.pco.feedback`.

``periods: user`` (:func:`user_clock`) replays each user's own history instead: the loop runs on a replay clock
where a user's i-th of n history events happens at ``i / n`` of :data:`REPLAY_SPAN`, and the windows cut that
clock into equal spans, so every period holds the same share of every user's events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER
from coea.data.split import split_periods
from coea.llm.prompts import PromptContext
from coea.llm.sft_config import SftDataConfig
from coea.llm.sft_data import (
    GroupInfo,
    category_sequences,
    item_sequences,
    novelty_examples,
    novelty_targets,
    prompt_context,
    recent_categories,
    relevance_cut,
    relevance_examples,
    require_resolved,
)
from coea.pco.config import Periods


@dataclass(frozen=True)
class Window:
    """Events with ``start <= timestamp < end`` form round ``index``'s period; with feedback, events with
    ``end <= timestamp < feedback_end`` form its feedback period (None: the round reads no feedback)."""

    index: int
    start: int
    end: int
    feedback_end: int | None = None


@dataclass(frozen=True)
class RoundUsers:
    """The users a round prompts, with their context and the categories they had seen by the window's end."""

    users: list[str]
    contexts: list[PromptContext]
    seen: list[set[str]]


REPLAY_SPAN = 1_000_000  # the replay clock of ``periods: user``: a user's history spans [0, REPLAY_SPAN)


def user_clock(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` (rows in the same order) on the replay clock: each user's i-th of n events (by timestamp, ties
    in row order) at ``i * REPLAY_SPAN // n``."""
    per_user = history.groupby(USER, sort=False)[TIMESTAMP]
    pos = per_user.rank(method="first").to_numpy(dtype=np.int64) - 1
    n = per_user.transform("size").to_numpy(dtype=np.int64)
    return history.assign(**{TIMESTAMP: pos * REPLAY_SPAN // n})


def round_windows(history: pd.DataFrame, rounds: int, follow_periods: bool, *,
                  feedback: bool = False, periods: Periods = Periods.GLOBAL, start_share: float = 0.0) -> list[Window]:
    """One window per round (see module doc); all rounds share the full span without ``follow_periods``; with
    ``feedback`` (needs ``follow_periods``) ``rounds + 1`` periods, period r + 1 being window r's feedback.
    ``periods: user`` expects ``history`` on the replay clock (:func:`user_clock`) and cuts it into equal spans;
    from ``start_share`` of the clock on (the continual protocol: the share of each user's history the SFT saw,
    ``1 - llm.data.holdout_share``; the first window still prompts every user with their whole state before it)."""
    ts = history[TIMESTAMP]
    if not follow_periods:
        if feedback:
            raise ValueError("feedback periods need follow_periods")
        return [Window(r, int(ts.min()), int(ts.max()) + 1) for r in range(rounds)]
    if periods is Periods.USER:
        n, first = rounds + int(feedback), round(start_share * REPLAY_SPAN)
        b = [first + (REPLAY_SPAN - first) * k // n for k in range(n + 1)]
        return [Window(r, b[r], b[r + 1], b[r + 2] if feedback else None) for r in range(rounds)]
    if not feedback:
        return [Window(p.index, p.start, p.end) for p in split_periods(history, rounds, equal="count")]
    periods = split_periods(history, rounds + 1, equal="count")
    return [Window(p.index, p.start, p.end, nxt.end) for p, nxt in zip(periods, periods[1:], strict=False)]


def round_users(history: pd.DataFrame, groups: Mapping[str, GroupInfo], window: Window, n_short: int,
                limit: int | None, rng: np.random.Generator, data: SftDataConfig | None = None) -> RoundUsers:
    """Grouped users with an event in ``window``, at most ``limit`` of them (seeded subsample, sorted); their
    contexts follow the prompt options of ``data`` (:func:`coea.llm.sft_data.prompt_context`; None = the
    default options) with the short-term set of their last ``n_short`` events."""
    data = data or SftDataConfig()
    ts = history[TIMESTAMP].to_numpy()
    active = history.loc[(ts >= window.start) & (ts < window.end), USER].astype(str).unique()
    users = sorted(u for u in active if u in groups)
    if limit is not None and len(users) > limit:
        users = sorted(rng.choice(users, size=limit, replace=False).tolist())
    before = history[ts < window.end]
    cats = category_sequences(before)
    items = item_sequences(before) if data.items else {}
    ctxs = [prompt_context(groups[u], cats[u], data, recent_categories(cats[u], len(cats[u]), n_short),
                           items.get(u, ())) for u in users]
    return RoundUsers(users, ctxs, [set(cats[u]) for u in users])


def _window_cuts(history: pd.DataFrame, groups: Mapping[str, GroupInfo], window: Window,
                 cfg: SftDataConfig) -> Iterator[tuple[GroupInfo, list[str], np.ndarray, list[str], int]]:
    """(group, categories, timestamps and items of the history before the window's end, cut point) of every grouped
    user: up to ``cfg.cuts_per_user`` cut points evenly spread over the user's events inside ``window``, each with
    at least ``cfg.min_prefix`` events before it. A cut's targets can only come from events before the window's
    end (the categories passed stop there)."""
    require_resolved(cfg)
    ts = history[TIMESTAMP].to_numpy()
    before = history[ts < window.end]
    for user, g in before.groupby(USER, sort=True):
        info = groups.get(str(user))
        if info is None:
            continue
        times = g[TIMESTAMP].to_numpy()
        cats, first = g[CATEGORY].tolist(), int(np.searchsorted(times, window.start))
        lo, hi = max(first, cfg.min_prefix), len(cats) - 1
        if hi < lo:
            continue
        items = g[ITEM].astype(str).tolist() if cfg.items else []  # read only with an items: section
        for t in np.unique(np.linspace(lo, hi, num=cfg.cuts_per_user).round().astype(int)).tolist():
            yield info, cats, times, items, t


def refresh_examples(history: pd.DataFrame, groups: Mapping[str, GroupInfo], window: Window,
                     cfg: SftDataConfig, eos: str, rng: np.random.Generator, *,
                     with_group: bool = True) -> list[dict[str, str]]:
    """R-LLM SFT examples whose cut points AND taken-up categories lie inside ``window`` (the period's new
    feedback): cut at up to ``cfg.cuts_per_user`` evenly spread events of the window, positives = categories
    first taken up in the ``cfg.horizon`` events before the window's end from the cut's target start
    (:func:`coea.llm.sft_data.target_start`: ``cfg.gap`` seconds after the cut), negatives drawn as in
    :mod:`coea.llm.sft_data` (weighted by adoption popularity within the window), balanced, shuffled. ``cfg``
    must be resolved; unlike SFT's cuts, a refresh cut always has ``cfg.min_prefix`` events before it."""
    cuts = [cut for info, cats, times, items, t in _window_cuts(history, groups, window, cfg)
            if (cut := relevance_cut(info, cats, times, items, t, cfg)) is not None]
    return relevance_examples(cuts, cfg.negatives_per_positive, eos, rng, with_group=with_group)


def novelty_refresh_examples(history: pd.DataFrame, groups: Mapping[str, GroupInfo], window: Window,
                             cfg: SftDataConfig, eos: str) -> list[dict[str, str]]:
    """N-LLM SFT examples of the window's new interactions (``pco.refresh_novelty``): the cuts of
    :func:`refresh_examples`, with the N-LLM's SFT targets (:func:`coea.llm.sft_data.novelty_targets`: the
    categories of the ``novelty_horizon`` events from the target start outside the short-term set, by default)
    among the events before the window's end."""
    cuts = []
    for info, cats, times, items, t in _window_cuts(history, groups, window, cfg):
        ctx = prompt_context(info, cats[:t], cfg, items=items[:t])
        targets = novelty_targets(ctx, cats, times, t, cfg)
        if targets:
            cuts.append((ctx, targets))
    return novelty_examples(cuts, cfg, eos)
