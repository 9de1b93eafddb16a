"""Boundary and ordering rules of the chronological split and the short-term sets, each pinned on a log small
enough to work out by hand (the protocol itself: ``coea.data.split``'s module docstring)."""

import pandas as pd

from coea.config import SplitConfig
from coea.data.split import chronological_split
from coea.dsie.short_term import short_term_sets
from tests.helpers import events


def test_short_term_orders_categories_by_last_occurrence_most_recent_last():
    """History a, b, a: ``a`` was seen last, so it comes last; first-occurrence order would give a, b."""
    history = events([("u", "i0", "a", 0), ("u", "i1", "b", 1), ("u", "i2", "a", 2)])
    assert short_term_sets(history, n_short=3) == {"u": ["b", "a"]}


def test_short_window_includes_an_event_exactly_window_seconds_before_the_last():
    """window=100, last event at t=200: the event at t=100 is exactly 100 s before it and is inside; t=0 is not."""
    history = events([("u", "i0", "a", 0), ("u", "i1", "b", 100), ("u", "i2", "c", 200)])
    assert short_term_sets(history, n_short=99, window=100) == {"u": ["b", "c"]}


def _in_order_rows():
    return ([("u", f"i{t}", c, t * 100) for t, c in enumerate("abcde")]  # u: a@0 b@100 c@200 d@300 e@400
            + [("v", f"j{t}", c, t * 100) for t, c in enumerate("xyzx")])  # v: x@0 y@100 z@200 x@300


def test_split_sorts_the_log_itself_so_row_order_does_not_matter():
    """The split sorts events per user by time: the rows of the log in reverse and interleaved order give the
    same future, history and short-term sets as the time-sorted log, and those are the hand-worked ones."""
    cfg = SplitConfig(n_future=2, n_short=2, min_history=2)
    rows = _in_order_rows()
    shuffled = rows[::-1]
    shuffled = shuffled[::2] + shuffled[1::2]  # reversed, then interleaved: no user's events in time order
    base = chronological_split(events(rows), cfg)
    assert base.future.query("user_id == 'u'")["category"].tolist() == ["d", "e"]
    assert base.future.query("user_id == 'v'")["category"].tolist() == ["z", "x"]
    assert base.histories.interactions["timestamp"].tolist() == [0, 100, 200, 0, 100]
    assert base.histories.short_term == {"u": ["b", "c"], "v": ["x", "y"]}
    other = chronological_split(events(shuffled), cfg)
    pd.testing.assert_frame_equal(other.future, base.future)
    pd.testing.assert_frame_equal(other.histories.interactions, base.histories.interactions)
    assert other.histories.short_term == base.histories.short_term
    assert (other.warm_users, other.cold_users) == (base.warm_users, base.cold_users) == (["u", "v"], [])
    assert other.future_categories == base.future_categories == {"u": {"d", "e"}, "v": {"z", "x"}}


def test_events_of_one_second_are_ordered_by_item_id_whatever_the_row_order():
    """Audit, session 55: the tie-break ("ties by item id", ``coea.data.schema.sort_events``) was never met by a
    test, so a sort on user and time alone (ties in file row order: MovieLens rates many movies in one second)
    passed. Three events at t=100: the item id decides which one is the future, in either row order."""
    cfg = SplitConfig(n_future=1, n_short=3, min_history=1)
    rows = [("u", "i0", "a", 0), ("u", "i1", "b", 100), ("u", "i2", "c", 100), ("u", "i3", "d", 100)]
    for order in (rows, rows[::-1], [rows[0], rows[3], rows[1], rows[2]]):
        split = chronological_split(events(order), cfg)
        assert split.future["category"].tolist() == ["d"], order
        assert split.histories.short_term["u"] == ["a", "b", "c"], order


def test_a_user_with_exactly_min_history_history_events_is_warm():
    """min_history=3: u keeps 3 history events (5 minus n_future 2) and is warm; v keeps 2 and is cold."""
    rows = [("u", f"i{t}", "a", t) for t in range(5)] + [("v", f"j{t}", "a", t) for t in range(4)]
    s = chronological_split(events(rows), SplitConfig(n_future=2, n_short=3, min_history=3))
    assert s.warm_users == ["u"] and s.cold_users == ["v"]


def test_min_gap_keeps_an_event_exactly_min_gap_seconds_before_the_first_future_event():
    """First future event at t=400, min_gap=100: the event at t=300 is exactly min_gap before it and stays."""
    rows = [("u", f"i{t}", "a", t * 100) for t in range(5)]
    s = chronological_split(events(rows), SplitConfig(n_future=1, n_short=3, min_history=1, min_gap=100))
    assert s.histories.interactions["timestamp"].tolist() == [0, 100, 200, 300]
    assert s.dropped_by_gap == 0


def test_cold_by_gap_counts_only_users_the_gap_made_cold():
    """min_history=3, n_future=1, min_gap=150. w: history 0,100,200 (warm without the gap), the gap drops 200
    (future at 300) -> cold because of the gap. c: one history event (0, future at 1000), cold anyway. d: one
    history event (0, future at 100) that the gap drops too, cold anyway. Only w counts."""
    rows = ([("w", f"w{t}", "a", t * 100) for t in range(4)]
            + [("c", "c0", "a", 0), ("c", "c1", "a", 1000)]
            + [("d", "d0", "a", 0), ("d", "d1", "a", 100)])
    s = chronological_split(events(rows), SplitConfig(n_future=1, n_short=3, min_history=3, min_gap=150))
    assert s.warm_users == [] and s.cold_users == ["c", "d", "w"]
    assert s.dropped_by_gap == 2  # w's t=200 and d's t=0
    assert s.cold_by_gap == 1
