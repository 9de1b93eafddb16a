"""Metrics against hand-computed values."""

import math

import pytest

from coea.evaluation.metrics import (
    coverage,
    evaluate_lists,
    hit,
    long_tail,
    long_tail_proportion,
    ndcg,
    novel_proportion,
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
