"""The ``ease_novel`` baseline (coea.data.ease): EASE's closed form, the per-category sums, recency and the limits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coea.data.ease import ease_weights, fit_ease
from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER
from coea.evaluation.registry import build_method, method_context, parse_method


def _log(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[USER, ITEM, CATEGORY, TIMESTAMP])


def test_ease_weights_equal_one_ridge_regression_per_item_on_the_others() -> None:
    """EASE's closed form is, column by column, the ridge regression of item j on every other item (Steck 2019):
    computed here directly, one least-squares problem per column."""
    rng = np.random.default_rng(0)
    x = (rng.random((40, 7)) < 0.35).astype(np.float64)
    lam = 3.0
    b = ease_weights(x.T @ x, lam)
    for j in range(x.shape[1]):
        others = [i for i in range(x.shape[1]) if i != j]
        a = x[:, others]
        ridge = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], ridge, atol=1e-10)
        assert b[j, j] == 0.0


def test_ease_weights_leave_the_gram_matrix_unchanged() -> None:
    gram = np.array([[2.0, 1.0], [1.0, 3.0]])
    ease_weights(gram, 1.0)
    np.testing.assert_array_equal(gram, [[2.0, 1.0], [1.0, 3.0]])


def _three_users() -> pd.DataFrame:
    # items a1, a2 in category A; b1 in B; c1 in C. u1 and u2 watched a1 then b1; u3 watched a1 then c1 (later).
    return _log([("u1", "a1", "A", 1), ("u1", "b1", "B", 2), ("u2", "a1", "A", 1), ("u2", "b1", "B", 2),
                 ("u2", "a2", "A", 3), ("u3", "a1", "A", 1), ("u3", "c1", "C", 2), ("u4", "a2", "A", 1)])


def test_category_scores_are_the_sums_of_positive_item_scores_of_the_recency_weighted_query() -> None:
    """Recomputed by hand from the weights: q_u = 0.5 ** (age / half_life) per item, s_u = q_u B, per category the
    sum of max(s_ui, 0), plus 1e-9 x popularity."""
    df = _three_users()
    categories = ["A", "B", "C"]
    model = fit_ease(df, categories, lam=1.0, half_life=2.0)
    items = ["a1", "a2", "b1", "c1"]
    x = np.array([[1, 0, 1, 0], [1, 1, 1, 0], [1, 0, 0, 1], [0, 1, 0, 0]], dtype=float)
    b = ease_weights(x.T @ x, 1.0)
    np.testing.assert_allclose(model.weights, b)
    q_u2 = np.array([0.5 ** (2 / 2.0), 1.0, 0.5 ** (1 / 2.0), 0.0])  # u2: a1 age 2, a2 age 0, b1 age 1
    s = np.maximum(q_u2 @ b, 0.0)
    cat_of = {"a1": 0, "a2": 0, "b1": 1, "c1": 2}
    expected = np.array([1e-9 * 5, 1e-9 * 2, 1e-9 * 1])
    for i, item in enumerate(items):
        expected[cat_of[item]] += s[i]
    np.testing.assert_allclose(model.scores(["u2"])[0], expected, rtol=1e-12, atol=1e-15)


def test_an_item_scores_the_categories_its_co_viewers_took_up() -> None:
    """u4 watched only a2, which u2 watched beside a1 and b1: B (u2's other category) ranks above C, which only a
    user without a2 took up."""
    scores = fit_ease(_three_users(), ["A", "B", "C"], lam=0.5).scores(["u4"])[0]
    assert scores[1] > scores[2]


def test_a_user_without_history_ranks_by_popularity_and_comes_back_in_the_asked_order() -> None:
    model = fit_ease(_three_users(), ["A", "B", "C"])
    out = model.scores(["nobody", "u1", "nobody"])
    np.testing.assert_allclose(out[0], 1e-9 * np.array([5.0, 2.0, 1.0]))
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_allclose(out[1], model.scores(["u1"])[0])


def test_the_half_life_weights_recent_items_up_and_inf_weights_every_item_alike() -> None:
    """u1 watched x1 (category X) long ago and y1 (Y) last; X's co-viewers took up P, Y's took up Q. With a short
    half-life Q outranks P; unweighted (inf) the two tie."""
    rows = [("u1", "x1", "X", 1), ("u1", "f1", "F", 2), ("u1", "f2", "F", 3), ("u1", "y1", "Y", 4)]
    for k in range(3):
        rows += [(f"p{k}", "x1", "X", 1), (f"p{k}", "pp", "P", 2), (f"q{k}", "y1", "Y", 1), (f"q{k}", "qq", "Q", 2)]
    categories = ["F", "P", "Q", "X", "Y"]
    recent = fit_ease(_log(rows), categories, lam=1.0, half_life=1.0).scores(["u1"])[0]
    flat = fit_ease(_log(rows), categories, lam=1.0, half_life=math.inf).scores(["u1"])[0]
    assert recent[2] > recent[1]
    assert flat[2] == pytest.approx(flat[1], rel=1e-9)


def test_a_movie_watched_again_weighs_by_its_latest_event() -> None:
    """u1 watched r1 long ago and again last: its query weight is 1 (age 0, the latest event), not 0.5 ** (3 / 1)."""
    df = _log([("u1", "r1", "A", 1), ("u1", "s1", "B", 2), ("u1", "s2", "B", 3), ("u1", "r1", "A", 4),
               ("u2", "r1", "A", 1), ("u2", "s1", "B", 2)])
    model = fit_ease(df, ["A", "B"], half_life=1.0)
    row = model.queries[model.user_row["u1"]].toarray()[0]  # items by name: r1, s1, s2
    np.testing.assert_allclose(row, [1.0, 0.5 ** 2, 0.5 ** 1])


def test_max_items_keeps_the_most_frequent_items_only() -> None:
    model = fit_ease(_three_users(), ["A", "B", "C"], max_items=2)  # a1 (3 events), then a2 and b1 (2 each): a2 by name
    assert model.weights.shape == (2, 2)
    assert model.item_category.tolist() == [0, 0]  # a1 and a2, both in A


def test_an_item_logged_in_two_categories_counts_in_its_most_frequent_one() -> None:
    df = _log([("u1", "m", "A", 1), ("u2", "m", "B", 1), ("u3", "m", "B", 1), ("u3", "n", "A", 2)])
    model = fit_ease(df, ["A", "B"], lam=1.0)
    assert model.item_category.tolist() == [1, 0]  # items sorted by name: m -> B, n -> A
    tie = _log([("u1", "m", "B", 1), ("u2", "m", "A", 1)])  # one event each: the first name wins
    assert fit_ease(tie, ["A", "B"]).item_category.tolist() == [0]


@pytest.mark.parametrize(("kwargs", "word"), [({"lam": 0.0}, "lam"), ({"half_life": -1.0}, "half_life"),
                                              ({"max_items": 0}, "max_items")])
def test_bad_settings_are_refused(kwargs, word) -> None:
    with pytest.raises(ValueError, match=word):
        fit_ease(_three_users(), ["A", "B", "C"], **kwargs)


def test_ease_novel_is_registered_and_never_returns_a_history_category() -> None:
    from coea.config import RunConfig
    from coea.data.split import Histories

    df = _three_users()
    histories = Histories(interactions=df, short_term={}, categories=["A", "B", "C"])
    method = build_method(parse_method("ease_novel"), method_context(RunConfig())).fit(histories)
    recs = method.recommend(["u1", "u3", "u4"], k=3)
    assert recs["u1"] == ["C"]  # u1 had A and B
    assert recs["u3"] == ["B"]
    assert recs["u4"][0] == "B" and "A" not in recs["u4"]
