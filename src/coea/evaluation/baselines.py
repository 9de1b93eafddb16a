"""Baseline methods, fitted on histories only.

A method is any object with ``fit(histories) -> self`` and ``recommend(users, k, exclude=None)`` returning
``{user: [category, ...]}`` (best first). ``exclude`` maps a user to categories that must not be returned;
the ``+x`` view of a method passes each user's history categories there. Every method here scores the whole
category universe and ranks it; ties are broken by category name so every output is deterministic.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from coea.data.cooccurrence import cooccurrence_scores, cooccurrence_similarity
from coea.data.ease import fit_ease
from coea.data.schema import CATEGORY, USER
from coea.data.split import Histories

Recommendations = dict[str, list[str]]


class ScoringMethod(ABC):
    """Base for methods that give a score to every (user, category); higher is better."""

    name = "base"

    def __init__(self, *, exclude_history: bool = False, seed: int = 0) -> None:
        self.exclude_history = exclude_history  # the `_novel` methods drop H_u themselves
        self.seed = seed

    def fit(self, histories: Histories) -> ScoringMethod:
        self.categories = list(histories.categories)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.user_history = histories.user_categories()
        counts = histories.interactions[CATEGORY].value_counts()
        self.popularity = np.array([counts.get(c, 0) for c in self.categories], dtype=np.float64)  # (C,)
        self._fit(histories)
        return self

    def _fit(self, histories: Histories) -> None:  # noqa: B027 - optional hook
        """Method-specific fitting; the base has already set categories, index, popularity, histories."""

    @abstractmethod
    def score(self, users: Sequence[str]) -> np.ndarray:
        """(U, C) scores for ``users`` over ``self.categories``."""

    def banned(self, users: Sequence[str], exclude: Mapping[str, Collection[str]] | None) -> list[set[str]]:
        """Per user the categories that must not be returned: ``exclude``'s, plus H_u for ``*_novel`` methods."""
        out = []
        for user in users:
            banned = set(exclude.get(user, ())) if exclude else set()
            if self.exclude_history:
                banned |= self.user_history.get(user, set())
            out.append(banned)
        return out

    def masked_scores(self, users: Sequence[str], exclude: Mapping[str, Collection[str]] | None = None) -> np.ndarray:
        """(U, C) scores with every banned (user, category) set to ``-inf``."""
        scores = np.array(self.score(users), dtype=np.float64, copy=True)  # (U, C)
        for row, banned in enumerate(self.banned(users, exclude)):
            scores[row, [self.index[c] for c in banned if c in self.index]] = -np.inf
        return scores

    def recommend(
        self, users: Sequence[str], k: int, exclude: Mapping[str, Collection[str]] | None = None
    ) -> Recommendations:
        if not users:
            return {}
        return top_k(self.masked_scores(users, exclude), users, self.categories, k)

    def ranked(self, users: Sequence[str], k: int,
               exclude: Mapping[str, Collection[str]] | None = None) -> dict[str, list[tuple[str, float]]]:
        """Like :meth:`recommend`, with each category's score (from the same computation as the ranking)."""
        if not users:
            return {}
        scores = self.masked_scores(users, exclude)  # (U, C)
        recs = top_k(scores, users, self.categories, k)
        return {u: [(c, float(scores[row, self.index[c]])) for c in recs[u]] for row, u in enumerate(users)}


TOP_K_ROWS = 8192  # rows ranked at a time: the sort's temporaries stay (8192, C), whatever the number of users


def top_k(scores: np.ndarray, users: Sequence[str], categories: Sequence[str], k: int) -> Recommendations:
    """Rank each row by score (ties: lower column index first); ``-inf`` entries are never returned."""
    out: Recommendations = {}
    for start in range(0, len(users), TOP_K_ROWS):
        block = scores[start:start + TOP_K_ROWS]  # (B, C) view
        order = np.argsort(-block, axis=1, kind="stable")[:, :k]  # (B, k)
        for row, cols in enumerate(order):
            out[users[start + row]] = [categories[c] for c in cols if np.isfinite(block[row, c])]
    return out


class RandomMethod(ScoringMethod):
    """Uniformly random categories; each user's draw is seeded by (seed, crc32(user)), so order-independent."""

    name = "random"

    def score(self, users: Sequence[str]) -> np.ndarray:
        n = len(self.categories)
        return np.stack([
            np.random.default_rng([self.seed, zlib.crc32(u.encode())]).random(n) for u in users
        ]) if users else np.zeros((0, n))


class Popularity(ScoringMethod):
    """Global popularity: score(c) = number of history events in category c."""

    name = "pop"

    def score(self, users: Sequence[str]) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(users), len(self.categories)))


class Markov(ScoringMethod):
    """First-order category transitions from the short-term set, backed off to popularity.

    P(b | a) = n(a -> b) / n(a -> ·) over consecutive history events of the same user (self-transitions
    included). score_u(b) = Σ_i decay^i · P(b | s_i) over the short-term set s_0 (most recent), s_1, ...,
    plus 1e-9 · popularity(b) so that categories with no transition evidence fall back to popularity.
    """

    name = "markov"

    def __init__(self, *, decay: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.decay = decay

    def _fit(self, histories: Histories) -> None:
        df = histories.interactions
        cat_idx = df[CATEGORY].map(self.index).to_numpy()
        same_user = (df[USER].to_numpy()[1:] == df[USER].to_numpy()[:-1])
        n = len(self.categories)
        counts = np.zeros((n, n))
        np.add.at(counts, (cat_idx[:-1][same_user], cat_idx[1:][same_user]), 1.0)
        totals = counts.sum(axis=1, keepdims=True)
        pop = self.popularity / max(self.popularity.sum(), 1.0)
        self.transition = np.where(totals > 0, counts / np.maximum(totals, 1.0), pop[None, :])  # (C, C)
        self.short_term = histories.short_term

    def score(self, users: Sequence[str]) -> np.ndarray:
        out = np.tile(1e-9 * self.popularity, (len(users), 1))
        for row, user in enumerate(users):
            recent = self.short_term.get(user, [])[::-1]  # most recent first
            for i, cat in enumerate(recent):
                if cat in self.index:
                    out[row] += self.decay**i * self.transition[self.index[cat]]
        return out


class Cooccurrence(ScoringMethod):
    """Item-to-item CF at category level: categories that co-occur with the user's history across users
    (:mod:`coea.data.cooccurrence`: cosine co-occurrence summed over H_u, plus 1e-9 · popularity)."""

    name = "cooc"

    def _fit(self, histories: Histories) -> None:
        self.similarity = cooccurrence_similarity(self.user_history, self.index)

    def score(self, users: Sequence[str]) -> np.ndarray:
        return cooccurrence_scores(self.similarity, self.user_history, self.index, self.popularity, users)


class Ease(ScoringMethod):
    """EASE on the histories' items, summed per category (:mod:`coea.data.ease`: a closed-form item-to-item model
    over the whole user x item matrix, the user's recent items weighted up; plus 1e-9 · popularity)."""

    name = "ease"

    def _fit(self, histories: Histories) -> None:
        self.model = fit_ease(histories.interactions, self.categories)

    def score(self, users: Sequence[str]) -> np.ndarray:
        return self.model.scores(users)
