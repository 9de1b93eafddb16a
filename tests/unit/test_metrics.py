"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest

from coea.evaluation.metrics import (
    PER_USER,
    coverage,
    evaluate_lists,
    hit,
    long_tail,
    long_tail_proportion,
    ndcg,
    novel_proportion,
    per_user_metrics,
    serendipity_hit,
    serendipity_precision,
)

R = ["a", "b", "c", "d"]


def test_hit():
    assert hit(R, {"c"}, 3) == 1.0
    assert hit(R, {"d"}, 3) == 0.0  # outside the cut-off
    assert hit(R, set(), 4) == 0.0


def test_ndcg_hand_value():
    # hits at ranks 2 and 4 (i = 1, 3); |T| = 3 -> ideal ranks 1..3
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg(R, {"b", "d", "z"}, 4) == pytest.approx(dcg / idcg)
    assert ndcg(R, {"a"}, 4) == 1.0
    assert ndcg(R, set(), 4) == 0.0


def test_novelty_and_tail():
    assert novel_proportion(R, {"a", "c"}, 4) == 0.5
    assert novel_proportion(R[:2], set(), 4) == 0.5  # a short list still divides by K
    assert long_tail_proportion(R, {"d", "x"}, 4) == 0.25
    assert long_tail_proportion(["d"], {"d"}, 4) == 0.25  # and so does the long-tail share


def test_serendipity():
    history, future = {"a"}, {"a", "c"}
    novel = future - history
    assert serendipity_hit(R, novel, 4) == 1.0
    assert serendipity_hit(["a", "b"], novel, 2) == 0.0  # a hit on a known category is not serendipitous
    assert serendipity_precision(R, novel, 4) == 0.25


def test_coverage():
    assert coverage({"u": ["a", "b"], "v": ["b", "c"]}, 6, 2) == 0.5
    assert coverage({"u": ["a", "b"], "v": ["b", "c"]}, 6, 1) == pytest.approx(2 / 6)


def test_long_tail_head_reaches_share():
    counts = {"a": 50, "b": 30, "c": 10, "d": 6, "e": 4, "f": 0}
    # head: a (50%) then b (80%) reaches 80% -> tail = the rest, zero-count categories included
    assert long_tail(counts, 0.8) == {"c", "d", "e", "f"}
    assert long_tail(counts, 0.5) == {"b", "c", "d", "e", "f"}


def test_evaluate_lists_averages_over_users():
    recs = {"u": ["a", "b"], "v": ["c", "d"]}
    history = {"u": {"a"}, "v": {"x"}}
    future = {"u": {"b"}, "v": {"a"}}
    m = evaluate_lists(recs, ["u", "v", "w"], history, future, tail={"d"}, n_categories=4, ks=[2])
    assert m["C-H@2"] == pytest.approx(1 / 3)  # only u hits; w has no list
    assert m["NCP@2"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert m["S-H@2"] == pytest.approx(1 / 3)  # b is novel for u and taken up
    assert m["CLTP@2"] == pytest.approx(0.5 / 3)
    assert m["Cov@2"] == 1.0


def test_per_user_metrics_one_value_per_user_in_order():
    recs = {"u": ["a", "b"], "v": ["c", "d"]}
    history = {"u": {"a"}, "v": {"x"}}
    future = {"u": {"b"}, "v": {"a"}}
    pu = per_user_metrics(recs, ["w", "v", "u"], history, future, tail={"d"}, ks=[1, 2])
    assert set(pu) == {f"{m}@{k}" for k in (1, 2) for m in PER_USER}
    np.testing.assert_array_equal(pu["S-H@2"], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(pu["NCP@2"], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(pu["CLTP@1"], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(pu["CLTP@2"], [0.0, 0.5, 0.0])
    assert per_user_metrics(recs, [], history, future, set(), [2])["C-H@2"].shape == (0,)


def old_evaluate_lists(recs, users, history, future, tail, n_categories, ks):
    """evaluate_lists as it was before per_user_metrics: its figures must not move by one bit."""
    out = {}
    for k in ks:
        sums = dict.fromkeys(PER_USER, 0.0)
        for u in users:
            r = recs.get(u, [])
            h, t = history.get(u, frozenset()), future.get(u, frozenset())
            n = {c for c in t if c not in h}
            for name, fn in PER_USER.items():
                sums[name] += fn(r, h, t, n, tail, k)
        for name in PER_USER:
            out[f"{name}@{k}"] = sums[name] / len(users)
        out[f"Cov@{k}"] = coverage({u: recs.get(u, []) for u in users}, n_categories, k)
    return out


def test_evaluate_lists_unchanged_on_random_lists():
    rng = np.random.default_rng(0)
    cats = [f"c{i}" for i in range(30)]
    users = [f"u{i}" for i in range(300)]

    def some(n):
        return {str(c) for c in rng.choice(cats, size=n, replace=False)}

    recs = {u: [str(c) for c in rng.choice(cats, size=int(rng.integers(0, 11)), replace=False)] for u in users[10:]}
    history = {u: some(int(rng.integers(1, 8))) for u in users}
    future = {u: some(int(rng.integers(0, 6))) for u in users}
    args = (recs, users, history, future, some(12), len(cats), [3, 7, 10])
    new, old = evaluate_lists(*args), old_evaluate_lists(*args)
    assert list(new) == list(old) and new == old  # same keys, same order, bit-identical values


def test_serendipity_counts_only_novel_take_ups_and_ndcg_ranks_the_whole_future():
    """PER_USER on hand values where S-H/S-P (novel take-ups N = T - H) differ from C-H/C-N (any future category):
    closes the gap where S-H/S-P computed on T, or C-N computed on N, passed every test."""
    recs = {"u": ["a", "b", "c", "d"], "v": ["q", "p"], "w": ["a"]}
    history = {"u": {"a", "x"}, "v": {"p"}, "w": {"a"}}
    future = {"u": {"a", "c", "z"}, "v": {"q"}, "w": {"a"}}  # N: u {c, z}, v {q}, w {} (w only returns to a)
    pu = per_user_metrics(recs, ["u", "v", "w"], history, future, tail=set(), ks=[2, 4])
    # C-H: everyone's list holds a future category in its top 2. S-H@2: u's top 2 (a, b) holds no novel one,
    # w's a is a history category; only v's q is novel. At K=4 u's c (novel, taken up) counts.
    np.testing.assert_array_equal(pu["C-H@2"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(pu["S-H@2"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(pu["S-H@4"], [1.0, 1.0, 0.0])
    # S-P = |R[:K] ∩ N| / K: u 0/2 then 1/4 (c; z is not listed), v 1/2 then 1/4, w 0
    np.testing.assert_array_equal(pu["S-P@2"], [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(pu["S-P@4"], [0.25, 0.25, 0.0])
    # C-N on T: u hits a at i=0 (and c at i=2 within K=4); |T| = 3, so IDCG@2 = 1 + 1/log2(3), IDCG@4 adds 1/2
    inv3 = 1 / math.log2(3)
    assert pu["C-N@2"].tolist() == pytest.approx([1 / (1 + inv3), 1.0, 1.0])
    assert pu["C-N@4"].tolist() == pytest.approx([(1 + 0.5) / (1 + inv3 + 0.5), 1.0, 1.0])
    m = evaluate_lists(recs, ["u", "v", "w"], history, future, tail=set(), n_categories=8, ks=[2])
    assert (m["C-H@2"], m["S-H@2"], m["S-P@2"]) == (1.0, pytest.approx(1 / 3), pytest.approx(0.5 / 3))
    assert m["C-N@2"] == pytest.approx((1 / (1 + inv3) + 2.0) / 3)
