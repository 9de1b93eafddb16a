"""Leakage-free SFT examples for the Novelty and Relevance LLMs, built from histories only.

For each user, cut points are chosen inside the history (seeded; at least ``min_prefix`` events before a cut,
evenly spread, jittered by up to 2 events). The two LLMs draw their cuts separately: the R-LLM (and PCO's
R-LLM refresh) up to ``cuts_per_user`` per user with ``horizon``; the N-LLM up to ``novelty_cuts_per_user``
with ``novelty_horizon`` (its own seeded stream, so N-LLM settings never change the R-LLM examples). At a cut
``t``:

- context = the user's group (CSID + profile) and the short-term set at the cut: the distinct categories of the
  ``n_short`` events before ``t`` (most recent last);
- *taken up* (R-LLM) = categories that appear in the ``horizon`` events after the cut and never before it
  (novel with respect to the user), in order of first appearance;
- N-LLM targets = categories of the ``novelty_horizon`` events after the cut, in order of first appearance, that
  are not in the short-term set (``novelty_target=recent``, default) or never seen before the cut (``user``);
  at most ``max_targets``; cuts with none are skipped. With ``split_targets`` (default) each target is its own
  completion: decoding ranks categories by the first-step distribution, and this trains exactly that
  distribution towards the set of targets (a list completion trains only its first name at the first step);
- R-LLM examples: each taken-up category is a positive (``yes``); as many negatives (``no``) are drawn without
  replacement from categories the user neither had before the cut nor took up in the horizon, weighted by how
  often each category is *taken up* across all cuts (its adoption popularity). Weighting by plain event
  popularity would make positives (often tail categories) and negatives (popular ones) separable by the
  category alone, and the R-LLM would learn "rare means yes" instead of reading the context.

Why the N-LLM's defaults differ from the R-LLM's (measured on MovieLens-1M, users 1-2999, K=10, ``+x`` view;
first-order ``markov+x`` reaches S-H@10 0.608). The N-LLM prompt shows the short-term set only, never the full
history; novelty for the user is enforced at inference by excluding the history (``+x``). What the model must
learn is which categories follow a short-term set. "Never seen before the cut" targets are a sparse signal that
depends on the prefix length the prompt does not show (early cuts: popular categories are new; late cuts: only
rare ones), so they teach that mapping poorly: a bag-of-categories MLP probe trained on the old data (4 cuts,
horizon 20, ``user`` targets; 57k examples) reaches 0.572, and even on every position of every history (1.3M
examples) only 0.617; with ``recent`` targets it reaches 0.636-0.650 on 12-16 cuts and 0.678 on every position.
A horizon equal to the evaluation's future (10 events) beats 20. The scratch N-LLM went from 0.554 (old data,
2 blocks, 2 epochs) to 0.609 (new data, 2 blocks, 1 epoch) and 0.634 (new data, 1 block, 2 epochs: the defaults,
about 145k examples).

Nothing here reads the evaluation future: the caller passes the split's histories.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, USER
from coea.llm.prompts import (
    PromptContext,
    novelty_completion,
    novelty_prompt,
    relevance_completion,
    relevance_prompt,
)
from coea.llm.sft_config import NoveltyTarget, SftDataConfig


@dataclass(frozen=True)
class SftExamples:
    """Prompt/completion pairs (the trl prompt-completion dataset format)."""

    novelty: list[dict[str, str]]
    relevance: list[dict[str, str]]


@dataclass(frozen=True)
class GroupInfo:
    """A user's group as prompts need it."""

    csid: tuple[int, ...]
    profile: str


def _cuts(n: int, cfg: SftDataConfig, rng: np.random.Generator, count: int | None = None) -> list[int]:
    lo, hi = cfg.min_prefix, n - 1
    if hi < lo:
        return []
    points = np.unique(np.linspace(lo, hi, num=count or cfg.cuts_per_user).round().astype(int))
    jitter = rng.integers(-2, 3, size=points.size)
    return sorted(set(np.clip(points + jitter, lo, hi).tolist()))


def taken_up(cats: list[str], t: int, horizon: int) -> list[str]:
    """Categories first taken up in ``cats[t:t + horizon]`` (not in ``cats[:t]``), in order of first use."""
    before = set(cats[:t])
    return [c for c in dict.fromkeys(cats[t:t + horizon]) if c not in before]


def recent_categories(cats: list[str], t: int, n_short: int) -> tuple[str, ...]:
    """The short-term set at cut ``t``: distinct categories of ``cats[t - n_short:t]``, most recent last."""
    recent = cats[max(0, t - n_short):t]
    return tuple(list(dict.fromkeys(reversed(recent)))[::-1])


def _negatives(pool: np.ndarray, weights: np.ndarray, banned: set[str], n: int, rng) -> list[str]:
    ok = np.array([c not in banned for c in pool])
    if not ok.any() or n <= 0:
        return []
    p = weights * ok
    p = p / p.sum()
    size = min(n, int(ok.sum()))
    return rng.choice(pool, size=size, replace=False, p=p).tolist()


def _grouped_histories(history: pd.DataFrame,
                       groups: Mapping[str, GroupInfo]) -> Iterator[tuple[GroupInfo, list[str]]]:
    """(group, category sequence) of every user with a group, users in sorted order."""
    for user, g in history.groupby(USER, sort=True):
        info = groups.get(str(user))
        if info is not None:
            yield info, g[CATEGORY].tolist()


def adoption_counts(cuts: list[tuple[PromptContext, list[str], set[str]]]) -> pd.Series:
    """How often each category is taken up over R-LLM cuts (the weights of the R-LLM's "no" draws)."""
    return pd.Series([c for _, targets, _ in cuts for c in targets], dtype=object).value_counts()


def cut_points(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                rng: np.random.Generator) -> list[tuple[PromptContext, list[str], set[str]]]:
    """R-LLM cuts: (context, taken-up categories, categories seen before the cut) for every grouped user."""
    out = []
    for info, cats in _grouped_histories(history, groups):
        for t in _cuts(len(cats), cfg, rng):
            targets = taken_up(cats, t, cfg.horizon)
            if targets:
                ctx = PromptContext(info.csid, info.profile, recent_categories(cats, t, cfg.n_short))
                out.append((ctx, targets[:cfg.max_targets], set(cats[:t])))
    return out


def _novelty_cuts(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                  rng: np.random.Generator) -> list[tuple[PromptContext, list[str]]]:
    """N-LLM cuts: (context, target categories) with the N-LLM's own cut count, horizon and target rule."""
    out = []
    for info, cats in _grouped_histories(history, groups):
        for t in _cuts(len(cats), cfg, rng, cfg.novelty_cuts_per_user):
            recent = recent_categories(cats, t, cfg.n_short)
            seen = set(recent) if cfg.novelty_target is NoveltyTarget.RECENT else set(cats[:t])
            targets = [c for c in dict.fromkeys(cats[t:t + cfg.novelty_horizon]) if c not in seen]
            if targets:
                out.append((PromptContext(info.csid, info.profile, recent), targets[:cfg.max_targets]))
    return out


def relevance_examples(cuts: list[tuple[PromptContext, list[str], set[str]]], negatives_per_positive: int,
                       eos: str, rng: np.random.Generator, *, with_group: bool = True) -> list[dict[str, str]]:
    """Balanced R-LLM examples from (context, taken-up categories, seen before the cut) cuts, shuffled: each
    taken-up category a ``yes``, ``negatives_per_positive`` times as many ``no`` drawn by adoption popularity
    (over these cuts) among categories the user neither had nor took up."""
    adoption = adoption_counts(cuts)
    pool, weights = adoption.index.to_numpy(), adoption.to_numpy(dtype=float)
    out = []
    for ctx, targets, seen in cuts:
        negs = _negatives(pool, weights, seen | set(targets), negatives_per_positive * len(targets), rng)
        for cand, label in [(c, True) for c in targets] + [(c, False) for c in negs]:
            out.append({"prompt": relevance_prompt(ctx, cand, with_group=with_group),
                        "completion": relevance_completion(label, eos)})
    return [out[i] for i in rng.permutation(len(out))]


def build_sft_examples(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                       eos: str) -> SftExamples:
    """Examples for every user in ``groups`` from their (chronologically sorted) history events."""
    rng = np.random.default_rng(cfg.seed)
    relevance = relevance_examples(cut_points(history, groups, cfg, rng), cfg.negatives_per_positive, eos, rng,
                                   with_group=cfg.with_group)
    novelty = []
    for ctx, targets in _novelty_cuts(history, groups, cfg, np.random.default_rng([cfg.seed, 1])):
        prompt = novelty_prompt(ctx, with_group=cfg.with_group)
        lists = [[c] for c in targets] if cfg.split_targets else [targets]
        novelty += [{"prompt": prompt, "completion": novelty_completion(t, eos)} for t in lists]
    return SftExamples(novelty, relevance)


def group_infos(groups: pd.DataFrame, profiles: Mapping[str, Mapping]) -> dict[str, GroupInfo]:
    """user -> GroupInfo from DSIE's ``groups.parquet`` frame and ``profiles.json`` content."""
    from coea.llm.prompts import parse_csid

    out = {}
    for user, gid in zip(groups[USER], groups["group_id"], strict=True):
        prof = profiles.get(gid, {})
        out[str(user)] = GroupInfo(parse_csid(str(gid)), str(prof.get("profile", "")))
    return out
