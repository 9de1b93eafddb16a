"""Short-term interest sets: the distinct categories of a user's most recent history events."""

from __future__ import annotations

import pandas as pd

from coea.data.schema import CATEGORY, TIMESTAMP, USER


def short_term_sets(history: pd.DataFrame, n_short: int, window: int | None = None) -> dict[str, list[str]]:
    """user -> distinct categories of the last ``n_short`` events (or, with ``window`` seconds, of the events
    within ``window`` of the user's last event), ordered by last occurrence, most recent last.

    ``history`` must be sorted per user in time order (as :func:`coea.data.split.chronological_split` gives).
    """
    out: dict[str, list[str]] = {}
    for user, g in history.groupby(USER, sort=False):
        g = g[g[TIMESTAMP] >= g[TIMESTAMP].iloc[-1] - window] if window is not None else g.iloc[-n_short:]
        out[str(user)] = list(dict.fromkeys(reversed(g[CATEGORY].tolist())))[::-1]
    return out
