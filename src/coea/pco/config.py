"""Config of the PCO loop (torch-free, so reading a config is cheap)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from coea.llm.dpo_config import DpoTrainConfig
from coea.llm.sft_config import Propose, SftTrainConfig
from coea.utils import as_enum, check_seed


class RewardKind(enum.StrEnum):
    """What scores a round's candidates (one class each in :mod:`coea.pco.reward`)."""

    # candidates drawn from the N-LLM's full distribution; R-LLM P(yes) for a category new to the user, 0 for
    # one already seen (pairs then also teach "new over seen": NCP rises)
    SERENDIPITY = "serendipity"
    RELEVANCE = "relevance"  # candidates drawn among new categories only; R-LLM P(yes) (pairs re-rank new ones)
    # logged feedback (see coea.pco.feedback): 1 for a candidate the user took up in the round's feedback period
    # (the next history period), 0 otherwise; users without events there give no pairs
    FEEDBACK = "feedback"
    # logged feedback (1/0) for users with events in the feedback period, the serendipity rule (R-LLM P(yes) for a
    # new category, 0 for a seen one) for the others; pairs are formed per user, so scales never mix in a pair
    HYBRID = "hybrid"
    # the teacher log P_N + teacher_weight x log p_S (p_S: the DSIE long-term encoder's next-category distribution after
    # the user's history in order) scored by what it adds to the N-LLM, teacher_weight x log p_S (nats, the margin
    # too); candidates among unseen categories. Reads no feedback. MovieLens validation (docs/results.md, session
    # 16): every variant lowered S-H@10 +x (.6870 -> .6780 at DPO lr 5e-5): not a default
    TEACHER = "teacher"


FEEDBACK_REWARDS = frozenset({RewardKind.FEEDBACK, RewardKind.HYBRID})  # the rewards that read logged feedback


class RefreshKind(enum.StrEnum):
    """What the R-LLM is refreshed on after each round (with ``refresh_relevance`` and ``follow_periods``)."""

    AUTO = "auto"  # PERIOD for the R-LLM-judged rewards (serendipity, relevance), BOTH for feedback and hybrid
    PERIOD = "period"  # cut points and take-ups inside the round's period (balanced yes/no, as in SFT)
    # the N-LLM's own new proposals of the round, yes if the user took them up in the feedback period, no otherwise
    # (balanced as the SFT examples: at most negatives_per_positive "no" per "yes"); what the paper's loop does
    # with new interactions
    ON_POLICY = "on_policy"
    BOTH = "both"  # PERIOD + ON_POLICY examples, shuffled together


class Periods(enum.StrEnum):
    """How the history is cut into the rounds' periods (with ``follow_periods``)."""

    GLOBAL = "global"  # consecutive global time windows with about the same number of events (the loop in time)
    # each user's own history cut into equal-count periods (their i-th of n events at replay time i / n): an offline
    # replay in which every user with enough events is active, and has feedback, in every round; global time order
    # across users is not kept (nothing past the history is read either way)
    USER = "user"


class Negatives(enum.StrEnum):
    """Which proposals the feedback rewards may reject (score 0)."""

    PERIOD = "period"  # every proposal not taken up in the feedback period
    # only proposals the user never took up anywhere after the round's period in the history: one taken up after the
    # feedback period is a weak positive (chosen over a never-taken one, never paired against a feedback take-up)
    HISTORY = "history"


class TakeUp(enum.StrEnum):
    """What counts as a take-up in a feedback period (the feedback rewards' chosen candidates, the on-policy labels)."""

    USER = "user"  # a category new to the user: outside everything they had seen by the round's period end
    # a category outside the user's short-term set (the prompt's recent categories): the N-LLM's SFT target rule
    # (``llm.data.novelty_target: recent``); with feedback_horizon = the split's n_future, exactly an SFT target
    RECENT = "recent"


class Update(enum.StrEnum):
    """How a round moves the N-LLM towards its reward (both anchored to ``reference`` by ``dpo.beta``)."""

    DPO = "dpo"  # DPO+KL on preference pairs (the paper's; pairs_per_prompt, margin, soft_preferences apply)
    # fit the closed-form optimum of DPO's objective, ref(c) * exp(r(c) / dpo.beta) over each prompt's candidates,
    # by forward KL (coea.llm.distill): every candidate at once instead of pairs; needs a reward on a log scale
    # (teacher: nats; relevance: the R-LLM's log-odds)
    DISTILL = "distill"


class Reference(enum.StrEnum):
    """The model the DPO+KL update is anchored to."""

    ROUND = "round"  # the N-LLM at the start of the round
    SFT = "sft"  # the SFT model the loop started from
    # none (update distill only, alpha 0): no model; the target is exp(r(c) / beta) normalised over the candidates,
    # the optimum of E[r] + beta * H(pi), i.e. the KL to the uniform distribution in place of the KL to the SFT model:
    # the distill update's "w/o KL" (`coea ablate`'s `coea w/o reference`; with the teacher reward the N-LLM is then
    # fitted to the encoder alone, p_S ** (teacher_weight / beta))
    NONE = "none"


@dataclass
class PcoConfig:
    """The closed loop: R rounds of sample -> score -> pairs -> DPO+KL -> re-evaluate -> R-LLM refresh."""

    rounds: int = 3  # PCO rounds after SFT
    follow_periods: bool = True  # round r uses the r-th time period of the history; False = repeated full passes
    periods: Periods = Periods.GLOBAL  # see Periods: global time windows, or each user's own history (replay)
    users_per_round: int | None = 1024  # prompts per round (seeded subsample of the period's active users)
    # M: distinct categories the N-LLM samples per prompt; null (with propose: top) = every category the user has not
    # seen, ranked (what update: distill fits best: the whole distribution the +x list is ranked from)
    candidates: int | None = 8
    temperature: float = 1.0  # sampling temperature of the N-LLM
    # how the N-LLM proposes its candidates: sample = distinct draws at ``temperature`` (the paper's); top = its
    # ``candidates`` most likely categories, in rank order, where pairs then break score ties by rank: the rejected
    # candidate is the highest-ranked one the reward rejects (a hard negative: what the top-K would show and the user
    # did not take up), the chosen one the lowest-ranked it accepts (an injected logged take-up first). MovieLens
    # validation (docs/results.md, session 15): static protocol top - sample +0.0057 [-0.0006, +0.0119] (3 vs 2 PCO
    # seeds, one SFT), top - SFT +0.0008; test +0.0028 [-0.0037, +0.0097]; continual protocol no better than the
    # refresh alone
    propose: Propose = Propose.SAMPLE
    # see RewardKind. feedback (with the defaults below: reference sft, DPO lr 2e-4, dpo.nll 1) was chosen on the
    # MovieLens validation split: it never lowered S-H@10 +x, while serendipity lost .05 (docs/results.md)
    reward: RewardKind = RewardKind.FEEDBACK
    # the R-LLM is trained on balanced yes/no examples whose "no" candidates are drawn by adoption popularity q(c),
    # so its odds estimate the lift p(c|context) / q(c), not p(c|context): True scores a candidate by
    # sigmoid(logit P(yes) + log q(c) - mean log q) (q from the history's R-LLM cuts), which ranks by p(c|context);
    # an option of the R-LLM-judged rewards (both kinds above)
    prior_correction: bool = False
    margin: float = 0.1  # pairs need chosen score > rejected score + margin (R-LLM P(yes); nats for teacher)
    # reward teacher: the weight w of the DSIE encoder's log-probability (llm.encoder_weight's value with the old
    # encoder, session 16: ranking unseen categories by log P_N + 0.25 log p_S beat the N-LLM alone on MovieLens
    # validation, not on test). The `distil` preset sets 4 at dpo.beta 2 with update: distill (every unseen category
    # fitted to its target, session 46; its DPO recipe of sessions 23-37 used 0.5 with 10 soft-labelled pairs per
    # prompt); the short preset 2 (docs/results.md)
    teacher_weight: float = 0.25
    # reward teacher: adds teacher_cooc_weight x log s_u(c), the user's item-to-item co-occurrence shares after their
    # history before the window's end (llm.cooc_weight's expert, coea.data.cooccurrence), so the N-LLM is taught what
    # co-occurrence adds as well as what the encoder adds; 0 (default) = the encoder alone. Session 45, short view
    # (validation, three paired trainings): 1 beside teacher_weight 1 left the tuned N-LLM where the encoder alone
    # took it (-0.0013 [-0.0095, +0.0070]); the short preset sets 2 (session 46, with its distill update)
    teacher_cooc_weight: float = 0.0
    # reward teacher: adds teacher_ease_weight x log e_u(c), the shares of the user's EASE category scores (the
    # ease_novel baseline's, coea.data.ease.ease_log_shares) fitted on every user's history before the window's end: an
    # item-level collaborative filter that reads what the order-aware encoder does not. 0 (default) = off. Session 59
    # (MovieLens validation, ranking-time probe RULE59-EASE): docs/results.md
    teacher_ease_weight: float = 0.0
    # reward teacher: each pair carries the soft label P(chosen preferred) = sigmoid(dpo.beta x score gap), the
    # Bradley-Terry probability of the teacher's scores, so the DPO optimum is the finite shift log pi - log ref =
    # teacher_weight x log p_S + const, i.e. the product of experts itself (coea.llm.losses); False = hard labels (1),
    # whose optimum lies at infinity: every margin is pushed on for as long as DPO runs
    soft_preferences: bool = False
    pairs_per_prompt: int = 2  # best vs worst, 2nd best vs 2nd worst, ...
    accept_threshold: float = 0.5  # R-LLM P(yes) above this counts as accepted (acceptance rate)
    # see Update: dpo (pairs) or distill (the pairs' optimum fitted directly; reads dpo's beta, alpha (KL(ref || pi)
    # over the candidates), lr, epochs, batch_size, seed and precision)
    update: Update = Update.DPO
    reference: Reference = Reference.SFT  # DPO reference: the SFT model, the N-LLM at the start of the round, none
    refresh_relevance: bool = True  # SFT the R-LLM after each round (period mode only; examples: ``refresh``)
    refresh: RefreshKind = RefreshKind.AUTO  # see RefreshKind; refresh_kind() resolves AUTO
    # feedback and hybrid rewards: a user's categories taken up in the feedback period that the N-LLM did not
    # sample join their candidates (at most pairs_per_prompt taken-up candidates per user in all), so logged
    # positives become chosen candidates (teacher forcing, as DPO on logged data); False = sampled candidates only
    feedback_inject: bool = True
    # feedback and hybrid rewards, when the loop is given what the serving store showed each user (the recurring
    # pipeline: the state's active served lists, made before the period the rounds read): a user's served
    # categories they had not seen by the round's end join their candidates, and one shown and not taken up scores
    # -margin / 2, below a proposal not taken up (0): shown-and-ignored is the hard negative the log alone cannot
    # give (pco/feedback.py); False = served lists are not read
    exposure_inject: bool = True
    # a user's feedback is what they take up in their first feedback_horizon events of the feedback period (None: the
    # whole period); e.g. the split's n_future, the horizon the evaluation scores
    feedback_horizon: int | None = None
    # feedback/hybrid: which proposals count as rejected (see Negatives); "not taken up in the next period" also
    # rejects categories the user takes up later in the history (false negatives)
    negatives: Negatives = Negatives.PERIOD
    # feedback/hybrid: see TakeUp. MovieLens validation, continual protocol (docs/results.md, sessions 13-14): recent
    # (with feedback_horizon 10) +0.0028 [-0.0043, +0.0100] over the stale N-LLM (3 PCO seeds), user -0.0094 (1 run)
    takeup: TakeUp = TakeUp.USER
    # where candidates are sampled: None = the reward's own rule (relevance, feedback: among the user's unseen
    # categories; serendipity, hybrid: the N-LLM's full distribution); True = among unseen categories only (the
    # pairs then rank only what the +x view ranks); False = the full distribution
    sample_unseen: bool | None = None
    relevance_refresh: SftTrainConfig = field(
        default_factory=lambda: SftTrainConfig(epochs=1.0, lr=1e-3, max_examples=8000, warmup_ratio=0.0))
    # True = each round first continues the N-LLM's SFT on the window's new interactions (its SFT target rule, cut as
    # the R-LLM's period refresh: llm.data.cuts_per_user per user in the window), then samples, scores and runs the
    # DPO update anchored to that refreshed model (the KL keeps the N-LLM near its latest SFT, not the stale one);
    # follow_periods only. The continual fine-tuning of the loop's title: without it the N-LLM meets new interactions
    # only through the pairs of its own proposals. None (default) = auto (resolve_refresh_novelty): on where the
    # rounds read interactions the N-LLM was not trained on (the recurring pipeline's kept models on a new period;
    # llm.data.holdout_share > 0), off where they replay the SFT's own history (training pipeline, coea run). MovieLens,
    # continual protocol (docs/results.md, session 14): coea+x - stale N-LLM +0.0025 (validation, 3 seeds) and +0.0093
    # (test, 1 run) with it, CIs including 0; on history the SFT already fit it lowered S-H@10 by .007. Session 15: on
    # two new trainings of the stale N-LLM the refresh alone moved it by -.0014 and -.0015 (no gain shown)
    refresh_novelty: bool | None = None
    novelty_refresh: SftTrainConfig = field(
        default_factory=lambda: SftTrainConfig(epochs=1.0, lr=2e-4, warmup_ratio=0.0))
    # alpha = 0: the "w/o KL" ablation; nll: SFT on the logged take-ups beside DPO (RPO-style continual fine-tuning)
    dpo: DpoTrainConfig = field(default_factory=lambda: DpoTrainConfig(lr=2e-4, nll=1.0))
    k: int = 10  # top-K for the round's re-evaluation and per-round metrics
    seed: int = 0

    def __post_init__(self) -> None:
        self.reward = as_enum(RewardKind, "reward", self.reward)
        self.reference = as_enum(Reference, "reference", self.reference)
        self.update = as_enum(Update, "update", self.update)
        self.periods = as_enum(Periods, "periods", self.periods)
        self.refresh = as_enum(RefreshKind, "refresh", self.refresh)
        self.negatives = as_enum(Negatives, "negatives", self.negatives)
        self.takeup = as_enum(TakeUp, "takeup", self.takeup)
        self.propose = as_enum(Propose, "propose", self.propose)
        self._check_seeds()
        if self.uses_feedback and not self.follow_periods:
            raise ValueError("reward feedback/hybrid and refresh on_policy/both need follow_periods=True "
                             "(feedback is what users take up in the history period after a round's)")
        if self.refresh_novelty and not self.follow_periods:
            raise ValueError("refresh_novelty needs follow_periods=True (the N-LLM is refreshed on each period)")
        for name in ("rounds", "pairs_per_prompt", "k"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.candidates is None and self.propose is not Propose.TOP:
            raise ValueError("candidates null (every unseen category) needs propose: top")
        if self.candidates is not None and self.candidates < 2:
            raise ValueError(f"candidates must be >= 2 to form a pair, got {self.candidates!r}")
        if self.feedback_horizon is not None and self.feedback_horizon <= 0:
            raise ValueError(f"feedback_horizon must be > 0 or None, got {self.feedback_horizon!r}")
        if self.users_per_round is not None and self.users_per_round <= 0:
            raise ValueError(f"users_per_round must be > 0 or None, got {self.users_per_round!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {self.margin!r}")
        if self.soft_preferences and self.reward is not RewardKind.TEACHER:
            raise ValueError(f"soft_preferences needs reward teacher (scores in nats), got {self.reward.value!r}")
        for name in ("teacher_weight", "teacher_cooc_weight", "teacher_ease_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.update is Update.DISTILL and self.reward not in (RewardKind.TEACHER, RewardKind.RELEVANCE):
            raise ValueError("update distill needs a reward on a log scale: teacher (nats) or relevance (the R-LLM's "
                             f"log-odds), got {self.reward.value!r}")
        if self.reference is Reference.NONE and (self.update is not Update.DISTILL or self.dpo.alpha):
            raise ValueError("reference none needs update distill with dpo.alpha 0 (a DPO step and the KL penalty "
                             "need a reference model)")
        for name in ("teacher_cooc_weight", "teacher_ease_weight"):
            if getattr(self, name) and self.reward is not RewardKind.TEACHER:
                raise ValueError(f"{name} needs reward teacher, got {self.reward.value!r}")
        if not 0.0 < self.accept_threshold < 1.0:
            raise ValueError(f"accept_threshold must be in (0, 1), got {self.accept_threshold!r}")

    def _check_seeds(self) -> None:
        """Round r seeds with ``seed + r`` (and each trainer with its own seed + r): all below 2**32."""
        why = f", and round r seeds with seed + r (r < rounds = {self.rounds})"
        check_seed("seed", self.seed, plus=self.rounds, why=why)
        for name in ("dpo", "relevance_refresh", "novelty_refresh"):
            check_seed(f"{name}.seed", getattr(self, name).seed, plus=self.rounds, why=why)

    def resolve_refresh_novelty(self, new_interactions: bool) -> PcoConfig:
        """This config with ``refresh_novelty`` decided: an explicit value is kept; auto (None) becomes
        ``new_interactions`` (the rounds read interactions the N-LLM was not trained on) with ``follow_periods``."""
        if self.refresh_novelty is not None:
            return self
        return replace(self, refresh_novelty=new_interactions and self.follow_periods)

    def samples_unseen_only(self, reward_default: bool) -> bool:
        """Whether candidates are sampled among unseen categories only (``sample_unseen``, else the reward's)."""
        return reward_default if self.sample_unseen is None else self.sample_unseen

    @property
    def pairs_by_rank(self) -> bool:
        """Whether pairs break score ties by proposal rank (``build_pairs``' ``by_rank``): with ``propose: top``."""
        return self.propose is Propose.TOP

    def refresh_kind(self) -> RefreshKind:
        """``refresh`` with AUTO resolved: BOTH for the rewards that read feedback, PERIOD otherwise (today's)."""
        if self.refresh is not RefreshKind.AUTO:
            return self.refresh
        return RefreshKind.BOTH if self.reward in FEEDBACK_REWARDS else RefreshKind.PERIOD

    @property
    def uses_feedback(self) -> bool:
        """Whether a round reads logged feedback (its reward or its R-LLM refresh): the history is then cut into
        ``rounds + 1`` periods, period r + 1 being round r's feedback period (see :mod:`coea.pco.periods`)."""
        return self.reward in FEEDBACK_REWARDS or self.refresh_kind() in (RefreshKind.ON_POLICY, RefreshKind.BOTH)
