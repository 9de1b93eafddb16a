"""Methods that need DSIE: ``sasrec`` (the long-term encoder as a next-category ranker), ``sasrec_ease`` (the
encoder fused with the ``ease_novel`` baseline: the strongest baseline measured, the one a teacher with EASE must
beat) and ``group_pop_novel`` (the most popular categories within the user's group that the user has not seen).

All three read the DSIE fitted on histories (the ``dsie`` artifact of the method context: see
:mod:`coea.evaluation.registry`); none trains a model (``sasrec_ease`` solves EASE's closed form on the histories).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coea.data.ease import ease_log_shares, fit_ease
from coea.data.schema import CATEGORY, USER
from coea.data.split import Histories
from coea.dsie.encoder import EncoderResult, encode
from coea.dsie.sequences import encoder_sequences
from coea.evaluation.baselines import ScoringMethod
from coea.evaluation.registry import Need
from coea.utils import log_softmax_rows

# sasrec_ease's weight on EASE's log shares: chosen among 0.5, 1 and 2 on MovieLens validation (session 59's probe,
# benchmarks/analysis_ease.py, two fits: +.0112 / +.0094 over sasrec+x at 1; 0.5 and 2 lower on both), never on test.
# The distil preset's teacher gives EASE the same weight (pco.teacher_ease_weight 2 at beta 2)
SASREC_EASE_WEIGHT = 1.0


class SasRecMethod(ScoringMethod):
    """Next-category ranking by the SASRec-style encoder: logits at the user's last history position."""

    name = "sasrec"

    def __init__(self, ctx, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx

    def _fit(self, histories: Histories) -> None:
        enc: EncoderResult = self.ctx.artifacts.get(Need.DSIE, self.name).encoder
        self.encoder = enc
        self.seqs = encoder_sequences(histories.interactions, enc.vocab, enc.config.collapse_repeats)
        self.token_of = np.array([enc.vocab.token(c) for c in self.categories])  # (C,)

    def score(self, users: Sequence[str]) -> np.ndarray:
        _, logits = encode(self.encoder.model, [self.seqs.get(u, []) for u in users], self.encoder.config)
        scores = logits[:, self.token_of]  # (U, C); UNK categories get -inf
        scores = np.where(np.isfinite(scores), scores, -1e9)
        return scores + 1e-9 * self.popularity[None, :]


class SasRecEase(SasRecMethod):
    """score_u(c) = log_softmax(sasrec logits)_u(c) + w * log share_u(c): the encoder's next-category distribution
    times EASE's category shares (:func:`coea.data.ease.ease_log_shares`) to the power w
    (:data:`SASREC_EASE_WEIGHT`). Both are fitted on the histories only: the encoder is the run's DSIE, EASE is
    refitted here on the histories the method is given."""

    name = "sasrec_ease"
    weight = SASREC_EASE_WEIGHT

    def _fit(self, histories: Histories) -> None:
        super()._fit(histories)
        self.ease = fit_ease(histories.interactions, self.categories)

    def score(self, users: Sequence[str]) -> np.ndarray:
        return log_softmax_rows(super().score(users)) + self.weight * ease_log_shares(self.ease.scores(users))


class GroupPopularity(ScoringMethod):
    """score_u(c) = events in c by members of u's DSIE group (+1e-9 · global popularity as back-off)."""

    name = "group_pop"

    def __init__(self, ctx, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx

    def _fit(self, histories: Histories) -> None:
        user_group = self.ctx.artifacts.get(Need.DSIE, self.name).user_group()
        self.user_group = user_group
        df = histories.interactions
        df = df.assign(group=df[USER].map(user_group)).dropna(subset=["group"])
        counts = df.groupby(["group", CATEGORY]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=self.categories, fill_value=0)
        self.group_rows = {g: i for i, g in enumerate(counts.index)}
        self.group_counts = counts.to_numpy(dtype=np.float64)  # (G, C)

    def score(self, users: Sequence[str]) -> np.ndarray:
        out = np.tile(1e-9 * self.popularity, (len(users), 1))
        for row, user in enumerate(users):
            g = self.user_group.get(user)
            if g in self.group_rows:
                out[row] += self.group_counts[self.group_rows[g]]
            else:
                out[row] += self.popularity
        return out
