"""PCO rewards on hand-made R-LLM scores: serendipity, relevance, prior correction, a custom reward plugged in."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from coea.config import SplitConfig, config_to_dict, from_dict
from coea.llm.prompts import PromptContext
from coea.llm.sft_config import LlmConfig, resolve_llm
from coea.llm.sft_data import GroupInfo
from coea.pco import reward as reward_module
from coea.pco.config import PcoConfig, Reference, RewardKind
from coea.pco.pairs import build_pairs
from coea.pco.periods import Window
from coea.pco.reward import (
    REWARDS,
    RelevanceReward,
    Reward,
    RewardInputs,
    RewardSetup,
    SerendipityReward,
    TeacherReward,
    adoption_log_prior,
    make_reward,
    prior_corrected,
)

LLM = resolve_llm(LlmConfig(), SplitConfig())  # the SFT windows of the default split
P_YES = {"a": 0.9, "b": 0.2, "c": 0.6, "d": 0.3}


@pytest.fixture
def judged(monkeypatch):
    """Replace the R-LLM by the P_YES table; records the candidates it was asked to judge."""
    calls: list[list[list[str]]] = []

    def fake(relevance, contexts, cands, llm):
        calls.append([list(cs) for cs in cands])
        return [[P_YES[c] for c in cs] for cs in cands]

    monkeypatch.setattr(reward_module, "rllm_scores", fake)
    return calls


def _inputs(candidates, seen):
    ctx = [PromptContext((0,), "", ()) for _ in candidates]
    return RewardInputs(1, Window(0, 0, 10), [f"u{i}" for i in range(len(candidates))], ctx, seen, candidates,
                        pd.DataFrame(), None, LlmConfig())


def _setup(history=None, groups=None, categories=("a", "b", "c", "d")):
    return RewardSetup(pd.DataFrame() if history is None else history, groups or {}, list(categories), LLM)


def test_serendipity_gives_zero_to_seen_and_p_yes_to_new(judged):
    reward = make_reward(PcoConfig(reward="serendipity"), _setup())
    assert isinstance(reward, SerendipityReward) and not reward.exclude_seen_when_sampling
    scores = reward.score(_inputs([["a", "b", "c"], ["d", "a"]], [{"b"}, {"a"}]))
    assert scores == [[0.9, 0.0, 0.6], [0.3, 0.0]]
    assert judged == [[["a", "c"], ["d"]]]  # seen candidates are never judged


def test_relevance_samples_among_unseen_and_scores_p_yes(judged):
    reward = make_reward(PcoConfig(reward="relevance"), _setup())
    assert isinstance(reward, RelevanceReward) and reward.exclude_seen_when_sampling
    assert reward.score(_inputs([["c", "a"], ["b"]], [{"d"}, set()])) == [[0.6, 0.9], [0.2]]


def test_distill_reads_the_r_llm_as_its_log_odds_and_every_other_reward_as_it_scores(judged):
    """``update: distill`` fits ``ref * exp(r / beta)``: the R-LLM's P(yes) enters as log P(yes) - log P(no) (clipped
    at 1e-6, so a sure yes stays finite), the teacher's nats and a custom reward's scores unchanged."""
    reward = make_reward(PcoConfig(reward="relevance", update="distill", propose="top"), _setup())
    nats = reward.as_nats(reward.score(_inputs([["c", "a"], ["b"]], [{"d"}, set()])))
    np.testing.assert_allclose(nats[0], [math.log(0.6 / 0.4), math.log(0.9 / 0.1)])
    np.testing.assert_allclose(nats[1], [math.log(0.2 / 0.8)])
    assert reward.as_nats([[1.0, 0.0]])[0] == pytest.approx([math.log(1e6 - 1), -math.log(1e6 - 1)])
    assert TeacherReward(None, 2.0).as_nats([[-1.5, -0.25]]) == [[-1.5, -0.25]]
    assert FixedReward().as_nats([[1.0, 0.0]]) == [[1.0, 0.0]]
    for kind in ("feedback", "hybrid", "serendipity"):
        with pytest.raises(ValueError, match=f"update distill needs a reward on a log scale.*got '{kind}'"):
            PcoConfig(reward=kind, update="distill")


def test_prior_correction_equals_sigmoid_of_logit_plus_centered_log_q(judged):
    """q(a) = 4, q(b) = 1: log q - mean log q = +-log 2, so at P(yes) = 0.5 a scores 2/3 and b 1/3."""
    log_prior = {"a": math.log(2.0), "b": -math.log(2.0)}
    assert prior_corrected(0.5, log_prior["a"]) == pytest.approx(2 / 3)
    assert prior_corrected(0.5, log_prior["b"]) == pytest.approx(1 / 3)
    assert prior_corrected(0.3, 0.0) == pytest.approx(0.3)
    assert 0.0 < prior_corrected(0.0, -5.0) < prior_corrected(1.0, 5.0) < 1.0
    reward = SerendipityReward(log_prior)
    expected_a = 1 / (1 + math.exp(-(math.log(0.9 / 0.1) + math.log(2))))
    expected_b = 1 / (1 + math.exp(-(math.log(0.2 / 0.8) - math.log(2))))
    assert reward.score(_inputs([["a", "b", "c"]], [{"c"}])) == [[pytest.approx(expected_a),
                                                                   pytest.approx(expected_b), 0.0]]


def test_prior_from_adoptions_and_the_prior_correction_option():
    """A balanced yes/no judge whose negatives follow adoption popularity q learns odds = p(c|ctx) / q(c): the
    correction multiplies q back in, so of two candidates with the same P(yes) the more adopted one wins."""
    rng = np.random.default_rng(1)
    rows = []
    for u in range(40):  # "pop" is taken up by everyone after the first cut, "rare" by a few
        cats = ["a"] * 12 + ["pop"] * 3 + (["rare"] if u % 8 == 0 else []) + list(rng.choice(["a", "b"], 10))
        rows += [(f"u{u}", f"i{u}_{t}", c, t) for t, c in enumerate(cats)]
    history = pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])
    groups = {f"u{u}": GroupInfo((0,), "") for u in range(40)}
    categories = ["a", "b", "pop", "rare", "never"]
    prior = adoption_log_prior(history, groups, LLM, categories)
    assert prior["pop"] > prior["rare"] > prior["never"]
    assert np.mean(list(prior.values())) == pytest.approx(0.0)
    assert prior_corrected(0.6, prior["pop"]) > prior_corrected(0.6, prior["rare"])
    corrected = make_reward(PcoConfig(reward="serendipity", prior_correction=True),
                            _setup(history, groups, categories))
    assert corrected.log_prior == prior
    assert make_reward(PcoConfig(reward="serendipity"), _setup(history, groups, categories)).log_prior is None


class FixedReward(Reward):
    """A reward the loop does not know: a fixed score per category."""

    exclude_seen_when_sampling = True
    TABLE = {"a": 0.0, "b": 1.0, "c": 0.5, "d": 0.45}

    def score(self, inputs: RewardInputs) -> list[list[float]]:
        return [[self.TABLE[c] for c in cs] for cs in inputs.candidates]


def test_a_custom_reward_plugs_in_through_the_registry(monkeypatch):
    monkeypatch.setitem(REWARDS, RewardKind.RELEVANCE, FixedReward)
    reward = make_reward(PcoConfig(reward="relevance"), _setup())
    assert isinstance(reward, FixedReward)
    inputs = _inputs([["a", "b", "c", "d"], ["c", "d"]], [set(), set()])
    pairs, stats = build_pairs(["p0", "p1"], inputs.candidates, reward.score(inputs), margin=0.1, pairs_per_prompt=2)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("p0", "b", "a")]
    assert stats.dropped_margin == 2  # c vs d in both prompts: a gap of 0.05 is below the margin


def test_reward_and_reference_are_enums_that_round_trip_through_json():
    cfg = PcoConfig(reward="relevance", reference="sft")
    assert cfg.reward is RewardKind.RELEVANCE and cfg.reference is Reference.SFT
    d = config_to_dict(cfg)
    assert d["reward"] == "relevance" and d["reference"] == "sft"
    assert from_dict(PcoConfig, d, where="pco") == cfg
    with pytest.raises(ValueError, match="reward must be one of .*'bogus'"):
        PcoConfig(reward="bogus")
    with pytest.raises(ValueError, match="reference must be one of .*'base'"):
        PcoConfig(reference="base")


@pytest.mark.parametrize(("reward", "sample_unseen", "expected"), [
    ("serendipity", None, False), ("relevance", None, True), ("feedback", None, True),
    ("feedback", False, False), ("relevance", False, False), ("hybrid", None, False), ("hybrid", True, True)])
def test_sample_unseen_overrides_the_rewards_candidate_pool(monkeypatch, reward, sample_unseen, expected):
    """``pco.sample_unseen`` decides whether a round's candidates are drawn among unseen categories; unset, the
    reward's own rule holds (relevance and feedback: unseen only; serendipity and hybrid: the full distribution)."""
    from types import SimpleNamespace

    from coea.llm import decode
    from coea.pco import round as round_module
    from coea.pco.reward import REWARDS

    calls = []
    monkeypatch.setattr(decode, "sample_categories", lambda *a, exclude=None, **kw: calls.append(exclude) or [])
    cfg = PcoConfig(reward=reward, sample_unseen=sample_unseen)
    ctx = SimpleNamespace(cfg=cfg, reward=REWARDS[cfg.reward], index=None, llm=SimpleNamespace(batch_size=8))
    seen = [{"a"}, {"b"}]
    round_module.sample_candidates(ctx, SimpleNamespace(model=None, tokenizer=None), ["p", "q"], seen, 1)
    assert calls == [seen if expected else None]


def _teacher_encoder(categories):
    """A seeded, untrained DSIE encoder over ``categories`` ("z" is left out of its vocabulary: an UNK category)."""
    import torch

    from coea.dsie.config import EncoderConfig
    from coea.dsie.encoder import EncoderResult, SasRec
    from coea.dsie.vocab import CategoryVocab

    torch.manual_seed(0)
    cfg = EncoderConfig(dim=8, n_layers=1, n_heads=1, dropout=0.0, max_len=6)
    vocab = CategoryVocab.from_counts({c: 1 for c in categories if c != "z"}, 1)
    return EncoderResult(SasRec(vocab.size, cfg).eval(), vocab, cfg)


def test_teacher_scores_w_times_the_encoders_log_probability_after_the_history_before_the_window_end():
    """The teacher reward is ``w * log p_S(c)``: the DSIE encoder's next-category log-softmax after the user's
    events before the window's end (in order), read at each candidate; events at or after the end are ignored,
    a category outside the encoder's vocabulary scores the row's lowest value, and w scales every score."""
    from coea.dsie.encoder import encode
    from coea.pco.reward import TeacherReward

    cats = ["a", "b", "c", "d", "z"]
    enc = _teacher_encoder(cats)
    history = pd.DataFrame({"user_id": ["u0"] * 4 + ["u1"] * 3, "category": ["a", "b", "c", "a", "d", "d", "b"],
                            "timestamp": [1, 2, 3, 12, 4, 5, 6]})
    with pytest.raises(ValueError, match="needs the DSIE encoder"):
        make_reward(PcoConfig(reward="teacher"), _setup(history, categories=cats))
    setup = RewardSetup(history, {}, cats, LLM, encoder=enc)
    reward = make_reward(PcoConfig(reward="teacher", teacher_weight=0.5), setup)
    assert isinstance(reward, TeacherReward) and reward.exclude_seen_when_sampling and not reward.reads_feedback
    cands = [["d", "z", "b"], ["a", "c"]]
    inputs = replace(_inputs(cands, [{"a", "b", "c"}, {"d", "b"}]), users=["u0", "u1"], history=history,
                     window=Window(0, 0, 10))
    _, logits = encode(enc.model, [enc.vocab.ids(["a", "b", "c"]), enc.vocab.ids(["d", "d", "b"])], enc.config)
    logp = torch_log_softmax(logits)
    tok = enc.vocab.token
    expected = [[logp[0, tok("d")], logp[0, 2:].min(), logp[0, tok("b")]], [logp[1, tok("a")], logp[1, tok("c")]]]
    got = reward.score(inputs)
    np.testing.assert_allclose(got[0], 0.5 * np.array(expected[0]), rtol=1e-5)
    np.testing.assert_allclose(got[1], 0.5 * np.array(expected[1]), rtol=1e-5)
    later = history.assign(category=["a", "b", "c", "d", "d", "d", "b"])  # u0's event at t=12 lies after the end
    assert reward.score(replace(inputs, history=later)) == got
    earlier = history.assign(category=["c", "b", "c", "a", "d", "d", "b"])
    assert reward.score(replace(inputs, history=earlier))[0] != got[0]
    double = make_reward(PcoConfig(reward="teacher", teacher_weight=1.0), setup).score(inputs)
    np.testing.assert_allclose(double[0], 2 * np.array(got[0]), rtol=1e-6)


def test_teacher_with_an_encoder_pair_scores_w_times_the_log_of_the_parts_normalised_geometric_mean():
    """With the default view's encoder pair (``target: both``) the teacher reads the pair's ranking: ``w * log
    p_S``, p_S the normalised geometric mean of the two parts' next-category distributions, so within one user the
    score gap of two candidates is ``w / 2`` times the sum of the parts' log-probability gaps."""
    import torch

    from coea.dsie.config import EncoderConfig
    from coea.dsie.encoder import EncoderResult, SasRecPair, encode

    cats = ["a", "b", "c", "d"]
    part = _teacher_encoder(cats)
    torch.manual_seed(1)
    cfg = EncoderConfig(dim=8, n_layers=1, n_heads=1, dropout=0.0, max_len=6, target="both")
    pair = SasRecPair([part.model, type(part.model)(part.vocab.size, part.config).eval()]).eval()
    enc = EncoderResult(pair, part.vocab, cfg)
    history = pd.DataFrame({"user_id": ["u0"] * 3, "category": ["a", "b", "a"], "timestamp": [1, 2, 3]})
    reward = make_reward(PcoConfig(reward="teacher", teacher_weight=4.0),
                         RewardSetup(history, {}, cats, LLM, encoder=enc))
    inputs = replace(_inputs([["c", "d"]], [{"a", "b"}]), users=["u0"], history=history, window=Window(0, 0, 10))
    got = reward.score(inputs)[0]
    seq = [enc.vocab.ids(["a", "b", "a"])]
    parts = [torch_log_softmax(encode(p, seq, part.config)[1])[0] for p in pair.parts]
    tok = enc.vocab.token
    gap = sum(lp[tok("c")] - lp[tok("d")] for lp in parts)
    assert abs(parts[0][tok("c")] - parts[1][tok("c")]) > 1e-3  # the two parts disagree: the mean is not trivial
    np.testing.assert_allclose(got[0] - got[1], 4.0 / 2 * gap, rtol=1e-5)


def _teacher_with_expert(cats: list[str], history: pd.DataFrame, **expert):
    """Round inputs for users u0 and u1 (window end 10) over ``history``, the teacher's scores without a third expert,
    and the teacher reward with ``expert`` (``teacher_cooc_weight`` or ``teacher_ease_weight``), teacher weight 0.5."""
    setup = RewardSetup(history, {}, cats, LLM, encoder=_teacher_encoder(cats))
    inputs = replace(_inputs([["d", "z"], ["a", "c"]], [{"a", "b", "c"}, {"d", "b"}]), users=["u0", "u1"],
                     history=history, window=Window(0, 0, 10))
    alone = make_reward(PcoConfig(reward="teacher", teacher_weight=0.5), setup).score(inputs)
    return inputs, alone, make_reward(PcoConfig(reward="teacher", teacher_weight=0.5, **expert), setup)


def test_teacher_cooc_weight_adds_the_cooccurrence_shares_of_the_history_before_the_window_end():
    """``pco.teacher_cooc_weight`` v: the teacher adds ``v * log s_u(c)``, s_u the ``cooc`` baseline's scores of the
    user as shares, fitted on the events before the window's end only (an event at or after it changes nothing, one
    before it does); v 0 is the encoder alone, and v without the teacher reward is refused."""
    from coea.data.cooccurrence import cooc_log_shares
    from coea.data.split import Histories
    from coea.evaluation.baselines import Cooccurrence

    cats = ["a", "b", "c", "d", "z"]
    history = pd.DataFrame({"user_id": ["u0"] * 4 + ["u1"] * 3 + ["u2"] * 2,
                            "category": ["a", "b", "c", "a", "d", "d", "b", "a", "d"],
                            "timestamp": [1, 2, 3, 12, 4, 5, 6, 7, 8]})
    inputs, alone, reward = _teacher_with_expert(cats, history, teacher_cooc_weight=2.0)
    got = reward.score(inputs)
    before = history[history["timestamp"] < 10]
    cooc = Cooccurrence().fit(Histories(before, {}, cats))
    logs = cooc_log_shares(cooc.score(["u0", "u1"]))
    for i, cs in enumerate(inputs.candidates):
        extra = [logs[i, cooc.index[c]] for c in cs]
        np.testing.assert_allclose(np.array(got[i]) - np.array(alone[i]), 2.0 * np.array(extra), rtol=1e-9)
    moved = history.assign(category=["a", "b", "c", "d", "d", "d", "b", "a", "d"])  # u0's t=12 event: after the end
    assert reward.score(replace(inputs, history=moved)) == got
    u2 = history.assign(category=["a", "b", "c", "a", "d", "d", "b", "b", "d"])  # u2's t=7 event: before the end
    assert reward.score(replace(inputs, history=u2)) != got
    with pytest.raises(ValueError, match="teacher_cooc_weight needs reward teacher"):
        PcoConfig(reward="feedback", teacher_cooc_weight=1.0)
    with pytest.raises(ValueError, match="teacher_cooc_weight must be >= 0"):
        PcoConfig(reward="teacher", teacher_cooc_weight=-1.0)


def torch_log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax (the encoder's PAD and UNK logits are -inf and stay so)."""
    import torch

    return torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()


def test_teacher_ease_weight_adds_the_ease_shares_of_every_users_history_before_the_window_end():
    """``pco.teacher_ease_weight`` v: the teacher adds ``v * log e_u(c)``, e_u the ``ease_novel`` baseline's scores as
    shares, fitted on every user's events before the window's end only (an event at or after it changes nothing, one
    of another user before it does); v without the teacher reward is refused."""
    from coea.data.ease import ease_log_shares, fit_ease

    cats = ["a", "b", "c", "d", "z"]
    history = pd.DataFrame({"user_id": ["u0"] * 4 + ["u1"] * 3 + ["u2"] * 2,
                            "item_id": ["a1", "b1", "c1", "a2", "d1", "d2", "b1", "a1", "d1"],
                            "category": ["a", "b", "c", "a", "d", "d", "b", "a", "d"],
                            "timestamp": [1, 2, 3, 12, 4, 5, 6, 7, 8]})
    inputs, alone, reward = _teacher_with_expert(cats, history, teacher_ease_weight=3.0)
    got = reward.score(inputs)
    logs = ease_log_shares(fit_ease(history[history["timestamp"] < 10], cats).scores(["u0", "u1"]))
    for i, cs in enumerate(inputs.candidates):
        extra = [logs[i, cats.index(c)] for c in cs]
        np.testing.assert_allclose(np.array(got[i]) - np.array(alone[i]), 3.0 * np.array(extra), rtol=1e-9)
    assert not np.allclose(np.array(got[0]) - np.array(alone[0]), 3.0 * np.log(1 / len(cats)))  # not uniform shares
    after = history.assign(item_id=["a1", "b1", "c1", "d2", "d1", "d2", "b1", "a1", "d1"])  # u0's t=12 event
    assert reward.score(replace(inputs, history=after)) == got
    other = history.assign(item_id=["a1", "b1", "c1", "a2", "d1", "d2", "b1", "c1", "d1"],  # u2's t=7 event
                           category=["a", "b", "c", "a", "d", "d", "b", "c", "d"])
    assert reward.score(replace(inputs, history=other)) != got
    with pytest.raises(ValueError, match="teacher_ease_weight needs reward teacher"):
        PcoConfig(reward="feedback", teacher_ease_weight=1.0)
    with pytest.raises(ValueError, match="teacher_ease_weight must be >= 0"):
        PcoConfig(reward="teacher", teacher_ease_weight=-1.0)
