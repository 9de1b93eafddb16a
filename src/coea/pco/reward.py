"""The PCO reward: what scores a round's sampled candidates (one class per :class:`RewardKind`).

Every round the loop builds one read-only :class:`RewardInputs` (round, window, users, their prompt contexts and
seen sets, the sampled candidates, the history, the current R-LLM) and asks the configured :class:`Reward` for
one score per candidate; pairs are then formed from these scores (:mod:`coea.pco.pairs`). A reward also says
whether candidates are sampled among categories the user has not seen (``exclude_seen_when_sampling``).

A new reward is one subclass plus one :data:`REWARDS` entry; the loop does not change. A reward that reads
logged feedback finds, for user ``inputs.users[i]``, what they took up in the round's feedback period (the next
history period) in ``inputs.feedback[i]`` (:mod:`coea.pco.feedback`; the history only: the evaluation future never
reaches the loop); it sets ``reads_feedback`` so the round may add the user's logged take-ups to the candidates
(``PcoConfig.feedback_inject``).

Scales: the R-LLM-judged rewards score P(yes) in [0, 1]; :class:`FeedbackReward` scores 1 (taken up) or 0 (not);
:class:`HybridReward` uses the logged 1/0 for users with feedback and the serendipity rule for the others;
:class:`TeacherReward` scores ``w * log p_S`` (nats) of the DSIE encoder, what the teacher adds to the N-LLM. Pairs
are formed within one user's candidates, all scored on one scale, so the two scales never meet in a pair: a
logged pair has a gap of 1, above any margin; an R-LLM pair a gap of P(yes) differences.

The R-LLM-judged rewards share :class:`RllmReward`: P(yes) of the R-LLM, optionally prior-corrected. The R-LLM's
balanced yes/no examples draw their "no" candidates by adoption popularity q(c), so its odds estimate the lift
p(c|context) / q(c); :func:`prior_corrected` multiplies q back in: sigmoid(logit P(yes) + log q(c) - mean log q).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coea.data.cooccurrence import history_log_shares
from coea.data.ease import ease_log_shares, fit_ease
from coea.data.schema import CATEGORY, TIMESTAMP, USER
from coea.llm.prompts import PromptContext, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo, adoption_counts, cut_points
from coea.pco.config import Negatives, PcoConfig, RewardKind
from coea.pco.feedback import Feedback
from coea.pco.periods import Window
from coea.utils import log_softmax_rows

if TYPE_CHECKING:
    from coea.llm.models import ModelBundle


@dataclass(frozen=True)
class RewardSetup:
    """What a reward may precompute once per loop (:meth:`Reward.build`)."""

    history: pd.DataFrame  # the history events the loop runs on (never the evaluation future)
    groups: Mapping[str, GroupInfo]
    categories: list[str]  # the category universe
    llm: LlmConfig
    encoder: Any = None  # the DSIE long-term encoder (coea.dsie.encoder.EncoderResult), for the teacher reward


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
    # per user: categories taken up in the round's feedback period (coea.pco.feedback.feedback_takeups), None =
    # no events there; empty list = the round has no feedback period (rewards that read none)
    feedback: list[Feedback] = field(default_factory=list)
    # per user: the served categories they were shown and had not seen by the window's end (pco.exposure_inject);
    # empty list = no served lists
    exposed: list[set[str]] = field(default_factory=list)

    def feedback_of(self, i: int) -> Feedback:
        """User i's take-ups in the feedback period, or None when there is no feedback for them."""
        return self.feedback[i] if i < len(self.feedback) else None

    def exposed_of(self, i: int) -> set[str]:
        """The served categories user i was shown and had not seen by the window's end (empty without any)."""
        return self.exposed[i] if i < len(self.exposed) else set()


class Reward(abc.ABC):
    """Scores a round's candidates: ``score(inputs)[i][j]`` is the reward of ``inputs.candidates[i][j]``."""

    exclude_seen_when_sampling: bool = False  # True: candidates are sampled among unseen categories only
    reads_feedback: bool = False  # True: scores come from inputs.feedback (the round may inject logged take-ups)

    @classmethod
    def build(cls, cfg: PcoConfig, setup: RewardSetup) -> Reward:
        """The reward for a loop with ``cfg`` (override to precompute from ``setup``)."""
        return cls()

    @abc.abstractmethod
    def score(self, inputs: RewardInputs) -> list[list[float]]:
        """One score per candidate, shaped like ``inputs.candidates``; pairs need chosen > rejected + margin."""

    def as_nats(self, scores: list[list[float]]) -> list[list[float]]:
        """``scores`` as the log-scale reward ``r`` of ``update: distill``'s target ``ref(c) * exp(r(c) / beta)``:
        unchanged here (a custom reward's scores are taken as nats); a reward on another scale overrides it (the
        config allows distill only with the teacher's nats and the R-LLM's log-odds, :class:`RelevanceReward`)."""
        return scores


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


def log_odds(p: float) -> float:
    """log p - log(1 - p), ``p`` clipped to [1e-6, 1 - 1e-6] so a sure yes or no stays finite."""
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def prior_corrected(p: float, log_prior: float) -> float:
    """sigmoid(logit p + log_prior), ``p`` clipped to [1e-6, 1 - 1e-6]."""
    return float(1.0 / (1.0 + np.exp(-(log_odds(p) + log_prior))))


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

    def as_nats(self, scores: list[list[float]]) -> list[list[float]]:
        """The log-odds ``log P(yes) - log P(no)`` of each (corrected) P(yes), clipped to [1e-6, 1 - 1e-6]: with
        ``update: distill`` the R-LLM judges in the same update the teacher drives (``coea ablate``'s ``coea w/o
        teacher`` under the ``distil`` and ``short`` presets)."""
        return [[log_odds(q) for q in row] for row in scores]


class FeedbackReward(Reward):
    """Logged feedback: 1.0 for a candidate the user took up in the round's feedback period, 0.0 for any other
    (seen categories included, never taken up by definition); a user without feedback scores all 0 and so
    yields no pair. Candidates among the user's unseen categories (the ones the ``+x`` view ranks;
    ``pco.sample_unseen: false`` samples the full distribution). With ``pco.negatives: history`` a candidate the
    user took up after the feedback period (later in the history, never the evaluation future) scores
    ``1 - margin / 2``: a pair needs a gap above the margin, so it is chosen over a never-taken candidate and never
    paired against a feedback take-up. A candidate the serving store showed the user (``inputs.exposed``) that they
    did not take up scores ``-margin / 2``: below every other candidate, so it is the first rejected one (shown
    and ignored is firmer evidence than proposed and not taken up), and never paired against a proposal that was
    merely not taken up (the gap is not above the margin)."""

    exclude_seen_when_sampling = True
    reads_feedback = True

    def __init__(self, later: float | None = None, ignored: float = 0.0) -> None:
        self.later = later  # the score of a take-up after the feedback period; None = 0 (pco.negatives: period)
        self.ignored = ignored  # the score of a served category the user did not take up

    @classmethod
    def build(cls, cfg: PcoConfig, setup: RewardSetup) -> Reward:
        return cls(1.0 - cfg.margin / 2.0 if cfg.negatives is Negatives.HISTORY else None, -cfg.margin / 2.0)

    def score(self, inputs: RewardInputs) -> list[list[float]]:
        later = self._later_takeups(inputs) if self.later is not None else {}
        return [[self._one(c, inputs.feedback_of(i) or (), later.get(i, set()), inputs.exposed_of(i)) for c in cs]
                for i, cs in enumerate(inputs.candidates)]

    def _one(self, c: str, took: Sequence[str], later: set[str], shown: set[str]) -> float:
        if c in took:
            return 1.0
        if self.later is not None and c in later:
            return self.later
        return self.ignored if c in shown else 0.0

    @staticmethod
    def _later_takeups(inputs: RewardInputs) -> dict[int, set[str]]:
        """Per user index with feedback: categories they took up after the feedback period (history only)."""
        end = inputs.window.feedback_end
        if end is None:
            return {}
        h = inputs.history
        after = h[h[TIMESTAMP].to_numpy() >= end]
        cats = {str(u): set(g[CATEGORY]) for u, g in after.groupby(USER, sort=False)}
        return {i: cats.get(u, set()) - inputs.seen[i] for i, u in enumerate(inputs.users)
                if inputs.feedback_of(i) is not None}


class HybridReward(SerendipityReward):
    """Logged feedback (1/0, as :class:`FeedbackReward`) for users with events in the feedback period; the
    serendipity rule ((corrected) R-LLM P(yes) for a new category, 0 for a seen one) for the others."""

    reads_feedback = True
    logged: Reward = FeedbackReward()  # the logged part (pco.negatives set by build)

    @classmethod
    def build(cls, cfg: PcoConfig, setup: RewardSetup) -> Reward:
        reward = super().build(cfg, setup)
        reward.logged = FeedbackReward.build(cfg, setup)
        return reward

    def score(self, inputs: RewardInputs) -> list[list[float]]:
        rest = [i for i in range(len(inputs.users)) if inputs.feedback_of(i) is None]
        sub = replace(inputs, users=[inputs.users[i] for i in rest], contexts=[inputs.contexts[i] for i in rest],
                      seen=[inputs.seen[i] for i in rest], candidates=[inputs.candidates[i] for i in rest],
                      feedback=[], exposed=[])
        judged = dict(zip(rest, super().score(sub), strict=True)) if rest else {}
        logged = self.logged.score(inputs)
        return [judged.get(i, logged[i]) for i in range(len(inputs.users))]


class TeacherReward(Reward):
    """A judge that knows more than the proposer: the teacher ranks unseen categories by ``log p_N(c) + w * log
    p_S(c)``, p_N the N-LLM on the user's prompt and p_S the DSIE long-term encoder's (SASRec-style) next-category
    distribution after the user's whole history before the window's end, in order: the signal the N-LLM's prompt
    (short-term set, group code) lacks; ``w`` = ``pco.teacher_weight``. DPO's optimum is ``pi_ref(c) * exp(r(c) /
    beta)``, so the reward is the teacher's part the reference lacks, ``r(c) = w * log p_S(c)`` (nats): pairs
    prefer what the encoder adds, and the KL to the reference keeps the N-LLM's own ranking. (Scoring the whole
    product instead mostly re-states the reference's own order, and DPO then sharpens it: MovieLens validation,
    docs/results.md, session 16.) Candidates among the user's unseen categories (what ``+x`` ranks), compared
    only within one user's candidates (per-user constants of the log-softmax cancel). Reads no feedback: the
    encoder was fitted on the history, the evaluation future never reaches it."""

    exclude_seen_when_sampling = True

    def __init__(self, encoder: Any, weight: float, cooc_weight: float = 0.0, categories: Sequence[str] = (),
                 ease_weight: float = 0.0) -> None:
        self.encoder, self.weight, self.cooc_weight, self.categories = encoder, weight, cooc_weight, list(categories)
        self.ease_weight = ease_weight

    @classmethod
    def build(cls, cfg: PcoConfig, setup: RewardSetup) -> Reward:
        if setup.encoder is None:
            raise ValueError("reward teacher needs the DSIE encoder (RewardSetup.encoder)")
        return cls(setup.encoder, cfg.teacher_weight, cfg.teacher_cooc_weight, setup.categories,
                   cfg.teacher_ease_weight)

    def encoder_logprobs(self, inputs: RewardInputs) -> list[np.ndarray]:
        """Per user, log p_S of each candidate after the user's history before the window's end (a category the
        encoder's vocabulary lacks scores the row's lowest finite value)."""
        from coea.dsie.encoder import encode
        from coea.dsie.sequences import encoder_sequences

        enc, h = self.encoder, inputs.history
        seqs = encoder_sequences(h[h[TIMESTAMP].to_numpy() < inputs.window.end], enc.vocab, enc.config.collapse_repeats)
        _, logits = encode(enc.model, [seqs.get(u, []) for u in inputs.users], enc.config)  # (U, V)
        logp = log_softmax_rows(logits)
        floor = np.min(np.where(np.isfinite(logp), logp, np.inf), axis=1)
        out = []
        for i, cs in enumerate(inputs.candidates):
            row = logp[i, [enc.vocab.token(c) for c in cs]]
            out.append(np.where(np.isfinite(row), row, floor[i]))
        return out

    def cooc_log_shares(self, inputs: RewardInputs) -> list[np.ndarray]:
        """Per user, log s_u of each candidate (``pco.teacher_cooc_weight``): the ``cooc`` baseline's scores from the
        history before the window's end, the user's row as shares (a category outside the universe scores the row's
        lowest value)."""
        h = inputs.history
        return self._candidates(inputs, history_log_shares(h[h[TIMESTAMP].to_numpy() < inputs.window.end],
                                                           self.categories, inputs.users))

    def ease_log_shares(self, inputs: RewardInputs) -> list[np.ndarray]:
        """Per user, log e_u of each candidate (``pco.teacher_ease_weight``): the ``ease_novel`` baseline's scores
        fitted on every user's history before the window's end, the user's row as shares
        (:func:`coea.data.ease.ease_log_shares`; a category outside the universe scores the row's lowest value)."""
        h = inputs.history
        model = fit_ease(h[h[TIMESTAMP].to_numpy() < inputs.window.end], self.categories)
        return self._candidates(inputs, ease_log_shares(model.scores(inputs.users)))

    def _candidates(self, inputs: RewardInputs, logs: np.ndarray) -> list[np.ndarray]:
        """Each user's row of ``logs`` (U, C over the universe) at the user's candidates."""
        index = {c: i for i, c in enumerate(self.categories)}
        return [np.array([logs[i, index[c]] if c in index else logs[i].min() for c in cs])
                for i, cs in enumerate(inputs.candidates)]

    def score(self, inputs: RewardInputs) -> list[list[float]]:
        if not inputs.users:
            return []
        rows = [self.weight * row for row in self.encoder_logprobs(inputs)]
        if self.cooc_weight:
            rows = [row + self.cooc_weight * c for row, c in zip(rows, self.cooc_log_shares(inputs), strict=True)]
        if self.ease_weight:
            rows = [row + self.ease_weight * e for row, e in zip(rows, self.ease_log_shares(inputs), strict=True)]
        return [[float(x) for x in row] for row in rows]


REWARDS: dict[RewardKind, type[Reward]] = {
    RewardKind.SERENDIPITY: SerendipityReward,
    RewardKind.RELEVANCE: RelevanceReward,
    RewardKind.FEEDBACK: FeedbackReward,
    RewardKind.HYBRID: HybridReward,
    RewardKind.TEACHER: TeacherReward,
}


def make_reward(cfg: PcoConfig, setup: RewardSetup) -> Reward:
    """The reward ``cfg.reward`` names (see :data:`REWARDS`), built for this loop."""
    return REWARDS[cfg.reward].build(cfg, setup)
