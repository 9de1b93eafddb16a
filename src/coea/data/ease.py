"""EASE on the histories' items, summed per category: the ``ease_novel`` baseline's scores (session 59).

EASE (Steck 2019, "Embarrassingly shallow autoencoders for sparse data") is a closed-form item-to-item linear model:
with X the binary user x item matrix of the histories,

    P = (XᵀX + lambda I)⁻¹,   B = -P / diag(P) off the diagonal, B_ii = 0,   s_u = q_u B   (one score per item)

and a category's score is the sum of its items' positive scores, ``score_u(c) = Σ_{i ∈ c} max(s_ui, 0)``, plus
1e-9 x the category's popularity (ties, and users without history, rank by popularity). The query ``q_u`` is the
user's items weighted by recency, ``0.5 ** (age / half_life)`` with ``age`` the number of the user's events after
the item's last one (B is fitted on the binary matrix; only the query is weighted). Unlike the co-occurrence baseline
it works at item level and learns which items predict which; unlike SASRec it reads no order beyond that weight.

Defaults, chosen on MovieLens validation (``benchmarks/analysis_ease.py``, docs/results.md, session 59):
lambda 500, half-life 5 events; the sum beat the maximum by .036. Only the ``max_items`` most frequent items enter
(XᵀX is items x items: 5,000 items are 200 MB of float64); the others add nothing to any score. Fitting peaks at
about two items x items float64 arrays (MovieLens, 3,594 items: ~5 s and 276 MiB traced at one thread, 9 x the
co-occurrence baseline's time; ``benchmarks/bench_foundation.py``, session 59). A pure function of the histories it
is given: nothing of the future is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from coea.data.schema import CATEGORY, ITEM, USER, sort_events

LAMBDA = 500.0
HALF_LIFE = 5.0
MAX_ITEMS = 5000
SHARE_FLOOR = 1e-6  # added to every category's score before the shares of ease_log_shares


def ease_weights(gram: np.ndarray, lam: float, *, overwrite: bool = False) -> np.ndarray:
    """(I, I) EASE's item-item weights from the Gram matrix ``XᵀX``: ``-P / diag(P)``, diagonal 0. ``overwrite``
    lets it use ``gram`` (float64) as scratch, so the peak is two I x I arrays, not three (``fit_ease``'s own Gram)."""
    g = gram if overwrite and gram.dtype == np.float64 else np.array(gram, dtype=np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    del g
    p /= -np.diag(p).copy()[None, :]
    p[np.diag_indices_from(p)] = 0.0
    return p


@dataclass(frozen=True)
class EaseModel:
    """A fitted EASE: item weights, each item's category column, and every history user's recency query."""

    weights: np.ndarray  # (I, I)
    item_category: np.ndarray  # (I,) column of each item's category in ``categories``
    queries: sparse.csr_matrix  # (users, I) recency-weighted
    user_row: dict[str, int]
    popularity: np.ndarray  # (C,) history events per category

    def scores(self, users: Sequence[str]) -> np.ndarray:
        """(U, C) :mod:`coea.data.ease`'s category scores of ``users`` (a user without history: popularity only)."""
        n_cat = len(self.popularity)
        out = np.tile(1e-9 * self.popularity, (len(users), 1))
        known = [(r, self.user_row[u]) for r, u in enumerate(users) if u in self.user_row]
        if not known:
            return out
        rows, qrows = (np.array(v) for v in zip(*known, strict=True))
        for start in range(0, len(rows), 1024):  # (batch, I) dense item scores at a time
            batch = slice(start, start + 1024)
            item = np.maximum(self.queries[qrows[batch]] @ self.weights, 0.0)
            cat = np.zeros((item.shape[0], n_cat))
            np.add.at(cat.T, self.item_category, item.T)
            out[rows[batch]] += cat
        return out


def fit_ease(interactions: pd.DataFrame, categories: Sequence[str], *, lam: float = LAMBDA,
             half_life: float = HALF_LIFE, max_items: int = MAX_ITEMS) -> EaseModel:
    """Fit EASE on ``interactions`` (history events, canonical columns) over ``categories`` (their order). An item
    with events in several categories counts in its most frequent one (ties: the first name)."""
    if lam <= 0 or half_life <= 0 or max_items < 1:
        raise ValueError(f"EASE needs lam > 0, half_life > 0 and max_items >= 1, got {lam}, {half_life}, {max_items}")
    index = {c: i for i, c in enumerate(categories)}
    counts = interactions[CATEGORY].value_counts()
    popularity = np.array([counts.get(c, 0) for c in categories], dtype=np.float64)
    counts_by_item = interactions[ITEM].value_counts(sort=False)
    order = pd.DataFrame({"n": counts_by_item.to_numpy(), "name": counts_by_item.index.astype(str)},
                         index=counts_by_item.index).sort_values(["n", "name"], ascending=[False, True])
    kept = order.index[:max_items]  # the most frequent items, ties by name
    items = sorted(kept, key=str)
    col = {it: j for j, it in enumerate(items)}
    df = sort_events(interactions[interactions[ITEM].isin(col)])[[USER, ITEM, CATEGORY]]
    df["age"] = df.groupby(USER, sort=False).cumcount(ascending=False)
    per_pair = df.groupby([USER, ITEM], sort=False)["age"].min().reset_index()
    users = sorted(per_pair[USER].unique(), key=str)
    user_row = {u: r for r, u in enumerate(users)}
    r, c = per_pair[USER].map(user_row).to_numpy(), per_pair[ITEM].map(col).to_numpy()
    shape = (len(users), len(items))
    binary = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=shape)
    queries = sparse.csr_matrix((0.5 ** (per_pair["age"].to_numpy() / half_life), (r, c)), shape=shape)
    top = (df.groupby([ITEM, CATEGORY], sort=False).size().rename("n").reset_index()
           .sort_values(["n", CATEGORY], ascending=[False, True], kind="mergesort").drop_duplicates(ITEM))
    item_category = top.set_index(ITEM)[CATEGORY].reindex(items).map(index).to_numpy()
    weights = ease_weights((binary.T @ binary).toarray(), lam, overwrite=True)
    return EaseModel(weights, item_category.astype(np.int64), queries, user_row, popularity)


def ease_log_shares(scores: np.ndarray) -> np.ndarray:
    """(U, C) ``log share_u(c)`` of EASE category scores as an expert beside other log-probabilities: each row's
    nonnegative scores plus :data:`SHARE_FLOOR`, as shares of the row's total (finite everywhere; a row without a
    positive score is uniform). The floor keeps a category that no item of the user's points to a few nats below
    the others rather than ~20 (a floor at 1e-12, as the co-occurrence shares use, would all but ban it)."""
    s = np.maximum(np.asarray(scores, dtype=np.float64), 0.0) + SHARE_FLOOR
    return np.log(s / s.sum(axis=1, keepdims=True))
