"""The distillation update (coea.llm.distill): the closed-form target, the loss, both scoring paths, and training
moving the N-LLM onto the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coea.llm.decode import CategoryIndex, category_logprobs
from coea.llm.distill import (
    _multi_token_logits,
    _padded,
    _single_token_logits,
    distill_loss,
    target_distribution,
    train_distill,
)
from coea.llm.dpo_config import DpoTrainConfig
from tests.unit.test_decode import CATS, _multi_token, _prompts, _scratch


def test_target_is_reference_times_exp_reward_over_beta():
    ref, r = np.log([0.5, 0.3, 0.2]), np.array([0.0, 1.0, -1.0])
    t = target_distribution(ref, r, beta=2.0)
    expected = np.array([0.5, 0.3 * np.exp(0.5), 0.2 * np.exp(-0.5)])
    np.testing.assert_allclose(t, expected / expected.sum())
    np.testing.assert_allclose(target_distribution(ref, np.zeros(3), beta=0.1), [0.5, 0.3, 0.2])  # no reward: ref
    with pytest.raises(ValueError, match="finite"):
        target_distribution(np.array([0.0, -np.inf]), np.zeros(2), beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        target_distribution(ref, r, beta=0.0)


def test_loss_is_kl_over_candidates_and_ignores_pads():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, -1.0, 9.0]])
    cols = torch.tensor([[0, 1, 2], [4, 7, -1]])  # second row: two candidates and a pad
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.9, 0.1, 0.0]])
    loss, kl = distill_loss(logits, cols, probs)
    q0 = torch.softmax(logits[0], -1)
    q1 = torch.softmax(logits[1, :2], -1)  # the pad's 9.0 takes no probability
    kl0 = (probs[0] * (probs[0] / q0).log()).sum()
    kl1 = (probs[1, :2] * (probs[1, :2] / q1).log()).sum()
    torch.testing.assert_close(kl, torch.stack([kl0, kl1]))
    ent = -(probs[0] * probs[0].log()).sum() - (probs[1, :2] * probs[1, :2].log()).sum()
    torch.testing.assert_close(loss, (kl0 + kl1 + ent) / 2)


def test_alpha_adds_the_kl_from_the_reference_and_moves_the_optimum_towards_it():
    """``alpha`` x KL(anchor || N-LLM): the minimiser of KL(t || q) + alpha KL(a || q) is (t + alpha a) / (1 +
    alpha)."""
    cols, t, a = torch.tensor([[0, 1, 2]]), torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.1, 0.3, 0.6]])
    logits = torch.zeros((1, 3), requires_grad=True)
    plain, _ = distill_loss(logits, cols, t)
    with_anchor, kl = distill_loss(logits, cols, t, a, alpha=0.5)
    ce_a = -(a * torch.log_softmax(logits, -1)).sum()
    torch.testing.assert_close(with_anchor, plain + 0.5 * ce_a)
    torch.testing.assert_close(kl, distill_loss(logits, cols, t)[1])  # the reported KL is the target's alone
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(500):
        opt.zero_grad()
        distill_loss(logits, cols, t, a, alpha=0.5)[0].backward()
        opt.step()
    torch.testing.assert_close(torch.softmax(logits, -1), (t + 0.5 * a) / 1.5, atol=1e-4, rtol=0)


@pytest.mark.parametrize("build", [_scratch, _multi_token], ids=["single-token", "multi-token"])
def test_training_scores_equal_decoding_scores(build):
    """The scores the update trains on (with gradients) are the ones ranking uses (category_logprobs)."""
    model, tok = build()
    index, prompts = CategoryIndex(tok, CATS), _prompts(4, seed=3)
    seqs = [tok(p)["input_ids"] for p in prompts]
    cols = torch.tensor([[0, 3, 9], [1, 2, -1], [4, 5, 6], [8, 7, -1]])
    forward = _single_token_logits if index.single_token else _multi_token_logits
    assert index.single_token == (build is _scratch)
    model.eval()
    with torch.no_grad():
        got = forward(model, seqs, tok.pad_token_id, index, cols).numpy()
    want = category_logprobs(model, tok, prompts, index)
    for row, cs in enumerate(cols.tolist()):
        real = [c for c in cs if c >= 0]
        np.testing.assert_allclose(got[row, :len(real)], want[row, real], atol=1e-5)


@pytest.mark.parametrize("build", [_scratch, _multi_token], ids=["single-token", "multi-token"])
def test_training_moves_the_model_onto_the_target(build):
    model, tok = build(seed=1)
    index, prompts = CategoryIndex(tok, CATS), _prompts(6, seed=2)
    rng = np.random.default_rng(0)
    pool = ["Comedy|Romance", "Comedy|Drama", "Drama|Romance|War", "Sci Fi", "Children's", "Film-Noir", "cat07"]
    candidates = [list(rng.choice(pool, size=4, replace=False)) for _ in prompts]
    targets = [np.array([0.7, 0.1, 0.1, 0.1]) for _ in prompts]  # the first candidate dominant
    # multi-token names carry the end-of-name term, which the fit must shape too: more passes
    epochs = 30 if build is _scratch else 60
    cfg = DpoTrainConfig(lr=5e-3, epochs=float(epochs), batch_size=4, seed=0, alpha=0.0)
    before = category_logprobs(model, tok, prompts, index)
    result = train_distill(cfg, model, tok, prompts, index, candidates, targets)
    after = category_logprobs(model, tok, prompts, index)
    assert result.steps == 2 * epochs and result.n_prompts == 6 and len(result.kl) == epochs
    assert result.kl[-1] < 0.05 < result.kl[0]
    for row, cs in enumerate(candidates):
        cols = [index.position[c] for c in cs]
        q = np.exp(after[row, cols] - np.logaddexp.reduce(after[row, cols]))
        np.testing.assert_allclose(q, targets[row], atol=0.12)
        assert np.argmax(after[row, cols]) == 0
    assert not np.allclose(before, after)


def test_alpha_reaches_training_and_holds_the_model_towards_the_anchor():
    """``cfg.alpha`` with anchors moves what training fits: at alpha 0 the model fits the target (first candidate
    .7), at alpha 1 with a uniform anchor the optimum (t + a) / 2 puts .475 on it (the closed form of
    test_alpha_adds_the_kl_...), so the fitted share drops by about .2; the anchors are ignored at alpha 0."""
    prompts = _prompts(6, seed=2)
    pool = ["Comedy|Romance", "Comedy|Drama", "Drama|Romance|War", "Sci Fi"]
    candidates, targets = [pool for _ in prompts], [np.array([0.7, 0.1, 0.1, 0.1]) for _ in prompts]
    anchors = [np.full(4, 0.25) for _ in prompts]
    first = {}
    for alpha in (0.0, 1.0):
        model, tok = _scratch(seed=1)
        index = CategoryIndex(tok, CATS)
        cfg = DpoTrainConfig(lr=5e-3, epochs=30.0, batch_size=4, seed=0, alpha=alpha)
        train_distill(cfg, model, tok, prompts, index, candidates, targets, anchors)
        after = category_logprobs(model, tok, prompts, index)[:, [index.position[c] for c in pool]]
        q = np.exp(after - np.logaddexp.reduce(after, axis=1, keepdims=True))
        first[alpha] = float(q[:, 0].mean())
    assert first[0.0] == pytest.approx(0.7, abs=0.08) and first[1.0] == pytest.approx(0.475, abs=0.08)


def test_refuses_mismatched_inputs():
    model, tok = _scratch()
    index, cfg = CategoryIndex(tok, CATS), DpoTrainConfig()
    with pytest.raises(ValueError, match="no prompts"):
        train_distill(cfg, model, tok, [], index, [], [])
    with pytest.raises(ValueError, match="differ in length"):
        train_distill(cfg, model, tok, ["a"], index, [], [])
    with pytest.raises(ValueError, match="2 candidates but 3"):
        _padded([[0, 1]], [np.ones(3) / 3])
