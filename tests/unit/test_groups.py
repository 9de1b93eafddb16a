"""Grouping rules, the group report's cosine maths, profiles."""

import numpy as np
import pandas as pd
import pytest

from coea.dsie.config import ProfileConfig
from coea.dsie.groups import assign_cold_start, category_distributions, group_key, merge_tiny_groups
from coea.dsie.profiles import build_profiles, group_stats
from coea.dsie.report import intra_inter_cosine, size_summary
from tests.helpers import events

CODEBOOKS = [np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])]


def test_group_key_is_prefix():
    assert group_key((3, 12, 5), 2) == "3-12" and group_key((3, 12, 5), 1) == "3"


def test_tiny_group_merges_into_nearest_sibling():
    # sizes: 0-0: 5, 0-1: 1 (tiny), 0-2: 5, 1-1: 5 ; 0-1's prefix vector (1, 0) is nearest to 0-0 (0, 0)
    keys = ["0-0"] * 5 + ["0-1"] + ["0-2"] * 5 + ["1-1"] * 5
    out = merge_tiny_groups(keys, min_size=2, codebooks=CODEBOOKS)
    assert out[5] == "0-0" and out.count("0-0") == 6 and set(out) == {"0-0", "0-2", "1-1"}


def test_tiny_group_without_sibling_goes_to_nearest_overall():
    keys = ["0-0"] * 5 + ["1-2"] + ["0-2"] * 5  # 1-2 = (10, 3): nearer to 0-2 (0, 3) than to 0-0 (0, 0)
    assert merge_tiny_groups(keys, 2, CODEBOOKS)[5] == "0-2"
    assert merge_tiny_groups(["0-0", "0-1"], 5, CODEBOOKS) in (["0-0", "0-0"], ["0-1", "0-1"])  # stops at one


def test_intra_inter_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    labels = [str(i % 3) for i in range(30)]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    lab = np.array(labels)
    same = lab[:, None] == lab[None, :]
    off = ~np.eye(30, dtype=bool)
    got = intra_inter_cosine(x, labels)
    assert got["intra"] == pytest.approx(sim[same & off].mean())
    assert got["inter"] == pytest.approx(sim[~same].mean())
    assert size_summary(labels)["M_N"] == 3


def test_cold_start_picks_the_group_with_nearest_categories():
    means = pd.DataFrame([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]], index=["g1", "g2"], columns=["a", "b", "c"])
    out = assign_cold_start(["u", "v", "w"], {"u": ["c"], "v": ["a", "b"], "w": []}, means, "g1")
    assert out == {"u": "g2", "v": "g1", "w": "g1"}


def test_category_distributions_and_profiles():
    df = events([("u", "1", "a", 1), ("u", "2", "a", 2), ("u", "3", "b", 3), ("u", "4", "c", 4),
                 ("v", "5", "a", 1), ("v", "6", "a", 2)])
    dist = category_distributions(df, ["u", "v", "w"], ["a", "b", "c"])
    assert dist[0].tolist() == [0.5, 0.25, 0.25] and dist[2].tolist() == [0, 0, 0]
    stats = group_stats(df, {"u": "g", "v": "g"}, top=2)["g"]
    assert stats["size"] == 2 and stats["top_categories"][0] == {"category": "a", "share": pytest.approx(4 / 6,
                                                                                                         abs=1e-4)}
    # u: first half {a}, distinct {a, b, c} -> 2/3 adopted later; v: {a} -> 0
    assert stats["adoption_rate"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)
    prof = build_profiles(df, {"u": "g", "v": "g"}, {"g": "0-1"}, ProfileConfig(top_categories=2))["g"]
    assert prof["csid"] == "0-1" and "a (67%)" in prof["profile"] and "2 users" in prof["profile"]
