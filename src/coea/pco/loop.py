"""The PCO loop: R rounds of (1) sample M candidates per prompt from the N-LLM, (2) score them with the R-LLM,
(3) form preference pairs, (4) DPO+KL update of the N-LLM, (5) re-evaluate the updated N-LLM's top-K with the
R-LLM, (6) refresh the R-LLM by SFT on the period's new interactions (see :mod:`coea.pco.periods`).

State after every round is written atomically under ``out_dir``: ``rounds/round_NNN/`` (both models without
optimizer state, ``round.json``, the RNG states) and then ``pco_state.json`` naming the last complete round.
``resume=True`` continues after that round; since every round re-seeds its sampling and trainers from
``(seed, round)`` and the checkpoints are exact, a resumed run ends with the same metrics as an uninterrupted one.

The loop never reads an evaluation future: per-round evaluation metrics come from the caller's ``evaluate``
callback (which holds the split) and do not feed back into training.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from coea.config import config_to_dict
from coea.errors import CoeaInputError
from coea.llm.models import ModelBundle, load_bundle, save_bundle
from coea.llm.prompts import novelty_completion, novelty_prompt, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo
from coea.llm.tokenizer import atomic_dir
from coea.pco.config import PcoConfig
from coea.pco.pairs import build_pairs
from coea.pco.periods import Window, refresh_examples, round_users, round_windows
from coea.utils import seed_everything, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "pco_state.json"
Evaluate = Callable[[int, ModelBundle, ModelBundle], dict[str, float]]  # (round, novelty, relevance) -> metrics


@dataclass
class PcoResult:
    """The models after the last round and one metrics row per round (round 0 = the SFT models)."""

    novelty: ModelBundle
    relevance: ModelBundle
    rounds: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None


def _round_dir(out_dir: Path, r: int) -> Path:
    return out_dir / "rounds" / f"round_{r:03d}"


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _scores(relevance: ModelBundle, ctxs, cands: list[list[str]], cfg: LlmConfig) -> list[list[float]]:
    """R-LLM P(yes) of every (context, candidate), shaped like ``cands``."""
    from coea.llm.decode import relevance_scores

    flat = [relevance_prompt(ctxs[i], c, with_group=cfg.data.with_group) for i, cs in enumerate(cands) for c in cs]
    p = relevance_scores(relevance.model, relevance.tokenizer, flat, batch_size=cfg.batch_size) if flat else []
    out, pos = [], 0
    for cs in cands:
        out.append([float(x) for x in p[pos:pos + len(cs)]])
        pos += len(cs)
    return out


def adoption_log_prior(history: pd.DataFrame, groups: dict[str, GroupInfo], cfg: LlmConfig,
                       categories: list[str]) -> dict[str, float]:
    """log q(c) - mean log q: q = how often each category is taken up at the R-LLM's SFT cut points of
    ``history`` (+1 smoothing), the distribution its "no" examples are drawn from."""
    from coea.llm.sft_data import _cut_points, adoption_counts

    counts = adoption_counts(_cut_points(history, groups, cfg.data, np.random.default_rng(cfg.data.seed)))
    logq = np.log(np.array([float(counts.get(c, 0)) + 1.0 for c in categories]))
    return dict(zip(categories, (logq - logq.mean()).tolist(), strict=True))


def _corrected(p: float, log_prior: float) -> float:
    """sigmoid(logit p + log_prior), clipped away from 0 and 1."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + log_prior))))


def _rewards(relevance: ModelBundle, ctxs, cands: list[list[str]], seen: list[set[str]],
             cfg: LlmConfig, log_prior: dict[str, float] | None = None) -> list[list[float]]:
    """Serendipity reward: the R-LLM's P(yes) (prior-corrected when ``log_prior`` is given) for a category new
    to the user, 0 for one already seen (no serendipity in recommending it again); only new candidates are
    scored."""
    novel = [[c for c in cs if c not in s] for cs, s in zip(cands, seen, strict=True)]
    scores = _scores(relevance, ctxs, novel, cfg)
    if log_prior is not None:
        scores = [[_corrected(x, log_prior.get(c, 0.0)) for x, c in zip(row, cs, strict=True)]
                  for row, cs in zip(scores, novel, strict=True)]
    p = iter(x for row in scores for x in row)
    return [[0.0 if c in s else next(p) for c in cs] for cs, s in zip(cands, seen, strict=True)]


def _top_k(novelty: ModelBundle, index, prompts: list[str], seen: list[set[str]], k: int,
           cfg: LlmConfig) -> list[list[str]]:
    from coea.llm.decode import rank_categories

    ranked = rank_categories(novelty.model, novelty.tokenizer, prompts, index, k, exclude=seen,
                             batch_size=cfg.batch_size)
    return [[c for c, _ in row] for row in ranked]


def _acceptance(scores: list[list[float]], threshold: float) -> tuple[float, float]:
    flat = [s for row in scores for s in row]
    return (float(np.mean(flat)), float(np.mean([s > threshold for s in flat]))) if flat else (0.0, 0.0)


class PcoLoop:
    """One PCO run over the history windows (see module doc); ``run()`` does (or resumes) all rounds."""

    def __init__(self, cfg: PcoConfig, llm: LlmConfig, history: pd.DataFrame, categories: list[str],
                 groups: dict[str, GroupInfo], novelty: ModelBundle, relevance: ModelBundle,
                 out_dir: Path | None = None, evaluate: Evaluate | None = None, n_short: int = 10) -> None:
        from coea.llm.decode import CategoryIndex
        from coea.llm.models import admit_categories

        self.cfg, self.llm, self.history, self.groups = cfg, llm, history, groups
        for bundle in (novelty, relevance):  # a category new since SFT gets a token instead of a crash
            admit_categories(bundle, categories)
        self.index = CategoryIndex(novelty.tokenizer, categories)
        self.sft_novelty = (copy.deepcopy(novelty.model).eval().requires_grad_(False)  # the "sft" reference
                            if cfg.reference == "sft" else None)
        for b in (novelty, relevance):  # a reloaded bundle comes frozen: train all weights, or only the adapters
            for name, param in b.model.named_parameters():
                param.requires_grad_(b.is_scratch or "lora_" in name)
        self.novelty, self.relevance = novelty, relevance
        self.out_dir, self.evaluate, self.n_short = out_dir, evaluate, n_short
        self.windows = round_windows(history, cfg.rounds, cfg.follow_periods)
        self.log_prior = adoption_log_prior(history, groups, llm, categories) if cfg.prior_correction else None

    # -- one round -------------------------------------------------------------------------------------------
    def _round(self, r: int, window: Window) -> dict[str, Any]:
        from coea.llm.decode import sample_categories
        from coea.llm.dpo import train_dpo
        from coea.llm.sft import train_sft

        cfg, llm, n = self.cfg, self.llm, self.novelty
        rng = np.random.default_rng([cfg.seed, r])
        seed_everything(cfg.seed + r)
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        ru = round_users(self.history, self.groups, window, self.n_short, cfg.users_per_round, rng)
        prompts = [novelty_prompt(c, with_group=llm.data.with_group) for c in ru.contexts]
        serendipity = cfg.reward == "serendipity"
        cands = sample_categories(n.model, n.tokenizer, prompts, self.index, cfg.candidates, cfg.temperature,
                                  seed=cfg.seed * 1000 + r, exclude=None if serendipity else ru.seen,
                                  batch_size=llm.batch_size)
        times["sample_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = _rewards(self.relevance, ru.contexts, cands, ru.seen, llm, self.log_prior)
        before_top = _top_k(n, self.index, prompts, ru.seen, cfg.k, llm)
        before_mean, before_acc = _acceptance(_scores(self.relevance, ru.contexts, before_top, llm),
                                              cfg.accept_threshold)
        times["score_s"] = time.perf_counter() - t0
        pairs, stats = build_pairs(prompts, cands, scores, margin=cfg.margin, pairs_per_prompt=cfg.pairs_per_prompt)
        log.info("pco round %d: %d users, %d candidates, %d pairs (%d below margin)", r, len(ru.users),
                 stats.candidates, stats.pairs, stats.dropped_margin)
        t0 = time.perf_counter()
        ref = self.sft_novelty if cfg.reference == "sft" else copy.deepcopy(n.model).eval().requires_grad_(False)
        eos = n.tokenizer.eos_token
        data = [{"prompt": p.prompt, "chosen": novelty_completion([p.chosen], eos),
                 "rejected": novelty_completion([p.rejected], eos)} for p in pairs]
        dpo = None
        if data:
            dpo_cfg = replace(cfg.dpo, seed=cfg.dpo.seed + r, device=llm.novelty.device)
            dpo = train_dpo(dpo_cfg, n.model, n.tokenizer, data, ref_model=ref)
        else:
            log.warning("pco round %d: no preference pairs above the margin; the N-LLM is unchanged", r)
        del ref
        times["dpo_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        after_top = _top_k(n, self.index, prompts, ru.seen, cfg.k, llm)
        after_mean, after_acc = _acceptance(_scores(self.relevance, ru.contexts, after_top, llm), cfg.accept_threshold)
        times["reeval_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        refreshed = 0
        if cfg.refresh_relevance and cfg.follow_periods:
            ex = refresh_examples(self.history, self.groups, window, llm.data, self.relevance.tokenizer.eos_token,
                                  rng, with_group=llm.data.with_group)
            if ex:
                train_sft(replace(cfg.relevance_refresh, seed=cfg.relevance_refresh.seed + r), self.relevance.model,
                          self.relevance.tokenizer, ex, name="relevance-refresh")
                refreshed = len(ex)
        times["refresh_s"] = time.perf_counter() - t0
        return {"round": r, "window": [window.start, window.end], **stats.as_dict(),
                "mean_score_before": before_mean, "acceptance_before": before_acc,
                "mean_score_after": after_mean, "acceptance_after": after_acc,
                "dpo_margin": dpo.last("rewards/margins") if dpo else None, "dpo_kl": dpo.last("kl") if dpo else None,
                "dpo_steps": dpo.steps if dpo else 0, "refresh_examples": refreshed, **times}

    # -- checkpoints -------------------------------------------------------------------------------------------
    def _save(self, r: int, rows: list[dict[str, Any]]) -> None:
        if self.out_dir is None:
            return
        with atomic_dir(_round_dir(self.out_dir, r)) as tmp:
            save_bundle(self.novelty, tmp / "novelty")
            save_bundle(self.relevance, tmp / "relevance")
            write_json_atomic(tmp / "round.json", rows[-1])
            torch.save(_rng_state(), tmp / "rng.pt")
        write_json_atomic(self.out_dir / STATE_FILE, {"completed_rounds": r, "rounds": rows,
                                                      "config": config_to_dict(self.cfg)})

    def _load(self) -> tuple[int, list[dict[str, Any]]]:
        """(last complete round, its metric rows) from ``out_dir``; models and RNG restored."""
        path = self.out_dir / STATE_FILE
        if not path.is_file():
            return 0, []
        state = json.loads(path.read_text(encoding="utf-8"))
        if state["config"] != config_to_dict(self.cfg):
            raise CoeaInputError("the PCO config differs from the run being resumed", source=path,
                                 fix="resume with the same config, or write to a fresh --out directory")
        r = int(state["completed_rounds"])
        if r == 0:
            return 0, state["rounds"]
        d = _round_dir(self.out_dir, r)
        device = self.llm.novelty.device
        self.novelty = load_bundle(d / "novelty", trainable=True, device=device)
        self.relevance = load_bundle(d / "relevance", trainable=True, device=device)
        rng = torch.load(d / "rng.pt", weights_only=False)
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        log.info("pco: resuming after round %d from %s", r, d)
        return r, state["rounds"]

    def run(self, resume: bool = False) -> PcoResult:
        """All rounds (or those left after the last complete one with ``resume``); returns models and rows."""
        done, rows = self._load() if resume and self.out_dir is not None else (0, [])
        if not rows:
            rows = [{"round": 0, **(self.evaluate(0, self.novelty, self.relevance) if self.evaluate else {})}]
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.out_dir / STATE_FILE, {"completed_rounds": 0, "rounds": rows,
                                                              "config": config_to_dict(self.cfg)})
        for window in self.windows[done:]:
            r = window.index + 1
            start = time.perf_counter()
            row = self._round(r, window)
            if self.evaluate:
                t0 = time.perf_counter()
                row.update(self.evaluate(r, self.novelty, self.relevance))
                row["evaluate_s"] = time.perf_counter() - t0
            row["round_s"] = time.perf_counter() - start
            rows.append(row)
            self._save(r, rows)
            log.info("pco round %d/%d done in %.1fs: acceptance %.3f -> %.3f", r, len(self.windows), row["round_s"],
                     row["acceptance_before"], row["acceptance_after"])
        return PcoResult(self.novelty, self.relevance, rows, self.out_dir)
