"""Constrained decoding: fast path == brute force, trie path == exhaustive, sampling, relevance, baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from coea.errors import CoeaInputError
from coea.llm.config import ModelConfig
from coea.llm.decode import (
    CategoryIndex,
    category_logprobs,
    dedupe,
    generate_baseline,
    parse_categories,
    rank_categories,
    relevance_scores,
    sample_categories,
    score_categories_exhaustive,
)
from coea.llm.models import build_scratch_model
from coea.llm.prompts import TEMPLATE_WORDS, PromptContext, category_text, novelty_prompt, relevance_prompt
from coea.llm.tokenizer import build_scratch_tokenizer

CATS = ["Comedy", "Comedy|Romance", "Comedy|Drama", "Drama", "Drama|Romance|War", "Sci", "Sci Fi", "Children's",
        "Film-Noir", "cat07"]
PROFILE = "Group 1-0: 9 users. Long-term favourites: Drama (31%), Sci Fi (20%)."
SMALL = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=48)


def _contexts(rng: np.random.Generator, n: int) -> list[PromptContext]:
    return [PromptContext(csid=(int(rng.integers(3)), int(rng.integers(2))), profile=PROFILE,
                          short_term=tuple(rng.choice(CATS, size=int(rng.integers(1, 4)), replace=False)))
            for _ in range(n)]


def _prompts(n: int, seed: int = 0) -> list[str]:
    return [novelty_prompt(c, with_group=bool(i % 2)) for i, c in enumerate(_contexts(np.random.default_rng(seed), n))]


def _scratch(seed: int = 0):
    tok = build_scratch_tokenizer(CATS, [PROFILE], [3, 2])
    return build_scratch_model(ModelConfig(seed=seed, **SMALL), tok), tok


def _multi_token(seed: int = 0):
    """A word-level tokenizer that splits names at spaces, '|' and "'": ``Comedy|Romance`` -> ``Comedy | Romance``."""
    words = [w for text in [PROFILE, *map(category_text, CATS), *TEMPLATE_WORDS, "<a_0> <a_1> <a_2> <b_0> <b_1>"]
             for w in text.replace("|", " | ").replace("'", " ' ").split()]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<pad>", "<unk>", "<s>", "</s>", *words]))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Split("|", behavior="isolated"),
                                                     pre_tokenizers.Split("'", behavior="isolated")])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>")
    return build_scratch_model(ModelConfig(seed=seed, **SMALL), tok), tok


@pytest.fixture(scope="module")
def scratch():
    return _scratch()


@pytest.fixture(scope="module")
def multi():
    return _multi_token()


def test_dedupe_keeps_first_seen_order():
    unique, inverse = dedupe(["b", "a", "b", "c", "a"])
    assert unique == ["b", "a", "c"]
    assert inverse.tolist() == [0, 1, 0, 2, 1]


def test_index_single_and_multi_token(scratch, multi):
    single = CategoryIndex(scratch[1], CATS)
    assert single.single_token and single.max_len == 1 and len(single.levels) == 2  # the root, then the names
    assert single.boundary_ids is None  # no name is another's prefix: no end-of-name term
    index = CategoryIndex(multi[1], CATS)
    assert not index.single_token
    assert index.token_ids[CATS.index("Comedy|Romance")] == multi[1].convert_tokens_to_ids(["Comedy", "|", "Romance"])
    comedy, bar = multi[1].convert_tokens_to_ids(["Comedy", "|"])
    assert sorted(index.allowed_next([comedy, bar])) == sorted(multi[1].convert_tokens_to_ids(["Romance", "Drama"]))
    assert index.max_len == 5 and index.allowed_next([bar]) == []


def test_index_rejects_unknown_and_duplicate_names(scratch):
    with pytest.raises(CoeaInputError, match="'Horror' maps to no token or to the unknown token"):
        CategoryIndex(scratch[1], ["Drama", "Horror"])
    with pytest.raises(CoeaInputError, match="duplicate category names"):
        CategoryIndex(scratch[1], ["Drama", "Drama"])


def test_fast_path_equals_brute_force_from_full_logits(scratch):
    model, tok = scratch
    prompts = _prompts(6)
    exclude = [{"Drama", "Sci Fi"}, set(), {"cat07", "not-a-category"}, set(), set(CATS[:-2]), set()]
    ranked = rank_categories(model, tok, prompts, CategoryIndex(tok, CATS), k=4, exclude=exclude, batch_size=4)
    ids = torch.tensor(tok.convert_tokens_to_ids(CATS))
    for prompt, banned, got in zip(prompts, exclude, ranked, strict=True):
        with torch.no_grad():  # one prompt alone: no padding at all
            logits = model(input_ids=torch.tensor([tok(prompt)["input_ids"]])).logits[0, -1]  # (V,)
        lp = torch.log_softmax(logits, -1)[ids].tolist()
        expected = sorted([(c, s) for c, s in zip(CATS, lp, strict=True) if c not in banned], key=lambda t: -t[1])[:4]
        assert [c for c, _ in got] == [c for c, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
    assert len(ranked[4]) == 2  # only two names left after excluding eight


@pytest.mark.parametrize("batch_size", [3, 64])
def test_trie_path_equals_exhaustive_scoring(multi, batch_size):
    """At batch_size 3 each prompt's trie runs alone (3 // the widest level); at 64 prompts of other lengths share a
    padded batch, whose later steps must continue each row at its own position (audit, session 58)."""
    model, tok = multi
    index, prompts = CategoryIndex(tok, CATS), _prompts(5, seed=1) + _prompts(1, seed=1)  # one duplicate prompt
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1
    trie = category_logprobs(model, tok, prompts, index, batch_size=batch_size)  # (P, C)
    exhaustive = score_categories_exhaustive(model, tok, prompts, index, batch_size=7)  # (P, C)
    np.testing.assert_allclose(trie, exhaustive, atol=1e-5)
    assert (np.argsort(-trie, axis=1) == np.argsort(-exhaustive, axis=1)).all()
    ids = tok(prompts[0])["input_ids"] + index.token_ids[CATS.index("Drama|Romance|War")]
    with torch.no_grad():  # hand computation for one name: sum of its 5 token log-probs
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)  # (T, V)
    hand = sum(lp[len(ids) - 6 + j, ids[len(ids) - 5 + j]].item() for j in range(5))
    hand += torch.logsumexp(lp[-1, index.boundary_ids], -1).item()  # then the name ends: another name or </s>
    assert trie[0, CATS.index("Drama|Romance|War")] == pytest.approx(hand, abs=1e-5)
    assert np.array_equal(trie[0], trie[5])


def test_a_name_that_is_another_s_prefix_is_not_favoured():
    """Session 55 audit: without the end-of-name term ``Comedy`` scored at least as high as ``Comedy|Romance``
    (``Comedy | Romance``) for every prompt and every model, its score being a factor of the longer one's, so no
    training could rank the longer name first. With it the names are disjoint events of the completion (a whole
    name, then another name or the terminator): their probabilities sum to at most 1, and a model fitted to prefer
    the longer name ranks it first."""
    from coea.llm.distill import train_distill
    from coea.llm.dpo_config import DpoTrainConfig

    model, tok = _multi_token(seed=4)
    index, prompts = CategoryIndex(tok, CATS), _prompts(4, seed=3)
    assert set(index.boundary_ids.tolist()) == {ids[0] for ids in index.token_ids} | {tok.convert_tokens_to_ids("</s>")}
    assert (np.exp(category_logprobs(model, tok, prompts, index)).sum(axis=1) <= 1 + 1e-6).all()
    pair = ["Comedy", "Comedy|Romance"]
    train_distill(DpoTrainConfig(lr=5e-3, epochs=40.0, batch_size=4, seed=0, alpha=0.0), model, tok, prompts, index,
                  [pair] * len(prompts), [np.array([0.1, 0.9])] * len(prompts))
    ranked = rank_categories(model, tok, prompts, index, k=len(CATS))
    for row in ranked:
        names = [c for c, _ in row]
        assert names.index("Comedy|Romance") < names.index("Comedy"), names


def test_single_token_fast_path_equals_exhaustive(scratch):
    model, tok = scratch
    index, prompts = CategoryIndex(tok, CATS), _prompts(3)
    np.testing.assert_allclose(category_logprobs(model, tok, prompts, index),
                               score_categories_exhaustive(model, tok, prompts, index), atol=1e-5)


@pytest.mark.parametrize("build", [_scratch, _multi_token])
def test_outputs_are_valid_distinct_and_honour_exclude(build):
    for seed in range(4):
        model, tok = build(seed)
        rng = np.random.default_rng(seed)
        index, prompts = CategoryIndex(tok, CATS), _prompts(5, seed=seed)
        exclude = [set(rng.choice(CATS, size=int(rng.integers(0, len(CATS))), replace=False)) for _ in prompts]
        k = int(rng.integers(1, len(CATS) + 3))
        ranked = rank_categories(model, tok, prompts, index, k, exclude=exclude)
        sampled = sample_categories(model, tok, prompts, index, k, temperature=1.5, seed=seed, exclude=exclude)
        for banned, r, s in zip(exclude, ranked, sampled, strict=True):
            names = [c for c, _ in r]
            for out in (names, s):
                assert len(out) == len(set(out)) == min(k, len(CATS) - len(banned))
                assert set(out) <= set(CATS) - banned
            assert [v for _, v in r] == sorted((v for _, v in r), reverse=True)


def test_sampling_is_seeded_distinct_and_follows_the_distribution(scratch):
    model, tok = scratch
    index, prompts = CategoryIndex(tok, CATS), _prompts(4)
    first = sample_categories(model, tok, prompts, index, n=5, seed=3)
    assert all(len(set(row)) == 5 and set(row) <= set(CATS) for row in first)
    assert sample_categories(model, tok, prompts, index, n=5, seed=3) == first
    assert any(sample_categories(model, tok, prompts, index, n=5, seed=s) != first for s in (4, 5))
    many = [prompts[0]] * 3000  # one forward pass, independent noise per row
    picks = [row[0] for row in sample_categories(model, tok, many, index, n=1, temperature=0.05, seed=0)]
    lp = category_logprobs(model, tok, prompts[:1], index)[0] / 0.05
    expected = np.exp(lp - lp.max()) / np.exp(lp - lp.max()).sum()
    freq = np.array([picks.count(c) for c in CATS]) / len(picks)
    np.testing.assert_allclose(freq, expected, atol=0.03)


def test_relevance_scores_equal_softmax_over_yes_no_logits(scratch):
    model, tok = scratch
    ctx = _contexts(np.random.default_rng(2), 1)[0]
    prompts = [relevance_prompt(ctx, c) for c in CATS] + [relevance_prompt(ctx, CATS[0])]
    scores = relevance_scores(model, tok, prompts, batch_size=4)
    assert scores.shape == (len(prompts),) and ((scores >= 0) & (scores <= 1)).all()
    yes, no = tok.convert_tokens_to_ids(["yes", "no"])
    for prompt, score in zip(prompts, scores, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([tok(prompt)["input_ids"]])).logits[0, -1]
        hand = np.exp(logits[yes].item()) / (np.exp(logits[yes].item()) + np.exp(logits[no].item()))
        assert score == pytest.approx(hand, abs=1e-6)
    assert scores[0] == scores[-1]


def test_training_flag_is_restored(scratch):
    model, tok = scratch
    model.train()
    rank_categories(model, tok, _prompts(2), CategoryIndex(tok, CATS), k=2)
    assert model.training
    model.eval()


def test_parse_categories_reads_category_words_left_to_right():
    index = CategoryIndex(build_scratch_tokenizer(CATS, [], [1]), CATS)
    text = r"Sci\_Fi Sci  cat07 junk Comedy|Romance Sci\_Fi Fi Drama"
    assert parse_categories(text, index, k=10) == ["Sci Fi", "Sci", "cat07", "Comedy|Romance", "Drama"]
    assert parse_categories(text, index, k=2) == ["Sci Fi", "Sci"]


@pytest.mark.parametrize("build", [_scratch, _multi_token])
def test_generate_baseline_returns_valid_distinct_names(build):
    model, tok = build(1)
    out = generate_baseline(model, tok, _prompts(3), CategoryIndex(tok, CATS), k=3)
    assert len(out) == 3
    assert all(len(row) == len(set(row)) <= 3 and set(row) <= set(CATS) for row in out)


def test_generate_baseline_first_name_is_the_fast_path_top1_when_only_names_can_win():
    model, tok = _scratch(2)
    ids = tok.convert_tokens_to_ids(CATS)
    head = torch.zeros_like(model.lm_head.weight)  # (V, H): every other token gets logit 0 ...
    head[ids] = model.lm_head.weight.detach()[ids] + 2 * model.model.norm.weight.detach()  # ... names mostly > 0
    model.lm_head.weight = torch.nn.Parameter(head)
    index, prompts = CategoryIndex(tok, CATS), _prompts(4, seed=5)
    generated = generate_baseline(model, tok, prompts, index, k=3)
    ranked = rank_categories(model, tok, prompts, index, k=1)
    assert [row[0] for row in generated] == [row[0][0] for row in ranked]
