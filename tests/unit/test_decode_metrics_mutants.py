"""Pins a mutation audit of decoding, distillation, metrics and the bootstrap found unguarded: ranking ties keep
category order, one exclusion set per prompt, the yes/no answer tokens must be distinct known tokens, two names with
the same token ids are refused, decoding and the distil update leave the model's training flag as they found it,
fractional distil epochs round the step count up, distil batches are shuffled by the config seed, the target
distribution survives huge rewards, the long tail breaks count ties by name, coverage counts only the evaluated
users' lists, no users give no metrics, and the paired interval's point estimate is the mean per-user difference.
Tiny scratch models or fixed score arrays; a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from coea.errors import CoeaInputError
from coea.evaluation.bootstrap import bootstrap_mean_differences, paired_bootstrap_ci
from coea.evaluation.metrics import evaluate_lists, long_tail
from coea.llm import decode
from coea.llm.decode import CategoryIndex, answer_token_ids, rank_categories, relevance_scores, sample_categories
from coea.llm.distill import target_distribution, train_distill
from coea.llm.dpo_config import DpoTrainConfig
from coea.llm.prompts import relevance_prompt
from coea.llm.tokenizer import build_scratch_tokenizer
from tests.unit.test_decode import CATS, _contexts, _prompts, _scratch


@pytest.fixture(scope="module")
def scratch():
    return _scratch()


def _fixed_scores(monkeypatch, scores: np.ndarray) -> CategoryIndex:
    """An index over CATS whose category_logprobs are ``scores`` (P, C), whatever the model and prompts."""
    monkeypatch.setattr(decode, "category_logprobs", lambda *args, **kwargs: scores.copy())
    return CategoryIndex(build_scratch_tokenizer(CATS, [], [1]), CATS)


def test_rank_ties_keep_category_order(monkeypatch):
    """rank_categories: names with exactly equal log-probs are listed in category order (a stable sort), so a list
    does not depend on the sort algorithm."""
    scores = -np.random.default_rng(0).integers(0, 3, size=(20, len(CATS))).astype(np.float64)
    index = _fixed_scores(monkeypatch, scores)
    ranked = rank_categories(None, None, ["p"] * 20, index, k=len(CATS))  # model and tokenizer unused
    for row, got in zip(scores, ranked, strict=True):
        want = sorted(range(len(CATS)), key=lambda c: (-row[c], c))
        assert [name for name, _ in got] == [CATS[c] for c in want]


def test_exclusions_need_one_set_per_prompt(monkeypatch):
    """rank_categories and sample_categories refuse an exclusion list that is not one set per prompt, instead of
    excluding the wrong users' names (or none) for some prompts."""
    index = _fixed_scores(monkeypatch, np.zeros((3, len(CATS))))
    with pytest.raises(ValueError, match="one set per prompt"):
        rank_categories(None, None, ["a", "b", "c"], index, k=2, exclude=[{"Drama"}, set()])
    with pytest.raises(ValueError, match="one set per prompt"):
        sample_categories(None, None, ["a", "b", "c"], index, n=2, exclude=[{"Drama"}])


def test_answer_tokens_must_be_distinct_known_tokens(scratch):
    """answer_token_ids: the yes and no words must start with two different tokens, neither the unknown token
    (else P(yes) over {yes, no} is a constant 0.5 or reads an unknown-token logit)."""
    tok = scratch[1]
    assert answer_token_ids(tok) == tuple(tok.convert_tokens_to_ids(["yes", "no"]))
    with pytest.raises(ValueError, match="distinct known tokens"):
        answer_token_ids(tok, "yes", "yes")
    with pytest.raises(ValueError, match="distinct known tokens"):
        answer_token_ids(tok, "maybe", "no")


def test_two_names_with_the_same_token_ids_are_refused():
    """CategoryIndex: two categories whose words tokenize to the same ids (a lower-casing tokenizer: ``Drama`` and
    ``drama``) are refused; the model could not tell them apart."""
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "</s>", "novel:", "drama", "comedy"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    assert CategoryIndex(tok, ["Drama", "Comedy"]).single_token
    with pytest.raises(CoeaInputError, match="'Drama' and 'drama' have the same token ids"):
        CategoryIndex(tok, ["Drama", "Comedy", "drama"])


def test_decoding_leaves_an_eval_model_in_eval_mode(scratch):
    """rank_categories, sample_categories and relevance_scores run in eval mode and restore the flag the model
    had: an eval model stays in eval mode (not switched to training, dropout on, for whatever runs next)."""
    model, tok = scratch
    index, prompts = CategoryIndex(tok, CATS), _prompts(2)
    model.eval()
    rank_categories(model, tok, prompts, index, k=2)
    sample_categories(model, tok, prompts, index, n=2)
    relevance_scores(model, tok, [relevance_prompt(_contexts(np.random.default_rng(0), 1)[0], "Drama")])
    assert not model.training


def test_fractional_distil_epochs_round_steps_up_and_the_training_flag_is_restored():
    """train_distill: ``cfg.epochs`` may be fractional, total steps = ceil(steps per epoch x epochs) (1.5 epochs of
    2 batches = 3 steps over 2 epochs' passes); the model's training flag is restored after (train stays train)."""
    model, tok = _scratch(seed=1)
    index, prompts = CategoryIndex(tok, CATS), _prompts(4, seed=2)
    candidates, targets = [["Drama", "Sci Fi"]] * 4, [np.array([0.6, 0.4])] * 4
    model.train()
    cfg = DpoTrainConfig(lr=1e-4, epochs=1.5, batch_size=2, seed=0, alpha=0.0)
    result = train_distill(cfg, model, tok, prompts, index, candidates, targets)
    assert (result.steps, len(result.kl)) == (3, 2)
    assert model.training


def test_distil_batches_are_shuffled_by_the_config_seed(monkeypatch):
    """train_distill: each epoch visits the prompts in ``torch.randperm`` order of a generator seeded with
    ``cfg.seed``, in batches of ``cfg.batch_size`` (not in input order, and another seed gives another order)."""
    from coea.llm import distill

    model, tok = _scratch(seed=1)
    index, prompts = CategoryIndex(tok, CATS), _prompts(6, seed=4)
    assert len(set(prompts)) == 6
    ids = [tok(p)["input_ids"] for p in prompts]
    seen: list[list[int]] = []
    real = distill._single_token_logits

    def spy(model, seqs, *args):
        seen.append([ids.index(list(s)) for s in seqs])
        return real(model, seqs, *args)

    monkeypatch.setattr(distill, "_single_token_logits", spy)
    candidates, targets = [["Drama", "Sci Fi"]] * 6, [np.array([0.6, 0.4])] * 6
    for seed in (0, 1):
        seen.clear()
        cfg = DpoTrainConfig(lr=1e-4, epochs=2.0, batch_size=4, seed=seed, alpha=0.0)
        train_distill(cfg, model, tok, prompts, index, candidates, targets)
        gen = torch.Generator().manual_seed(seed)
        want = [chunk for _ in range(2) for order in [torch.randperm(6, generator=gen).tolist()]
                for chunk in (order[:4], order[4:])]
        assert seen == want
    assert want != [[0, 1, 2, 3], [4, 5]] * 2

def test_target_distribution_stays_finite_for_huge_rewards():
    """target_distribution is a softmax shifted by its max: rewards / beta far past exp's range still give the
    exact normalised ``ref * exp(r / beta)``, not nan."""
    t = target_distribution(np.log([0.5, 0.5]), np.array([1000.0, 999.0]), beta=0.5)
    np.testing.assert_allclose(t, [1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(2.0))])


def test_long_tail_breaks_count_ties_by_name():
    """long_tail: among categories of equal count the head takes them by name, whatever the order of ``counts``."""
    assert long_tail({"b": 40, "a": 40, "c": 20}, head_share=0.4) == {"b", "c"}
    assert long_tail({"a": 40, "b": 40, "c": 20}, head_share=0.4) == {"b", "c"}


def test_coverage_counts_only_the_evaluated_users_lists():
    """evaluate_lists: Cov@K is over the lists of ``users`` only; lists of users not evaluated (another slice) do
    not add categories."""
    recs = {"u": ["a", "b"], "x": ["c", "d"]}
    m = evaluate_lists(recs, ["u"], {"u": set()}, {"u": {"a"}}, tail=set(), n_categories=4, ks=[2])
    assert m["Cov@2"] == 0.5


def test_no_users_give_no_metrics():
    """evaluate_lists of an empty user list is {} (no mean of nothing, no division by zero)."""
    assert evaluate_lists({"u": ["a"]}, [], {}, {}, tail=set(), n_categories=3, ks=[1, 2]) == {}


def test_paired_point_estimate_is_the_mean_difference_not_a_replicate_statistic():
    """paired_bootstrap_ci: ``diff`` is mean(a - b) over all users (the point estimate), not the replicates'
    median or mean; with real-valued per-user values those differ."""
    rng = np.random.default_rng(3)
    a, b = rng.random(9), rng.random(9)
    ci = paired_bootstrap_ci(a, b, n_boot=200, seed=1)
    reps = bootstrap_mean_differences(a, b, n_boot=200, seed=1)
    assert ci.diff == pytest.approx(float(np.mean(a - b)), abs=1e-15)
    assert abs(ci.diff - float(np.median(reps))) > 1e-6 and abs(ci.diff - float(reps.mean())) > 1e-6
