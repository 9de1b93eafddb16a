"""Mutation audit of the PCO feedback path (coea.pco.periods, feedback, pairs, reward): each test pins one rule
that a plausible one-token bug broke while every other test still passed. They guard what a round learns from:
which users it prompts (the window's boundaries, grouped users only), the state it reads (strictly before the
window's end: an event AT the end is the first of the feedback period), the order and the users its logged
negatives come from, which later take-ups ``pco.negatives: history`` spares, and the adoption prior's smoothing.
Small hand-built frames; no model is trained (the teacher's encoder is a seeded, untrained SASRec)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from coea.config import SplitConfig
from coea.llm.prompts import PromptContext, relevance_completion, relevance_prompt
from coea.llm.sft_config import LlmConfig, resolve_llm
from coea.llm.sft_data import GroupInfo, adoption_counts, cut_points
from coea.pco.config import PcoConfig
from coea.pco.feedback import exposed_categories, feedback_takeups, inject_exposed, on_policy_examples
from coea.pco.periods import Window, round_users
from coea.pco.reward import RewardInputs, RewardSetup, adoption_log_prior, make_reward
from tests.unit.test_feedback import _history
from tests.unit.test_reward import _teacher_encoder

LLM = resolve_llm(LlmConfig(), SplitConfig())
YES, NO = relevance_completion(True, "</s>"), relevance_completion(False, "</s>")


def test_round_users_prompts_users_active_in_start_le_t_lt_end_only():
    """A round prompts the grouped users with an event in ``[start, end)``: an event exactly at ``start`` counts,
    one exactly at ``end`` (the first event of the next period, the round's feedback) does not."""
    hist = _history([("at_start", "i", "a", 10), ("inside", "i", "b", 15),
                     ("old", "i", "a", 3), ("old", "i", "c", 20), ("at_end", "i", "a", 4), ("at_end", "i", "b", 20)])
    groups = {u: GroupInfo((0,), "") for u in ("at_start", "inside", "old", "at_end")}
    got = round_users(hist, groups, Window(0, 10, 20), 2, None, np.random.default_rng(0))
    assert got.users == ["at_start", "inside"]
    assert got.seen == [{"a"}, {"b"}]


def test_round_users_skips_active_users_without_a_group():
    """Only grouped users are prompted (a user the DSIE grouping left out has no group code to prompt with); an
    ungrouped user active in the window is skipped, not an error."""
    hist = _history([("u0", "i", "a", 1), ("u1", "i", "b", 2), ("u2", "i", "c", 3)])
    groups = {"u0": GroupInfo((0,), ""), "u2": GroupInfo((1,), "")}
    got = round_users(hist, groups, Window(0, 0, 10), 2, None, np.random.default_rng(0))
    assert got.users == ["u0", "u2"] and len(got.contexts) == 2 and got.seen == [{"a"}, {"c"}]


def test_shown_categories_are_appended_in_the_stores_served_order_not_by_name():
    """Exposure injection appends a user's shown, unseen, unproposed categories in the order the store served
    them (``order[user]``), which is not alphabetical here."""
    exposure = {"u0": ("z", "b", "y", "a")}
    exposed = exposed_categories(exposure, ["u0"], [{"a"}])
    assert exposed == [{"z", "b", "y"}]
    cands, added = inject_exposed([["y"]], exposed, [()], exposure, ["u0"])
    assert cands == [["y", "z", "b"]] and added == 2


def test_on_policy_negatives_come_from_users_active_without_a_take_up():
    """A user with feedback ``()`` (active in the feedback period, took up nothing new) has feedback: their new
    proposals are "no" examples. Only a user with ``None`` (no events there) yields nothing."""
    ctxs = [PromptContext((0,), "", (f"s{i}",)) for i in range(3)]
    cands = [["a"], ["b", "c"], ["d"]]
    ex = on_policy_examples(ctxs, cands, [set(), set(), set()], [("a",), (), None], 2, "</s>",
                            np.random.default_rng(0))
    got = sorted((e["prompt"], e["completion"]) for e in ex)
    assert got == sorted([(relevance_prompt(ctxs[0], "a"), YES), (relevance_prompt(ctxs[1], "b"), NO),
                          (relevance_prompt(ctxs[1], "c"), NO)])


def test_history_negatives_spare_only_later_take_ups_the_user_had_not_seen():
    """``pco.negatives: history``: a category taken up after the feedback period scores ``1 - margin / 2`` only when
    it is new to the user; one they had already seen by the window's end (re-consumed later, candidate under
    ``pco.sample_unseen: false``) is no take-up and scores 0 like any seen category."""
    hist = _history([("u0", "i", "a", 1), ("u0", "i", "b", 5), ("u0", "i", "c", 12),
                     ("u0", "i", "e", 21), ("u0", "i", "a", 22)])
    seen = [{"a", "b"}]
    window = Window(0, 0, 10, 20)
    took = feedback_takeups(hist, window, ["u0"], seen)
    assert took == [("c",)]
    cands = [["c", "a", "e", "b"]]
    inputs = RewardInputs(1, window, ["u0"], [PromptContext((0,), "", ("b",))], seen, cands, hist, None,
                          LlmConfig(), took)
    setup = RewardSetup(hist, {}, ["a", "b", "c", "e"], LlmConfig())
    for kind in ("feedback", "hybrid"):
        scores = make_reward(PcoConfig(reward=kind, negatives="history", margin=0.1), setup).score(inputs)
        assert scores == [[1.0, 0.0, pytest.approx(0.95), 0.0]]


def _teacher_inputs(history, cands, seen, window):
    ctx = [PromptContext((0,), "", ()) for _ in cands]
    return RewardInputs(1, window, [f"u{i}" for i in range(len(cands))], ctx, seen, cands, history, None, LLM)


@pytest.mark.parametrize("cooc", [0.0, 2.0])
def test_teacher_reads_no_event_at_the_window_end(cooc):
    """The teacher (encoder, and with ``teacher_cooc_weight`` the co-occurrence shares) reads the history strictly
    before the window's end: changing an event exactly at ``end`` (the first of the next period, feedback) leaves
    every score unchanged; changing one just before it does not."""
    cats = ["a", "b", "c", "d"]
    history = pd.DataFrame({"user_id": ["u0"] * 4 + ["u1"] * 3, "category": ["a", "b", "c", "a", "d", "c", "b"],
                            "timestamp": [1, 2, 9, 10, 4, 5, 10]})
    setup = RewardSetup(history, {}, cats, LLM, encoder=_teacher_encoder(cats))
    reward = make_reward(PcoConfig(reward="teacher", teacher_weight=1.0, teacher_cooc_weight=cooc), setup)
    inputs = _teacher_inputs(history, [["d", "b"], ["a", "b"]], [{"a", "b", "c"}, {"d", "c"}], Window(0, 0, 10))
    got = reward.score(inputs)
    at_end = history.assign(category=["a", "b", "c", "d", "d", "c", "a"])  # both users' t=10 events
    assert reward.score(replace(inputs, history=at_end)) == got
    before = history.assign(category=["a", "b", "d", "a", "d", "c", "b"])  # u0's t=9 event
    assert reward.score(replace(inputs, history=before))[0] != got[0]


def test_adoption_prior_is_centred_log_of_counts_plus_one():
    """The prior correction's ``log q(c)`` is ``log(adoptions at the SFT cut points + 1)``, centred: a category
    never adopted has ``log 1``, so its gap to an adopted one is ``log(count + 1)``."""
    rows = [(f"u{u}", f"i{u}_{t}", c, t) for u in range(6)
            for t, c in enumerate(["a"] * 8 + ["b", "a", "c", "a"] + (["d"] if u < 2 else []) + ["a"] * 3)]
    history = _history(rows)
    groups = {f"u{u}": GroupInfo((0,), "") for u in range(6)}
    cats = ["a", "b", "c", "d", "never"]
    counts = adoption_counts(cut_points(history, groups, LLM.data, np.random.default_rng(LLM.data.seed)))
    assert counts.get("never", 0) == 0 and counts.get("c", 0) > 0
    logq = np.log([counts.get(c, 0) + 1.0 for c in cats])
    prior = adoption_log_prior(history, groups, LLM, cats)
    np.testing.assert_allclose([prior[c] for c in cats], logq - logq.mean(), rtol=1e-12)
    assert prior["c"] - prior["never"] == pytest.approx(np.log(counts["c"] + 1.0))
