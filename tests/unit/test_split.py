"""The chronological protocol: future, history, short-term, cold-start, min_gap, periods."""

import pytest

from coea.config import SplitConfig
from coea.data.split import chronological_split, split_periods
from tests.helpers import events


def _log():
    rows = [("u", f"i{t}", c, t * 100) for t, c in enumerate("aabbcdde")]  # 8 events
    rows += [("v", f"j{t}", c, t * 100) for t, c in enumerate("xyz")]  # 3 events
    return events(rows)


def test_future_history_short_term_and_cold():
    s = chronological_split(_log(), SplitConfig(n_future=2, n_short=3, min_history=2))
    fut = s.future[s.future.user_id == "u"]
    assert fut["category"].tolist() == ["d", "e"]
    hist = s.histories.interactions
    assert hist[hist.user_id == "u"]["category"].tolist() == list("aabbcd")
    assert s.histories.short_term["u"] == ["b", "c", "d"]  # last 3 history events: b, c, d
    assert s.warm_users == ["u"] and s.cold_users == ["v"]  # v has 1 history event < 2
    assert s.future_categories["u"] == {"d", "e"}
    # nothing of the future is in the history
    assert set(zip(fut.item_id, fut.timestamp, strict=True)).isdisjoint(set(zip(hist.item_id, hist.timestamp,
                                                                                 strict=True)))


def test_validation_split_never_reads_the_test_future():
    """``validation``: the test future (last 2 of u: d, e) is gone; the validation future is the 2 events before
    it (c, d); the history ends before that; the category universe stays the whole log's."""
    cfg = SplitConfig(n_future=2, n_short=3, min_history=2)
    test = chronological_split(_log(), cfg)
    val = chronological_split(_log(), SplitConfig(n_future=2, n_short=3, min_history=2, validation=True))
    assert val.future[val.future.user_id == "u"]["category"].tolist() == ["c", "d"]
    assert val.histories.interactions.query("user_id == 'u'")["category"].tolist() == list("aabb")
    held = set(zip(test.future.item_id, test.future.timestamp, strict=True))
    for part in (val.future, val.histories.interactions):
        assert held.isdisjoint(zip(part.item_id, part.timestamp, strict=True))
    assert val.histories.categories == test.histories.categories == sorted(set("aabbcddexyz"))
    assert val.warm_users == ["u"] and val.cold_users == ["v"]  # v: 1 event left, all of it the validation future


def test_short_term_keeps_distinct_in_recency_order():
    s = chronological_split(_log(), SplitConfig(n_future=1, n_short=5, min_history=1))
    # history of u: a a b b c d d ; last 5: b b c d d -> distinct by last occurrence
    assert s.histories.short_term["u"] == ["b", "c", "d"]


def test_short_window():
    s = chronological_split(_log(), SplitConfig(n_future=1, n_short=99, min_history=1, short_window=150))
    # last history event at t=600; window keeps t >= 450 -> events at 500 (d), 600 (d)
    assert s.histories.short_term["u"] == ["d"]


def test_min_gap_drops_events_close_to_future():
    s = chronological_split(_log(), SplitConfig(n_future=2, n_short=3, min_history=1, min_gap=250))
    # first future event of u at t=600 -> history keeps t <= 350: a a b b (0..300)
    hist = s.histories.interactions
    assert hist[hist.user_id == "u"]["timestamp"].max() <= 350
    assert s.dropped_by_gap == 2 + 1  # u drops t=400,500; v (future at 100, 200) drops its t=0


def test_periods_partition_the_log():
    df = _log()
    parts = split_periods(df, 3)
    assert sum(len(p.interactions) for p in parts) == len(df)
    assert all(parts[i].end == parts[i + 1].start for i in range(2))
    by_time = split_periods(df, 2, equal="time")
    assert by_time[0].end - by_time[0].start == pytest.approx(by_time[1].end - by_time[1].start, abs=1)
    with pytest.raises(ValueError):
        split_periods(df, 0)
