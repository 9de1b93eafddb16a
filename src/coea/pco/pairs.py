"""Preference pairs from R-LLM-scored N-LLM candidates.

Per prompt the candidates (distinct, valid, novel w.r.t. the user: the sampler excluded what the user has seen)
are sorted by their R-LLM score P(yes); pair j takes the j-th best as *chosen* and the j-th worst as *rejected*
(j < ``pairs_per_prompt``, never the same candidate twice). A pair is kept only when
``chosen score > rejected score + margin``: near-ties carry no preference signal, only label noise.

Equal scores are ordered by name, or with ``by_rank`` by the candidates' order (they are the N-LLM's top
proposals, best first): among equal scores the chosen candidate is the one proposed last and the rejected one the
one proposed first, so a rejected candidate is the highest-ranked proposal the reward rejects (a hard negative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PreferencePair:
    """One DPO example: the N-LLM prompt and two candidate categories with their R-LLM scores."""

    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float


@dataclass(frozen=True)
class PairStats:
    """How many pairs a round formed and why the others were dropped."""

    prompts: int
    candidates: int
    pairs: int
    dropped_margin: int  # pairs whose score gap was not above the margin
    skipped_prompts: int  # prompts with fewer than 2 candidates

    def as_dict(self) -> dict[str, int]:
        return {"prompts": self.prompts, "candidates": self.candidates, "pairs": self.pairs,
                "dropped_margin": self.dropped_margin, "skipped_prompts": self.skipped_prompts}


def _best_first(cands: Sequence[str], scores: Sequence[float], by_rank: bool) -> list[tuple[float, str]]:
    """(score, candidate) best first; equal scores by name, or with ``by_rank`` last-proposed first."""
    keyed = [(-s, -i if by_rank else 0, c) for i, (s, c) in enumerate(zip(scores, cands, strict=True))]
    return [(-neg, c) for neg, _, c in sorted(keyed)]


def build_pairs(prompts: Sequence[str], candidates: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
                *, margin: float, pairs_per_prompt: int,
                by_rank: bool = False) -> tuple[list[PreferencePair], PairStats]:
    """Pairs for every prompt (see module doc); ``scores[i][j]`` is the R-LLM score of ``candidates[i][j]``;
    ``by_rank``: equal scores are ordered by candidate position (the module doc), not by name."""
    if not len(prompts) == len(candidates) == len(scores):
        raise ValueError(f"prompts, candidates and scores differ in length: {len(prompts)}, {len(candidates)}, "
                         f"{len(scores)}")
    pairs: list[PreferencePair] = []
    dropped = skipped = n_cand = 0
    for prompt, cands, cand_scores in zip(prompts, candidates, scores, strict=True):
        if len(cands) != len(cand_scores) or len(set(cands)) != len(cands):
            raise ValueError(f"candidates must be distinct and scored once each, got {list(cands)!r}")
        n_cand += len(cands)
        if len(cands) < 2:
            skipped += 1
            continue
        ranked = _best_first(cands, cand_scores, by_rank)
        for j in range(min(pairs_per_prompt, len(ranked) // 2)):
            (s_w, w), (s_l, lo) = ranked[j], ranked[-1 - j]
            if s_w > s_l + margin:
                pairs.append(PreferencePair(prompt, w, lo, float(s_w), float(s_l)))
            else:
                dropped += 1
    return pairs, PairStats(len(prompts), n_cand, len(pairs), dropped, skipped)
