"""Pins of the PCO round, checkpoint and loop rules a mutation audit found unguarded by the unit tests: each test
fails when its rule is broken (the per-round trainer and sampler seeds, the strict acceptance threshold, the frozen
round-start reference (also with ``refresh_novelty``), the distil rows and KL anchors, the feedback injection and
feedback pairs only for a reward that reads feedback, the R-LLM refresh's switch, examples and own RNG, the N-LLM
refresh's switch, the few-feedback share, the round's seeding, step order and feedback-user count, the config
check's new keys, the round's own metrics row, the export's need of a complete round, and a resume that starts after
the last complete round with the right round numbers). Stand-ins and stubs only: no training."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from coea.errors import CoeaInputError
from coea.llm.prompts import PromptContext
from coea.llm.sft_config import LlmConfig
from coea.pco import checkpoint
from coea.pco import loop as loop_module
from coea.pco import round as round_module
from coea.pco.config import PcoConfig
from coea.pco.periods import RoundUsers, Window
from coea.pco.reward import RewardInputs
from tests.unit.test_feedback import _history, history  # noqa: F401  (history: a fixture)

CTX = PromptContext((0,), "", ("a",))


def _ctx(cfg, **kw):
    """The parts of a RoundContext the tested step reads."""
    return SimpleNamespace(cfg=cfg, llm=LlmConfig(), history=None, groups={}, device="cpu", n_short=10,
                           sft_reference=None, exposure=None, index=SimpleNamespace(categories=["a", "b"]), **kw)


def _model():
    return torch.nn.Linear(2, 2)


def test_every_trainer_of_round_r_is_seeded_with_its_seed_plus_r():
    """Round r's DPO, R-LLM refresh and N-LLM refresh configs each add r to their own seed."""
    cfg = PcoConfig()
    cfg = replace(cfg, dpo=replace(cfg.dpo, seed=10), relevance_refresh=replace(cfg.relevance_refresh, seed=20),
                  novelty_refresh=replace(cfg.novelty_refresh, seed=30))
    assert [c.seed for c in round_module.trainer_configs(cfg, 3)] == [13, 23, 33]


def test_the_sampler_of_round_r_draws_with_seed_times_1000_plus_r_among_unseen(monkeypatch):
    """``sample_candidates`` passes ``seed * 1000 + r`` and, for a reward sampling unseen ones, the seen sets."""
    from coea.llm import decode

    got = {}
    monkeypatch.setattr(decode, "sample_categories", lambda *a, **kw: got.update(kw) or [["a"]])
    ctx = _ctx(PcoConfig(seed=7, sample_unseen=True), reward=SimpleNamespace(exclude_seen_when_sampling=False))
    novelty = SimpleNamespace(model=None, tokenizer=None)
    assert round_module.sample_candidates(ctx, novelty, ["p"], [{"b"}], 2) == [["a"]]
    assert got["seed"] == 7002 and got["exclude"] == [{"b"}]


def test_a_score_exactly_at_the_accept_threshold_is_not_accepted(monkeypatch):
    """The acceptance share counts P(yes) strictly above ``accept_threshold``: 0.5 at threshold 0.5 is not."""
    from coea.llm import decode

    monkeypatch.setattr(decode, "rank_categories", lambda *a, **kw: [[("a", 0.0), ("b", 0.0)]])
    monkeypatch.setattr(round_module, "rllm_scores", lambda *a: [[0.5, 0.75]])
    ctx = _ctx(PcoConfig(accept_threshold=0.5, k=2))
    novelty = SimpleNamespace(model=None, tokenizer=None)
    assert round_module.top_k_acceptance(ctx, novelty, None, ["p"], [CTX], [set()]) == (0.625, 0.5)


@pytest.mark.parametrize(("reference", "refresh_novelty", "frozen_copy"),
                         [("round", False, True), ("sft", True, True), ("sft", False, False)])
def test_the_round_reference_is_a_frozen_copy_of_the_nllm_now_with_reference_round_or_a_novelty_refresh(
        reference, refresh_novelty, frozen_copy):
    """``reference: round`` or ``refresh_novelty``: a frozen copy of the N-LLM as it is now (later updates do not
    move it); otherwise the loop's SFT reference."""
    model, sft_ref = _model(), object()
    ctx = _ctx(PcoConfig(reference=reference, refresh_novelty=refresh_novelty))
    ctx.sft_reference = sft_ref
    ref = round_module.round_reference(ctx, SimpleNamespace(model=model))
    if not frozen_copy:
        assert ref is sft_ref
        return
    assert ref is not model and not any(p.requires_grad for p in ref.parameters())
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(ref.weight, model.weight)


def test_dpo_is_anchored_to_a_copy_of_the_nllm_taken_before_its_update(monkeypatch):
    """``reference: round``: train_dpo gets a frozen copy with the N-LLM's round-start weights, never the model it
    trains."""
    from coea.llm import dpo
    from coea.pco.pairs import PreferencePair

    model, got = _model(), {}
    start = model.weight.detach().clone()

    def train(cfg, trained, tokenizer, data, ref_model, device):
        with torch.no_grad():
            trained.weight.add_(1.0)
        got["ref"] = ref_model

    monkeypatch.setattr(dpo, "train_dpo", train)
    novelty = SimpleNamespace(model=model, tokenizer=SimpleNamespace(eos_token="</s>"))
    pairs = [PreferencePair("p", "a", "b", 1.0, 0.0)]
    cfg = PcoConfig(reference="round")
    round_module.dpo_update(_ctx(cfg), novelty, pairs, cfg.dpo)
    assert got["ref"] is not model and torch.equal(got["ref"].weight, start)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_distill_fits_only_prompts_with_two_candidates_and_anchors_only_with_alpha(monkeypatch, alpha):
    """``update: distill``: a prompt with one candidate is left out (no distribution to fit); the KL anchors (the
    reference renormalised) are passed only when ``dpo.alpha`` is set."""
    from coea.llm import decode, distill

    got = {}
    monkeypatch.setattr(decode, "category_logprobs", lambda model, tok, prompts, index, batch_size: np.log(
        np.array([[0.25, 0.75]] * len(prompts))))
    monkeypatch.setattr(distill, "train_distill", lambda cfg, model, tok, prompts, index, cands, targets, anchors,
                        device: got.update(prompts=prompts, cands=cands, anchors=anchors))
    cfg = PcoConfig(reference="round", update="distill", reward="teacher")
    ctx = _ctx(cfg)
    ctx.index = SimpleNamespace(position={"a": 0, "b": 1})
    novelty = SimpleNamespace(model=_model(), tokenizer=None)
    round_module.distill_update(ctx, novelty, ["p0", "p1"], [["a"], ["a", "b"]], [[1.0], [1.0, 0.0]],
                                replace(cfg.dpo, alpha=alpha))
    assert got["prompts"] == ["p1"] and got["cands"] == [["a", "b"]]
    if alpha:
        assert [a.tolist() for a in got["anchors"]] == [pytest.approx([0.25, 0.75])]
    else:
        assert got["anchors"] is None


@pytest.mark.parametrize("reads_feedback", [False, True])
def test_logged_take_ups_join_the_candidates_only_when_the_reward_reads_feedback(history, reads_feedback):  # noqa: F811
    """``feedback_inject``: u0's feedback-period take-ups c, d join its sampled candidates only when the reward
    reads feedback."""
    ru = RoundUsers(["u0"], [PromptContext((0,), "", ("b",))], [{"a", "b"}])
    ctx = _ctx(PcoConfig(feedback_inject=True, pairs_per_prompt=2), reward=SimpleNamespace(
        reads_feedback=reads_feedback))
    ctx.history = history
    inputs, injected, _ = round_module.reward_inputs(ctx, 1, Window(0, 0, 10, 20), ru, [["x"]], None)
    assert (inputs.candidates, injected) == (([["x", "c", "d"]], 2) if reads_feedback else ([["x"]], 0))


def _inputs(candidates, feedback, seen=None):
    n = len(candidates)
    return RewardInputs(1, Window(0, 0, 10, 20), [f"u{i}" for i in range(n)], [CTX] * n, seen or [set()] * n,
                        candidates, None, None, LlmConfig(), feedback)


def test_feedback_pairs_count_only_the_prompts_of_users_with_feedback():
    """``feedback_pairs``: the pairs of prompts whose user has feedback (``()`` counts, None does not)."""
    ctx = _ctx(PcoConfig(margin=0.1, pairs_per_prompt=1), reward=SimpleNamespace(reads_feedback=True))
    inputs = _inputs([["a", "b"]] * 3, [None, (), ("a",)])
    scores = [[1.0, 0.0]] * 3
    assert round_module.feedback_pair_count(ctx, ["p0", "p1", "p2"], inputs, scores) == 2
    ctx.reward = SimpleNamespace(reads_feedback=False)
    assert round_module.feedback_pair_count(ctx, ["p0", "p1", "p2"], inputs, scores) == 0


def _no_training(monkeypatch):
    from coea.llm import sft

    calls = []
    monkeypatch.setattr(sft, "train_sft", lambda cfg, model, tok, ex, **kw: calls.append((kw["name"], list(ex))))
    return calls


def test_the_rllm_is_not_refreshed_with_refresh_relevance_off(monkeypatch):
    """``refresh_relevance: false``: no refresh example is built and nothing is trained, even in period mode."""
    calls = _no_training(monkeypatch)
    monkeypatch.setattr(round_module, "refresh_examples", lambda *a, **kw: [{"prompt": "p", "completion": "c"}])
    cfg = PcoConfig(refresh_relevance=False, refresh="period")
    assert cfg.follow_periods
    relevance = SimpleNamespace(model=None, tokenizer=SimpleNamespace(eos_token="</s>"))
    got = round_module.refresh_relevance(_ctx(cfg), relevance, Window(0, 0, 10, 20), np.random.default_rng(0),
                                         cfg.relevance_refresh)
    assert got == (0, 0) and calls == []


def test_a_both_refresh_trains_on_period_and_on_policy_examples_shuffled_by_the_rounds_own_rng(monkeypatch):
    """``refresh: both``: the R-LLM trains on the period's examples plus the on-policy ones, shuffled by
    ``default_rng([seed, r, 1])`` (r = window.index + 1), the one the on-policy labelling draws from first."""
    calls = _no_training(monkeypatch)
    period = [{"prompt": f"period{i}", "completion": "y"} for i in range(3)]
    on_policy = [{"prompt": f"onpolicy{i}", "completion": "n"} for i in range(2)]
    monkeypatch.setattr(round_module, "refresh_examples", lambda *a, **kw: list(period))
    monkeypatch.setattr(round_module, "on_policy_examples", lambda *a, **kw: list(on_policy))
    cfg = PcoConfig(refresh="both", seed=5)
    relevance = SimpleNamespace(model=None, tokenizer=SimpleNamespace(eos_token="</s>"))
    got = round_module.refresh_relevance(_ctx(cfg), relevance, Window(1, 0, 10, 20), np.random.default_rng(0),
                                         cfg.relevance_refresh, _inputs([["a"]], [()]))
    assert got == (5, 2)
    pool = period + on_policy
    assert calls == [("relevance-refresh", [pool[i] for i in np.random.default_rng([5, 2, 1]).permutation(5)])]


def test_the_nllm_is_not_refreshed_with_refresh_novelty_off(monkeypatch):
    """``refresh_novelty: false``: no N-LLM refresh example is built and nothing is trained."""
    calls = _no_training(monkeypatch)
    monkeypatch.setattr(round_module, "novelty_refresh_examples", lambda *a: [{"prompt": "p", "completion": "c"}])
    cfg = PcoConfig(refresh_novelty=False)
    novelty = SimpleNamespace(model=None, tokenizer=SimpleNamespace(eos_token="</s>"))
    assert round_module.refresh_novelty(_ctx(cfg), novelty, Window(0, 0, 10), cfg.novelty_refresh) == 0
    assert calls == []


def test_the_few_feedback_warning_starts_below_two_percent_of_the_prompted_users():
    """Exactly 2 % of the prompted users with feedback is enough; fewer warns (feedback reward, global periods)."""
    cfg = PcoConfig(reward="feedback", periods="global")
    assert round_module.few_feedback_warning(cfg, 1, 100, 2) is None
    assert "only 1 of 100" in round_module.few_feedback_warning(cfg, 1, 100, 1)


def test_a_round_seeds_from_seed_plus_r_judges_before_and_after_the_update_then_refreshes(monkeypatch):
    """Round r re-seeds the global RNGs with ``seed + r`` and draws its users with ``default_rng([seed, r])``;
    its steps run in order: acceptance before, update, acceptance after, R-LLM refresh; ``feedback_users``
    counts the users with feedback, also those who took up nothing (``()``)."""
    seed, r, order = 11, 3, []
    monkeypatch.setattr(round_module, "refresh_novelty", lambda *a: order.append(("seed", torch.initial_seed())) or 0)

    def users(events, groups, window, n_short, limit, rng, data):
        order.append(("rng", rng.random() == np.random.default_rng([seed, r]).random()))
        return RoundUsers(["u0", "u1", "u2"], [CTX] * 3, [set()] * 3)

    monkeypatch.setattr(round_module, "round_users", users)
    monkeypatch.setattr(round_module, "sample_candidates", lambda *a: [["x", "y"]] * 3)
    monkeypatch.setattr(round_module, "reward_inputs",
                        lambda *a: (_inputs([["x", "y"]] * 3, [None, (), ("x",)]), 0, 0))
    monkeypatch.setattr(round_module, "top_k_acceptance", lambda *a: order.append("judge") or (0.5, 0.5))
    monkeypatch.setattr(round_module, "dpo_update", lambda *a: order.append("update"))
    monkeypatch.setattr(round_module, "refresh_relevance", lambda *a: order.append("refresh") or (0, 0))
    ctx = _ctx(PcoConfig(seed=seed, reward="feedback", margin=0.1),
               reward=SimpleNamespace(reads_feedback=True, score=lambda inputs: [[1.0, 0.0]] * 3))
    row = round_module.run_round(ctx, r, Window(r - 1, 0, 10, 20), None, None).as_row()
    assert order == [("seed", seed + r), ("rng", True), "judge", "update", "judge", "refresh"]
    assert row["feedback_users"] == 2


def test_the_config_check_names_a_key_only_the_current_config_has():
    """A setting the saved config lacks (or the current one lacks) is a difference, named with its dotted key."""
    assert checkpoint.config_changes({"a": 1, "d": {"x": 1}}, {"a": 1, "d": {"x": 1, "y": 2}, "b": 3}) == [
        "b: None -> 3", "d.y: None -> 2"]
    assert checkpoint.config_changes({"a": 1, "b": 3}, {"a": 1}) == ["b: 3 -> None"]


def _fake_bundles(monkeypatch):
    monkeypatch.setattr(checkpoint, "save_bundle", lambda bundle, path, announce: path.mkdir(parents=True))


def test_a_rounds_checkpoint_holds_its_own_metrics_row(tmp_path, monkeypatch):
    """``round.json`` of round r is the last row (round r's), not round 0's."""
    import json

    _fake_bundles(monkeypatch)
    rows = [{"round": 0}, {"round": 1, "x": 1.0}, {"round": 2, "x": 2.0}]
    final = checkpoint.save_round(tmp_path, 2, None, None, rows, PcoConfig())
    assert json.loads((final / "round.json").read_text()) == rows[-1]
    assert checkpoint.last_complete_round(tmp_path) == final


def test_exporting_needs_a_complete_round_not_the_round_0_state(tmp_path):
    """A state with 0 complete rounds (only the starting models) has nothing to export: one error saying so."""
    checkpoint.write_state(tmp_path, 0, [{"round": 0}], PcoConfig())
    checkpoint.round_dir(tmp_path, 0).joinpath("novelty").mkdir(parents=True)
    checkpoint.round_dir(tmp_path, 0).joinpath("relevance").mkdir(parents=True)
    with pytest.raises(CoeaInputError, match="no complete PCO round yet"):
        checkpoint.last_complete_round(tmp_path)


def test_a_resume_runs_the_rounds_after_the_last_complete_one_with_their_own_numbers(tmp_path, monkeypatch):
    """Round 1 of 3 complete: the resume loads round 1, runs rounds 2 and 3 (window index + 1) and saves each;
    a fresh run numbers the rounds 1..3."""
    cfg = PcoConfig(rounds=3)
    checkpoint.write_state(tmp_path, 1, [{"round": 0}, {"round": 1}], cfg)
    ran, saved, loaded = [], [], []
    monkeypatch.setattr(loop_module, "load_round", lambda out, r, device: loaded.append(r) or ("n", "r"))

    def one_round(ctx, r, window, novelty, relevance):
        ran.append(r)
        return SimpleNamespace(as_row=lambda: {"round": r, "mean_score_before": 0.0, "mean_score_after": 0.0,
                                               "acceptance_before": 0.0, "acceptance_after": 0.0})

    monkeypatch.setattr(loop_module, "run_round", one_round)
    monkeypatch.setattr(loop_module, "save_round", lambda out, r, n, rel, rows, c: saved.append((r, len(rows))))
    loop = SimpleNamespace(out_dir=tmp_path, cfg=cfg, evaluate=None, novelty=None, relevance=None, device="cpu",
                           ctx=None, windows=[Window(i, 10 * i, 10 * i + 10) for i in range(3)])
    loop._start = lambda resume: loop_module.PcoLoop._start(loop, resume)
    result = loop_module.PcoLoop.run(loop, resume=True)
    assert (loaded, ran, saved) == ([1], [2, 3], [(2, 3), (3, 4)])
    assert [row["round"] for row in result.rounds] == [0, 1, 2, 3]
    ran.clear()
    loop_module.PcoLoop.run(loop, resume=False)
    assert ran == [1, 2, 3]


def test_the_sft_reference_is_a_frozen_copy_the_rounds_do_not_move():
    """``reference: sft``: the loop keeps a frozen copy of the SFT N-LLM, not the model the rounds train."""
    from tests.unit.test_pco_mutants import CATS, _bundle

    novelty = _bundle()
    events = _history([("u", "i", CATS[t % 3], t) for t in range(6)])
    loop = loop_module.PcoLoop(PcoConfig(reference="sft", rounds=1), LlmConfig(), events, CATS, {}, novelty, _bundle(),
                               device="cpu")
    ref = loop.ctx.sft_reference
    assert ref is not novelty.model and not any(p.requires_grad for p in ref.parameters())
    with torch.no_grad():
        for p in novelty.model.parameters():
            p.add_(1.0)
    assert all(not torch.equal(a, b) for a, b in zip(ref.parameters(), novelty.model.parameters(), strict=True))
