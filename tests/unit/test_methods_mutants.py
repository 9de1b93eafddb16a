"""Method mutants (audit): rules of the baselines, the DSIE methods, the LLM methods and the registry that a plausible
bug broke without failing any fast test. Hand-made histories, and LLM methods whose models are replaced by fixed
log-probabilities (no model is read): a ``_novel`` method drops the history whatever else is excluded, the back-offs
rank by the history's popularity, group popularity counts events and a user outside the groups gets the global counts,
sasrec's ties go by popularity, sasrec_ease multiplies the encoder's distribution by EASE's shares, the cold-start
log-distribution is smoothed, dual_best_of_n proposes (top or sampled) no banned category and ranks its candidates
first, the encoder and co-occurrence experts carry their own weights, coea's bonus reads the whole history, and every
registry name builds its own method, declares the artifacts it reads and reads its own models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from coea.config import SplitConfig
from coea.data.cooccurrence import cooc_log_shares
from coea.data.split import Histories, chronological_split
from coea.evaluation.baselines import Cooccurrence, Ease, Markov, Popularity, RandomMethod
from coea.evaluation.registry import METHODS, MethodArtifacts, MethodContext, Need, build_method, parse_method
from coea.llm.sft_config import LlmConfig
from coea.utils import log_softmax_rows
from tests.helpers import events


def _histories(logs: dict[str, str], future: str = "z", n_short: int = 2) -> Histories:
    """Each user's history ``logs[user]`` (one category per character, in time order) and one future event."""
    rows = [(user, f"{user}{t}", c, t) for user, cats in logs.items() for t, c in enumerate(cats + future)]
    return chronological_split(events(rows), SplitConfig(n_future=1, n_short=n_short, min_history=1)).histories


# u: a a b ; v: a c ; w: b c c (history counts a 3, b 2, c 3; z only in the future)
BASE = {"u": "aab", "v": "ac", "w": "bcc"}


def test_a_novel_method_drops_the_history_whatever_else_is_excluded():
    """``*_novel``: H_u is banned on top of the caller's exclusions, not only when the caller passes none (a
    ``pop_novel`` given ``{"u": {"z"}}`` must not return u's a and b)."""
    pop = Popularity(exclude_history=True).fit(_histories(BASE))
    assert pop.recommend(["u"], 4, exclude={"u": {"z"}}) == {"u": ["c"]}
    assert pop.recommend(["u"], 4, exclude={"v": {"c"}}) == {"u": ["c", "z"]}


def test_markov_ranks_a_user_without_short_term_set_by_popularity():
    """Markov's back-off: a user with no short-term set (unknown to the histories) ranks by the history's
    popularity (a 3, c 3, b 2, z 0; ties by name), not by name."""
    m = Markov().fit(_histories(BASE))
    assert m.recommend(["new"], 4) == {"new": ["a", "c", "b", "z"]}


def test_registry_names_build_their_own_method_and_view():
    """Every registry name builds its own class (exactly), ``*_novel`` ones excluding history, the plain ones not;
    the LLM methods read the models of the artifact they declare (coea*: the PCO models, the others: SFT), and
    each name declares what it reads (a method whose artifact is not declared is not loaded for it)."""
    from coea.evaluation import dsie_methods, llm_methods

    ctx = MethodContext(seed=7)
    expected = {"random": (RandomMethod, False), "pop": (Popularity, False), "pop_novel": (Popularity, True),
                "markov": (Markov, False), "cooc_novel": (Cooccurrence, True), "ease_novel": (Ease, True),
                "sasrec": (dsie_methods.SasRecMethod, False), "sasrec_ease": (dsie_methods.SasRecEase, False),
                "group_pop_novel": (dsie_methods.GroupPopularity, True),
                "nllm_sft": (llm_methods.NoveltySft, False), "dual_best_of_n": (llm_methods.DualBestOfN, False),
                "rllm_rank": (llm_methods.RelevanceRank, False), "coea": (llm_methods.Coea, False),
                "coea_dual": (llm_methods.CoeaDual, False), "nllm_seq": (llm_methods.NoveltyWithEncoder, False),
                "coea_seq": (llm_methods.CoeaWithEncoder, False)}
    assert set(expected) == set(METHODS)
    for name, (cls, novel) in expected.items():
        for view in (name, name + "+x"):
            method = build_method(parse_method(view), ctx)
            assert type(method) is cls and method.exclude_history is novel, view
    assert build_method(parse_method("random"), ctx).seed == 7
    for name in ("nllm_sft", "dual_best_of_n", "rllm_rank", "nllm_seq", "coea", "coea_dual", "coea_seq"):
        models_from = build_method(parse_method(name), ctx).models_from
        assert models_from is (Need.PCO if name.startswith("coea") else Need.LLMS), name
        assert models_from in parse_method(name).needs
    dsie, llms, pco = Need.DSIE, Need.LLMS, Need.PCO
    needs = {"sasrec": {dsie}, "sasrec_ease": {dsie}, "group_pop_novel": {dsie}, "nllm_sft": {dsie, llms},
             "dual_best_of_n": {dsie, llms}, "rllm_rank": {dsie, llms}, "nllm_seq": {dsie, llms}, "coea": {dsie, pco},
             "coea_dual": {dsie, pco}, "coea_seq": {dsie, pco}}
    assert {name: set(parse_method(name + "+x").needs) for name in METHODS} == {m: needs.get(m, set()) for m in METHODS}


def _group_pop(novel: bool = False):
    """GroupPopularity on G = {u: a a a b, v: b c} and H = {w: d d d c}; every future event is c."""
    from coea.evaluation.dsie_methods import GroupPopularity

    dsie = SimpleNamespace(user_group=lambda: {"u": "G", "v": "G", "w": "H"})
    ctx = MethodContext(artifacts=MethodArtifacts(dsie=dsie))
    return GroupPopularity(ctx, exclude_history=novel).fit(_histories({"u": "aaab", "v": "bc", "w": "dddc"}, "c"))


def test_group_popularity_counts_the_groups_events_and_backs_off_to_global_popularity():
    """group_pop: score(c) = the events in c by the user's group (G: a 3, b 2, c 1; by users b 2 would lead); a
    user outside every group ranks by the global history counts (a 3, d 3, b 2, c 2), not by some group's."""
    gp = _group_pop()
    assert gp.recommend(["u", "w"], 4) == {"u": ["a", "b", "c", "d"], "w": ["d", "c", "a", "b"]}
    assert gp.recommend(["new"], 4) == {"new": ["a", "d", "b", "c"]}
    assert _group_pop(novel=True).recommend(["v"], 4) == {"v": ["a", "d"]}


CATS = ["a", "b", "c", "d"]


def _llm(cls, monkeypatch: pytest.MonkeyPatch, logp: dict[str, list[float]], llm: LlmConfig = LlmConfig()):
    """A fitted-looking LLM method ``cls`` over :data:`CATS` whose N-LLM log-probabilities are ``logp[user]``; u's
    history holds a and b, its short-term set b alone."""
    method = cls(MethodContext(seed=0, llm=llm))
    method.categories, method.index = CATS, {c: i for i, c in enumerate(CATS)}
    method.user_history, method.short_term, method.sequences = {"u": {"a", "b"}}, {"u": ["b"]}, {"u": ["a", "b"]}
    method.popularity = np.array([3.0, 2.0, 1.0, 0.0])
    monkeypatch.setattr(method, "novelty_logprobs", lambda users: np.log(np.array([logp[u] for u in users])))
    monkeypatch.setattr(method, "contexts", lambda users: list(users))
    return method


def test_the_cold_start_distribution_is_smoothed_so_every_category_stays_rankable(monkeypatch: pytest.MonkeyPatch):
    """``llm.cold_start: popularity``: a user without history gets log((pop + 1) / Σ(pop + 1)); a category the
    history never had (d) keeps a finite score, so such a user still gets K categories; others keep the N-LLM's."""
    import coea.llm.decode as decode
    from coea.evaluation import llm_methods

    method = llm_methods.NoveltySft(MethodContext(seed=0, llm=LlmConfig()))
    method.categories, method.index = CATS, {c: i for i, c in enumerate(CATS)}
    method.sequences, method.popularity = {"u": ["a"]}, np.array([3.0, 2.0, 1.0, 0.0])
    method.llms, method.n_index = SimpleNamespace(novelty=SimpleNamespace(model=None, tokenizer=None)), None
    monkeypatch.setattr(method, "contexts", lambda users: list(users))
    monkeypatch.setattr(llm_methods, "novelty_prompt", lambda c, with_group: c)
    llm_row = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    monkeypatch.setattr(decode, "category_logprobs", lambda m, t, prompts, i, **kw: np.tile(llm_row, (len(prompts), 1)))
    out = method.score(["u", "new"])
    assert out[0] == pytest.approx(llm_row)
    assert out[1] == pytest.approx(np.log(np.array([4.0, 3.0, 2.0, 1.0]) / 10.0))
    assert method.recommend(["new"], 4) == {"new": ["a", "b", "c", "d"]}


def _dual(monkeypatch: pytest.MonkeyPatch, p_yes: dict[str, float]):
    import coea.llm.decode as decode
    from coea.evaluation import llm_methods

    method = _llm(llm_methods.DualBestOfN, monkeypatch, {"u": [0.4, 0.3, 0.2, 0.1]},
                  LlmConfig(best_of_n=2, verify_weight=1.0))
    method.llms = SimpleNamespace(novelty=SimpleNamespace(model=None, tokenizer=None),
                                  relevance=SimpleNamespace(model=None, tokenizer=None))
    method.n_index = None
    monkeypatch.setattr(llm_methods, "relevance_prompt", lambda ctx, c, with_group: c)
    monkeypatch.setattr(llm_methods, "novelty_prompt", lambda ctx, with_group: ctx)
    monkeypatch.setattr(decode, "relevance_scores", lambda m, t, prompts, **kw: np.array([p_yes[c] for c in prompts]))
    return method


def test_dual_best_of_n_never_proposes_a_banned_category(monkeypatch: pytest.MonkeyPatch):
    """dual_best_of_n+x: the N-LLM's candidates are drawn among the allowed categories only, so a history category
    (a, u's most likely, P(yes) .99) is never verified into the list: with a and b banned the candidates are c, d."""
    method = _dual(monkeypatch, {"a": 0.99, "b": 0.99, "c": 0.5, "d": 0.5})
    assert method.recommend(["u"], 4, exclude={"u": {"a", "b"}}) == {"u": ["c", "d"]}
    assert method.recommend(["u"], 4, exclude={"u": {"a"}}) == {"u": ["b", "c", "d"]}



def test_dual_best_of_n_passes_the_exclusions_to_the_sampled_proposals(monkeypatch: pytest.MonkeyPatch):
    """``llm.propose: sample``: the sampler is told each user's banned categories (the real one drops them from the
    draw), so a history category is never sampled into a ``+x`` list (with ``verify_weight: null`` a candidate's score
    is P(yes) alone: nothing else would keep a banned candidate out)."""
    import coea.llm.decode as decode

    def sample(model, tok, prompts, index, n, temperature, seed=0, exclude=None, batch_size=64):
        return [[c for c in ["a", "b", "c", "d"] if not exclude or c not in exclude[row]][:n]
                for row in range(len(prompts))]

    method = _dual(monkeypatch, {"a": 0.99, "b": 0.99, "c": 0.5, "d": 0.5})
    method.ctx = MethodContext(seed=0, llm=LlmConfig(best_of_n=2, verify_weight=None, propose="sample"))
    monkeypatch.setattr(decode, "sample_categories", sample)
    assert method.recommend(["u"], 4, exclude={"u": {"a", "b"}}) == {"u": ["c", "d"]}

def test_dual_best_of_n_ranks_every_candidate_before_the_other_allowed_categories(monkeypatch: pytest.MonkeyPatch):
    """Candidates rank first by their verified score (log P_N + w logit P(yes)), even one the R-LLM rejects (b:
    log .3 + logit .01 = -5.8, below d's log .1 = -2.3), then the other allowed categories by log P_N."""
    method = _dual(monkeypatch, {"a": 0.5, "b": 0.01, "c": 0.5, "d": 0.5})
    assert method.recommend(["u"], 4) == {"u": ["a", "b", "c", "d"]}
    method = _dual(monkeypatch, {"a": 0.01, "b": 0.5, "c": 0.5, "d": 0.5})
    assert method.recommend(["u"], 4) == {"u": ["b", "a", "c", "d"]}


def test_nllm_seq_weighs_each_expert_by_its_own_weight(monkeypatch: pytest.MonkeyPatch):
    """nllm_seq: log P_N + encoder_weight * log_softmax(encoder) + cooc_weight * log s_u (each weight on its own
    expert, the N-LLM's term unweighted)."""
    from coea.evaluation.llm_methods import NoveltyWithEncoder

    logp = [0.4, 0.3, 0.2, 0.1]
    enc, cooc = np.array([[0.0, 1.0, 2.0, 3.0]]), np.array([[1.0, 2.0, 3.0, 4.0]])
    method = _llm(NoveltyWithEncoder, monkeypatch, {"u": logp}, LlmConfig(encoder_weight=0.5, cooc_weight=0.25))
    method.encoder, method.cooc = SimpleNamespace(score=lambda users: enc), SimpleNamespace(score=lambda users: cooc)
    want = np.log([logp]) + 0.5 * log_softmax_rows(enc) + 0.25 * cooc_log_shares(cooc)
    assert method.score(["u"]) == pytest.approx(want)


def test_coeas_bonus_lifts_the_categories_outside_the_whole_history(monkeypatch: pytest.MonkeyPatch):
    """coea's ``llm.novelty_bonus`` goes to the categories outside H_u (u: a, b), not outside the short-term set
    (b): a, seen long ago, gets no bonus."""
    from coea.evaluation.llm_methods import Coea, NoveltySft

    monkeypatch.setattr(NoveltySft, "score", lambda self, users: np.log(np.array([[0.4, 0.3, 0.2, 0.1]])))
    method = _llm(Coea, monkeypatch, {}, LlmConfig(novelty_bonus=1.0))
    assert method.score(["u"])[0] == pytest.approx(np.log([0.4, 0.3, 0.2, 0.1]) + [0.0, 0.0, 1.0, 1.0])


def test_sasrec_breaks_the_encoders_ties_by_popularity(monkeypatch: pytest.MonkeyPatch):
    """sasrec: categories the encoder scores alike (a, c) rank by the history's popularity (c 3 before a 1), not by
    name; a category outside the encoder's vocabulary (-inf logit) still comes, last."""
    from coea.evaluation import dsie_methods

    method = dsie_methods.SasRecMethod(MethodContext())
    method.categories, method.index = CATS, {c: i for i, c in enumerate(CATS)}
    method.popularity, method.seqs = np.array([1.0, 5.0, 3.0, 0.0]), {}
    method.encoder, method.token_of = SimpleNamespace(model=None, config=None), np.array([0, 1, 2, 3])
    logits = np.array([[2.0, 1.0, 2.0, -np.inf]])
    monkeypatch.setattr(dsie_methods, "encode", lambda model, seqs, config: (None, logits))
    assert method.recommend(["u"], 4) == {"u": ["c", "a", "b", "d"]}


def test_sasrec_ease_multiplies_the_encoders_distribution_by_the_ease_shares(monkeypatch: pytest.MonkeyPatch):
    """sasrec_ease: log_softmax(encoder logits) + 1 x log share (EASE's category scores as shares of the user's
    total): the encoder alone ranks a, b, c; EASE's weight on c (6 of 7) lifts it first, and a, which EASE gives
    nothing, falls behind b. A category outside the encoder's vocabulary stays last."""
    from coea.data.ease import ease_log_shares
    from coea.evaluation import dsie_methods

    method = dsie_methods.SasRecEase(MethodContext())
    method.categories, method.index = CATS, {c: i for i, c in enumerate(CATS)}
    method.popularity, method.seqs = np.zeros(4), {}
    method.encoder, method.token_of = SimpleNamespace(model=None, config=None), np.array([0, 1, 2, 3])
    logits = np.array([[2.0, 1.0, 0.5, -np.inf]])
    ease = np.array([[0.0, 1.0, 6.0, 0.0]])
    monkeypatch.setattr(dsie_methods, "encode", lambda model, seqs, config: (None, logits))
    method.ease = SimpleNamespace(scores=lambda users: ease)
    assert dsie_methods.SASREC_EASE_WEIGHT == method.weight == 1.0
    expected = log_softmax_rows(np.where(np.isfinite(logits), logits, -1e9)) + ease_log_shares(ease)
    assert method.score(["u"]) == pytest.approx(expected)
    assert method.recommend(["u"], 4) == {"u": ["c", "b", "a", "d"]}
    method.weight = 0.0  # the encoder alone
    assert method.recommend(["u"], 4) == {"u": ["a", "b", "c", "d"]}
