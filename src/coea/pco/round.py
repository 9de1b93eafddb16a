"""One PCO round as small steps: (1) sample M candidates per prompt from the N-LLM, (2) score them with the
configured :class:`~coea.pco.reward.Reward`, (3) form preference pairs, (4) DPO+KL update of the N-LLM,
(5) re-evaluate the updated N-LLM's top-K with the R-LLM, (6) refresh the R-LLM by SFT on the period's new
interactions (see :mod:`coea.pco.periods`).

A round is reproducible from ``(cfg.seed, round)`` alone: its user subsample and refresh draws use
``np.random.default_rng([seed, r])``, the global RNGs are re-seeded with ``seed + r``, the sampler with
``seed * 1000 + r`` and the trainers with their own seed ``+ r``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from coea.llm.dpo_config import DpoTrainConfig
from coea.llm.prompts import PromptContext, novelty_completion, novelty_prompt
from coea.llm.sft_config import LlmConfig, SftTrainConfig
from coea.llm.sft_data import GroupInfo
from coea.pco.config import PcoConfig, Reference
from coea.pco.pairs import PairStats, PreferencePair, build_pairs
from coea.pco.periods import Window, refresh_examples, round_users
from coea.pco.reward import Reward, RewardInputs, rllm_scores
from coea.utils import seed_everything

if TYPE_CHECKING:
    from coea.llm.decode import CategoryIndex
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
    refresh_examples: int  # R-LLM refresh examples trained on
    times: dict[str, float] = field(default_factory=dict)  # sample_s, score_s, dpo_s, reeval_s, refresh_s

    def as_row(self) -> dict[str, Any]:
        return {"round": self.round, "window": [self.window.start, self.window.end], **self.pair_stats.as_dict(),
                "mean_score_before": self.mean_score_before, "acceptance_before": self.acceptance_before,
                "mean_score_after": self.mean_score_after, "acceptance_after": self.acceptance_after,
                "dpo_margin": self.dpo_margin, "dpo_kl": self.dpo_kl, "dpo_steps": self.dpo_steps,
                "refresh_examples": self.refresh_examples, **self.times}


def trainer_configs(cfg: PcoConfig, r: int) -> tuple[DpoTrainConfig, SftTrainConfig]:
    """Round ``r``'s DPO and R-LLM refresh configs: seeds offset by ``r``."""
    return (replace(cfg.dpo, seed=cfg.dpo.seed + r),
            replace(cfg.relevance_refresh, seed=cfg.relevance_refresh.seed + r))


@contextmanager
def _timed(times: dict[str, float], key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    times[key] = time.perf_counter() - t0


def sample_candidates(ctx: RoundContext, novelty: ModelBundle, prompts: list[str], seen: list[set[str]],
                      r: int) -> list[list[str]]:
    """``cfg.candidates`` distinct categories per prompt from the N-LLM (among unseen ones if the reward says)."""
    from coea.llm.decode import sample_categories

    cfg = ctx.cfg
    exclude = seen if ctx.reward.exclude_seen_when_sampling else None
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


def dpo_update(ctx: RoundContext, novelty: ModelBundle, pairs: list[PreferencePair],
               dpo_cfg: DpoTrainConfig) -> DpoResult | None:
    """DPO+KL on ``pairs`` against the round's reference model (in place); None when there are no pairs."""
    from coea.llm.dpo import train_dpo

    if not pairs:
        log.warning("pco: no preference pairs above the margin; the N-LLM is unchanged")
        return None
    ref = (ctx.sft_reference if ctx.cfg.reference is Reference.SFT
           else copy.deepcopy(novelty.model).eval().requires_grad_(False))
    eos = novelty.tokenizer.eos_token
    data = [{"prompt": p.prompt, "chosen": novelty_completion([p.chosen], eos),
             "rejected": novelty_completion([p.rejected], eos)} for p in pairs]
    return train_dpo(dpo_cfg, novelty.model, novelty.tokenizer, data, ref_model=ref, device=ctx.device)


def refresh_relevance(ctx: RoundContext, relevance: ModelBundle, window: Window, rng: np.random.Generator,
                      refresh_cfg: SftTrainConfig) -> int:
    """SFT the R-LLM (in place) on the window's new feedback (period mode only); returns the examples used."""
    from coea.llm.sft import train_sft

    cfg, data = ctx.cfg, ctx.llm.data
    if not (cfg.refresh_relevance and cfg.follow_periods):
        return 0
    ex = refresh_examples(ctx.history, ctx.groups, window, data, relevance.tokenizer.eos_token, rng,
                          with_group=data.with_group)
    if ex:
        train_sft(refresh_cfg, relevance.model, relevance.tokenizer, ex, name="relevance-refresh", device=ctx.device)
    return len(ex)


def run_round(ctx: RoundContext, r: int, window: Window, novelty: ModelBundle,
              relevance: ModelBundle) -> RoundReport:
    """Round ``r`` on ``window``: both models are updated in place (see module doc)."""
    cfg, llm, times = ctx.cfg, ctx.llm, {}
    rng = np.random.default_rng([cfg.seed, r])
    seed_everything(cfg.seed + r)
    dpo_cfg, refresh_cfg = trainer_configs(cfg, r)
    with _timed(times, "sample_s"):
        ru = round_users(ctx.history, ctx.groups, window, ctx.n_short, cfg.users_per_round, rng, llm.data)
        prompts = [novelty_prompt(c, with_group=llm.data.with_group) for c in ru.contexts]
        cands = sample_candidates(ctx, novelty, prompts, ru.seen, r)
    with _timed(times, "score_s"):
        inputs = RewardInputs(r, window, ru.users, ru.contexts, ru.seen, cands, ctx.history, relevance, llm)
        scores = ctx.reward.score(inputs)
        before = top_k_acceptance(ctx, novelty, relevance, prompts, ru.contexts, ru.seen)
    pairs, stats = build_pairs(prompts, cands, scores, margin=cfg.margin, pairs_per_prompt=cfg.pairs_per_prompt)
    log.info("pco round %d: %d users, %d candidates, %d pairs (%d below margin)", r, len(ru.users),
             stats.candidates, stats.pairs, stats.dropped_margin)
    with _timed(times, "dpo_s"):
        dpo = dpo_update(ctx, novelty, pairs, dpo_cfg)
    with _timed(times, "reeval_s"):
        after = top_k_acceptance(ctx, novelty, relevance, prompts, ru.contexts, ru.seen)
    with _timed(times, "refresh_s"):
        refreshed = refresh_relevance(ctx, relevance, window, rng, refresh_cfg)
    return RoundReport(r, window, stats, *before, *after, dpo_margin=dpo.last("rewards/margins") if dpo else None,
                       dpo_kl=dpo.last("kl") if dpo else None, dpo_steps=dpo.steps if dpo else 0,
                       refresh_examples=refreshed, times=times)
