"""The PCO reward: what scores a round's sampled candidates (one class per :class:`RewardKind`).

Every round the loop builds one read-only :class:`RewardInputs` (round, window, users, their prompt contexts and
seen sets, the sampled candidates, the history, the current R-LLM) and asks the configured :class:`Reward` for
one score per candidate; pairs are then formed from these scores (:mod:`coea.pco.pairs`). A reward also says
whether candidates are sampled among categories the user has not seen (``exclude_seen_when_sampling``).

A new reward is one subclass plus one :data:`REWARDS` entry; the loop does not change. A reward that reads
logged feedback finds, for user ``inputs.users[i]``, what they took up after ``inputs.window.end`` in
``inputs.history`` (the history only: the evaluation future never reaches the loop).

The R-LLM-judged rewards share :class:`RllmReward`: P(yes) of the R-LLM, optionally prior-corrected. The R-LLM's
balanced yes/no examples draw their "no" candidates by adoption popularity q(c), so its odds estimate the lift
p(c|context) / q(c); :func:`prior_corrected` multiplies q back in: sigmoid(logit P(yes) + log q(c) - mean log q).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from coea.llm.prompts import PromptContext, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo, adoption_counts, cut_points
from coea.pco.config import PcoConfig, RewardKind
from coea.pco.periods import Window

if TYPE_CHECKING:
    from coea.llm.models import ModelBundle


@dataclass(frozen=True)
class RewardSetup:
    """What a reward may precompute once per loop (:meth:`Reward.build`)."""

    history: pd.DataFrame  # the history events the loop runs on (never the evaluation future)
    groups: Mapping[str, GroupInfo]
    categories: list[str]  # the category universe
    llm: LlmConfig


@dataclass(frozen=True)
class RewardInputs:
    """One round's read-only view for scoring; per-user lists are aligned with ``users``."""

    round: int  # 1-based round index
    window: Window  # the round's period of the history: events with start <= timestamp < end
    users: list[str]
    contexts: list[PromptContext]  # the users' prompt contexts at the window's end
    seen: list[set[str]]  # categories each user had seen before the window's end
    candidates: list[list[str]]  # the N-LLM's distinct sampled candidates per user
    history: pd.DataFrame  # the full history (feedback after window.end lies here, within the history)
    relevance: ModelBundle  # the R-LLM as it is this round (before its refresh)
    llm: LlmConfig


class Reward(abc.ABC):
    """Scores a round's candidates: ``score(inputs)[i][j]`` is the reward of ``inputs.candidates[i][j]``."""

    exclude_seen_when_sampling: bool = False  # True: candidates are sampled among unseen categories only

    @classmethod
    def build(cls, cfg: PcoConfig, setup: RewardSetup) -> Reward:
        """The reward for a loop with ``cfg`` (override to precompute from ``setup``)."""
        return cls()

    @abc.abstractmethod
    def score(self, inputs: RewardInputs) -> list[list[float]]:
        """One score per candidate, shaped like ``inputs.candidates``; pairs need chosen > rejected + margin."""


def rllm_scores(relevance: ModelBundle, contexts: Sequence[PromptContext], cands: Sequence[Sequence[str]],
                llm: LlmConfig) -> list[list[float]]:
    """R-LLM P(yes) of every (context, candidate), shaped like ``cands``."""
    from coea.llm.decode import relevance_scores

    flat = [relevance_prompt(contexts[i], c, with_group=llm.data.with_group) for i, cs in enumerate(cands) for c in cs]
    p = relevance_scores(relevance.model, relevance.tokenizer, flat, batch_size=llm.batch_size) if flat else []
    out, pos = [], 0
    for cs in cands:
        out.append([float(x) for x in p[pos:pos + len(cs)]])
        pos += len(cs)
    return out


def adoption_log_prior(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: LlmConfig,
                       categories: list[str]) -> dict[str, float]:
    """log q(c) - mean log q: q = how often each category is taken up at the R-LLM's SFT cut points of
    ``history`` (+1 smoothing), the distribution its "no" examples are drawn from."""
    counts = adoption_counts(cut_points(history, groups, cfg.data, np.random.default_rng(cfg.data.seed)))
    logq = np.log(np.array([float(counts.get(c, 0)) + 1.0 for c in categories]))
    return dict(zip(categories, (logq - logq.mean()).tolist(), strict=True))


def prior_corrected(p: float, log_prior: float) -> float:
    """sigmoid(logit p + log_prior), ``p`` clipped to [1e-6, 1 - 1e-6]."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + log_prior))))


class RllmReward(Reward):
    """Base of the R-LLM-judged rewards: :meth:`judge` = P(yes), prior-corrected when ``log_prior`` is given."""

    def __init__(self, log_prior: Mapping[str, float] | None = None) -> None:
        self.log_prior = log_prior

    @classmethod
    def build(cls, cfg: PcoConfig, setup: RewardSetup) -> Reward:
        prior = (adoption_log_prior(setup.history, setup.groups, setup.llm, setup.categories)
                 if cfg.prior_correction else None)
        return cls(prior)

    def judge(self, inputs: RewardInputs, cands: Sequence[Sequence[str]]) -> list[list[float]]:
        """The R-LLM's (corrected) P(yes) of ``cands[i]`` for user i, shaped like ``cands``."""
        scores = rllm_scores(inputs.relevance, inputs.contexts, cands, inputs.llm)
        if self.log_prior is None:
            return scores
        return [[prior_corrected(x, self.log_prior.get(c, 0.0)) for x, c in zip(row, cs, strict=True)]
                for row, cs in zip(scores, cands, strict=True)]


class SerendipityReward(RllmReward):
    """Candidates from the full distribution; a category new to the user scores its (corrected) P(yes), one
    already seen scores 0 (no serendipity in recommending it again); only new candidates are judged."""

    exclude_seen_when_sampling = False

    def score(self, inputs: RewardInputs) -> list[list[float]]:
        pairs = list(zip(inputs.candidates, inputs.seen, strict=True))
        novel = [[c for c in cs if c not in s] for cs, s in pairs]
        p = iter(x for row in self.judge(inputs, novel) for x in row)
        return [[0.0 if c in s else next(p) for c in cs] for cs, s in pairs]


class RelevanceReward(RllmReward):
    """Candidates sampled among categories new to the user; each scores its (corrected) P(yes)."""

    exclude_seen_when_sampling = True

    def score(self, inputs: RewardInputs) -> list[list[float]]:
        return self.judge(inputs, inputs.candidates)


REWARDS: dict[RewardKind, type[Reward]] = {
    RewardKind.SERENDIPITY: SerendipityReward,
    RewardKind.RELEVANCE: RelevanceReward,
}


def make_reward(cfg: PcoConfig, setup: RewardSetup) -> Reward:
    """The reward ``cfg.reward`` names (see :data:`REWARDS`), built for this loop."""
    return REWARDS[cfg.reward].build(cfg, setup)
