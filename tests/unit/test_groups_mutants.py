"""Tiny-group merging and cold-start assignment rules of ``coea.dsie.groups``, each on a hand-worked case that
only the rule as documented gets right."""

import numpy as np
import pandas as pd

from coea.dsie.groups import assign_cold_start, complete_assignment, merge_tiny_groups
from tests.helpers import events

# prefix vectors: "0-0" (0, 0), "0-1" (0, 5), "1-0" (1, 0), "1-1" (1, 5)
CODEBOOKS = [np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 5.0]])]


def test_a_group_of_exactly_min_size_is_not_merged():
    """Only groups *smaller* than min_size are tiny: sizes 2 and 3 with min_size=2 stay as they are."""
    keys = ["0-0"] * 2 + ["0-1"] * 3
    assert merge_tiny_groups(keys, min_size=2, codebooks=CODEBOOKS) == keys


def test_tiny_group_goes_to_its_sibling_even_when_a_non_sibling_is_nearer():
    """Victim 0-1 at (0, 5): the non-sibling 1-1 at (1, 5) is nearest overall (distance 1), but its sibling 0-0
    at (0, 0) exists (distance 5), and siblings are preferred."""
    keys = ["0-0"] * 3 + ["0-1"] + ["1-1"] * 3
    out = merge_tiny_groups(keys, min_size=2, codebooks=CODEBOOKS)
    assert out == ["0-0"] * 4 + ["1-1"] * 3


def test_the_smallest_tiny_group_merges_first():
    """Audit, session 55: every case had one tiny group, so merging the largest tiny one first passed. 0-0 (1 user)
    and 0-1 (2) are both under min_size 3: the smallest, 0-0, merges first, into its sibling 0-1, which then has 3
    and stays. Merging 0-1 first would put 0-1's users into 0-0 (2 + 1 = 3) instead."""
    keys = ["0-0"] + ["0-1"] * 2 + ["1-0"] * 5
    assert merge_tiny_groups(keys, min_size=3, codebooks=CODEBOOKS) == ["0-1"] * 3 + ["1-0"] * 5


def test_the_fallback_group_is_the_one_with_the_most_warm_users():
    """Audit, session 55: ``largest_group`` counts warm users only; counting cold-start members passed, since no
    case had a group made large by them. g1: 2 warm; g2: 1 warm + 2 cold."""
    from coea.dsie.groups import largest_group

    groups = pd.DataFrame({"user_id": ["a", "b", "c", "d", "e"], "group_id": ["g1", "g1", "g2", "g2", "g2"],
                           "cold_start": [False, False, False, True, True]})
    assert largest_group(groups) == "g1"


def test_cold_start_compares_directions_not_magnitudes_of_group_means():
    """User short-term {a, b}. Group A = (1, 0, 0): dot 1, cosine 1/sqrt(2) = 0.707. Group B = (.45, .45, .1):
    dot 0.9, cosine 0.9 / (0.644 * sqrt(2)) = 0.988. The cosine picks B; a plain dot product would pick A."""
    means = pd.DataFrame([[1.0, 0.0, 0.0], [0.45, 0.45, 0.1]], index=["A", "B"], columns=["a", "b", "c"])
    assert assign_cold_start(["u"], {"u": ["a", "b"]}, means, "A") == {"u": "B"}


def test_group_means_for_new_users_come_from_warm_members_only():
    """g1's warm member w1 (a, b, b) -> (1/3, 2/3, 0); g2's warm member w2 (c) -> (0, 0, 1); g2 also holds the
    cold-start member c1 (a). A new user n with short-term {a}: cosine with g1 = 1/sqrt(5) = 0.447, with g2 = 0,
    so n joins g1. Counting c1 in g2's mean, (0.5, 0, 0.5), would give g2 0.707 and send n there."""
    groups = pd.DataFrame({"user_id": ["w1", "w2", "c1"], "group_id": ["g1", "g2", "g2"],
                           "cold_start": [False, False, True]})
    log = events([("w1", "1", "a", 1), ("w1", "2", "b", 2), ("w1", "3", "b", 3), ("w2", "4", "c", 1),
                  ("c1", "5", "a", 1)])
    short = {"w1": ["a", "b"], "w2": ["c"], "c1": ["a"], "n": ["a"]}
    out = complete_assignment(groups, log, short, ["a", "b", "c"])
    assert out == {"w1": "g1", "w2": "g2", "c1": "g2", "n": "g1"}
