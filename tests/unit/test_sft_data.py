"""SFT examples: cut points, novel targets, balanced relevance labels, history only."""

from coea.llm.prompts import CANDIDATE_MARK, NOVEL_MARK
from coea.llm.sft_config import NoveltyTarget
from coea.llm.sft_data import GroupInfo, SftDataConfig, build_sft_examples
from tests.helpers import events

CFG = SftDataConfig(cuts_per_user=1, min_prefix=3, horizon=3, novelty_cuts_per_user=1, novelty_horizon=3,
                    novelty_target=NoveltyTarget.USER, n_short=2, gap=0, new_user_cut=False, seed=0,
                    split_targets=False, sequence=0, items=0)


def _history():
    cats = ["a", "b", "a", "c", "b", "d", "e", "a"]  # one cut, at t = 5 (linspace(3, 7, 1) -> 3, jitter +-2)
    rows = [("u", str(i), c, i) for i, c in enumerate(cats)]
    rows += [("v", str(i), c, i) for i, c in enumerate(["x", "y"])]  # too short for a cut at min_prefix
    return events(rows)


def test_novelty_targets_are_new_after_the_cut():
    ex = build_sft_examples(_history(), {"u": GroupInfo((1, 2), "likes a"), "v": GroupInfo((0, 0), "p")}, CFG,
                            eos="</s>")
    assert len(ex.novelty) == 2  # u's cut, and v's short-history fallback cut at 1 (first_cut: half of 2 events)
    assert ex.novelty[1] == {"prompt": "group: <a_0> <b_0> profile: p user: <a_0> <b_0> recent: x ; novel:",
                              "completion": " y </s>"}  # no full code known: the user section shows the prefix
    prompt, completion = ex.novelty[0]["prompt"], ex.novelty[0]["completion"]
    assert prompt.startswith("group: <a_1> <b_2> profile: likes a user: <a_1> <b_2> recent:")
    assert prompt.endswith(NOVEL_MARK)
    recent = prompt.split("recent:")[1].split(";")[0].split()
    targets = completion.split()[:-1]
    assert completion.endswith(" </s>")
    # whichever cut was drawn: targets are absent before the cut, the recent set is the 2 events before it
    cats = ["a", "b", "a", "c", "b", "d", "e", "a"]
    t = next(t for t in range(3, 8) if cats[max(0, t - 2):t] and list(dict.fromkeys(cats[max(0, t - 2):t])) == recent
             and [c for c in dict.fromkeys(cats[t:t + 3]) if c not in cats[:t]] == targets)
    assert all(c not in cats[:t] for c in targets) and targets


def test_relevance_is_balanced_and_negatives_are_unseen():
    hist = _history()
    ex = build_sft_examples(hist, {"u": GroupInfo((1, 2), "p")}, CFG, eos="</s>")
    labels = [e["completion"].split()[0] for e in ex.relevance]
    assert labels.count("yes") >= 1 and labels.count("yes") >= labels.count("no")
    for e in ex.relevance:
        assert e["prompt"].split()[-2] == CANDIDATE_MARK  # the candidate is the prompt's last word
    negatives = [e["prompt"].split("candidate:")[1].strip() for e in ex.relevance
                 if e["completion"].startswith(" no")]
    positives = {e["prompt"].split("candidate:")[1].strip() for e in ex.relevance
                 if e["completion"].startswith(" yes")}
    assert not set(negatives) & positives


def test_without_group_and_determinism():
    hist = _history()
    groups = {"u": GroupInfo((1, 2), "p")}
    a = build_sft_examples(hist, groups, CFG, eos="</s>")
    b = build_sft_examples(hist, groups, CFG, eos="</s>")
    assert a == b
    no_group = build_sft_examples(hist, groups, SftDataConfig(**{**CFG.__dict__, "with_group": False}), eos="</s>")
    assert all(not e["prompt"].startswith("group:") for e in no_group.novelty + no_group.relevance)


def test_split_targets_gives_one_example_per_taken_up_category():
    groups = {"u": GroupInfo((1, 2), "p")}
    listed = build_sft_examples(_history(), groups, CFG, eos="</s>").novelty
    split = build_sft_examples(_history(), groups, SftDataConfig(**{**CFG.__dict__, "split_targets": True}),
                               eos="</s>").novelty
    targets = listed[0]["completion"].split()[:-1]
    assert [e["completion"] for e in split] == [f" {c} </s>" for c in targets]
    assert {e["prompt"] for e in split} == {listed[0]["prompt"]}


def test_recent_targets_are_outside_the_short_term_set_and_may_repeat_history():
    cfg = SftDataConfig(**{**CFG.__dict__, "novelty_target": "recent", "novelty_cuts_per_user": 5})
    cats = ["a", "b", "a", "c", "b", "d", "e", "a"]
    ex = build_sft_examples(_history(), {"u": GroupInfo((1, 2), "p")}, cfg, eos="</s>").novelty
    assert ex
    pairs = []
    for e in ex:
        recent = e["prompt"].split("recent:")[1].split(";")[0].split()
        targets = e["completion"].split()[:-1]
        t = next(t for t in range(3, 8) if list(dict.fromkeys(cats[t - 2:t])) == recent
                 and [c for c in dict.fromkeys(cats[t:t + 3]) if c not in recent] == targets)
        pairs.append((t, targets))
    assert any(c in cats[:t] for t, targets in pairs for c in targets)  # e.g. "a" again after "b d"


def test_novelty_settings_leave_relevance_examples_unchanged():
    groups = {"u": GroupInfo((1, 2), "p")}
    a = build_sft_examples(_history(), groups, CFG, eos="</s>")
    b = build_sft_examples(_history(), groups, SftDataConfig(**{**CFG.__dict__, "novelty_cuts_per_user": 4,
                                                               "novelty_horizon": 2}), eos="</s>")
    assert a.relevance == b.relevance and a.novelty != b.novelty


def test_novelty_target_is_validated():
    import pytest

    with pytest.raises(ValueError):
        SftDataConfig(novelty_target="bogus")
    with pytest.raises(ValueError):
        SftDataConfig(novelty_horizon=0)


def test_relevance_examples_are_written_when_read_and_equal_the_eager_list():
    import numpy as np

    from coea.llm.prompts import PromptContext, relevance_completion, relevance_prompt
    from coea.llm.sft_data import relevance_examples

    ctx = [PromptContext((i % 2,), f"p{i}", (f"s{i}",)) for i in range(4)]
    cuts = [(c, [f"t{i}", "a"], {f"s{i}"}) for i, c in enumerate(ctx)]
    ex = relevance_examples(cuts, 1, "</s>", np.random.default_rng(0))
    eager = [{"prompt": relevance_prompt(c, cand), "completion": relevance_completion(label, "</s>")}
             for c, cand, label in ex.specs]
    assert len(ex) == 16 and list(ex) == eager and ex == eager and ex[2:5] == eager[2:5] and ex[-1] == eager[-1]
    assert ex + [eager[0]] == [*eager, eager[0]] and [eager[0]] + ex == [eager[0], *eager]
    assert sum(e["completion"].startswith(" yes") for e in ex) == 8  # one "no" per "yes"
    assert [ex[i] for i in (7, 3)] == [eager[7], eager[3]]  # what a capped SFT (max_examples) reads


def test_novelty_sft_cuts_are_the_cuts_the_n_llm_examples_are_written_from():
    from dataclasses import replace

    from coea.llm.sft_data import novelty_examples, novelty_sft_cuts

    groups = {"u": GroupInfo((1, 2), "likes a"), "v": GroupInfo((0, 0), "p")}
    for cfg in (CFG, replace(CFG, new_user_cut=True, novelty_cuts_per_user=3, holdout_share=0.25)):
        cuts = novelty_sft_cuts(_history(), groups, cfg)
        assert cuts and novelty_examples(cuts, cfg, "</s>") == build_sft_examples(_history(), groups, cfg,
                                                                                  eos="</s>").novelty


def test_relevance_negatives_are_drawn_by_adoption_among_the_categories_a_user_neither_had_nor_took_up():
    """Audit, session 55: the test above has one grouped user, whose own positives are the whole adoption pool, so
    it never drew a "no": negatives from the user's seen categories, or drawn uniformly (the module doc: that
    teaches "rare means yes"), passed. Four cuts of hand-made (context, taken up, seen before) triples."""
    from collections import Counter

    import numpy as np

    from coea.llm.prompts import PromptContext
    from coea.llm.sft_data import relevance_examples

    ctx = PromptContext((0, 0), "p", ("a",))
    cuts = [(ctx, ["x"], {"a", "y"}), (ctx, ["y"], {"a"}), (ctx, ["z"], {"a", "x"}), (ctx, ["x"], {"b"})]
    cuts += [(ctx, ["x"], {"c"})] * 6  # adoption: x 8, y 1, z 1
    drawn: list[dict[str, float]] = []

    class Spy:  # a Generator's methods cannot be replaced: wrap it
        rng = np.random.default_rng(0)

        def choice(self, pool, size, replace, p):
            drawn.append(dict(zip(pool.tolist(), p.tolist(), strict=True)))
            return self.rng.choice(pool, size=size, replace=replace, p=p)

        def permutation(self, n):
            return self.rng.permutation(n)

    ex = relevance_examples(cuts, 1, "</s>", Spy())
    no = [(c, label) for (_, c, label) in ex.specs if not label]
    assert len(no) == len(cuts)  # one "no" per "yes"
    for (_, targets, seen), p in zip(cuts, drawn, strict=True):  # never had, never the cut's own take-up
        assert all(p[c] == 0.0 for c in seen | set(targets) if c in p), (targets, seen, p)
    assert drawn[1] == {"x": 8 / 9, "y": 0.0, "z": 1 / 9}  # y's cut: x and z by their adoption counts
    assert drawn[0] == {"x": 0.0, "y": 0.0, "z": 1.0}
    assert Counter(label for _, _, label in ex.specs) == {True: 10, False: 10}
