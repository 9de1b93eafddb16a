"""One PCO round as small steps: (0) with ``refresh_novelty``, continue the N-LLM's SFT on the window's new
interactions (its DPO reference is then that refreshed model), (1) sample M candidates per prompt from the N-LLM,
(2) score them with the
configured :class:`~coea.pco.reward.Reward` (a reward that reads feedback also gets the users' take-ups in the
round's feedback period, and with ``feedback_inject`` the unsampled ones join the candidates; see
:mod:`coea.pco.feedback`), (3) form preference pairs, (4) DPO+KL update of the N-LLM (with ``update: distill``
instead: no pairs, the N-LLM fitted to DPO's optimum over the candidates, :mod:`coea.llm.distill`), (5)
re-evaluate the updated N-LLM's top-K with the R-LLM, (6) refresh the R-LLM by SFT (``PcoConfig.refresh_kind()``):
on the period's new interactions (see :mod:`coea.pco.periods`) and/or on the N-LLM's own sampled proposals of step
(1) labelled by the feedback period (on-policy).

A round is reproducible from ``(cfg.seed, round)`` alone: its user subsample and period refresh draws use
``np.random.default_rng([seed, r])``, the on-policy refresh draws ``np.random.default_rng([seed, r, 1])``, the
global RNGs are re-seeded with ``seed + r``, the sampler with ``seed * 1000 + r`` and the trainers with their own
seed ``+ r``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coea.llm.dpo_config import DpoTrainConfig
from coea.llm.prompts import PromptContext, novelty_completion, novelty_prompt
from coea.llm.sft_config import LlmConfig, Propose, SftTrainConfig
from coea.llm.sft_data import GroupInfo
from coea.pco.config import PcoConfig, Periods, Reference, RefreshKind, TakeUp, Update
from coea.pco.feedback import (
    exposed_categories,
    feedback_takeups,
    inject_exposed,
    inject_taken_up,
    on_policy_examples,
)
from coea.pco.pairs import PairStats, PreferencePair, build_pairs
from coea.pco.periods import RoundUsers, Window, novelty_refresh_examples, refresh_examples, round_users
from coea.pco.reward import Reward, RewardInputs, rllm_scores
from coea.utils import seed_everything

if TYPE_CHECKING:
    from coea.llm.decode import CategoryIndex
    from coea.llm.distill import DistillResult
    from coea.llm.dpo import DpoResult
    from coea.llm.models import ModelBundle

log = logging.getLogger(__name__)


@dataclass
class RoundContext:
    """What every round of one loop shares (set up once by :class:`~coea.pco.loop.PcoLoop`)."""

    cfg: PcoConfig
    llm: LlmConfig
    history: pd.DataFrame  # the history events (never the evaluation future)
    groups: Mapping[str, GroupInfo]
    index: CategoryIndex  # the category names in the N-LLM's vocabulary
    reward: Reward
    device: str  # where the trainers place the models
    n_short: int = 10  # events forming a prompt's short-term set
    sft_reference: Any = None  # frozen copy of the SFT N-LLM (the DPO reference with reference=sft)
    # what the serving store showed each user before the history's period (user -> served categories, best first):
    # read by pco.exposure_inject; None = not given
    exposure: Mapping[str, Sequence[str]] | None = None


@dataclass
class FeedbackStats:
    """A round's use of logged feedback (all 0 when it reads none)."""

    users: int = 0  # prompted users with events in the round's feedback period
    pairs: int = 0  # preference pairs from those users' prompts, when the reward reads feedback
    injected: int = 0  # logged take-ups added to the candidates (feedback_inject)
    onpolicy_examples: int = 0  # on-policy R-LLM refresh examples (before the refresh's max_examples cap)
    exposed: int = 0  # served categories added to the candidates (exposure_inject)

    def as_dict(self) -> dict[str, int]:
        return {"feedback_users": self.users, "feedback_pairs": self.pairs, "feedback_injected": self.injected,
                "onpolicy_examples": self.onpolicy_examples, "feedback_exposed": self.exposed}


@dataclass
class RoundReport:
    """One round's figures; :meth:`as_row` is the metrics row written per round."""

    round: int
    window: Window
    pair_stats: PairStats
    mean_score_before: float  # mean R-LLM P(yes) of the N-LLM's top-K new categories before the update
    acceptance_before: float  # share of them above accept_threshold
    mean_score_after: float
    acceptance_after: float
    dpo_margin: float | None  # last logged DPO reward margin (None: no pairs, no update)
    dpo_kl: float | None  # last logged KL estimate to the reference
    dpo_steps: int
    refresh_examples: int  # R-LLM refresh examples (period + on-policy, before the max_examples cap)
    novelty_refresh_examples: int = 0  # N-LLM refresh examples (refresh_novelty; before the max_examples cap)
    feedback: FeedbackStats = field(default_factory=FeedbackStats)  # row keys: see FeedbackStats.as_dict
    distill_kl: float | None = None  # update distill: mean KL(target || N-LLM) over the last epoch (None: no update)
    # novelty_refresh_s, sample_s, score_s, dpo_s, reeval_s, refresh_s
    times: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """The metrics row: round, window [start, end], the pair stats, the before/after acceptance, the DPO
        figures, ``refresh_examples``, ``feedback_users``/``feedback_pairs``/``feedback_injected``/
        ``onpolicy_examples`` (:class:`FeedbackStats`), the step times."""
        return {"round": self.round, "window": [self.window.start, self.window.end], **self.pair_stats.as_dict(),
                "mean_score_before": self.mean_score_before, "acceptance_before": self.acceptance_before,
                "mean_score_after": self.mean_score_after, "acceptance_after": self.acceptance_after,
                "dpo_margin": self.dpo_margin, "dpo_kl": self.dpo_kl, "dpo_steps": self.dpo_steps,
                "refresh_examples": self.refresh_examples, "novelty_refresh_examples": self.novelty_refresh_examples,
                "distill_kl": self.distill_kl, **self.feedback.as_dict(), **self.times}


def trainer_configs(cfg: PcoConfig, r: int) -> tuple[DpoTrainConfig, SftTrainConfig, SftTrainConfig]:
    """Round ``r``'s DPO, R-LLM refresh and N-LLM refresh configs: seeds offset by ``r``."""
    return (replace(cfg.dpo, seed=cfg.dpo.seed + r),
            replace(cfg.relevance_refresh, seed=cfg.relevance_refresh.seed + r),
            replace(cfg.novelty_refresh, seed=cfg.novelty_refresh.seed + r))


@contextmanager
def _timed(times: dict[str, float], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    times[key] = time.perf_counter() - t0


def sample_candidates(ctx: RoundContext, novelty: ModelBundle, prompts: list[str], seen: list[set[str]],
                      r: int) -> list[list[str]]:
    """``cfg.candidates`` distinct categories per prompt from the N-LLM (among unseen ones if ``sample_unseen`` or,
    when it is unset, the reward says so): drawn at ``temperature``, or with ``propose: top`` its most likely ones,
    best first (every allowed one with ``candidates`` null)."""
    from coea.llm.decode import rank_categories, sample_categories

    cfg = ctx.cfg
    exclude = seen if cfg.samples_unseen_only(ctx.reward.exclude_seen_when_sampling) else None
    if cfg.propose is Propose.TOP:
        ranked = rank_categories(novelty.model, novelty.tokenizer, prompts, ctx.index,
                                 cfg.candidates or len(ctx.index.categories),
                                 exclude=exclude, batch_size=ctx.llm.batch_size)
        return [[c for c, _ in row] for row in ranked]
    return sample_categories(novelty.model, novelty.tokenizer, prompts, ctx.index, cfg.candidates, cfg.temperature,
                             seed=cfg.seed * 1000 + r, exclude=exclude, batch_size=ctx.llm.batch_size)


def top_k_acceptance(ctx: RoundContext, novelty: ModelBundle, relevance: ModelBundle, prompts: list[str],
                     contexts: list[PromptContext], seen: list[set[str]]) -> tuple[float, float]:
    """(mean R-LLM P(yes), share above ``accept_threshold``) of the N-LLM's top-K new categories per prompt."""
    from coea.llm.decode import rank_categories

    ranked = rank_categories(novelty.model, novelty.tokenizer, prompts, ctx.index, ctx.cfg.k, exclude=seen,
                             batch_size=ctx.llm.batch_size)
    scores = rllm_scores(relevance, contexts, [[c for c, _ in row] for row in ranked], ctx.llm)
    flat = [s for row in scores for s in row]
    if not flat:
        return 0.0, 0.0
    return float(np.mean(flat)), float(np.mean([s > ctx.cfg.accept_threshold for s in flat]))


def round_reference(ctx: RoundContext, novelty: ModelBundle) -> Any:
    """The model the round's update is anchored to: a frozen copy of the N-LLM now (``reference: round``, or its
    latest SFT with ``refresh_novelty``), else the loop's SFT model."""
    anchor_now = ctx.cfg.reference is Reference.ROUND or ctx.cfg.refresh_novelty
    return copy.deepcopy(novelty.model).eval().requires_grad_(False) if anchor_now else ctx.sft_reference


def distill_update(ctx: RoundContext, novelty: ModelBundle, prompts: list[str], candidates: list[list[str]],
                   scores: list[list[float]], dpo_cfg: DpoTrainConfig) -> DistillResult | None:
    """``update: distill``: fit the N-LLM (in place) to ``ref(c) * exp(score(c) / beta)`` over each prompt's
    candidates (ref = 1 with ``reference: none``), with ``dpo.alpha`` x KL(ref || N-LLM) (:mod:`coea.llm.distill`);
    None when no prompt has two candidates."""
    from coea.llm.decode import category_logprobs
    from coea.llm.distill import target_distribution, train_distill

    rows = [i for i, cs in enumerate(candidates) if len(cs) >= 2]
    if not rows:
        log.warning("pco: no prompt has two candidates to distil; the N-LLM is unchanged")
        return None
    kept, cands = [prompts[i] for i in rows], [candidates[i] for i in rows]
    if ctx.cfg.reference is Reference.NONE:  # the target is exp(r / beta) alone (PcoConfig.reference)
        ref_rows = [np.zeros(len(cs)) for cs in cands]
    else:
        ref_lp = category_logprobs(round_reference(ctx, novelty), novelty.tokenizer, kept, ctx.index,
                                   ctx.llm.batch_size)  # (P, C)
        ref_rows = [ref_lp[j, [ctx.index.position[c] for c in cs]] for j, cs in enumerate(cands)]
    targets = [target_distribution(ref, np.asarray(scores[i]), dpo_cfg.beta)
               for ref, i in zip(ref_rows, rows, strict=True)]
    anchors = ([target_distribution(ref, np.zeros(len(ref)), dpo_cfg.beta) for ref in ref_rows]  # ref renormalised
               if dpo_cfg.alpha else None)
    return train_distill(dpo_cfg, novelty.model, novelty.tokenizer, kept, ctx.index, cands, targets, anchors,
                         device=ctx.device)


def dpo_update(ctx: RoundContext, novelty: ModelBundle, pairs: list[PreferencePair],
               dpo_cfg: DpoTrainConfig) -> DpoResult | None:
    """DPO+KL on ``pairs`` against the round's reference model (in place); None when there are no pairs."""
    from coea.llm.dpo import train_dpo

    if not pairs:
        log.warning("pco: no preference pairs above the margin; the N-LLM is unchanged")
        return None
    ref = round_reference(ctx, novelty)
    eos = novelty.tokenizer.eos_token
    data = [{"prompt": p.prompt, "chosen": novelty_completion([p.chosen], eos),
             "rejected": novelty_completion([p.rejected], eos)} for p in pairs]
    if ctx.cfg.soft_preferences:  # the teacher's Bradley-Terry probability (see PcoConfig.soft_preferences)
        for row, p in zip(data, pairs, strict=True):
            row["preference"] = 1.0 / (1.0 + math.exp(-dpo_cfg.beta * (p.chosen_score - p.rejected_score)))
    return train_dpo(dpo_cfg, novelty.model, novelty.tokenizer, data, ref_model=ref, device=ctx.device)


def takeup_exclusions(cfg: PcoConfig, ru: RoundUsers) -> list[set[str]]:
    """Per user: the categories that cannot count as a take-up (``pco.takeup``): everything seen by the period's end
    (``user``) or the prompt's short-term set (``recent``, the SFT target rule)."""
    return ru.seen if cfg.takeup is TakeUp.USER else [set(c.short_term) for c in ru.contexts]


def reward_inputs(ctx: RoundContext, r: int, window: Window, ru: RoundUsers, sampled: list[list[str]],
                  relevance: ModelBundle) -> tuple[RewardInputs, int, int]:
    """The round's reward inputs (with the users' feedback-period take-ups and, given served lists, what each was
    shown), how many logged take-ups joined the sampled candidates (``feedback_inject``) and how many served
    categories did (``exposure_inject``), both for a reward that reads feedback."""
    cfg = ctx.cfg
    feedback = feedback_takeups(ctx.history, window, ru.users, takeup_exclusions(cfg, ru), cfg.feedback_horizon)
    cands, injected, exposed, n_exposed = sampled, 0, [], 0
    if ctx.reward.reads_feedback and cfg.feedback_inject:
        cands, injected = inject_taken_up(sampled, feedback, cfg.pairs_per_prompt)
    if ctx.reward.reads_feedback and cfg.exposure_inject and ctx.exposure:
        exposed = exposed_categories(ctx.exposure, ru.users, ru.seen)
        cands, n_exposed = inject_exposed(cands, exposed, feedback, ctx.exposure, ru.users)
    return RewardInputs(r, window, ru.users, ru.contexts, ru.seen, cands, ctx.history, relevance, ctx.llm,
                        feedback, exposed), injected, n_exposed


def judged_on_policy(sampled: list[list[str]], inputs: RewardInputs) -> list[list[str]]:
    """What the on-policy R-LLM refresh labels per user: the N-LLM's sampled proposals and the served categories the
    user was shown (``inputs.exposed``: shown and ignored is the firmest "no" the log has), never the injected
    logged take-ups (they were neither proposed nor shown)."""
    return [list(s) + [c for c in row[len(s):] if c in inputs.exposed_of(i)]
            for i, (s, row) in enumerate(zip(sampled, inputs.candidates, strict=True))]


def feedback_pair_count(ctx: RoundContext, prompts: list[str], inputs: RewardInputs,
                        scores: list[list[float]]) -> int:
    """Pairs from the prompts of users with feedback, when the reward reads feedback (else 0)."""
    rows = [i for i in range(len(prompts)) if inputs.feedback_of(i) is not None]
    if not (ctx.reward.reads_feedback and rows):
        return 0
    return build_pairs([prompts[i] for i in rows], [inputs.candidates[i] for i in rows], [scores[i] for i in rows],
                       margin=ctx.cfg.margin, pairs_per_prompt=ctx.cfg.pairs_per_prompt,
                       by_rank=ctx.cfg.pairs_by_rank)[1].pairs


def refresh_relevance(ctx: RoundContext, relevance: ModelBundle, window: Window, rng: np.random.Generator,
                      refresh_cfg: SftTrainConfig, proposals: RewardInputs | None = None) -> tuple[int, int]:
    """SFT the R-LLM (in place, period mode only) on the examples ``refresh_kind()`` names: the window's new
    interactions (PERIOD) and/or ``proposals`` (the round's sampled candidates with their feedback) labelled
    on-policy; returns (examples, of which on-policy)."""
    from coea.llm.sft import train_sft

    cfg, data = ctx.cfg, ctx.llm.data
    if not (cfg.refresh_relevance and cfg.follow_periods):
        return 0, 0
    kind, eos = cfg.refresh_kind(), relevance.tokenizer.eos_token
    ex = (refresh_examples(ctx.history, ctx.groups, window, data, eos, rng, with_group=data.with_group)
          if kind in (RefreshKind.PERIOD, RefreshKind.BOTH) else [])
    on_policy = []
    if kind in (RefreshKind.ON_POLICY, RefreshKind.BOTH) and proposals is not None:
        op_rng = np.random.default_rng([cfg.seed, window.index + 1, 1])
        on_policy = on_policy_examples(proposals.contexts, proposals.candidates, proposals.seen, proposals.feedback,
                                       data.negatives_per_positive, eos, op_rng, with_group=data.with_group)
        pool = list(ex) + on_policy  # once: concatenating per element was quadratic
        ex = [pool[i] for i in op_rng.permutation(len(pool))]
    if ex:
        train_sft(refresh_cfg, relevance.model, relevance.tokenizer, ex, name="relevance-refresh", device=ctx.device)
    return len(ex), len(on_policy)


def refresh_novelty(ctx: RoundContext, novelty: ModelBundle, window: Window, refresh_cfg: SftTrainConfig) -> int:
    """With ``refresh_novelty``: continue the N-LLM's SFT (in place) on the window's new interactions
    (:func:`coea.pco.periods.novelty_refresh_examples`); returns the example count (0 when off)."""
    from coea.llm.sft import train_sft

    if not ctx.cfg.refresh_novelty:
        return 0
    ex = novelty_refresh_examples(ctx.history, ctx.groups, window, ctx.llm.data, novelty.tokenizer.eos_token)
    if ex:
        train_sft(refresh_cfg, novelty.model, novelty.tokenizer, ex, name="novelty-refresh", device=ctx.device)
    else:
        log.warning("pco round %d: no N-LLM refresh examples in the window; the refresh is skipped", window.index + 1)
    return len(ex)


# below this share of prompted users with feedback a round warns (few_feedback_warning); MovieLens' first global
# round has about 6 % (63 of 981, docs/results.md, session 19), the short MovieLens view 0.3-1.5 %
FEW_FEEDBACK_SHARE = 0.02


def few_feedback_warning(cfg: PcoConfig, r: int, prompted: int, with_feedback: int) -> str | None:
    """The warning of a round that reads logged feedback on global periods but finds it for fewer than
    :data:`FEW_FEEDBACK_SHARE` of its prompted users, else None. Such a loop barely moves the N-LLM: on a log of
    short, day-resolution histories most users' events fall in one global period, so few have events in the next
    (docs/results.md, session 19: 2-13 of 670-892 prompted users). ``periods: user`` replays each user's own
    history, in which every user with enough events has a feedback period."""
    if not cfg.uses_feedback or cfg.periods is not Periods.GLOBAL or not prompted:
        return None
    if with_feedback >= FEW_FEEDBACK_SHARE * prompted:
        return None
    return (f"pco round {r}: only {with_feedback} of {prompted} prompted users have events in the round's feedback "
            f"period, so the loop has almost no logged feedback to learn from (global periods; histories that are "
            f"short or span few distinct times give few). Set pco.periods: user to replay each user's own history "
            f"(--config short does)")


def run_round(ctx: RoundContext, r: int, window: Window, novelty: ModelBundle,
              relevance: ModelBundle) -> RoundReport:
    """Round ``r`` on ``window``: both models are updated in place (see module doc)."""
    cfg, llm, times = ctx.cfg, ctx.llm, {}
    rng = np.random.default_rng([cfg.seed, r])
    seed_everything(cfg.seed + r)
    dpo_cfg, refresh_cfg, novelty_cfg = trainer_configs(cfg, r)
    with _timed(times, "novelty_refresh_s"):
        novelty_refreshed = refresh_novelty(ctx, novelty, window, novelty_cfg)
    with _timed(times, "sample_s"):
        ru = round_users(ctx.history, ctx.groups, window, ctx.n_short, cfg.users_per_round, rng, llm.data)
        prompts = [novelty_prompt(c, with_group=llm.data.with_group) for c in ru.contexts]
        if not prompts:  # no user has a history before this window: nothing to propose, judge or tune
            log.warning("pco round %d: no user has a history before the round's window, so the round changes "
                        "neither model (a log this small gives PCO nothing to learn from; use fewer rounds or "
                        "periods, or more data)", r)
            return RoundReport(r, window, PairStats(0, 0, 0, 0, 0), 0.0, 0.0, 0.0, 0.0, dpo_margin=None, dpo_kl=None,
                               dpo_steps=0, refresh_examples=0, novelty_refresh_examples=novelty_refreshed,
                               times=times)
        sampled = sample_candidates(ctx, novelty, prompts, ru.seen, r)
    with _timed(times, "score_s"):
        inputs, injected, n_exposed = reward_inputs(ctx, r, window, ru, sampled, relevance)
        scores = ctx.reward.score(inputs)
        before = top_k_acceptance(ctx, novelty, relevance, prompts, ru.contexts, ru.seen)
    distil = cfg.update is Update.DISTILL
    pairs, stats = build_pairs(prompts, inputs.candidates, scores, margin=cfg.margin,
                               pairs_per_prompt=0 if distil else cfg.pairs_per_prompt, by_rank=cfg.pairs_by_rank)
    fb = FeedbackStats(sum(f is not None for f in inputs.feedback), feedback_pair_count(ctx, prompts, inputs, scores),
                       injected, exposed=n_exposed)
    log.info("pco round %d: %d users (%d with feedback), %d candidates, %d pairs (%d below margin)", r,
             len(ru.users), fb.users, stats.candidates, stats.pairs, stats.dropped_margin)
    if (warning := few_feedback_warning(cfg, r, len(ru.users), fb.users)) is not None:
        log.warning(warning)
    with _timed(times, "dpo_s"):
        dpo = None if distil else dpo_update(ctx, novelty, pairs, dpo_cfg)
        fit = (distill_update(ctx, novelty, prompts, inputs.candidates, ctx.reward.as_nats(scores), dpo_cfg)
               if distil else None)
    with _timed(times, "reeval_s"):
        after = top_k_acceptance(ctx, novelty, relevance, prompts, ru.contexts, ru.seen)
    with _timed(times, "refresh_s"):
        on_policy = replace(inputs, candidates=judged_on_policy(sampled, inputs))
        refreshed, fb.onpolicy_examples = refresh_relevance(ctx, relevance, window, rng, refresh_cfg, on_policy)
    return RoundReport(r, window, stats, *before, *after, dpo_margin=dpo.last("rewards/margins") if dpo else None,
                       dpo_kl=dpo.last("kl") if dpo else None, dpo_steps=(dpo or fit).steps if (dpo or fit) else 0,
                       refresh_examples=refreshed, novelty_refresh_examples=novelty_refreshed, feedback=fb,
                       times=times, distill_kl=fit.last_kl if fit else None)
