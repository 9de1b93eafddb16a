"""The chronological protocol: future, history, short-term, cold-start, min_gap, periods."""

import pytest

from coea.config import SplitConfig
from coea.data.split import chronological_split, cold_start_warning, split_periods
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
    # the short-term set (markov, the prompts, cold-start groups) is built from the kept history too, not from the
    # dropped session right before the future (audit, session 55: a set from every pre-future event passed)
    assert s.histories.short_term["u"] == ["a", "b"]


def test_periods_partition_the_log():
    df = _log()
    parts = split_periods(df, 3)
    assert sum(len(p.interactions) for p in parts) == len(df)
    assert all(parts[i].end == parts[i + 1].start for i in range(2))
    by_time = split_periods(df, 2, equal="time")
    assert by_time[0].end - by_time[0].start == pytest.approx(by_time[1].end - by_time[1].start, abs=1)
    with pytest.raises(ValueError):
        split_periods(df, 0)


def test_a_split_that_leaves_most_users_cold_start_warns_with_the_settings_to_change():
    rows = [(f"s{k}", f"i{k}-{t}", "abcdef"[t], t * 100) for k in range(3) for t in range(6)]  # three 6-event users
    log = events(rows + [("u", f"u{t}", "abcdef"[t % 6], t * 100) for t in range(20)])  # one 20-event user
    warning = cold_start_warning(chronological_split(log, SplitConfig()))  # n_future 10: the 6-event users are cold
    assert warning is not None
    assert "3 of 4 users (75%)" in warning and "split.min_history=5" in warning and "split.n_future=10" in warning
    assert "split: {n_future: 2, min_history: 2}" in warning and "--config short" in warning
    assert cold_start_warning(chronological_split(log, SplitConfig(n_future=2, min_history=2))) is None
    half = events(rows[:12] + [("u", f"u{t}", "a", t * 100) for t in range(20)] + [("w", f"w{t}", "b", t * 100)
                                                                                  for t in range(20)])
    assert cold_start_warning(chronological_split(half, SplitConfig())) is None  # 2 of 4 cold: not most


def test_a_min_gap_that_leaves_most_users_cold_says_the_gap_did_it_not_short_histories():
    # four 20-event users; three rate everything within one hour, so a 1-day gap empties their history
    rows = [(f"s{k}", f"i{k}-{t}", "abcd"[t % 4], 10 * t) for k in range(3) for t in range(20)]
    rows += [("u", f"u{t}", "abcd"[t % 4], 86_400 * t) for t in range(20)]
    split = chronological_split(events(rows), SplitConfig(min_gap=86_400))
    assert len(split.cold_users) == 3 and split.cold_by_gap == 3
    warning = cold_start_warning(split)
    assert warning is not None and "split.min_gap=86400" in warning and "3 users are cold only because of it" in warning
    assert "n_future: 2" not in warning  # the short-history hint would be wrong advice here
    no_gap = chronological_split(events(rows), SplitConfig())
    assert no_gap.cold_by_gap == 0 and cold_start_warning(no_gap) is None
