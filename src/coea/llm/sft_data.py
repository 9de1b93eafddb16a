"""Leakage-free SFT examples for the Novelty and Relevance LLMs, built from histories only.

For each user, cut points are chosen inside the history (seeded; at least ``min_prefix`` events before a cut,
evenly spread, jittered by up to 2 events). A user whose history has at most ``min_prefix`` events (no cut
possible there) is cut from half their history on instead, without jitter (:func:`first_cut`): short-history
users get examples, and every other user's cuts and jitter draws stay exactly as without the fallback. The
window fields follow the split unless set (:func:`coea.llm.sft_config.resolve_sft_data`); the functions here
need them resolved. The two LLMs draw their cuts separately: the R-LLM (and PCO's
R-LLM refresh) up to ``cuts_per_user`` per user with ``horizon``; the N-LLM up to ``novelty_cuts_per_user``
with ``novelty_horizon`` (its own seeded stream, so N-LLM settings never change the R-LLM examples). At a cut
``t``:

- context = the user's group (CSID + profile) and the short-term set at the cut: the distinct categories of the
  ``n_short`` events before ``t`` (most recent last); optionally the user's own full CSID (``full_csid``) and
  their ``long_term`` most frequent categories before ``t``, the categories and the items of their last
  ``sequence`` / ``items`` events before ``t`` in order (:func:`prompt_context`, the one recipe shared by SFT, PCO
  and inference);
- the targets of a cut start at its first event ``gap`` seconds or more after the cut's last event
  (:func:`target_start`; right after the cut when ``gap`` is 0, the default split's), so that a split with
  ``min_gap`` trains on what it scores: what a user takes up after such a pause;
- *taken up* (R-LLM) = categories that appear in the ``horizon`` events from the target start and never before
  the cut (novel with respect to the user), in order of first appearance;
- N-LLM targets = categories of the ``novelty_horizon`` events from the target start, in order of first
  appearance, that are not in the short-term set (``novelty_target=recent``, default) or never seen before the
  cut (``user``); at most ``max_targets``; cuts with none are skipped. With ``new_user_cut`` every user also gets
  a cut at 0 (before their first event: an empty short-term set, targets = the first categories they took up),
  so the N-LLM learns what a user without history takes up (cold-start users' prompts are empty; with
  ``full_csid`` its ``user:`` section is the group prefix, what inference shows a user DSIE has no code for). With
  ``split_targets`` (default) each target is its own completion: decoding ranks categories by the first-step
  distribution, and this trains exactly that distribution towards the set of targets (a list completion trains
  only its first name at the first step);
- R-LLM examples: each taken-up category is a positive (``yes``); as many negatives (``no``) are drawn without
  replacement from categories the user neither had before the cut nor took up in the horizon, weighted by how
  often each category is *taken up* across all cuts (its adoption popularity). Weighting by plain event
  popularity would make positives (often tail categories) and negatives (popular ones) separable by the
  category alone, and the R-LLM would learn "rare means yes" instead of reading the context.

Why the N-LLM's defaults differ from the R-LLM's (measured on MovieLens-1M, users 1-2999, K=10, ``+x`` view;
first-order ``markov+x`` reaches S-H@10 0.608). The N-LLM prompt of these measurements showed the short-term set
only (since session 36 it also shows the last 50 events' categories and items, ``seq:``/``items:``); novelty for the
user is enforced at inference by excluding the history (``+x``). What the model must
learn is which categories follow a short-term set. "Never seen before the cut" targets are a sparse signal that
depends on the prefix length the prompt does not show (early cuts: popular categories are new; late cuts: only
rare ones), so they teach that mapping poorly: a bag-of-categories MLP probe trained on the old data (4 cuts,
horizon 20, ``user`` targets; 57k examples) reaches 0.572, and even on every position of every history (1.3M
examples) only 0.617; with ``recent`` targets it reaches 0.636-0.650 on 12-16 cuts and 0.678 on every position.
A horizon equal to the evaluation's future (10 events) beats 20. Re-measured in session 38 with the history in the
prompt (``sequence``/``items`` 50, the defaults since session 36), ``user`` targets still lose: ``+x`` S-H@10 .6738
against .7154 (validation, two paired trainings; docs/results.md): the returns to categories seen long before the
cut are a preference signal, not noise. The scratch N-LLM went from 0.554 (old data,
2 blocks, 2 epochs) to 0.609 (new data, 2 blocks, 1 epoch) and 0.634 (new data, 1 block, 2 epochs: the defaults
of then, about 145k examples; ``llm.novelty.epochs`` is 1 today).

Nothing here reads the evaluation future: the caller passes the split's histories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER
from coea.llm.prompts import (
    PromptContext,
    novelty_completion,
    novelty_prompt,
    relevance_completion,
    relevance_prompt,
)
from coea.llm.sft_config import WINDOW_FIELDS, NoveltyTarget, SftDataConfig


@dataclass(frozen=True)
class SftExamples:
    """Prompt/completion pairs (the trl prompt-completion dataset format)."""

    novelty: list[dict[str, str]]
    relevance: Sequence[dict[str, str]]  # a list, or RelevanceExamples (written out when read)


@dataclass(frozen=True)
class GroupInfo:
    """A user's group as prompts need it, and the user's own full CSID code (``full_csid`` prompts)."""

    csid: tuple[int, ...]
    profile: str
    code: tuple[int, ...] = ()  # every CSID level of the user's own code; () = unknown (the group prefix is used)


def require_resolved(cfg: SftDataConfig) -> SftDataConfig:
    """``cfg`` itself; raises ValueError when a window field still says "follow the split" (None)."""
    if not cfg.resolved:
        missing = [name for name in WINDOW_FIELDS if getattr(cfg, name) is None]
        raise ValueError(f"SftDataConfig fields {missing} are None (follow the split): resolve them first with "
                         f"coea.llm.sft_config.resolve_sft_data(cfg, split)")
    return cfg


def first_cut(n: int, min_prefix: int) -> int:
    """The first possible cut of an ``n``-event history: ``min_prefix``, or half the history (at least 1) when
    the history is too short for a cut there (``n <= min_prefix``)."""
    return min_prefix if n > min_prefix else max(1, n // 2)


def _cuts(n: int, cfg: SftDataConfig, rng: np.random.Generator, count: int | None = None) -> list[int]:
    lo, hi = first_cut(n, cfg.min_prefix), n - 1
    if hi < lo:
        return []
    points = np.unique(np.linspace(lo, hi, num=count or cfg.cuts_per_user).round().astype(int))
    if n <= cfg.min_prefix:  # the short-history fallback draws nothing: the other users' jitter stays as it was
        return points.tolist()
    jitter = rng.integers(-2, 3, size=points.size)
    return sorted(set(np.clip(points + jitter, lo, hi).tolist()))


def target_start(ts: np.ndarray, t: int, gap: int) -> int:
    """Index of the first target event of a cut at ``t`` in a history with (sorted) timestamps ``ts``: the first
    event at least ``gap`` seconds after event ``t - 1``; ``t`` itself when ``gap`` is 0 or ``t`` is 0 (a cut before
    the first event); ``len(ts)`` when none."""
    return t if gap <= 0 or t == 0 else int(np.searchsorted(ts, ts[t - 1] + gap, side="left"))


def taken_up(cats: list[str], t: int, horizon: int, start: int) -> list[str]:
    """Categories first taken up in ``cats[start:start + horizon]`` (``start``: the cut's :func:`target_start`)
    and not in ``cats[:t]``, in order of first use."""
    before = set(cats[:t])
    return [c for c in dict.fromkeys(cats[start:start + horizon]) if c not in before]


def recent_categories(cats: list[str], t: int, n_short: int) -> tuple[str, ...]:
    """The short-term set at cut ``t``: distinct categories of ``cats[t - n_short:t]``, most recent last."""
    recent = cats[max(0, t - n_short):t]
    return tuple(list(dict.fromkeys(reversed(recent)))[::-1])


def long_term_categories(cats: Sequence[str], n: int) -> tuple[str, ...]:
    """The ``n`` most frequent categories of ``cats`` (the history before a cut), most frequent first, ties in
    order of first appearance; () when ``n`` is 0."""
    return tuple(c for c, _ in Counter(cats).most_common(n)) if n > 0 else ()


def prompt_context(info: GroupInfo, cats: Sequence[str], cfg: SftDataConfig,
                   short_term: Sequence[str] | None = None, items: Sequence[str] = ()) -> PromptContext:
    """The prompt context of a user with group ``info`` whose history before the cut is ``cats`` (chronological)
    with items ``items`` (the same events'; read only with ``cfg.items``): the short-term set (``short_term`` when
    given, e.g. the split's; else the last ``cfg.n_short`` events), the user's full CSID code when ``cfg.full_csid``
    (the group prefix when the code is unknown), the ``cfg.long_term`` most frequent categories of ``cats``, its
    last ``cfg.sequence`` categories and last ``cfg.items`` items in order. The one recipe of SFT, PCO and
    inference."""
    recent = recent_categories(cats, len(cats), cfg.n_short) if short_term is None else tuple(short_term)
    code = (info.code or info.csid) if cfg.full_csid else ()
    sequence = tuple(cats[-cfg.sequence:]) if cfg.sequence > 0 else ()
    if cfg.items > 0 and len(items) != len(cats):
        raise ValueError(f"prompt_context: {len(items)} items for {len(cats)} events (llm.data.items needs the "
                         f"items of the same events)")
    shown = tuple(map(str, items[-cfg.items:])) if cfg.items > 0 else ()
    return PromptContext(info.csid, info.profile, recent, code, long_term_categories(cats, cfg.long_term), sequence,
                         shown)


def _negatives(pool: np.ndarray, weights: np.ndarray, banned: set[str], n: int, rng) -> list[str]:
    ok = np.array([c not in banned for c in pool])
    if not ok.any() or n <= 0:
        return []
    p = weights * ok
    p = p / p.sum()
    size = min(n, int(ok.sum()))
    return rng.choice(pool, size=size, replace=False, p=p).tolist()


def _grouped_histories(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig
                       ) -> Iterator[tuple[GroupInfo, list[str], np.ndarray, list[str]]]:
    """(group, category sequence, timestamps, item sequence) of every user with a group, users in sorted order; the
    items are read only for an ``items:`` section (``cfg.items``), else empty."""
    for user, g in history.groupby(USER, sort=True):
        info = groups.get(str(user))
        if info is not None:
            items = g[ITEM].astype(str).tolist() if cfg.items else []
            yield info, g[CATEGORY].tolist(), g[TIMESTAMP].to_numpy(), items


def category_sequences(history: pd.DataFrame) -> dict[str, list[str]]:
    """user -> their categories in event order (``history`` sorted per user in time order)."""
    return {str(u): g[CATEGORY].tolist() for u, g in history.groupby(USER, sort=False)}


def item_sequences(history: pd.DataFrame) -> dict[str, list[str]]:
    """user -> their items in event order, as strings (what ``items:`` sections show; see
    :func:`category_sequences`)."""
    return {str(u): g[ITEM].astype(str).tolist() for u, g in history.groupby(USER, sort=False)}


def adoption_counts(cuts: list[tuple[PromptContext, list[str], set[str]]]) -> pd.Series:
    """How often each category is taken up over R-LLM cuts (the weights of the R-LLM's "no" draws)."""
    return pd.Series([c for _, targets, _ in cuts for c in targets], dtype=object).value_counts()


def cut_points(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                rng: np.random.Generator) -> list[tuple[PromptContext, list[str], set[str]]]:
    """R-LLM cuts: (context, taken-up categories (at most ``max_targets``), categories no "no" may be: those seen
    before the cut and every one taken up in the horizon, also past ``max_targets``) for every grouped user."""
    require_resolved(cfg)
    cuts = (relevance_cut(info, cats, ts, items, t, cfg)
            for info, cats, ts, items in _grouped_histories(history, groups, cfg) for t in _cuts(len(cats), cfg, rng))
    return [cut for cut in cuts if cut is not None]


def relevance_cut(info: GroupInfo, cats: list[str], ts: np.ndarray, items: list[str], t: int,
                  cfg: SftDataConfig) -> tuple[PromptContext, list[str], set[str]] | None:
    """One R-LLM cut at event ``t`` (SFT's :func:`cut_points`, PCO's refresh): (context, the first
    ``max_targets`` categories taken up in the horizon, the categories no "no" may be: those seen before the cut
    and every one taken up, also past ``max_targets``); None when nothing is taken up."""
    targets = taken_up(cats, t, cfg.horizon, target_start(ts, t, cfg.gap))
    if not targets:
        return None
    return prompt_context(info, cats[:t], cfg, items=items[:t]), targets[:cfg.max_targets], set(cats[:t]).union(targets)


def _novelty_cuts(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                  rng: np.random.Generator) -> list[tuple[PromptContext, list[str]]]:
    """N-LLM cuts: (context, target categories) with the N-LLM's own cut count, horizon and target rule."""
    out = []
    for info, cats, ts, items in _grouped_histories(history, groups, cfg):
        new_user = [0] if cfg.new_user_cut else []  # the cut before the first event
        # the new-user cut's prompt is the one a user without history gets: DSIE has no code for them (the code
        # encodes a history), so it shows the group prefix, as inference does for users DSIE does not know
        as_new = replace(info, code=())
        for t in new_user + _cuts(len(cats), cfg, rng, cfg.novelty_cuts_per_user):
            ctx = prompt_context(as_new if t == 0 else info, cats[:t], cfg, items=items[:t])
            targets = novelty_targets(ctx, cats, ts, t, cfg)
            if targets:
                out.append((ctx, targets))
    return out


def novelty_targets(ctx: PromptContext, cats: Sequence[str], ts: np.ndarray, t: int, cfg: SftDataConfig) -> list[str]:
    """The N-LLM targets of a cut at ``t`` with prompt context ``ctx`` (see module doc: the categories of the
    ``novelty_horizon`` events from the target start outside the short-term set, or never seen before the cut),
    at most ``max_targets``; the events after ``cats`` do not exist for it."""
    seen = set(ctx.short_term) if cfg.novelty_target is NoveltyTarget.RECENT else set(cats[:t])
    start = target_start(ts, t, cfg.gap)
    return [c for c in dict.fromkeys(cats[start:start + cfg.novelty_horizon]) if c not in seen][:cfg.max_targets]


def novelty_examples(cuts: Sequence[tuple[PromptContext, list[str]]], cfg: SftDataConfig,
                     eos: str) -> list[dict[str, str]]:
    """N-LLM prompt/completion examples of (context, targets) cuts: one per target with ``split_targets``, else
    one list completion per cut."""
    out = []
    for ctx, targets in cuts:
        prompt = novelty_prompt(ctx, with_group=cfg.with_group)
        lists = [[c] for c in targets] if cfg.split_targets else [targets]
        out += [{"prompt": prompt, "completion": novelty_completion(t, eos)} for t in lists]
    return out


class RelevanceExamples(Sequence):
    """R-LLM examples (``{"prompt", "completion"}`` dicts, a read-only list) written out when read: each holds
    only its (context, candidate, label), so a capped SFT (``max_examples``) writes just the examples it keeps."""

    def __init__(self, specs: list[tuple[PromptContext, str, bool]], eos: str, with_group: bool = True) -> None:
        self.specs, self.eos, self.with_group = specs, eos, with_group

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, i):  # an int gives one example, a slice a list of them
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        ctx, cand, label = self.specs[i]
        return {"prompt": relevance_prompt(ctx, cand, with_group=self.with_group),
                "completion": relevance_completion(label, self.eos)}

    @property
    def labels(self) -> list[bool]:
        """Each example's answer (True = yes)."""
        return [label for _, _, label in self.specs]

    def split_off(self, n: int) -> tuple[RelevanceExamples, RelevanceExamples]:
        """(every example but the last ``n``, the last ``n``): the specs are in seeded random order, so the last
        ``n`` are a seeded random sample (held out of SFT to measure the trained R-LLM)."""
        cut = len(self.specs) - max(0, min(n, len(self.specs)))
        return (RelevanceExamples(self.specs[:cut], self.eos, self.with_group),
                RelevanceExamples(self.specs[cut:], self.eos, self.with_group))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __add__(self, other: Sequence) -> list[dict[str, str]]:
        return list(self) + list(other)

    def __radd__(self, other: Sequence) -> list[dict[str, str]]:
        return list(other) + list(self)

    __hash__ = None  # type: ignore[assignment]  (mutable-list semantics)


def relevance_examples(cuts: list[tuple[PromptContext, list[str], set[str]]], negatives_per_positive: int,
                       eos: str, rng: np.random.Generator, *, with_group: bool = True) -> RelevanceExamples:
    """Balanced R-LLM examples from (context, taken-up categories, categories no "no" may be) cuts, shuffled: each
    taken-up category a ``yes``, ``negatives_per_positive`` times as many ``no`` drawn by adoption popularity
    (over these cuts) among categories the user neither had nor took up."""
    adoption = adoption_counts(cuts)
    pool, weights = adoption.index.to_numpy(), adoption.to_numpy(dtype=float)
    out: list[tuple[PromptContext, str, bool]] = []
    for ctx, targets, seen in cuts:
        negs = _negatives(pool, weights, seen | set(targets), negatives_per_positive * len(targets), rng)
        out += [(ctx, c, True) for c in targets] + [(ctx, c, False) for c in negs]
    return RelevanceExamples([out[i] for i in rng.permutation(len(out))], eos, with_group)


def sft_history(history: pd.DataFrame, holdout_share: float) -> pd.DataFrame:
    """``history`` without each user's last ``holdout_share`` of events (by position: the i-th of n events is kept
    when i / n < 1 - holdout_share, the replay clock of ``pco.periods: user``); ``history`` itself at 0."""
    if not holdout_share:
        return history
    per_user = history.groupby(USER, sort=False)
    pos, n = per_user.cumcount().to_numpy(), per_user[USER].transform("size").to_numpy()
    return history[pos < (1.0 - holdout_share) * n]


def build_sft_examples(history: pd.DataFrame, groups: Mapping[str, GroupInfo], cfg: SftDataConfig,
                       eos: str, which: Collection[str] = ("novelty", "relevance")) -> SftExamples:
    """Examples for every user in ``groups`` from their (chronologically sorted) history events (``cfg``
    resolved: :func:`coea.llm.sft_config.resolve_sft_data`), for the LLMs named in ``which`` (the other list
    stays empty; each LLM's examples come from its own seeded stream, so they do not depend on ``which``)."""
    require_resolved(cfg)
    history = sft_history(history, cfg.holdout_share)
    relevance: list[dict[str, str]] = []
    if "relevance" in which:
        rng = np.random.default_rng(cfg.seed)
        relevance = relevance_examples(cut_points(history, groups, cfg, rng), cfg.negatives_per_positive, eos, rng,
                                       with_group=cfg.with_group)
    cuts = _novelty_cuts(history, groups, cfg, np.random.default_rng([cfg.seed, 1])) if "novelty" in which else []
    return SftExamples(novelty_examples(cuts, cfg, eos), relevance)


def novelty_sft_cuts(history: pd.DataFrame, groups: Mapping[str, GroupInfo],
                     cfg: SftDataConfig) -> list[tuple[PromptContext, list[str]]]:
    """The N-LLM's SFT cuts, (context, targets), exactly those :func:`build_sft_examples` writes its examples from
    (same seeded stream); for analyses that train another model on the same data."""
    require_resolved(cfg)
    return _novelty_cuts(sft_history(history, cfg.holdout_share), groups, cfg, np.random.default_rng([cfg.seed, 1]))


def group_infos(groups: pd.DataFrame, profiles: Mapping[str, Mapping]) -> dict[str, GroupInfo]:
    """user -> GroupInfo from DSIE's ``groups.parquet`` frame (with the user's own code from its ``csid`` column
    when present) and ``profiles.json`` content."""
    from coea.llm.prompts import parse_csid

    codes = groups["csid"].astype(str).tolist() if "csid" in groups else [""] * len(groups)
    out = {}
    for user, gid, code in zip(groups[USER], groups["group_id"], codes, strict=True):
        prof = profiles.get(gid, {})
        out[str(user)] = GroupInfo(parse_csid(str(gid)), str(prof.get("profile", "")), parse_csid(code))
    return out
