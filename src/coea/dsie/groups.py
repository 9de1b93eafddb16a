"""Collaborative Semantic IDs -> groups, tiny-group merging, and cold-start assignment.

A user's CSID is its tuple of RQ-VAE codes, e.g. ``(3, 12, 5)``. Its *group* is the CSID prefix of length
``depth`` (default 2), written ``"3-12"``. ``M_N`` is the number of non-empty groups.

Tiny-group rule: while some group has fewer than ``min_group_size`` users (and more than one group exists),
take the smallest (ties: group id order) and merge it into the nearest other group, where the distance is the
Euclidean distance between the groups' prefix vectors (the sum of their codebook vectors over the prefix
levels, i.e. the part of the latent code the prefix decodes to). Siblings (same parent prefix) are preferred
when one exists, so a merge normally moves users one level up the hierarchy only. Members keep their own
full CSID; their group id becomes the target's.

Cold start: a user with fewer than ``min_history`` history events gets the group whose mean category
distribution (mean over its members of their normalised category counts) has the highest cosine with the
user's short-term category indicator; a user with no event at all gets the largest group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, USER


def group_key(csid: Sequence[int], depth: int) -> str:
    return "-".join(str(int(c)) for c in csid[:depth])


def _prefix_vector(key: str, codebooks: Sequence[np.ndarray]) -> np.ndarray:
    codes = [int(c) for c in key.split("-")]
    return sum(codebooks[level][code] for level, code in enumerate(codes))


def merge_tiny_groups(keys: list[str], min_size: int, codebooks: Sequence[np.ndarray]) -> list[str]:
    """Apply the tiny-group rule (module docstring) and return each user's final group id."""
    keys = list(keys)
    while True:
        sizes = Counter(keys)
        if len(sizes) <= 1:
            return keys
        small = sorted((n, k) for k, n in sizes.items() if n < min_size)
        if not small:
            return keys
        _, victim = small[0]
        others = sorted(k for k in sizes if k != victim)
        parent = victim.rsplit("-", 1)[0] if "-" in victim else None
        siblings = [k for k in others if parent is not None and k.rsplit("-", 1)[0] == parent]
        pool = siblings or others
        vec = _prefix_vector(victim, codebooks)
        target = min(pool, key=lambda k: (float(np.linalg.norm(_prefix_vector(k, codebooks) - vec)), k))
        keys = [target if k == victim else k for k in keys]


def category_distributions(history: pd.DataFrame, users: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """(U, C) row-normalised category counts of each user's history (zeros for users without events)."""
    index = {c: i for i, c in enumerate(categories)}
    row = {u: i for i, u in enumerate(users)}
    sub = history[history[USER].isin(row)]
    counts = np.zeros((len(users), len(categories)))
    np.add.at(counts, (sub[USER].map(row).to_numpy(), sub[CATEGORY].map(index).to_numpy()), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def assign_cold_start(
    cold_users: Sequence[str],
    short_term: Mapping[str, Sequence[str]],
    group_means: pd.DataFrame,
    fallback_group: str,
) -> dict[str, str]:
    """Cold-start rule (module docstring). ``group_means``: index group id, columns categories."""
    cats = {c: i for i, c in enumerate(group_means.columns)}
    means = group_means.to_numpy()  # (G, C)
    means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    out = {}
    for user in cold_users:
        idx = [cats[c] for c in short_term.get(user, ()) if c in cats]
        if not idx:
            out[user] = fallback_group
            continue
        v = np.zeros(len(cats))
        v[idx] = 1.0
        out[user] = str(group_means.index[int(np.argmax(means @ v))])
    return out


def complete_assignment(groups: pd.DataFrame, interactions: pd.DataFrame, short_term: Mapping[str, Sequence[str]],
                        categories: Sequence[str]) -> dict[str, str]:
    """user -> group id for every user of ``short_term``: the DSIE assignment where it has one, the cold-start
    rule (:func:`assign_cold_start`) for users it does not know (new since the groups were fitted).

    ``groups`` is DSIE's frame (user_id, group_id, cold_start); group means come from the known warm users'
    categories in ``interactions``; a user without usable short-term categories joins the largest group
    (:func:`largest_group`).
    """
    known = dict(zip(groups[USER].astype(str), groups["group_id"].astype(str), strict=True))
    missing = sorted(set(short_term) - set(known))
    if not missing:
        return known
    warm = groups[~groups["cold_start"].astype(bool)]
    users, keys = warm[USER].astype(str).tolist(), warm["group_id"].astype(str).tolist()
    dist = category_distributions(interactions, users, categories)  # (W, C)
    means = pd.DataFrame(dist, index=keys, columns=list(categories)).groupby(level=0).mean()
    return {**known, **assign_cold_start(missing, short_term, means, largest_group(groups))}


def largest_group(groups: pd.DataFrame) -> str:
    """The group with the most warm users (ties: first in count order): where a user with nothing to go on goes."""
    warm = groups[~groups["cold_start"].astype(bool)]
    return str(warm["group_id"].astype(str).value_counts().index[0])
