"""Category co-occurrence across users' histories: the ``cooc_novel`` baseline's scores, the co-occurrence expert
of ``nllm_seq``/``coea_seq`` (``llm.cooc_weight``) and of the PCO teacher (``pco.teacher_cooc_weight``).

X = binary user x category matrix of histories; sim(a, b) = (XᵀX)_ab / sqrt(n_a · n_b) (cosine, sim(a, a) = 0);
score_u(b) = Σ_{a ∈ H_u} sim(a, b) + 1e-9 · popularity(b). A pure function of the histories it is given.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, USER


def cooccurrence_similarity(user_categories: Mapping[str, Collection[str]], index: Mapping[str, int]) -> np.ndarray:
    """(C, C) cosine co-occurrence of the categories of ``index`` over the users' category sets (diagonal 0)."""
    users = sorted(user_categories)
    x = np.zeros((len(users), len(index)), dtype=np.float32)  # (U, C)
    for row, u in enumerate(users):
        x[row, [index[c] for c in user_categories[u]]] = 1.0
    co = (x.T @ x).astype(np.float64)  # (C, C)
    n = np.sqrt(np.maximum(np.diag(co), 1.0))
    sim = co / n[:, None] / n[None, :]
    np.fill_diagonal(sim, 0.0)
    return sim


def cooccurrence_scores(similarity: np.ndarray, user_categories: Mapping[str, Collection[str]],
                        index: Mapping[str, int], popularity: np.ndarray, users: Sequence[str]) -> np.ndarray:
    """(U, C) each user's summed similarity to their history categories, plus 1e-9 x popularity (ties, and users
    without history, rank by popularity)."""
    out = np.tile(1e-9 * np.asarray(popularity, dtype=np.float64), (len(users), 1))
    for row, user in enumerate(users):
        idx = [index[c] for c in user_categories.get(user, ()) if c in index]
        if idx:
            out[row] += similarity[idx].sum(axis=0)
    return out


def cooc_log_shares(scores: np.ndarray) -> np.ndarray:
    """(U, C) ``log s_u(c)``: each row of co-occurrence scores as shares of its total, floored at 1e-12 so every log
    is finite."""
    s = np.maximum(np.asarray(scores, dtype=np.float64), 1e-12)
    return np.log(s / s.sum(axis=1, keepdims=True))


def history_log_shares(interactions: pd.DataFrame, categories: Sequence[str], users: Sequence[str]) -> np.ndarray:
    """(U, C) :func:`cooc_log_shares` of ``users`` over ``categories`` (their order), the similarity, the users'
    category sets and the popularity all read from ``interactions`` (history events, canonical columns)."""
    index = {c: i for i, c in enumerate(categories)}
    user_categories = {u: set(g) for u, g in interactions.groupby(USER, sort=False)[CATEGORY]}
    counts = interactions[CATEGORY].value_counts()
    popularity = np.array([counts.get(c, 0) for c in categories], dtype=np.float64)
    similarity = cooccurrence_similarity(user_categories, index)
    return cooc_log_shares(cooccurrence_scores(similarity, user_categories, index, popularity, users))
