"""Preference pairs: chosen beats rejected by more than the margin, both valid, counts add up."""

import numpy as np
import pytest

from coea.pco.pairs import build_pairs


def test_pairs_are_valid_and_respect_the_margin():
    rng = np.random.default_rng(0)
    cats = [f"c{i}" for i in range(12)]
    prompts = [f"p{i}" for i in range(50)]
    cands = [list(rng.choice(cats, size=rng.integers(1, 8), replace=False)) for _ in prompts]
    scores = [list(rng.random(len(c))) for c in cands]
    pairs, stats = build_pairs(prompts, cands, scores, margin=0.2, pairs_per_prompt=2)
    lookup = {(p, c): s for p, cs, ss in zip(prompts, cands, scores, strict=True) for c, s in zip(cs, ss, strict=True)}
    assert pairs and stats.pairs == len(pairs)
    for pair in pairs:
        assert pair.chosen != pair.rejected and pair.chosen in cats and pair.rejected in cats
        assert pair.chosen_score > pair.rejected_score + 0.2
        assert lookup[(pair.prompt, pair.chosen)] == pair.chosen_score
        assert lookup[(pair.prompt, pair.rejected)] == pair.rejected_score
    assert stats.skipped_prompts == sum(len(c) < 2 for c in cands)
    formed = sum(min(2, len(c) // 2) for c in cands if len(c) >= 2)
    assert stats.pairs + stats.dropped_margin == formed
    per_prompt = {}
    for pair in pairs:
        per_prompt.setdefault(pair.prompt, []).extend([pair.chosen, pair.rejected])
    assert all(len(v) == len(set(v)) for v in per_prompt.values())  # no candidate used twice in a prompt


def test_best_pairs_with_worst_and_bad_input_fails():
    pairs, _ = build_pairs(["p"], [["a", "b", "c", "d"]], [[0.9, 0.1, 0.5, 0.4]], margin=0.0, pairs_per_prompt=2)
    assert [(p.chosen, p.rejected) for p in pairs] == [("a", "b"), ("c", "d")]
    with pytest.raises(ValueError, match="distinct"):
        build_pairs(["p"], [["a", "a"]], [[0.9, 0.1]], margin=0.0, pairs_per_prompt=1)


def test_by_rank_rejects_the_highest_ranked_and_chooses_the_lowest_ranked_of_equal_scores():
    """``by_rank`` (``pco.propose: top``): candidates are the N-LLM's top proposals best first, plus an injected
    take-up at the end; among the rejected (score 0) the pair takes the one ranked highest (hard negative), among
    the chosen (score 1) the one proposed last. Without it, equal scores fall back to name order."""
    cands = [["z", "b", "y", "a", "x"]]  # rank order; "x" injected, "b" and "x" taken up
    scores = [[0.0, 1.0, 0.0, 0.0, 1.0]]
    pairs, _ = build_pairs(["p"], cands, scores, margin=0.0, pairs_per_prompt=2, by_rank=True)
    assert [(p.chosen, p.rejected) for p in pairs] == [("x", "z"), ("b", "y")]
    plain, _ = build_pairs(["p"], cands, scores, margin=0.0, pairs_per_prompt=2)
    assert [(p.chosen, p.rejected) for p in plain] == [("b", "z"), ("x", "y")]
