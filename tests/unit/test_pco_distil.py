"""pco.update distil: the N-LLM is fitted by SFT to draws from the teacher's distribution over its candidates."""

import numpy as np
import pytest

from coea.config import run_config_from_dict
from coea.llm.prompts import novelty_completion
from coea.pco.config import PcoConfig, Update
from coea.pco.round import distil_examples, distil_targets


def test_targets_are_the_softmax_of_reference_log_probability_plus_score():
    ref = [np.log([0.5, 0.3, 0.2]), np.log([0.9, 0.1])]
    scores = [[0.0, 1.0, -1.0], [0.0, 0.0]]
    got = distil_targets(ref, scores)
    want = np.array([0.5, 0.3 * np.e, 0.2 / np.e])
    assert got[0] == pytest.approx(want / want.sum())
    assert got[1] == pytest.approx([0.9, 0.1])  # no teacher signal: the reference, renormalised over the candidates
    big = distil_targets([np.array([-1e4, -1e4 - 1])], [[0.0, 0.0]])[0]  # far below exp's range: still a distribution
    assert big.sum() == pytest.approx(1.0) and big[0] > big[1]


def test_draws_follow_the_target_and_name_only_the_prompts_candidates():
    rng = np.random.default_rng(0)
    q = np.array([0.7, 0.2, 0.1])
    ex = distil_examples(["p1", "p2", "p3"], [["a", "b", "c"], [], ["d"]], [q, np.array([]), np.array([1.0])],
                         4000, "</s>", rng)
    assert len(ex) == 8000  # a prompt without candidates gives none
    first = [e["completion"] for e in ex if e["prompt"] == "p1"]
    text = {c: novelty_completion([c], "</s>") for c in "abcd"}
    share = {c: first.count(text[c]) / len(first) for c in "abc"}
    assert set(first) == {text[c] for c in "abc"}
    assert share["a"] == pytest.approx(0.7, abs=0.03) and share["c"] == pytest.approx(0.1, abs=0.02)
    assert {e["completion"] for e in ex if e["prompt"] == "p3"} == {text["d"]}
    again = distil_examples(["p1"], [["a", "b", "c"]], [q], 50, "</s>", np.random.default_rng(5))
    assert again == distil_examples(["p1"], [["a", "b", "c"]], [q], 50, "</s>", np.random.default_rng(5))


def test_distil_needs_the_teacher_reward_and_reads_from_yaml():
    with pytest.raises(ValueError, match="update distil needs reward teacher"):
        PcoConfig(reward="relevance", update="distil")
    with pytest.raises(ValueError, match="distil_draws must be > 0"):
        PcoConfig(reward="teacher", update="distil", distil_draws=0)
    cfg = run_config_from_dict({"pco": {"reward": "teacher", "update": "distil", "distil_draws": 7,
                                        "distil_sft": {"lr": 1e-3}}}, where="test")
    assert cfg.pco.update is Update.DISTIL and cfg.pco.distil_draws == 7 and cfg.pco.distil_sft.lr == 1e-3
    assert PcoConfig().update is Update.DPO
