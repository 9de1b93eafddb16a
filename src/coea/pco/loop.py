"""The PCO loop: R rounds (:mod:`coea.pco.round`) over the history windows, checkpointed after each
(:mod:`coea.pco.checkpoint`).

``resume=True`` continues after the last complete round; since every round re-seeds its sampling and trainers
from ``(seed, round)`` and the checkpoints are exact, a resumed run ends with the same metrics as an
uninterrupted one.

The loop never reads an evaluation future: per-round evaluation metrics come from the caller's ``evaluate``
callback (which holds the split) and do not feed back into training.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from coea.llm.models import ModelBundle
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo
from coea.pco.checkpoint import completed_rounds, load_round, read_state, save_round, write_state
from coea.pco.config import PcoConfig, Periods, Reference
from coea.pco.periods import round_windows, user_clock
from coea.pco.reward import Reward, RewardSetup, make_reward
from coea.pco.round import RoundContext, run_round

log = logging.getLogger(__name__)

Evaluate = Callable[[int, ModelBundle, ModelBundle], dict[str, float]]  # (round, novelty, relevance) -> metrics


@dataclass
class PcoResult:
    """The models after the last round and one metrics row per round (round 0 = the SFT models)."""

    novelty: ModelBundle
    relevance: ModelBundle
    rounds: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None


class PcoLoop:
    """One PCO run over the history windows (see module doc); ``run()`` does (or resumes) all rounds.

    ``novelty`` and ``relevance`` are trained in place; ``device`` is where the trainers and a resume place the
    models; ``reward`` overrides the one ``cfg.reward`` names (:func:`~coea.pco.reward.make_reward`); ``encoder`` is the
    DSIE long-term encoder the ``teacher`` reward reads (``RewardSetup.encoder``); ``exposure`` (user -> served
    categories, best first) is what the serving store showed each user before the history's period
    (``pco.exposure_inject``)."""

    def __init__(self, cfg: PcoConfig, llm: LlmConfig, history: pd.DataFrame, categories: list[str],
                 groups: dict[str, GroupInfo], novelty: ModelBundle, relevance: ModelBundle,
                 out_dir: Path | None = None, evaluate: Evaluate | None = None, n_short: int = 10, *,
                 device: str, reward: Reward | None = None, encoder: Any = None,
                 exposure: Mapping[str, Sequence[str]] | None = None) -> None:
        from coea.llm.decode import CategoryIndex
        from coea.llm.models import admit_categories, make_trainable

        for bundle in (novelty, relevance):  # a category new since SFT gets a token instead of a crash
            admit_categories(bundle, categories)
        sft_reference = (copy.deepcopy(novelty.model).eval().requires_grad_(False)
                         if cfg.reference is Reference.SFT else None)
        for b in (novelty, relevance):
            make_trainable(b)
        if cfg.follow_periods and cfg.periods is Periods.USER:
            history = user_clock(history)
        if reward is None:
            reward = make_reward(cfg, RewardSetup(history, groups, categories, llm, encoder))
        self.ctx = RoundContext(cfg, llm, history, groups, CategoryIndex(novelty.tokenizer, categories), reward,
                                device, n_short, sft_reference, exposure)
        self.cfg, self.device, self.novelty, self.relevance = cfg, device, novelty, relevance
        self.out_dir, self.evaluate = out_dir, evaluate
        # continual protocol (llm.data.holdout_share): with per-user periods the rounds replay only what SFT never saw
        held_out = llm.data.holdout_share
        self.windows = round_windows(history, cfg.rounds, cfg.follow_periods, feedback=cfg.uses_feedback,
                                     periods=cfg.periods, start_share=1.0 - held_out if held_out else 0.0)

    def _start(self, resume: bool) -> tuple[int, list[dict[str, Any]]]:
        """(rounds already done, their rows): from ``out_dir``'s state with ``resume`` (models and RNG
        restored), else round 0's row (written as the initial state when there is an ``out_dir``)."""
        state = read_state(self.out_dir, self.cfg) if resume and self.out_dir is not None else None
        if state is not None and state.completed_rounds > 0:
            self.novelty, self.relevance = load_round(self.out_dir, state.completed_rounds, self.device)
        if state is not None and state.rounds:
            if state.completed_rounds >= self.cfg.rounds:  # a retried step, or --resume on a finished run
                log.info("pco: all %d rounds were done; nothing to train, the outputs are written again",
                         state.completed_rounds)
            return state.completed_rounds, state.rounds
        rows = [{"round": 0, **(self.evaluate(0, self.novelty, self.relevance) if self.evaluate else {})}]
        if self.out_dir is not None:
            previous = completed_rounds(self.out_dir)
            if previous and self.windows:  # a re-run: the old rounds stay readable until round 1 replaces them
                log.info("pco: %d round(s) of an earlier run stay the state until round 1 of this one is saved",
                         previous)
            else:
                write_state(self.out_dir, 0, rows, self.cfg)
        return 0, rows

    def run(self, resume: bool = False) -> PcoResult:
        """All rounds (or those left after the last complete one with ``resume``); returns models and rows."""
        done, rows = self._start(resume)
        for window in self.windows[done:]:
            r = window.index + 1
            start = time.perf_counter()
            log.info("pco round %d/%d: sampling, scoring, DPO%s", r, len(self.windows),
                     f" (resumed after round {done})" if done and r == done + 1 else "")
            row = run_round(self.ctx, r, window, self.novelty, self.relevance).as_row()
            if self.evaluate:
                t0 = time.perf_counter()
                row.update(self.evaluate(r, self.novelty, self.relevance))
                row["evaluate_s"] = time.perf_counter() - t0
            row["round_s"] = time.perf_counter() - start
            rows.append(row)
            if self.out_dir is not None:
                save_round(self.out_dir, r, self.novelty, self.relevance, rows, self.cfg)
            log.info("pco round %d/%d done in %.1fs: the R-LLM's mean P(yes) of the N-LLM's top-K new categories "
                     "%.3f -> %.3f (share above pco.accept_threshold %.3f -> %.3f)", r, len(self.windows),
                     row["round_s"], row["mean_score_before"], row["mean_score_after"], row["acceptance_before"],
                     row["acceptance_after"])
        return PcoResult(self.novelty, self.relevance, rows, self.out_dir)
