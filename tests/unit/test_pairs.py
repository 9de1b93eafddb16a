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


def test_prior_correction_turns_lift_back_into_probability():
    """A balanced yes/no judge whose negatives follow adoption popularity q learns odds = p(c|ctx) / q(c): the
    correction multiplies q back in, so of two candidates with the same P(yes) the more adopted one wins, and an
    average category keeps its score."""
    import pandas as pd

    from coea.llm.sft_config import LlmConfig
    from coea.llm.sft_data import GroupInfo
    from coea.pco.loop import _corrected, adoption_log_prior

    assert _corrected(0.3, 0.0) == pytest.approx(0.3)
    assert _corrected(0.3, np.log(4.0)) == pytest.approx(0.3 / 0.7 * 4 / (1 + 0.3 / 0.7 * 4))
    assert 0.0 < _corrected(0.0, -5.0) < _corrected(1.0, 5.0) < 1.0
    rng = np.random.default_rng(1)
    rows = []
    for u in range(40):  # "pop" is taken up by everyone after the first cut, "rare" by a few
        cats = ["a"] * 12 + ["pop"] * 3 + (["rare"] if u % 8 == 0 else []) + list(rng.choice(["a", "b"], 10))
        rows += [(f"u{u}", f"i{u}_{t}", c, t) for t, c in enumerate(cats)]
    history = pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])
    groups = {f"u{u}": GroupInfo((0,), "") for u in range(40)}
    prior = adoption_log_prior(history, groups, LlmConfig(), ["a", "b", "pop", "rare", "never"])
    assert prior["pop"] > prior["rare"] > prior["never"]
    assert np.mean(list(prior.values())) == pytest.approx(0.0)
    assert _corrected(0.6, prior["pop"]) > _corrected(0.6, prior["rare"])
