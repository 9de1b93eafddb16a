"""SFT windows follow the split; the prompt options (full CSID, long-term summary, event and item sequences); the judge
metric."""

from dataclasses import replace

import numpy as np
import pytest

from coea.config import EvalConfig, SplitConfig
from coea.data.split import chronological_split
from coea.evaluation import pco_metrics
from coea.evaluation.pco_metrics import SplitEvaluator, judge_rows, top_by_score
from coea.llm.prompts import (
    ITEMS_MARK,
    LONG_MARK,
    SEQ_MARK,
    USER_MARK,
    PromptContext,
    category_name,
    category_text,
    item_text,
    novelty_prompt,
    option_words,
    relevance_prompt,
)
from coea.llm.sft_config import LlmConfig, NoveltyTarget, SftDataConfig, resolve_llm, resolve_sft_data
from coea.llm.sft_data import (
    GroupInfo,
    build_sft_examples,
    first_cut,
    long_term_categories,
    prompt_context,
    sft_history,
    target_start,
)
from coea.llm.tokenizer import build_scratch_tokenizer
from tests.helpers import events

NO_HISTORY = {"sequence": 0, "items": 0}  # no seq: / items: sections (on by default): a test of the other sections


def test_default_split_gives_the_former_fixed_windows():
    cfg = resolve_sft_data(SftDataConfig(), SplitConfig())
    assert (cfg.min_prefix, cfg.horizon, cfg.novelty_horizon, cfg.n_short) == (10, 20, 10, 10) and cfg.resolved
    assert not SftDataConfig().resolved


def test_short_split_gives_shorter_windows_and_explicit_values_win():
    split = SplitConfig(n_future=2, n_short=4, min_history=2)
    cfg = resolve_sft_data(SftDataConfig(), split)
    assert (cfg.min_prefix, cfg.horizon, cfg.novelty_horizon, cfg.n_short) == (4, 4, 2, 4)
    cfg = resolve_sft_data(SftDataConfig(horizon=7, min_prefix=1), split)
    assert (cfg.min_prefix, cfg.horizon, cfg.novelty_horizon, cfg.n_short) == (1, 7, 2, 4)
    assert resolve_llm(LlmConfig(), split).data == resolve_sft_data(SftDataConfig(), split)
    with pytest.raises(ValueError, match="min_prefix must be > 0 or None"):
        SftDataConfig(min_prefix=0)


def test_examples_need_a_resolved_config():
    with pytest.raises(ValueError, match=r"resolve_sft_data"):
        build_sft_examples(events([("u", "0", "a", 0)]), {"u": GroupInfo((0,), "")}, SftDataConfig(), eos="</s>")


def _log(lengths: dict[str, int]):
    cats = "abcdefghij"
    return events([(u, f"{u}{t}", cats[(t * 3 + len(u)) % len(cats)], t) for u, n in lengths.items()
                   for t in range(n)])


def test_short_histories_get_cuts_and_long_ones_keep_theirs():
    assert [first_cut(n, 10) for n in (2, 3, 7, 10, 11, 40)] == [1, 1, 3, 5, 10, 10]
    cfg = resolve_sft_data(SftDataConfig(), SplitConfig())
    groups = {u: GroupInfo((0, 1), "p") for u in ("long", "mid", "short")}
    only_long = build_sft_examples(_log({"long": 40}), groups, cfg, eos="</s>")
    both = build_sft_examples(_log({"long": 40, "short": 6}), groups, cfg, eos="</s>")
    assert both.novelty[:len(only_long.novelty)] == only_long.novelty  # "long" sorts first: its examples unchanged
    assert len(both.novelty) > len(only_long.novelty)  # the 6-event user gets examples from its 3rd event on


def test_prompts_without_options_are_unchanged_and_the_default_adds_the_user_code():
    group = GroupInfo((2, 0), "Group  2-0: fans", (2, 0, 3))
    plain = resolve_sft_data(SftDataConfig(full_csid=False, **NO_HISTORY), SplitConfig())
    ctx = prompt_context(group, ["x", "a", "b", "a"], plain)
    assert ctx == PromptContext((2, 0), "Group  2-0: fans", ("x", "b", "a"))
    default = prompt_context(group, ["x", "a", "b", "a"], resolve_sft_data(SftDataConfig(), SplitConfig()),
                             items=["m1", "m2", "m3", "m2"])  # the default shows the user's last events too
    assert novelty_prompt(default) == ("group: <a_2> <b_0> profile: Group 2-0: fans user: <a_2> <b_0> <c_3> "
                                       "seq: x a b a items: \\im1 \\im2 \\im3 \\im2 recent: x b a ; novel:")
    assert novelty_prompt(ctx) == "group: <a_2> <b_0> profile: Group 2-0: fans recent: x b a ; novel:"
    assert relevance_prompt(ctx, "c") == "group: <a_2> <b_0> profile: Group 2-0: fans recent: x b a ; candidate: c"
    assert novelty_prompt(ctx, with_group=False) == "recent: x b a ; novel:"
    assert option_words(False, 0) == ()


def test_full_csid_and_long_term_sections():
    cfg = replace(resolve_sft_data(SftDataConfig(**NO_HISTORY), SplitConfig()), full_csid=True, long_term=2,
                  n_short=1)
    cats = ["c", "a", "b", "a", "c", "a", "b"]
    ctx = prompt_context(GroupInfo((2, 0), "fans", (2, 1, 3)), cats, cfg)
    assert ctx.code == (2, 1, 3) and ctx.long_term == ("a", "c")  # 3 a, then the tie c/b by first appearance
    assert novelty_prompt(ctx) == ("group: <a_2> <b_0> profile: fans user: <a_2> <b_1> <c_3> long: a c recent: b ; "
                                   "novel:")
    assert novelty_prompt(ctx, with_group=False) == "long: a c recent: b ; novel:"  # w/o CSID: no code either
    assert prompt_context(GroupInfo((2, 0), "fans"), cats, cfg).code == (2, 0)  # unknown code: the group prefix
    assert long_term_categories(cats, 0) == () and long_term_categories(cats[:1], 3) == ("c",)
    tok = build_scratch_tokenizer(["a", "b", "c"], ["fans", " ".join(option_words(True, 2))], [4, 4, 4])
    ids = tok(novelty_prompt(ctx), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.convert_tokens_to_ids([USER_MARK, LONG_MARK]) == [ids[5], ids[9]]


def test_long_term_never_shows_what_comes_after_the_cut():
    """N-LLM targets with ``novelty_target=user`` are categories never seen before the cut: none of them may
    appear in the example's ``long:`` section (it summarises the history before the cut only)."""
    cfg = replace(resolve_sft_data(SftDataConfig(), SplitConfig(n_future=3, n_short=2)), long_term=5,
                  novelty_target=NoveltyTarget.USER, split_targets=False, full_csid=False)
    log = _log({f"u{i}": 12 + i for i in range(8)})
    ex = build_sft_examples(log, {f"u{i}": GroupInfo((0,), "") for i in range(8)}, cfg, eos="</s>")
    assert ex.novelty
    new_user = novelty_prompt(PromptContext((0,), "", ()))  # the new-user cut: no history, so no long: section
    assert sum(e["prompt"] == new_user for e in ex.novelty) == 8
    for e in ex.novelty:
        if e["prompt"] != new_user:
            long = e["prompt"].split(LONG_MARK)[1].split("recent:")[0].split()
            assert long and not set(long) & set(e["completion"].split()[:-1])


def test_sequence_section_shows_the_last_events_in_order_with_repeats():
    cfg = replace(resolve_sft_data(SftDataConfig(**NO_HISTORY), SplitConfig()), full_csid=False, sequence=4,
                  n_short=1)
    cats = ["c", "a", "b", "a", "c", "a", "b"]
    ctx = prompt_context(GroupInfo((2, 0), "fans"), cats, cfg)
    assert ctx.sequence == ("a", "c", "a", "b") and ctx.long_term == ()
    assert novelty_prompt(ctx) == "group: <a_2> <b_0> profile: fans seq: a c a b recent: b ; novel:"
    assert novelty_prompt(ctx, with_group=False) == "seq: a c a b recent: b ; novel:"  # history, kept w/o CSID
    assert prompt_context(GroupInfo((2, 0), "fans"), cats[:2], cfg).sequence == ("c", "a")  # shorter history: all
    assert prompt_context(GroupInfo((2, 0), "fans"), [], cfg).sequence == ()  # a new user: no section
    assert prompt_context(GroupInfo((2, 0), "fans"), cats, replace(cfg, sequence=0)).sequence == ()
    assert option_words(False, 0, 4) == (SEQ_MARK,) and option_words(True, 2, 0) == (USER_MARK, LONG_MARK)
    tok = build_scratch_tokenizer(["a", "b", "c"], ["fans", " ".join(option_words(False, 0, 4))], [4, 4, 4])
    ids = tok(novelty_prompt(ctx), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.convert_tokens_to_ids(SEQ_MARK) == ids[5]
    with pytest.raises(ValueError, match="sequence must be >= 0"):
        SftDataConfig(sequence=-1)


def _positions(prompt: str, mark: str, end: str = "recent:") -> list[int]:
    """The event positions a prompt section names, for logs whose category at position t is ``k<t>``."""
    return [int(category_name(w)[1:]) for w in prompt.split(mark)[1].split(end)[0].split()]


def test_sequence_never_shows_what_comes_after_the_cut_in_sft_or_at_evaluation():
    """A log whose every event has its own category (``k<t>``, t its position) makes leakage visible: in every
    N-LLM and R-LLM example the ``seq:`` section must be exactly the events just before the cut, each target and
    candidate taken up after it; at evaluation it must be the history's last events, never a future one."""
    cfg = replace(resolve_sft_data(SftDataConfig(**NO_HISTORY), SplitConfig(n_future=3, n_short=2)), sequence=5,
                  full_csid=False)
    log = events([(f"u{i}", f"u{i}-{t}", f"k{t}", t) for i in range(6) for t in range(14 + i)])
    groups = {f"u{i}": GroupInfo((0,), "") for i in range(6)}
    ex = build_sft_examples(log, groups, cfg, eos="</s>")
    assert ex.novelty and ex.relevance
    seen = 0
    for e in ex.novelty:
        if SEQ_MARK not in e["prompt"]:
            continue  # the new-user cut: no history, no section
        seq = _positions(e["prompt"], SEQ_MARK)
        targets = [int(category_name(w)[1:]) for w in e["completion"].split()[:-1]]
        assert seq == list(range(seq[-1] - len(seq) + 1, seq[-1] + 1)) and len(seq) == min(5, seq[-1] + 1)
        assert targets and min(targets) > seq[-1]
        seen += 1
    assert seen > 6
    for e in ex.relevance:
        seq = _positions(e["prompt"], SEQ_MARK)
        if e["completion"].split()[0] == "yes":
            assert int(category_name(e["prompt"].split()[-1])[1:]) > seq[-1]
    split = chronological_split(log, SplitConfig(n_future=3, n_short=2, min_history=2))
    ev = SplitEvaluator(split, groups, LlmConfig(data=cfg), k=1, judge_users=0)
    history = split.histories.user_categories()
    for user, prompt in zip(ev.users, ev.prompts, strict=True):
        seq = _positions(prompt, SEQ_MARK)
        assert {f"k{t}" for t in seq} <= history[user] and not {f"k{t}" for t in seq} & split.future_categories[user]
        assert seq == sorted(int(c[1:]) for c in history[user])[-5:]


def test_item_section_shows_the_last_events_items_as_words_no_category_can_be():
    cfg = replace(resolve_sft_data(SftDataConfig(**NO_HISTORY), SplitConfig()), full_csid=False, items=3,
                  n_short=1)
    cats, items = ["c", "a", "b", "a"], ["m1", "m2", "m1", "m 4"]
    ctx = prompt_context(GroupInfo((2, 0), "fans"), cats, cfg, items=items)
    assert ctx.items == ("m2", "m1", "m 4") and ctx.sequence == ()
    assert novelty_prompt(ctx, with_group=False) == "items: \\im2 \\im1 \\im\\_4 recent: a ; novel:"
    assert prompt_context(GroupInfo((2, 0), "fans"), cats, replace(cfg, items=0), items=items).items == ()
    with pytest.raises(ValueError, match="2 items for 4 events"):
        prompt_context(GroupInfo((2, 0), "fans"), cats, cfg, items=items[:2])
    # an item word never equals a category word, whatever both are called (no category word starts with \i)
    names = ["i1", "\\i1", "1", "items:", "<a_1>", "yes", ""]
    assert not {item_text(n) for n in names} & {category_text(n) for n in names}
    assert option_words(False, 0, 0, 3) == (ITEMS_MARK,) and category_text("items:") != "items:"
    tok = build_scratch_tokenizer(["a", "b", "c"], ["fans", " ".join(option_words(False, 0, 0, 3)),
                                                    " ".join(map(item_text, ["m1", "m2", "m 4"]))], [4, 4, 4])
    ids = tok(novelty_prompt(ctx, with_group=False), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) == 8  # items:, three items, recent:, a, ;, novel:
    unseen = replace(ctx, items=("m9",))  # an item the tokenizer was not built with: its unknown token
    assert tok.unk_token_id in tok(novelty_prompt(unseen), add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="items must be >= 0"):
        SftDataConfig(items=-1)


def test_item_section_never_shows_what_comes_after_the_cut_in_sft_pco_or_at_evaluation():
    """Every event has its own item (``j<t>``, t its position), so leakage is visible: in every N-LLM and R-LLM
    example (SFT and PCO's refresh) the ``items:`` section is exactly the items of the events just before the cut,
    every target after it; at evaluation it is the history's last items, never a future one."""
    from coea.pco.periods import Window, novelty_refresh_examples, refresh_examples, round_users

    cfg = replace(resolve_sft_data(SftDataConfig(**NO_HISTORY), SplitConfig(n_future=3, n_short=2)), items=5,
                  full_csid=False)
    log = events([(f"u{i}", f"j{t}", f"k{t}", t) for i in range(6) for t in range(14 + i)])
    groups = {f"u{i}": GroupInfo((0,), "") for i in range(6)}

    def shown(prompt: str) -> list[int]:
        return [int(w[len("\\ij"):]) for w in prompt.split(ITEMS_MARK)[1].split("recent:")[0].split()]

    ex = build_sft_examples(log, groups, cfg, eos="</s>")
    window = Window(0, 8, 16)
    refresh = (novelty_refresh_examples(log, groups, window, cfg, "</s>")
               + list(refresh_examples(log, groups, window, cfg, "</s>", np.random.default_rng(0))))
    seen = 0
    for e in [*ex.novelty, *ex.relevance, *refresh]:
        if ITEMS_MARK not in e["prompt"]:
            continue  # the new-user cut: no history, no section
        pos = shown(e["prompt"])
        assert pos == list(range(pos[-1] - len(pos) + 1, pos[-1] + 1)) and len(pos) == min(5, pos[-1] + 1)
        words = e["completion"].split()[:-1] if e["prompt"].endswith("novel:") else [e["prompt"].split()[-1]]
        if e["completion"].split()[0] != "no":
            assert min(int(category_name(w)[1:]) for w in words) > pos[-1]  # targets come after the cut
        seen += 1
    assert seen > 20
    ru = round_users(log, groups, window, 2, None, np.random.default_rng(0), cfg)
    last = [max(int(c[1:]) for c in seen) for seen in ru.seen]  # each user's last event before the window's end
    assert ru.users and [shown(novelty_prompt(c))[-1] for c in ru.contexts] == last and max(last) == window.end - 1
    split = chronological_split(log, SplitConfig(n_future=3, n_short=2, min_history=2))
    ev = SplitEvaluator(split, groups, LlmConfig(data=cfg), k=1, judge_users=0)
    history = split.histories.user_categories()
    for user, prompt in zip(ev.users, ev.prompts, strict=True):
        assert shown(prompt) == sorted(int(c[1:]) for c in history[user])[-5:]  # item j<t> is category k<t>


def test_judge_metric_ranks_unseen_categories_by_p_yes(monkeypatch):
    rows = [(u, f"{u}{t}", c, t) for u, cats in {"u1": "aabbc", "u2": "abbad", "u3": "ccaab"}.items()
            for t, c in enumerate(cats)]
    split = chronological_split(events(rows), SplitConfig(n_future=1, n_short=2, min_history=2))
    groups = {u: GroupInfo((0,), "") for u in ("u1", "u2", "u3")}
    p = {"a": 0.1, "b": 0.2, "c": 0.9, "d": 0.5}
    monkeypatch.setattr(pco_metrics, "rllm_scores", lambda rel, ctxs, cands, llm: [[p[c] for c in cs] for cs in cands])
    ev = SplitEvaluator(split, groups, resolve_llm(LlmConfig(), split.config), k=1, judge_users=2)
    assert ev.judged == judge_rows(3, 2) and len(ev.judged) == 2 and judge_rows(3, 5) == [0, 1, 2]
    users = [ev.users[i] for i in ev.judged]
    novel = [["d"] for _ in ev.users]  # the N-LLM's +x top-1 of every evaluated user
    out = ev.judge(None, novel)
    # u1's future is c (unseen, top P(yes)) -> hit; u2's is d: c outranks it -> miss; u3's is b: seen -> no hit
    expected = {"u1": 1.0, "u2": 0.0, "u3": 0.0}
    assert out["judge_S-H"] == pytest.approx(np.mean([expected[u] for u in users]))
    assert out["x_S-H_judged"] == pytest.approx(np.mean([float(u == "u2") for u in users]))
    assert out["judged_users"] == 2
    assert top_by_score([["a", "b", "c"]], [[0.2, 0.9, 0.5]], 2) == [["b", "c"]]
    assert SplitEvaluator(split, groups, LlmConfig(), k=1, judge_users=0).judge(None, novel) == {}


def test_round_users_bounds_the_per_round_metric_users_to_a_seeded_sample():
    rows = [(u, f"{u}{t}", c, t) for u, cats in {f"u{i}": "aabbcd"[i % 3:] + "abc" for i in range(6)}.items()
            for t, c in enumerate(cats)]
    split = chronological_split(events(rows), SplitConfig(n_future=1, n_short=2, min_history=2))
    groups = {f"u{i}": GroupInfo((0,), "") for i in range(6)}
    llm = resolve_llm(LlmConfig(), split.config)
    every = SplitEvaluator(split, groups, llm, k=1, judge_users=0)
    assert every.users == split.warm_users and len(every.users) == 6  # round_users=0: every evaluated user
    some = SplitEvaluator(split, groups, llm, k=1, judge_users=2, round_users=4)
    assert some.users == [every.users[i] for i in judge_rows(6, 4, seed=1)] and len(some.users) == 4
    assert len(some.prompts) == 4 and len(some.judged) == 2 and max(some.judged) < 4  # the judge draws among them
    assert SplitEvaluator(split, groups, llm, k=1, round_users=10).users == every.users
    with pytest.raises(ValueError, match="round_users must be >= 0"):
        EvalConfig(round_users=-1)


def test_examples_of_one_llm_equal_that_llm_s_examples_when_both_are_built():
    cfg = resolve_sft_data(SftDataConfig(), SplitConfig(n_future=3, n_short=2))
    log = _log({f"u{i}": 12 + i for i in range(8)})
    groups = {f"u{i}": GroupInfo((0,), "") for i in range(8)}
    both = build_sft_examples(log, groups, cfg, eos="</s>")
    assert both.novelty and both.relevance
    assert build_sft_examples(log, groups, cfg, eos="</s>", which=("novelty",)) == replace(both, relevance=[])
    assert build_sft_examples(log, groups, cfg, eos="</s>", which=("relevance",)) == replace(both, novelty=[])


def test_gap_follows_the_split_and_targets_start_after_it():
    """With the split's ``min_gap`` the targets of a cut are what the user took up after such a pause, as the
    evaluation scores them; without one they are the events right after the cut (the former examples)."""
    assert resolve_sft_data(SftDataConfig(), SplitConfig()).gap == 0
    split = SplitConfig(n_future=2, n_short=2, min_history=2, min_gap=86_400)
    assert resolve_sft_data(SftDataConfig(), split).gap == 86_400
    assert resolve_sft_data(SftDataConfig(gap=60), split).gap == 60
    with pytest.raises(ValueError, match="gap must be >= 0 or None"):
        SftDataConfig(gap=-1)
    day = 86_400
    # a burst a, b, c, d on day 0, then e, f on day 2: a cut inside the burst targets day 2's events
    log = events([("u", f"i{k}", c, t) for k, (c, t) in enumerate(
        [("a", 0), ("b", 60), ("c", 120), ("d", 180), ("e", 2 * day), ("f", 2 * day + 60)])])
    groups = {"u": GroupInfo((0,), "p")}
    cfg = replace(resolve_sft_data(SftDataConfig(novelty_cuts_per_user=1, min_prefix=2), split), new_user_cut=False)
    nov = build_sft_examples(log, groups, replace(cfg, gap=0), eos="</s>", which=("novelty",)).novelty
    gapped = build_sft_examples(log, groups, cfg, eos="</s>", which=("novelty",)).novelty
    completions = lambda ex: {e["completion"].split("</s>")[0].strip() for e in ex}  # noqa: E731
    assert completions(gapped) == {"e", "f"}
    assert completions(nov) and completions(nov) <= {"c", "d", "e"} and completions(nov) != {"e", "f"}
    ts = np.array([0, 60, 120, 180, 2 * day, 2 * day + 60])
    assert [target_start(ts, t, day) for t in (1, 3, 4, 5)] == [4, 4, 4, 6]
    assert [target_start(ts, t, 0) for t in (1, 3, 5)] == [1, 3, 5]
    # exactly gap seconds after the cut's last event is a target (the split keeps a history event exactly
    # min_gap before the future too; audit, session 55: a strict "more than gap" passed)
    assert target_start(np.array([0, 60, 120, 180, 180 + day]), 4, day) == 4


def test_the_r_llm_refresh_takes_its_positives_after_the_gap_and_at_most_max_targets_a_cut():
    """Audit, session 55: PCO's R-LLM refresh (``refresh_examples``) was never run with a gap, so positives read
    right after the cut, or more than ``max_targets`` of them, passed. A burst a, b, c, d on day 0, then e, f, g on
    day 2, all inside the window; with the split's one-day gap every cut's "yes" is among e, f, g, one a cut."""
    from coea.pco.periods import Window, refresh_examples

    day = 86_400
    rows = [("a", 0), ("b", 60), ("c", 120), ("d", 180), ("e", 2 * day), ("f", 2 * day + 60), ("g", 2 * day + 120)]
    log = events([(u, f"{u}{k}", c, t) for u in ("u", "v") for k, (c, t) in enumerate(rows)])
    groups = {"u": GroupInfo((0,), "p"), "v": GroupInfo((0,), "p")}
    split = SplitConfig(n_future=2, n_short=2, min_history=2, min_gap=day)
    cfg = replace(resolve_sft_data(SftDataConfig(cuts_per_user=3, min_prefix=2), split), max_targets=1)
    ex = refresh_examples(log, groups, Window(0, 0, 3 * day), cfg, "</s>", np.random.default_rng(0))
    yes = [e["prompt"].split("candidate:")[1].strip() for e in ex if e["completion"].startswith(" yes")]
    assert yes and set(yes) <= {"e", "f", "g"}
    # cuts at events 2, 4, 6 of each user: the first two take up e, f, g (one kept), the last nothing after a day
    assert len(yes) == 2 * 2
    no_gap = refresh_examples(log, groups, Window(0, 0, 3 * day), replace(cfg, gap=0), "</s>",
                              np.random.default_rng(0))
    read = {e["prompt"].split("candidate:")[1].strip() for e in no_gap if e["completion"].startswith(" yes")}
    assert read & {"c", "d"}  # without the gap, the burst's own next events


def test_new_user_cut_teaches_the_first_categories_from_an_empty_prompt():
    """``new_user_cut`` adds, per user, the prompt a user without history gets (empty short-term set) with the
    first categories they took up as targets; every other example is the same as without it."""
    split = SplitConfig(n_future=2, n_short=2, min_history=2)
    cfg = resolve_sft_data(SftDataConfig(novelty_cuts_per_user=2, **NO_HISTORY), split)
    log = _log({"u": 8, "v": 5})
    groups = {u: GroupInfo((0, 1), "p", code=(0, 1, 3)) for u in ("u", "v")}
    assert cfg.new_user_cut and cfg.full_csid  # on by default
    plain = build_sft_examples(log, groups, replace(cfg, new_user_cut=False), eos="</s>", which=("novelty",)).novelty
    new = build_sft_examples(log, groups, cfg, eos="</s>", which=("novelty",)).novelty
    extra = [e for e in new if e not in plain]
    assert [e for e in new if e in plain] == plain and len(extra) == 4  # 2 users x their first 2 distinct categories
    # an empty short-term set, and no full code (it encodes the history this cut is before): the group prefix,
    # the prompt inference gives a user without history; every other cut shows the user's own code
    assert {e["prompt"] for e in extra} == {novelty_prompt(PromptContext((0, 1), "p", (), code=(0, 1)))}
    assert all("user: <a_0> <b_1> <c_3> recent:" in e["prompt"] for e in plain)
    firsts = {c for u in ("u", "v") for c in log[log.user_id == u].category.tolist()[:2]}
    assert {e["completion"].split()[0] for e in extra} == firsts


def test_holdout_share_keeps_each_users_last_events_out_of_sft():
    """``llm.data.holdout_share`` (the continual protocol): SFT examples of both LLMs come from each user's history
    without its last share of events (the i-th of n kept when i / n < 1 - share), so nothing of them reaches a
    prompt or a target; 0 keeps the examples as they were."""
    rows = [(u, "i", f"{u}c{t}", t) for u, n in (("a", 8), ("b", 4)) for t in range(n)]
    log = events(rows)
    assert sft_history(log, 0.0) is log
    kept = sft_history(log, 0.25)
    assert kept.groupby("user_id").size().to_dict() == {"a": 6, "b": 3}
    assert set(kept["category"]) == {f"ac{t}" for t in range(6)} | {f"bc{t}" for t in range(3)}
    groups = {"a": GroupInfo((0,), ""), "b": GroupInfo((0,), "")}
    split = SplitConfig(n_future=2, n_short=2, min_history=2)
    plain = build_sft_examples(log, groups, resolve_sft_data(SftDataConfig(), split), eos="</s>")
    cfg = resolve_sft_data(SftDataConfig(holdout_share=0.25), split)
    held = build_sft_examples(log, groups, cfg, eos="</s>")
    assert held == build_sft_examples(kept, groups, resolve_sft_data(SftDataConfig(), split), eos="</s>")
    texts = " ".join(e["prompt"] + e["completion"] for e in held.novelty + held.relevance)
    assert not any(c in texts for c in ("ac6", "ac7", "bc3")) and "ac6" in " ".join(
        e["prompt"] + e["completion"] for e in plain.novelty + plain.relevance)
    with pytest.raises(ValueError, match="holdout_share"):
        SftDataConfig(holdout_share=1.0)


def test_item_vocab_gives_tokens_to_the_most_frequent_items_and_the_rest_read_as_unknown(caplog):
    """``llm.data.item_vocab`` / ``item_min_count`` bound the scratch tokenizer's item words (large catalogues):
    the most frequent items keep a token (ties by id, whatever the row order), the others read as the unknown token,
    and the log says how much of the history that touches. No cap keeps every item, as before the option."""
    import pandas as pd

    from coea.llm.run import item_vocabulary, section_texts

    rows = pd.DataFrame({"item_id": ["m3", "m1", "m2", "m1", "m3", "m4", "m1", "m2", "m5"]})
    assert item_vocabulary(rows, None) == ["m1", "m2", "m3", "m4", "m5"]
    assert item_vocabulary(rows.iloc[::-1], 2) == ["m1", "m2"]  # m1 x3, then m2 and m3 x2: the tie goes to m2
    assert item_vocabulary(rows, None, min_count=2) == ["m1", "m2", "m3"]
    with caplog.at_level("INFO", logger="coea.llm.run"):
        assert item_vocabulary(rows, 1, min_count=2) == ["m1"]
    assert "1 of 5 items get a token" in caplog.text and "66.7 %" in caplog.text
    assert caplog.records[-1].levelname == "WARNING" and "raise llm.data.item_vocab" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="coea.llm.run"):  # a rare tail left out: a note, not a warning
        assert item_vocabulary(pd.DataFrame({"item_id": ["m1"] * 30 + ["m2"]}), 1) == ["m1"]
    assert caplog.records[-1].levelname == "INFO" and "3.2 %" in caplog.text and "raise" not in caplog.text
    data = replace(SftDataConfig(**NO_HISTORY), full_csid=False, items=3, item_vocab=2)
    tok = build_scratch_tokenizer(["a"], section_texts(data, rows), [4, 4, 4])
    ids = tok(" ".join(map(item_text, ["m1", "m2", "m3"])), add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids[:2] and ids[2] == tok.unk_token_id
    for bad, match in (({"item_vocab": 0}, "item_vocab must be > 0"), ({"item_min_count": 0}, "item_min_count")):
        with pytest.raises(ValueError, match=match):
            SftDataConfig(**bad)


def test_short_history_warning_names_the_prompt_sections_only_when_the_median_history_is_short():
    """``coea.stages.sft.short_history_warning``: warns when the warm users' median history is at most twice the
    resolved ``n_short`` and the prompt shows ``items:``; silent for longer histories, without the section (``seq:``
    alone, with the sequence loss, pays on such histories: session 53), and without warm users."""
    import pandas as pd

    from coea.llm.sft_config import LlmConfig, SftDataConfig, resolve_llm
    from coea.stages.sft import short_history_warning

    def log(events: int, users: int = 6) -> pd.DataFrame:
        return pd.DataFrame([(f"u{u}", f"i{t}", f"c{(u + t) % 5}", 1000 + t) for u in range(users)
                             for t in range(events)], columns=["user_id", "item_id", "category", "timestamp"])

    split_cfg = SplitConfig(n_future=2, min_history=2)  # n_short 10: the threshold is a median of 20
    llm = resolve_llm(LlmConfig(), split_cfg)
    short, edge, long = (chronological_split(log(n), split_cfg) for n in (10, 22, 23))
    warning = short_history_warning(short, llm)
    assert warning is not None and "median of 8 events" in warning and "llm.data.n_short=10" in warning
    assert "prompt shows llm.data.items=50" in warning and "--config short" in warning
    assert short_history_warning(edge, llm) is not None  # median 20 = twice n_short
    assert short_history_warning(long, llm) is None  # median 21
    off = resolve_llm(LlmConfig(data=SftDataConfig(sequence=0, items=0)), split_cfg)
    assert short_history_warning(short, off) is None
    only_seq = resolve_llm(LlmConfig(data=SftDataConfig(items=0)), split_cfg)
    assert short_history_warning(short, only_seq) is None
    cold = chronological_split(log(3), SplitConfig(n_future=2, min_history=5))
    assert not cold.warm_users and short_history_warning(cold, llm) is None
