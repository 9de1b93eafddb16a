"""The short-history view of MovieLens (benchmarks/short_view.py): one contiguous window per user, at least 5
events (or all of a shorter user's), day timestamps, seeded; it refuses to write into the project."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.short_view import DAY, main, short_view


def _log(counts: dict[str, int]) -> pd.DataFrame:
    rows = []
    for user, n in counts.items():
        for i in range(n):  # events 5 hours apart: several a day
            rows.append({"user_id": user, "item_id": f"{user}-{i}", "category": f"c{i % 7}",
                         "timestamp": 1_000_000_000 + i * 5 * 3600, "rating": 4.0})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # rows out of order on purpose


def test_each_user_keeps_one_contiguous_window_of_at_least_five_events_at_day_resolution():
    counts = {f"u{k}": n for k, n in enumerate([3, 5, 12, 40, 200, 200, 200, 200])}
    view = short_view(_log(counts), mean_events=10, seed=0)
    for user, n in counts.items():
        kept = view[view.user_id == user]
        idx = sorted(int(i.split("-")[1]) for i in kept.item_id)
        assert len(idx) == n if n <= 5 else 5 <= len(idx) <= n  # all of a short user's events, else >= 5
        assert idx == list(range(idx[0], idx[0] + len(idx)))  # contiguous in the user's time order
    assert (view.timestamp % DAY == 0).all()
    assert view.groupby("user_id").timestamp.apply(lambda t: t.is_monotonic_increasing).all()
    lengths = view[view.user_id.isin([f"u{k}" for k in range(4, 8)])].groupby("user_id").size()
    assert lengths.nunique() > 1  # lengths are drawn, not fixed


def test_the_view_is_seeded_and_its_mean_length_follows_the_option():
    log = _log({f"u{k}": 300 for k in range(400)})
    a, b = short_view(log, 10, seed=3), short_view(log, 10, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(short_view(log, 10, seed=4))
    assert np.mean(a.groupby("user_id").size()) == pytest.approx(10, rel=0.15)
    assert np.mean(short_view(log, 20, seed=3).groupby("user_id").size()) == pytest.approx(20, rel=0.15)
    with pytest.raises(ValueError, match="mean-events"):
        short_view(log, 4, seed=0)


def test_it_refuses_to_write_movielens_into_the_project(capsys):
    from benchmarks._common import REPO

    assert main(["--out", str(REPO / "ml_short.csv")]) == 2
    assert "inside the project" in capsys.readouterr().err
    assert not (REPO / "ml_short.csv").exists()
