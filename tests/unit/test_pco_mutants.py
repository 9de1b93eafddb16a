"""Pins of PCO behaviours a mutation audit found unguarded: each test fails when its rule is broken (the continual
protocol's start share, history negatives only for users with feedback, the strict pair margin, the state written
after the round's checkpoint, the feedback horizon, the user subsample, the seen mask of the re-evaluation, the
on-policy refresh's own RNG) and the evaluation's history exclusions (``+x``, ``*_novel``, the dual methods' mask).
Tiny hand-made inputs, stubbed models: no training."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from coea.llm.prompts import PromptContext
from coea.llm.sft_config import LlmConfig
from coea.llm.sft_data import GroupInfo
from coea.pco import round as round_module
from coea.pco.config import PcoConfig
from coea.pco.pairs import build_pairs
from coea.pco.periods import REPLAY_SPAN, RoundUsers, Window, round_users
from coea.pco.reward import RewardInputs, RewardSetup, make_reward
from tests.helpers import events
from tests.unit.test_feedback import _history, history  # noqa: F401  (history: a fixture)

CATS = ["Comedy", "Drama", "Thriller"]


def _bundle():
    """A tiny scratch model bundle over CATS (as test_pco_state builds one)."""
    from coea.llm.config import ModelConfig
    from coea.llm.models import build_model_and_tokenizer

    return build_model_and_tokenizer(ModelConfig(hidden_size=32, intermediate_size=48), CATS, ["p"], [2, 2])


# mutation 1: pco/loop.py passes start_share = 1 - llm.data.holdout_share to round_windows

def test_the_loop_with_a_holdout_share_replays_only_the_held_out_quarter_of_each_users_clock():
    """``llm.data.holdout_share: 0.25`` with ``periods: user``: the loop's windows start at 3/4 of the replay clock
    (what SFT never saw). 3 rounds with the feedback reward cut [750000, 1000000) into 4 equal periods, the last
    one being the last round's feedback period."""
    from coea.llm.sft_config import SftDataConfig
    from coea.pco.loop import PcoLoop

    rows = [(u, "i", CATS[t % 3], 100 + t) for u in ("u0", "u1") for t in range(8)]
    llm = replace(LlmConfig(), data=SftDataConfig(holdout_share=0.25))
    cfg = PcoConfig(periods="user", rounds=3)
    assert cfg.uses_feedback
    loop = PcoLoop(cfg, llm, _history(rows), CATS, {}, _bundle(), _bundle(), device="cpu")
    assert [(w.start, w.end, w.feedback_end) for w in loop.windows] == [
        (750_000, 812_500, 875_000), (812_500, 875_000, 937_500), (875_000, 937_500, REPLAY_SPAN)]
    plain = PcoLoop(cfg, LlmConfig(), _history(rows), CATS, {}, _bundle(), _bundle(), device="cpu")
    assert plain.windows[0].start == 0  # without a holdout the windows cover the whole clock


# mutation 2: pco/reward.py FeedbackReward._later_takeups reads only users with feedback

def test_history_negatives_give_a_user_without_feedback_no_later_take_up_score_and_no_pair():
    """``pco.negatives: history``: u1 has no event in the feedback period [10, 20) (feedback None) but takes up x at
    25. A user without feedback scores all 0 (no pair), even for a later take-up; u2, with an event in the
    feedback period and no take-up there (feedback ()), scores its later take-up x at 1 - margin / 2."""
    hist = _history([("u1", "i", "a", 2), ("u1", "i", "x", 25),
                     ("u2", "i", "a", 3), ("u2", "i", "a", 12), ("u2", "i", "x", 26)])
    cfg = PcoConfig(reward="feedback", negatives="history", margin=0.1)
    reward = make_reward(cfg, RewardSetup(hist, {}, ["a", "b", "x"], LlmConfig()))
    ctx = [PromptContext((0,), "", ("a",))] * 2
    inputs = RewardInputs(1, Window(0, 0, 10, 20), ["u1", "u2"], ctx, [{"a"}, {"a"}], [["x", "b"], ["x", "b"]],
                          hist, None, LlmConfig(), [None, ()])
    scores = reward.score(inputs)
    assert scores == [[0.0, 0.0], [pytest.approx(0.95), 0.0]]
    pairs, stats = build_pairs(["p1", "p2"], inputs.candidates, scores, margin=0.1, pairs_per_prompt=1)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("p2", "x", "b")]
    alone, _ = build_pairs(["p1"], inputs.candidates[:1], scores[:1], margin=0.1, pairs_per_prompt=1)
    assert alone == []


# mutation 3: pco/pairs.py keeps a pair only when chosen > rejected + margin (strictly)

def test_a_tie_or_a_gap_exactly_at_the_margin_forms_no_pair():
    """Equal scores at margin 0 are no preference; a gap of exactly the margin (0.75 - 0.25 = 0.5, exact in
    binary) is dropped too; a gap above it is kept."""
    tie, stats = build_pairs(["p"], [["a", "b"]], [[0.5, 0.5]], margin=0.0, pairs_per_prompt=1)
    assert tie == [] and (stats.pairs, stats.dropped_margin) == (0, 1)
    at, stats = build_pairs(["p"], [["a", "b"]], [[0.75, 0.25]], margin=0.5, pairs_per_prompt=1)
    assert at == [] and stats.dropped_margin == 1
    above, _ = build_pairs(["p"], [["a", "b"]], [[0.75, 0.25]], margin=0.25, pairs_per_prompt=1)
    assert [(p.chosen, p.rejected) for p in above] == [("a", "b")]


# mutation 4: pco/checkpoint.py save_round marks a round complete only after its checkpoint is written

def test_a_round_whose_checkpoint_fails_is_not_marked_complete_and_the_previous_round_resumes(tmp_path, monkeypatch):
    """Saving round 2 fails inside save_bundle: the state still says 1 round complete (with round 1's rows), no
    round_002 folder is left, and a resume loads round 1's models."""
    from coea.pco import checkpoint
    from coea.pco.checkpoint import completed_rounds, read_state, round_dir, save_round
    from coea.pco.loop import PcoLoop

    cfg, bundle = PcoConfig(), _bundle()
    rows = [{"round": 0}, {"round": 1, "x": 1.0}]
    save_round(tmp_path, 1, bundle, bundle, rows, cfg)
    saved = {k: v.clone() for k, v in bundle.model.state_dict().items()}  # round 1's weights
    with torch.no_grad():  # round 2 trained on: other weights, whose save then fails
        for param in bundle.model.parameters():
            param.add_(1.0)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_bundle", broken)
    with pytest.raises(OSError, match="disk full"):
        save_round(tmp_path, 2, bundle, bundle, [*rows, {"round": 2}], cfg)
    assert completed_rounds(tmp_path) == 1 and read_state(tmp_path, cfg).rounds == rows
    assert not round_dir(tmp_path, 2).exists()
    loop = SimpleNamespace(out_dir=tmp_path, cfg=cfg, evaluate=None, novelty=None, relevance=None, windows=[1, 2],
                           device="cpu")
    assert PcoLoop._start(loop, resume=True) == (1, rows)
    assert loop.novelty is not None and loop.novelty.tokenizer.get_vocab() == bundle.tokenizer.get_vocab()
    for model in (loop.novelty.model, loop.relevance.model):  # round 1's weights, not round 2's unsaved ones
        state = model.state_dict()
        assert state.keys() == saved.keys() and all(torch.equal(state[k], v) for k, v in saved.items())


# mutation 7: pco/round.py reward_inputs passes cfg.feedback_horizon to feedback_takeups

def test_a_rounds_feedback_reads_only_the_first_feedback_horizon_events(history):  # noqa: F811
    """``feedback_horizon: 1``: u0's feedback-period events are c, a, d (a seen): only c, the first, is a take-up;
    without a horizon both c and d are."""
    ru = RoundUsers(["u0"], [PromptContext((0,), "", ("b",))], [{"a", "b"}])
    window = Window(0, 0, 10, 20)

    def feedback(cfg):
        ctx = SimpleNamespace(cfg=cfg, history=history, reward=SimpleNamespace(reads_feedback=False), exposure=None,
                              llm=LlmConfig())
        inputs, _, _ = round_module.reward_inputs(ctx, 1, window, ru, [["c"]], None)
        return inputs.feedback

    assert feedback(PcoConfig(feedback_horizon=1)) == [("c",)]
    assert feedback(PcoConfig()) == [("c", "d")]


# mutation 8: pco/periods.py round_users subsamples to users_per_round

def test_round_users_keeps_a_seeded_sorted_subsample_of_limit_users():
    """Four grouped users active in the window, limit 2: two of them, sorted, the same for the same seed (the
    draw of ``rng.choice`` over the sorted users); no limit (or a larger one) keeps all four."""
    hist = _history([(u, "i", "a", t) for t, u in enumerate(["u3", "u1", "u0", "u2"])])
    groups = {u: GroupInfo((0,), "") for u in ("u0", "u1", "u2", "u3")}
    window = Window(0, 0, 10)
    got = round_users(hist, groups, window, 2, 2, np.random.default_rng(5))
    expected = sorted(np.random.default_rng(5).choice(["u0", "u1", "u2", "u3"], size=2, replace=False).tolist())
    assert got.users == expected and len(got.users) == 2 and got.users == sorted(got.users)
    assert round_users(hist, groups, window, 2, 2, np.random.default_rng(5)).users == got.users
    assert len(got.contexts) == len(got.seen) == 2
    for limit in (None, 4, 10):
        assert round_users(hist, groups, window, 2, limit, np.random.default_rng(5)).users == ["u0", "u1", "u2", "u3"]


# mutation 11: pco/round.py top_k_acceptance ranks only the categories each user has not seen

def test_the_acceptance_metrics_judge_only_categories_the_user_has_not_seen(monkeypatch):
    """A stub ranker (fixed order a, b, c, d, honouring ``exclude``) and a stub judge: the R-LLM is asked only
    about unseen categories (u0 saw a, b; u1 saw c), k = 2 of them per user, and the metrics are theirs."""
    from coea.llm import decode

    def ranker(model, tokenizer, prompts, index, k, exclude=None, batch_size=64):
        return [[(c, 0.0) for c in "abcd" if not exclude or c not in exclude[i]][:k] for i in range(len(prompts))]

    asked = []
    table = {"a": 0.9, "b": 0.9, "c": 0.6, "d": 0.2}

    def judge(relevance, contexts, cands, llm):
        asked.append([list(cs) for cs in cands])
        return [[table[c] for c in cs] for cs in cands]

    monkeypatch.setattr(decode, "rank_categories", ranker)
    monkeypatch.setattr(round_module, "rllm_scores", judge)
    ctx = SimpleNamespace(cfg=PcoConfig(k=2, accept_threshold=0.5), index=None, llm=SimpleNamespace(batch_size=8))
    bundle = SimpleNamespace(model=None, tokenizer=None)
    mean, accepted = round_module.top_k_acceptance(ctx, bundle, bundle, ["p0", "p1"], [None, None],
                                                   [{"a", "b"}, {"c"}])
    assert asked == [[["c", "d"], ["a", "b"]]]
    assert mean == pytest.approx((0.6 + 0.2 + 0.9 + 0.9) / 4) and accepted == pytest.approx(3 / 4)


# mutation 23: pco/round.py the on-policy refresh draws from its own RNG ([seed, r, 1])

def test_the_on_policy_refresh_examples_do_not_depend_on_the_period_refresh_drawing_first(monkeypatch):
    """With ``refresh: both`` the period refresh draws from the round RNG before the on-policy examples are made;
    those examples (and their order) are the same as with ``refresh: on_policy``, where nothing draws first: the
    on-policy part has its own RNG. (The period refresh is a stub that only draws and returns no examples.)"""
    from coea.llm import sft

    trained = []
    monkeypatch.setattr(sft, "train_sft", lambda cfg, model, tok, ex, **kw: trained.append(list(ex)))
    monkeypatch.setattr(round_module, "refresh_examples", lambda *args, **kw: args[5].random(7)[:0].tolist())
    ctxs = [PromptContext((0,), "", (f"s{i}",)) for i in range(3)]
    cands = [list("abcdefgh"), list("bcdefgha"), list("cdefghab")]
    proposals = RewardInputs(1, Window(0, 0, 10, 20), ["u0", "u1", "u2"], ctxs, [set(), set(), set()], cands,
                             None, None, LlmConfig(), [("a",), ("b", "c"), ("h",)])
    relevance = SimpleNamespace(model=None, tokenizer=SimpleNamespace(eos_token="</s>"))
    for kind in ("on_policy", "both"):
        cfg = PcoConfig(refresh=kind, seed=3)
        ctx = SimpleNamespace(cfg=cfg, llm=LlmConfig(), history=None, groups=None, device="cpu")
        rng = np.random.default_rng([cfg.seed, 1])
        n, on_policy = round_module.refresh_relevance(ctx, relevance, Window(0, 0, 10, 20), rng, cfg.relevance_refresh,
                                                      proposals)
        assert n == on_policy == 8  # 4 take-ups, one "no" each
    assert len(trained) == 2 and trained[0] == trained[1]


# (a) evaluation/llm_methods.py: dual_best_of_n / coea_dual never propose, verify or return a banned category

@pytest.mark.parametrize("propose", ["top", "sample"])
@pytest.mark.parametrize("name", ["dual_best_of_n", "coea_dual"])
def test_dual_methods_never_verify_or_return_an_excluded_category(monkeypatch, name, propose):
    """The N-LLM (stub log-probs) likes the banned ``a`` most; with ``a`` excluded (the ``+x`` view) it is never
    proposed nor verified, scores -inf and is never recommended; the verified candidates rank first."""
    from coea.evaluation.registry import METHODS
    from coea.llm import decode

    cats = ["a", "b", "c", "d"]
    method = METHODS[name].factory(SimpleNamespace(seed=0))
    method.ctx = SimpleNamespace(llm=replace(LlmConfig(), best_of_n=2, propose=propose, verify_weight=None))
    method.categories, method.index = cats, {c: i for i, c in enumerate(cats)}
    method.user_history, method.n_index = {}, None
    bundle = SimpleNamespace(model=None, tokenizer=None)
    method.llms = SimpleNamespace(novelty=bundle, relevance=bundle)
    method.contexts = lambda users: [PromptContext((0,), "", ("s",)) for _ in users]
    method.novelty_logprobs = lambda users: np.log(np.tile([0.4, 0.3, 0.2, 0.1], (len(users), 1)))
    verified = []

    def judge(model, tokenizer, prompts, batch_size=64):
        verified.extend(prompts)
        return np.full(len(prompts), 0.5)

    def sampler(model, tokenizer, prompts, index, n, temperature, seed=0, exclude=None, batch_size=64):
        return [[c for c in ("a", "b", "c") if not exclude or c not in exclude[i]][:n] for i in range(len(prompts))]

    monkeypatch.setattr(decode, "relevance_scores", judge)
    monkeypatch.setattr(decode, "sample_categories", sampler)
    scores = method.masked_scores(["u"], {"u": {"a"}})
    assert scores[0, 0] == -np.inf and np.isfinite(scores[0, 1:]).all()
    from coea.llm.prompts import relevance_prompt

    ctx = method.contexts(["u"])[0]
    assert sorted(verified) == sorted(relevance_prompt(ctx, c) for c in ("b", "c"))
    assert method.recommend(["u"], 4, exclude={"u": {"a"}}) == {"u": ["b", "c", "d"]}


# (b) evaluation/evaluate.py recommend_all: the +x view excludes each user's history categories

def _split():
    """test_baselines' histories as a split: u: a a b ; v: a c ; w: b c c ; each with one future event z."""
    from coea.config import SplitConfig
    from coea.data.split import chronological_split

    rows = [(user, f"{user}{t}", c, t) for user, cats in {"u": "aab", "v": "ac", "w": "bcc"}.items()
            for t, c in enumerate(cats + "z")]
    return chronological_split(events(rows), SplitConfig(n_future=1, n_short=2, min_history=1))


def test_recommend_all_with_plus_x_never_recommends_a_history_category():
    """Popularity counts a = 3, b = 2, c = 3, z = 0: ``pop`` gives u (history a, b) a, c, b; ``pop+x`` gives c, z,
    never a history category of any user."""
    from coea.config import EvalConfig
    from coea.evaluation.evaluate import recommend_all
    from coea.evaluation.registry import MethodContext

    split = _split()
    recs = recommend_all(split, EvalConfig(methods=["pop", "pop+x"], ks=[3]), MethodContext())
    assert recs["pop"]["warm"]["u"] == ["a", "c", "b"]
    assert recs["pop+x"]["warm"] == {"u": ["c", "z"], "v": ["b", "z"], "w": ["a", "z"]}
    seen = split.histories.user_categories()
    for part in ("warm", "cold"):
        for user, cats in recs["pop+x"][part].items():
            assert not set(cats) & seen.get(user, set())


# (c) evaluation/registry.py: cooc_novel (and pop_novel) exclude each user's history by themselves

@pytest.mark.parametrize("name", ["cooc_novel", "pop_novel"])
def test_novel_methods_from_the_registry_never_recommend_a_history_category(name):
    """Without any ``exclude``, the registry's ``*_novel`` methods drop each user's history categories: u (a, b)
    gets only c and z, v (a, c) only b and z, w (b, c) only a and z."""
    from coea.evaluation.registry import MethodContext, build_method, parse_method

    split = _split()
    method = build_method(parse_method(name), MethodContext()).fit(split.histories)
    recs = method.recommend(["u", "v", "w"], 4)
    assert {u: set(cats) for u, cats in recs.items()} == {"u": {"c", "z"}, "v": {"b", "z"}, "w": {"a", "z"}}


@pytest.mark.parametrize("reward", ["feedback", "relevance"])
def test_a_loop_without_group_sections_never_prompts_with_one(reward, monkeypatch):
    """Audit, session 55: ``llm.data.with_group: false`` (the short preset, ``coea w/o CSID``) was only ever checked
    in the configs: a round that built its N-LLM prompts, or the R-LLM's scoring prompts, with the default sections
    passed every test (the scratch tokenizer holds the group tokens, so nothing fails). One round of the loop on
    tiny untrained models: every N-LLM and R-LLM prompt written (sampling, scoring, the update, both refreshes)
    carries no ``group:`` or ``profile:`` section; with the sections on, they are there."""
    from coea.llm import prompts
    from coea.llm import sft_data as sft_data_module
    from coea.llm.sft_config import SftDataConfig
    from coea.pco import feedback as feedback_module
    from coea.pco import reward as reward_module
    from coea.pco.loop import PcoLoop

    written: list[str] = []
    for module in (round_module, reward_module, feedback_module, sft_data_module):
        for name in ("novelty_prompt", "relevance_prompt"):
            if hasattr(module, name):
                real = getattr(prompts, name)
                monkeypatch.setattr(module, name, lambda *a, _f=real, **kw: written.append(_f(*a, **kw)) or written[-1])
    users = [f"u{k}" for k in range(6)]
    rows = [(u, f"{u}{t}", CATS[(t * (k + 1)) % 3], 100 + t) for k, u in enumerate(users) for t in range(12)]
    groups = {u: GroupInfo((1, 1), "likes comedy") for u in users}
    cfg = PcoConfig(periods="user", rounds=1, reward=reward, candidates=2, users_per_round=None)
    cfg.dpo = replace(cfg.dpo, epochs=1.0)
    for with_group in (False, True):
        written.clear()
        llm = replace(LlmConfig(), data=SftDataConfig(with_group=with_group, min_prefix=2, horizon=4,
                                                      novelty_horizon=2, n_short=2, gap=0))
        PcoLoop(cfg, llm, _history(rows), CATS, groups, _bundle(), _bundle(), device="cpu").run()
        assert written and all(("group:" in p and "profile:" in p) == with_group for p in written), written[:3]
        assert any("candidate:" in p for p in written) and any(p.endswith("novel:") for p in written)
