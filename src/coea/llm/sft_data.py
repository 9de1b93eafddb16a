"""Leakage-free SFT examples for the Novelty and Relevance LLMs, built from histories only.

For each user, cut points are chosen inside the history (seeded; at least ``min_prefix`` events before a cut,
at most ``cuts_per_user`` cuts, evenly spread). At a cut ``t``:

- context = the user's group (CSID + profile) and the short-term set at the cut: the distinct categories of the
  ``n_short`` events before ``t`` (most recent last);
- *taken up* = categories that appear in the ``horizon`` events after the cut and never before it (novel with
  respect to the user), in order of first appearance;
- N-LLM examples: prompt -> the taken-up categories (at most ``max_targets``); cuts with none are skipped.
  With ``split_targets`` (default) each taken-up category is its own completion: decoding ranks categories
  by the first-step distribution, and this trains exactly that distribution towards the set of categories
  taken up (a list completion trains only its first name at the first step);
- R-LLM examples: each taken-up category is a positive (``yes``); as many negatives (``no``) are drawn without
  replacement from categories the user neither had before the cut nor took up in the horizon, weighted by how
  often each category is *taken up* across all cuts (its adoption popularity). Weighting by plain event
  popularity would make positives (often tail categories) and negatives (popular ones) separable by the
  category alone, and the R-LLM would learn "rare means yes" instead of reading the context.

Nothing here reads the evaluation future: the caller passes the split's histories.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from coea.llm.sft_config import SftDataConfig


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


def _cuts(n: int, cfg: SftDataConfig, rng: np.random.Generator) -> list[int]:
    lo, hi = cfg.min_prefix, n - 1
    if hi < lo:
        return []
    points = np.unique(np.linspace(lo, hi, num=cfg.cuts_per_user).round().astype(int))
    jitter = rng.integers(-2, 3, size=points.size)
    return sorted(set(np.clip(points + jitter, lo, hi).tolist()))


def _taken_up(cats: list[str], t: int, horizon: int) -> list[str]:
    before = set(cats[:t])
    return [c for c in dict.fromkeys(cats[t:t + horizon]) if c not in before]


def _short_term(cats: list[str], t: int, n_short: int) -> tuple[str, ...]:
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


def _cut_points(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                rng: np.random.Generator) -> list[tuple[PromptContext, list[str], set[str]]]:
    """(context, taken-up categories, categories seen before the cut) for every cut of every grouped user."""
    out = []
    for user, g in history.groupby(USER, sort=True):
        info = groups.get(str(user))
        if info is None:
            continue
        cats = g[CATEGORY].tolist()
        for t in _cuts(len(cats), cfg, rng):
            targets = _taken_up(cats, t, cfg.horizon)
            if targets:
                ctx = PromptContext(info.csid, info.profile, _short_term(cats, t, cfg.n_short))
                out.append((ctx, targets[:cfg.max_targets], set(cats[:t])))
    return out


def build_sft_examples(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                       eos: str) -> SftExamples:
    """Examples for every user in ``groups`` from their (chronologically sorted) history events."""
    rng = np.random.default_rng(cfg.seed)
    cuts = _cut_points(history, groups, cfg, rng)
    adoption = pd.Series([c for _, targets, _ in cuts for c in targets], dtype=object).value_counts()
    pool, weights = adoption.index.to_numpy(), adoption.to_numpy(dtype=float)
    novelty, relevance = [], []
    for ctx, targets, seen in cuts:
        prompt = novelty_prompt(ctx, with_group=cfg.with_group)
        lists = [[c] for c in targets] if cfg.split_targets else [targets]
        novelty += [{"prompt": prompt, "completion": novelty_completion(t, eos)} for t in lists]
        negs = _negatives(pool, weights, seen | set(targets), cfg.negatives_per_positive * len(targets), rng)
        for cand, label in [(c, True) for c in targets] + [(c, False) for c in negs]:
            relevance.append({"prompt": relevance_prompt(ctx, cand, with_group=cfg.with_group),
                              "completion": relevance_completion(label, eos)})
    order = rng.permutation(len(relevance))
    return SftExamples(novelty, [relevance[i] for i in order])


def group_infos(groups: pd.DataFrame, profiles: Mapping[str, Mapping]) -> dict[str, GroupInfo]:
    """user -> GroupInfo from DSIE's ``groups.parquet`` frame and ``profiles.json`` content."""
    from coea.llm.prompts import parse_csid

    out = {}
    for user, gid in zip(groups[USER], groups["group_id"], strict=True):
        prof = profiles.get(gid, {})
        out[str(user)] = GroupInfo(parse_csid(str(gid)), str(prof.get("profile", "")))
    return out
