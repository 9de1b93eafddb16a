"""Feedback-grounded PCO on hand-made histories: feedback periods, take-ups, the feedback and hybrid rewards and
their pairs, injection of logged take-ups, on-policy R-LLM refresh examples, the config options."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from coea.config import config_to_dict, from_dict
from coea.llm.prompts import PromptContext, relevance_completion, relevance_prompt
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo
from coea.pco import reward as reward_module
from coea.pco.config import PcoConfig, Periods, RefreshKind, RewardKind
from coea.pco.feedback import (
    exposed_categories,
    feedback_takeups,
    inject_exposed,
    inject_taken_up,
    on_policy_examples,
)
from coea.pco.pairs import build_pairs
from coea.pco.periods import REPLAY_SPAN, RoundUsers, Window, round_users, round_windows, user_clock
from coea.pco.reward import FeedbackReward, HybridReward, RewardInputs, RewardSetup, make_reward

P_YES = {"a": 0.9, "b": 0.2, "c": 0.6, "d": 0.3, "e": 0.5}


def _history(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])


@pytest.fixture
def history():
    """Round window [0, 10), feedback period [10, 20); events at 20+ lie outside the feedback period."""
    rows = [("u0", "i", "a", 1), ("u0", "i", "b", 5), ("u0", "i", "c", 12), ("u0", "i", "a", 13),
            ("u0", "i", "d", 15), ("u0", "i", "e", 20),  # u0 takes up c, d (a is seen; e is too late)
            ("u1", "i", "a", 2), ("u1", "i", "a", 25),  # u1: nothing in the feedback period
            ("u2", "i", "b", 3), ("u2", "i", "b", 11)]  # u2: active there, takes up nothing new
    return _history(rows)


def test_round_windows_with_feedback_cut_rounds_plus_one_periods():
    hist = _history([("u", "i", "a", t) for t in range(30)])
    plain = round_windows(hist, 2, True)
    assert [(w.start, w.end, w.feedback_end) for w in plain] == [(0, 15, None), (15, 30, None)]
    fb = round_windows(hist, 2, True, feedback=True)
    assert [(w.start, w.end, w.feedback_end) for w in fb] == [(0, 10, 20), (10, 20, 30)]
    assert fb[-1].feedback_end == int(hist["timestamp"].max()) + 1  # the last feedback period = the history's tail
    with pytest.raises(ValueError, match="follow_periods"):
        round_windows(hist, 2, False, feedback=True)


def test_user_periods_cut_every_users_own_history_into_equal_count_periods():
    """``periods: user``: on the replay clock each user's history (any length, any time span, ties in row order)
    splits into the same number of periods; every user with enough events is active, with feedback, in every
    round, and the last feedback period ends with each user's last event."""
    rows = [("long", "i", f"c{t}", 1000 + t) for t in range(12)] + [("short", "i", f"c{t}", 5) for t in range(4)]
    hist = user_clock(_history(rows))
    assert hist["user_id"].tolist() == [r[0] for r in rows]  # rows keep their order
    windows = round_windows(hist, 3, True, feedback=True, periods=Periods.USER)
    assert [(w.start, w.end, w.feedback_end) for w in windows] == [
        (0, REPLAY_SPAN // 4, REPLAY_SPAN // 2), (REPLAY_SPAN // 4, REPLAY_SPAN // 2, 3 * REPLAY_SPAN // 4),
        (REPLAY_SPAN // 2, 3 * REPLAY_SPAN // 4, REPLAY_SPAN)]
    for w in windows:
        ts = hist["timestamp"]
        period = hist[(ts >= w.start) & (ts < w.end)]
        assert period.groupby("user_id").size().to_dict() == {"long": 3, "short": 1}
        took = feedback_takeups(hist, w, ["long", "short"], [set(), set()])
        assert [len(t) for t in took] == [3, 1]
    last = windows[-1]
    assert feedback_takeups(hist, last, ["long", "short"], [set(), set()]) == [("c9", "c10", "c11"), ("c3",)]
    plain = round_windows(hist, 2, True, periods=Periods.USER)
    assert [(w.start, w.end, w.feedback_end) for w in plain] == [(0, REPLAY_SPAN // 2, None),
                                                                  (REPLAY_SPAN // 2, REPLAY_SPAN, None)]


def test_continual_user_periods_replay_only_what_sft_held_out():
    """``llm.data.holdout_share: 0.25``: SFT saw each user's first 3/4 (``sft_history``); the PCO windows cut only the
    last quarter of the replay clock, so every round's period and feedback period hold events SFT never saw."""
    from coea.llm.sft_data import sft_history

    rows = [(u, "i", f"c{t}", 1000 + t) for u, n in (("long", 16), ("mid", 8)) for t in range(n)]
    hist = user_clock(_history(rows))
    windows = round_windows(hist, 3, True, feedback=True, periods=Periods.USER, start_share=0.75)
    q = REPLAY_SPAN // 16
    assert [(w.start, w.end, w.feedback_end) for w in windows] == [
        (12 * q, 13 * q, 14 * q), (13 * q, 14 * q, 15 * q), (14 * q, 15 * q, 16 * q)]
    seen_by_sft = sft_history(_history(rows), 0.25)
    replayed = hist[hist["timestamp"] >= windows[0].start]
    assert len(seen_by_sft) + len(replayed) == len(rows)
    assert set(zip(seen_by_sft["user_id"], seen_by_sft["category"], strict=True)).isdisjoint(
        zip(replayed["user_id"], replayed["category"], strict=True))


def test_user_periods_prompt_each_user_with_their_state_at_their_own_period_end():
    rows = [("u", "i", c, t) for t, c in enumerate("abcdefgh")]
    hist = user_clock(_history(rows))
    w = round_windows(hist, 3, True, feedback=True, periods=Periods.USER)[1]  # events 2-3, feedback 4-5
    ru = round_users(hist, {"u": GroupInfo((0,), "p")}, w, 2, None, np.random.default_rng(0))
    assert ru.users == ["u"] and ru.seen == [set("abcd")] and ru.contexts[0].short_term == ("c", "d")
    assert feedback_takeups(hist, w, ru.users, ru.seen) == [("e", "f")]


def test_feedback_is_what_is_taken_up_after_the_window_end_within_the_feedback_period(history):
    seen = [{"a", "b"}, {"a"}, {"b"}]
    took = feedback_takeups(history, Window(0, 0, 10, 20), ["u0", "u1", "u2"], seen)
    assert took == [("c", "d"), None, ()]  # u1 has no event in [10, 20): no feedback, unlike u2's empty take-up
    assert feedback_takeups(history, Window(0, 0, 10), ["u0", "u1"], seen[:2]) == [None, None]  # no feedback period


def test_feedback_horizon_reads_only_each_users_first_events_of_the_feedback_period(history):
    """``feedback_horizon`` 2: u0's events in [10, 20) are c, a, d: only c (a seen) is within their first 2."""
    seen = [{"a", "b"}, {"a"}, {"b"}]
    took = feedback_takeups(history, Window(0, 0, 10, 20), ["u0", "u1", "u2"], seen, horizon=2)
    assert took == [("c",), None, ()]
    assert feedback_takeups(history, Window(0, 0, 10, 20), ["u0"], seen[:1], horizon=3) == [("c", "d")]
    with pytest.raises(ValueError, match="feedback_horizon"):
        PcoConfig(feedback_horizon=0)


def test_feedback_ignores_events_past_the_history_it_is_given(history):
    """The loop only receives histories: cutting the frame at 14 removes every later take-up."""
    frame = history[history["timestamp"] < 14]
    took = feedback_takeups(frame, Window(0, 0, 10, 20), ["u0", "u2"], [{"a", "b"}, {"b"}])
    assert took == [("c",), ()]


def _inputs(candidates, seen, feedback):
    ctx = [PromptContext((0,), "", (f"s{i}",)) for i in range(len(candidates))]
    return RewardInputs(1, Window(0, 0, 10, 20), [f"u{i}" for i in range(len(candidates))], ctx, seen, candidates,
                        pd.DataFrame(), None, LlmConfig(), feedback)


@pytest.fixture
def judged(monkeypatch):
    calls = []

    def fake(relevance, contexts, cands, llm):
        calls.append([list(cs) for cs in cands])
        return [[P_YES[c] for c in cs] for cs in cands]

    monkeypatch.setattr(reward_module, "rllm_scores", fake)
    return calls


def _setup():
    return RewardSetup(pd.DataFrame(), {}, list(P_YES), LlmConfig())


def test_feedback_reward_scores_take_ups_one_and_pairs_them_against_the_rest(judged):
    reward = make_reward(PcoConfig(reward="feedback"), _setup())
    assert isinstance(reward, FeedbackReward) and reward.reads_feedback and reward.exclude_seen_when_sampling
    inputs = _inputs([["a", "c", "b"], ["a", "b"], ["c", "d"]], [{"a"}, set(), set()], [("c",), None, ()])
    scores = reward.score(inputs)
    assert scores == [[0.0, 1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert judged == []  # the R-LLM is never asked
    pairs, stats = build_pairs(["p0", "p1", "p2"], inputs.candidates, scores, margin=0.1, pairs_per_prompt=2)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("p0", "c", "b")]  # then a (seen) vs a: none
    assert stats.dropped_margin == 2  # users without take-ups among their candidates give no pair


def test_history_negatives_never_reject_a_category_taken_up_later_in_the_history(history, judged):
    """``pco.negatives: history``: u0 takes up c, d in the feedback period [10, 20) and e at 20 (after it, still
    history). With the default, e is rejected like b; with ``history`` e scores 1 - margin / 2: chosen over b,
    never paired against c, and the hybrid reward's logged part does the same."""
    seen = [{"a", "b"}]
    took = feedback_takeups(history, Window(0, 0, 10, 20), ["u0"], seen)
    assert took == [("c", "d")]
    cands = [["c", "e", "b"]]
    inputs = RewardInputs(1, Window(0, 0, 10, 20), ["u0"], [PromptContext((0,), "", ("a",))], seen, cands, history,
                          None, LlmConfig(), took)
    setup = RewardSetup(history, {}, list(P_YES), LlmConfig())
    period = make_reward(PcoConfig(reward="feedback"), setup).score(inputs)
    assert period == [[1.0, 0.0, 0.0]]
    cfg = PcoConfig(reward="feedback", negatives="history", margin=0.1)
    for kind in ("feedback", "hybrid"):
        scores = make_reward(replace(cfg, reward=kind), setup).score(inputs)
        assert scores == [[1.0, pytest.approx(0.95), 0.0]]
        pairs, _ = build_pairs(["p"], cands, scores, margin=0.1, pairs_per_prompt=2)
        assert [(p.chosen, p.rejected) for p in pairs] == [("c", "b")]  # e vs e: none; e is never rejected
    cands2 = [["e", "b", "f"]]
    pairs, _ = build_pairs(["p"], cands2, make_reward(cfg, setup).score(replace(inputs, candidates=cands2)),
                           margin=0.1, pairs_per_prompt=2)
    assert [(p.chosen, p.rejected) for p in pairs] == [("e", "f")]  # a later take-up is chosen over a never-taken
    with pytest.raises(ValueError, match="negatives must be one of"):
        PcoConfig(negatives="future")


def test_takeup_recent_counts_what_the_sft_targets_would(history):
    """``pco.takeup``: u0 had seen a, b before the feedback period [10, 20) and shows only b in the prompt's
    short-term set; there they take up c, a, d. ``user`` (the default) counts only categories new to them (c, d);
    ``recent`` counts every category outside the short-term set, a included, as an SFT target would."""
    from coea.pco.round import takeup_exclusions

    ru = RoundUsers(["u0"], [PromptContext((0,), "", ("b",))], [{"a", "b"}])
    window = Window(0, 0, 10, 20)
    user = takeup_exclusions(PcoConfig(), ru)
    recent = takeup_exclusions(PcoConfig(takeup="recent"), ru)
    assert feedback_takeups(history, window, ru.users, user) == [("c", "d")]
    assert feedback_takeups(history, window, ru.users, recent) == [("c", "a", "d")]
    assert PcoConfig().takeup == "user"
    with pytest.raises(ValueError, match="takeup must be one of"):
        PcoConfig(takeup="all")


def test_novelty_refresh_examples_are_the_sft_targets_of_cuts_inside_the_window():
    """``pco.refresh_novelty``: the N-LLM's refresh examples cut the window's events (up to ``cuts_per_user``) and
    take as targets the next ``novelty_horizon`` categories outside the short-term set, never an event at or after
    the window's end (here every later event is ``z``)."""
    from coea.llm.prompts import novelty_completion, novelty_prompt
    from coea.llm.sft_config import SftDataConfig
    from coea.llm.sft_data import prompt_context
    from coea.pco.periods import novelty_refresh_examples

    cats = list("abcabcabca" + "dedfg" + "zzzzz")
    hist = _history([("u0", "i", c, t) for t, c in enumerate(cats)])
    cfg = SftDataConfig(n_short=3, min_prefix=3, horizon=4, novelty_horizon=3, gap=0, cuts_per_user=5,
                        full_csid=False, sequence=0, items=0)
    info = GroupInfo((0,), "p", ())
    ex = novelty_refresh_examples(hist, {"u0": info}, Window(0, 10, 15), cfg, "</s>")
    # cuts 10..14: short-term sets bca, cad, ade, ed, edf; targets de, ef, fg, fg, g (the window ends at 15)
    expected = {10: "de", 11: "ef", 12: "fg", 13: "fg", 14: "g"}
    assert ex == [{"prompt": novelty_prompt(prompt_context(info, cats[:t], cfg), with_group=True),
                   "completion": novelty_completion([c], "</s>")} for t, targets in expected.items() for c in targets]
    with pytest.raises(ValueError, match="refresh_novelty needs follow_periods"):
        PcoConfig(reward="serendipity", follow_periods=False, refresh_novelty=True)


def test_refresh_novelty_auto_is_on_only_where_the_rounds_read_new_interactions():
    """``refresh_novelty: null`` (auto, the default) follows ``new_interactions``; an explicit value wins; rounds that
    are full passes (no periods) never refresh."""
    auto = PcoConfig()
    assert auto.refresh_novelty is None
    assert auto.resolve_refresh_novelty(True).refresh_novelty is True
    assert auto.resolve_refresh_novelty(False).refresh_novelty is False
    assert PcoConfig(refresh_novelty=False).resolve_refresh_novelty(True).refresh_novelty is False
    assert PcoConfig(refresh_novelty=True).resolve_refresh_novelty(False).refresh_novelty is True
    full = PcoConfig(reward="serendipity", follow_periods=False)
    assert full.resolve_refresh_novelty(True).refresh_novelty is False


def test_hybrid_uses_feedback_where_the_user_has_it_and_the_serendipity_rule_elsewhere(judged):
    reward = make_reward(PcoConfig(reward="hybrid"), _setup())
    assert isinstance(reward, HybridReward) and reward.reads_feedback
    inputs = _inputs([["a", "c", "b"], ["a", "b", "c"], ["d", "e"]], [{"a"}, {"b"}, set()], [("c",), None, ()])
    scores = reward.score(inputs)
    assert scores == [[0.0, 1.0, 0.0], [0.9, 0.0, 0.6], [0.0, 0.0]]
    assert judged == [[["a", "c"]]]  # only the user without feedback is judged, on their new candidates
    pairs, _ = build_pairs(["p0", "p1", "p2"], inputs.candidates, scores, margin=0.1, pairs_per_prompt=1)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("p0", "c", "b"), ("p1", "a", "b")]


def test_hybrid_without_any_feedback_equals_serendipity(judged):
    inputs = _inputs([["a", "b"], ["c", "d"]], [{"b"}, set()], [None, None])
    assert make_reward(PcoConfig(reward="hybrid"), _setup()).score(inputs) == \
        make_reward(PcoConfig(reward="serendipity"), _setup()).score(inputs)


def test_injection_adds_unsampled_take_ups_up_to_the_limit():
    cands = [["a", "b"], ["a", "b"], ["c"], ["d"]]
    out, added = inject_taken_up(cands, [("x", "y", "z"), ("a", "y", "z"), None, ()], limit=2)
    assert out == [["a", "b", "x", "y"], ["a", "b", "y"], ["c"], ["d"]] and added == 3
    assert cands[0] == ["a", "b"]  # the input is not modified


def test_on_policy_examples_label_new_proposals_by_their_take_up():
    ctxs = [PromptContext((0,), "", (f"s{i}",)) for i in range(3)]
    cands = [["a", "b", "c", "d", "e"], ["a", "b"], ["c"]]
    seen = [{"e"}, set(), set()]
    ex = on_policy_examples(ctxs, cands, seen, [("a",), None, ()], 2, "</s>", np.random.default_rng(0))
    yes, no = relevance_completion(True, "</s>"), relevance_completion(False, "</s>")
    got = {(e["prompt"], e["completion"]) for e in ex}
    assert (relevance_prompt(ctxs[0], "a"), yes) in got
    assert len(ex) == 3 and sum(e["completion"] == no for e in ex) == 2  # balanced: 2 "no" per "yes"
    new_no = {relevance_prompt(ctxs[0], c) for c in "bcd"} | {relevance_prompt(ctxs[2], "c")}
    assert {p for p, c in got if c == no} <= new_no  # seen "e" and the user without feedback never appear
    assert on_policy_examples(ctxs, cands, seen, [None, None, ()], 2, "</s>", np.random.default_rng(0)) == []


def test_refresh_kind_defaults_keep_the_period_refresh_for_rllm_rewards():
    judged = PcoConfig(reward="serendipity")
    assert judged.refresh_kind() is RefreshKind.PERIOD and not judged.uses_feedback
    assert PcoConfig().refresh_kind() is RefreshKind.BOTH and PcoConfig().uses_feedback  # default reward: feedback
    assert PcoConfig(reward="relevance").refresh_kind() is RefreshKind.PERIOD
    for kind in ("feedback", "hybrid"):
        cfg = PcoConfig(reward=kind)
        assert cfg.refresh_kind() is RefreshKind.BOTH and cfg.uses_feedback and cfg.feedback_inject
    assert PcoConfig(refresh="on_policy").uses_feedback
    assert PcoConfig(reward="feedback", refresh="period").refresh_kind() is RefreshKind.PERIOD
    with pytest.raises(ValueError, match="follow_periods"):
        PcoConfig(reward="feedback", follow_periods=False)
    with pytest.raises(ValueError, match="refresh must be one of"):
        PcoConfig(refresh="never")
    cfg = PcoConfig(reward="hybrid", refresh="on_policy", feedback_inject=False)
    d = config_to_dict(cfg)
    assert d["reward"] == "hybrid" and d["refresh"] == "on_policy"
    assert from_dict(PcoConfig, d, where="pco") == cfg and cfg.reward is RewardKind.HYBRID


def test_served_categories_join_the_candidates_of_users_with_feedback_in_served_order():
    """Only categories the user had not seen, only for users with feedback (the others give no pair), never twice."""
    exposure = {"u0": ("x", "a", "y", "z"), "u1": ("x",), "u2": ("q",)}
    users, seen = ["u0", "u1", "u2", "u3"], [{"z"}, set(), set(), set()]
    exposed = exposed_categories(exposure, users, seen)
    assert exposed == [{"x", "a", "y"}, {"x"}, {"q"}, set()]
    cands, added = inject_exposed([["a", "b"], ["c"], ["d"], ["e"]], exposed, [(), ("c",), None, ()], exposure, users)
    assert cands == [["a", "b", "x", "y"], ["c", "x"], ["d"], ["e"]] and added == 3


@pytest.mark.parametrize("kind", ["feedback", "hybrid"])
def test_shown_and_ignored_is_the_first_rejected_and_never_paired_against_a_mere_non_take_up(judged, kind):
    """u0 took up c; the store had shown them x and y and they ignored both: the pair rejects one of them, not b
    (proposed, not taken up), and b is never paired against them. u1 took nothing up: its ignored x scores below
    b, but a gap of margin / 2 forms no pair. A served category taken up (u2's x) is a positive. The hybrid reward
    scores these users (all with feedback) the same: its logged part reads the served lists too."""
    reward = make_reward(PcoConfig(reward=kind, margin=0.1), _setup())
    inputs = replace(_inputs([["b", "c", "x", "y"], ["b", "x"], ["x", "b"]], [set(), set(), set()],
                             [("c",), (), ("x",)]), exposed=[{"x", "y"}, {"x"}, {"x"}])
    scores = reward.score(inputs)
    assert scores == [[0.0, 1.0, -0.05, -0.05], [0.0, -0.05], [1.0, 0.0]]
    pairs, stats = build_pairs(["p0", "p1", "p2"], inputs.candidates, scores, margin=0.1, pairs_per_prompt=2)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("p0", "c", "y"), ("p2", "x", "b")]
    assert stats.dropped_margin == 2  # p0's second pair (b vs x: 0 vs -0.05) and p1's (b vs x)
    plain = reward.score(replace(inputs, exposed=[]))  # without served lists: the reward of before
    assert plain == [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert judged == []  # every user has feedback: the R-LLM is never asked


def test_the_on_policy_refresh_labels_proposals_and_shown_categories_not_injected_take_ups():
    """The R-LLM's on-policy examples come from what the N-LLM proposed and what the store showed (served and
    ignored is the firmest "no"), never from injected logged take-ups; without served lists: the proposals only."""
    from coea.pco.round import judged_on_policy

    sampled = [["a", "b"], ["c"]]
    # u0 took up t (injected, not proposed) and ignored the served x, y; u1 took up the served z
    inputs = replace(_inputs([["a", "b", "t", "x", "y"], ["c", "z"]], [set(), set()], [("t",), ("z",)]),
                     exposed=[{"x", "y"}, {"z"}])
    judged = judged_on_policy(sampled, inputs)
    assert judged == [["a", "b", "x", "y"], ["c", "z"]]
    assert judged_on_policy(sampled, _inputs([["a", "b", "t"], ["c"]], [set(), set()], [("t",), ()])) == sampled
    examples = on_policy_examples(inputs.contexts, judged, inputs.seen, inputs.feedback, negatives_per_positive=10,
                                  eos="</s>", rng=np.random.default_rng(0))
    yes = relevance_completion(True, "</s>")
    assert len(examples) == 6 and sum(e["completion"] == yes for e in examples) == 1  # z yes; a, b, x, y, c no
    prompts = {e["prompt"] for e in examples}
    assert relevance_prompt(inputs.contexts[0], "x") in prompts
    assert relevance_prompt(inputs.contexts[0], "t") not in prompts


def test_a_round_with_feedback_for_few_prompted_users_on_global_periods_warns_and_names_the_fix():
    from coea.pco.round import few_feedback_warning

    cfg = PcoConfig()  # the default reward reads feedback, on global periods
    assert cfg.uses_feedback and cfg.periods is Periods.GLOBAL
    warning = few_feedback_warning(cfg, 1, prompted=670, with_feedback=2)
    assert warning is not None and "2 of 670" in warning and "pco.periods: user" in warning
    assert few_feedback_warning(cfg, 1, prompted=670, with_feedback=9) is not None  # 1.3 %
    assert few_feedback_warning(cfg, 1, prompted=670, with_feedback=14) is None  # 2 % and more: quiet
    assert few_feedback_warning(cfg, 1, prompted=981, with_feedback=63) is None  # MovieLens' first global round
    assert few_feedback_warning(cfg, 1, prompted=0, with_feedback=0) is None
    assert few_feedback_warning(replace(cfg, periods=Periods.USER), 1, 670, 2) is None  # the fix itself is quiet
    judge_only = replace(cfg, reward=RewardKind.SERENDIPITY, refresh=RefreshKind.PERIOD)
    assert not judge_only.uses_feedback and few_feedback_warning(judge_only, 1, 670, 0) is None
