"""Audit (mutation testing of coea.llm.sft_data and coea.ablate): rules whose plausible bugs no test caught.

SFT examples: the cut range (no cut before the first event of a 1-event history, none past the last event), the
short-history fallback draws no jitter (the other users' cuts stay as they were), users in sorted order whatever the
row order, "taken up" / "seen before the cut" include the cut's last event, the horizon is exact, both LLMs keep at
most ``max_targets`` a cut, R-LLM negatives are distinct and the examples are shuffled (the held-out share is a random
sample), the SFT subsample is seeded. Ablation: simulated acceptance counts only categories new to the user whose
affinity is strictly above uniform, and the run's own PCO rounds are reused only when all of them finished.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coea.llm.prompts import PromptContext
from coea.llm.sft_config import NoveltyTarget, SftDataConfig, SftTrainConfig
from coea.llm.sft_data import (
    GroupInfo,
    _cuts,
    cut_points,
    first_cut,
    novelty_sft_cuts,
    recent_categories,
    relevance_examples,
    taken_up,
)
from tests.helpers import events

CFG = SftDataConfig(cuts_per_user=1, min_prefix=10, horizon=4, novelty_cuts_per_user=1, novelty_horizon=4,
                    novelty_target=NoveltyTarget.USER, n_short=2, gap=0, new_user_cut=False, seed=0,
                    split_targets=False, sequence=0, items=0, max_targets=2)
# 7 events <= min_prefix 10: the fallback cut, unjittered, at first_cut(7, 10) = 3, after "a b c"
CATS = ["a", "b", "c", "d", "c", "e", "f"]


def _one_user(cats=CATS):
    return events([("u", f"i{t}", c, t) for t, c in enumerate(cats)])


def test_cuts_lie_between_the_first_cut_and_the_last_event():
    """A 1-event history has no cut (not one at 0, before its only event); a cut is at most at the last event
    (``n - 1``): a cut at ``n`` has no events after it, and spreading the cuts up to ``n`` moves every other one."""
    assert first_cut(1, 10) == 1 and first_cut(2, 10) == 1
    rng = np.random.default_rng(0)
    assert _cuts(1, CFG, rng) == []
    two = SftDataConfig(**{**CFG.__dict__, "cuts_per_user": 2})
    assert _cuts(4, two, rng) == [2, 3]  # the short-history fallback: first_cut(4, 10) = 2, unjittered
    for seed in range(20):  # jittered cuts of a long history stay in [min_prefix, n - 1]
        cuts = _cuts(12, two, np.random.default_rng(seed))
        assert cuts and min(cuts) >= 10 and max(cuts) <= 11, (seed, cuts)


def test_the_short_history_fallback_leaves_the_other_users_cuts_as_they_were():
    """The fallback for a history of at most ``min_prefix`` events draws no jitter: a short user sorted before the
    long ones leaves every long user's cuts exactly as without them."""
    cfg = SftDataConfig(**{**CFG.__dict__, "min_prefix": 3, "cuts_per_user": 3, "novelty_cuts_per_user": 3})
    letters = "abcdefghijkl"
    long_rows = [(u, f"{u}{t}", letters[(t * 5 + k) % 12], t) for k, u in enumerate(("b", "c", "d", "e"))
                 for t in range(14)]
    short_rows = [("a", f"a{t}", c, t) for t, c in enumerate(["x", "y", "z"])]
    groups = {u: GroupInfo((0,), f"p{u}") for u in "abcde"}
    alone = cut_points(events(long_rows), groups, cfg, np.random.default_rng(0))
    both = cut_points(events(short_rows + long_rows), groups, cfg, np.random.default_rng(0))
    assert [c for c in both if c[0].profile != "pa"] == alone
    assert [c for c in both if c[0].profile == "pa"]  # the short user does get cuts
    nov_both = novelty_sft_cuts(events(short_rows + long_rows), groups, cfg)
    assert [c for c in nov_both if c[0].profile != "pa"] == novelty_sft_cuts(events(long_rows), groups, cfg)


def test_users_are_cut_in_sorted_order_whatever_the_row_order():
    """The seeded stream goes to users in sorted order: the same events in another row order (users interleaved in
    time, a later user first) give the same examples."""
    cfg = SftDataConfig(**{**CFG.__dict__, "min_prefix": 3, "cuts_per_user": 3})
    rows = [(u, f"{u}{t}", "abcdefg"[(t * 3 + k) % 7], t) for k, u in enumerate(("z", "m", "a")) for t in range(12)]
    by_user = events(sorted(rows, key=lambda r: (r[0], r[3])))
    by_time = events(sorted(rows, key=lambda r: (r[3], r[0] != "z", r[0])))  # "z" first, users interleaved
    groups = {u: GroupInfo((0,), f"p{u}") for u in ("z", "m", "a")}
    assert by_time.user_id.iloc[0] == "z"
    assert cut_points(by_time, groups, cfg, np.random.default_rng(0)) == cut_points(
        by_user, groups, cfg, np.random.default_rng(0))


def test_taken_up_reads_exactly_the_horizon_and_the_whole_history_before_the_cut():
    """Taken up = categories of ``cats[start:start + horizon]`` absent from ``cats[:t]`` (the cut's last event
    included); the short-term set reads only events before ``t``."""
    cats = ["a", "b", "c", "c", "d", "e"]
    assert taken_up(cats, 3, 2, 3) == ["d"]  # "c" is the cut's last event: not new; "e" is past the horizon
    assert taken_up(cats, 3, 3, 3) == ["d", "e"]
    assert recent_categories(cats, 2, 2) == ("a", "b")  # never cats[2] (the event at the cut)


def test_r_llm_cut_targets_and_seen_set():
    """An R-LLM cut's positives are at most ``max_targets`` categories new to the user (not the cut's last
    event's), and its set banned from the negatives holds every category before the cut, the last one included,
    and every one taken up in the horizon (f, past max_targets, too)."""
    cuts = cut_points(_one_user(), {"u": GroupInfo((0,), "p")}, CFG, np.random.default_rng(0))
    assert [(targets, banned) for _, targets, banned in cuts] == [(["d", "e"], {"a", "b", "c", "d", "e", "f"})]
    assert cuts[0][0].short_term == ("b", "c")


def test_n_llm_user_targets_keep_max_targets_and_exclude_the_cut_s_last_category():
    """N-LLM targets (``novelty_target: user``) are the horizon's categories never seen before the cut (the cut's
    last event included), at most ``max_targets`` of them."""
    cuts = novelty_sft_cuts(_one_user(), {"u": GroupInfo((0,), "p")}, CFG)
    assert [targets for _, targets in cuts] == [["d", "e"]]
    one = SftDataConfig(**{**CFG.__dict__, "max_targets": 1})
    assert [targets for _, targets in novelty_sft_cuts(_one_user(), {"u": GroupInfo((0,), "p")}, one)] == [["d"]]


def test_r_llm_negatives_of_a_cut_are_distinct():
    """Negatives are drawn without replacement: a cut with three positives gets three different "no" categories,
    even when one category carries almost all the adoption weight."""
    first = PromptContext((0,), "first", ("a",))
    other = PromptContext((0,), "other", ("a",))
    cuts = [(first, ["x", "y", "w"], {"a"})] + [(other, ["p"], {"a"})] * 50 + [(other, ["q"], set()),
                                                                           (other, ["r"], set())]
    for seed in range(3):
        ex = relevance_examples(cuts, 1, "</s>", np.random.default_rng(seed))
        no = [c for ctx, c, label in ex.specs if ctx is first and not label]
        assert sorted(no) == ["p", "q", "r"], (seed, no)


def test_r_llm_examples_are_shuffled_so_the_held_out_share_is_a_random_sample():
    """The examples come in seeded random order, not cut by cut: the last ``n`` (held out of SFT) are a sample of
    every cut, not the last users' examples."""
    ctxs = [PromptContext((0,), f"p{i}", ("a",)) for i in range(20)]
    cuts = [(ctx, [f"t{i}"], {"a"}) for i, ctx in enumerate(ctxs)]
    ex = relevance_examples(cuts, 1, "</s>", np.random.default_rng(0))
    order = [ctxs.index(ctx) for ctx, _, _ in ex.specs]
    assert sorted(order) == sorted(list(range(20)) * 2) and order != sorted(order)
    held = ex.split_off(10)[1]
    assert min(ctxs.index(ctx) for ctx, _, _ in held.specs) < 10  # early cuts reach the held-out share too
    assert relevance_examples(cuts, 1, "</s>", np.random.default_rng(0)).specs == ex.specs


def test_the_sft_subsample_is_seeded():
    """``max_examples`` keeps a subsample drawn with the config's seed: the same examples every time."""
    from coea.llm.sft import _subsample

    examples = [{"prompt": f"p{i}", "completion": " x"} for i in range(200)]
    cfg = SftTrainConfig(max_examples=5, seed=3)
    kept = _subsample(examples, cfg)
    assert len(kept) == 5 and kept == _subsample(examples, cfg)
    assert kept == [examples[i] for i in sorted(np.random.default_rng(3).choice(200, size=5, replace=False))]


def test_simulated_acceptance_counts_new_categories_strictly_above_uniform():
    """Simulated acceptance: the share of recommended categories outside the user's history whose affinity is
    above 1 / #categories (strictly); a category the user had is not counted; users without affinity are skipped."""
    from coea.ablate import simulated_acceptance

    affinity = pd.DataFrame([[0.25, 0.5, 0.1, 0.15]], index=["u"], columns=["a", "b", "c", "d"])
    recs = {"u": ["a", "b", "c"], "ghost": ["b"]}
    assert simulated_acceptance(recs, {"u": {"b"}}, affinity) == 0.0  # a: exactly uniform, c: below; b: seen
    assert simulated_acceptance({"u": ["b", "c"]}, {}, affinity) == 0.5
    assert np.isnan(simulated_acceptance({"u": ["b"]}, {"u": {"b"}}, affinity))


def test_the_run_s_pco_rounds_are_reused_only_when_all_of_them_finished(tmp_path, monkeypatch):
    """``--from-run``: an interrupted run (fewer completed rounds than ``pco.rounds``) is not the ``coea`` row; a
    finished one with the same config is."""
    from coea import ablate
    from coea.config import RunConfig
    from coea.layout import RunLayout
    from coea.pco.checkpoint import PcoState

    cfg = RunConfig()
    rows = [{"round": r} for r in range(cfg.pco.rounds + 1)]
    monkeypatch.setattr(ablate.lineage, "histories", lambda *args: {})
    monkeypatch.setattr(ablate.lineage, "check", lambda *args, **kw: None)
    for done, reused in ((cfg.pco.rounds - 1, None), (cfg.pco.rounds, rows)):
        state = PcoState(done, rows[:done + 1], {})
        monkeypatch.setattr(ablate, "read_state", lambda path, pco, state=state: state)
        assert ablate.finished_rounds(cfg, RunLayout(tmp_path)) == reused, done


def test_a_category_taken_up_past_max_targets_is_never_a_negative():
    """Bug found by this audit: a cut keeps at most ``max_targets`` positives, and the categories taken up after
    those were banned from neither side, so the R-LLM learned "no" for a category the user did take up in the
    horizon (here f, the only other category in the adoption pool: every draw). The module doc: negatives come from
    categories the user neither had before the cut nor took up in the horizon. SFT cuts and PCO's refresh alike."""
    from coea.pco.periods import Window, refresh_examples

    rows = [("u", f"i{t}", c, t) for t, c in enumerate(CATS)]
    rows += [(f"v{k}", f"j{t}", c, t) for k in range(5) for t, c in enumerate(["a", "b", "c", "f", "a", "a"])]
    groups = {u: GroupInfo((0,), f"p{u}") for u in ["u"] + [f"v{k}" for k in range(5)]}
    cuts = cut_points(events(rows), groups, CFG, np.random.default_rng(0))
    for seed in range(5):
        ex = relevance_examples(cuts, 1, "</s>", np.random.default_rng(seed))
        assert not [c for ctx, c, label in ex.specs if ctx.profile == "pu" and not label and c in "def"], seed
    refresh_cfg = SftDataConfig(**{**CFG.__dict__, "min_prefix": 3, "cuts_per_user": 1})  # u's refresh cut: at 3
    for seed in range(5):
        ex = refresh_examples(events(rows), groups, Window(0, 0, 10), refresh_cfg, "</s>", np.random.default_rng(seed))
        u_rows = [e for e in ex if "profile: pu" in e["prompt"]]
        assert u_rows and not [e for e in u_rows if e["completion"].startswith(" no")
                               and e["prompt"].split("candidate:")[1].strip() in "def"], seed
