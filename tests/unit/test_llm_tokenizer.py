"""The scratch word-level tokenizer: one id per category name, exact round trip of our prompts."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from coea.llm.prompts import (
    PromptContext,
    category_text,
    csid_tokens,
    novelty_completion,
    novelty_prompt,
    relevance_completion,
    relevance_prompt,
)
from coea.llm.tokenizer import (
    build_scratch_tokenizer,
    category_token_ids,
    csid_vocab,
    is_single_token,
)

CATS = ["Comedy", "Comedy|Romance", "Children's", "Sci Fi", "Sci", "Drama", "cat07", "cat070", "R&B / Soul (live)",
        "Action|Adventure|Sci-Fi"]
PROFILE = ("Group 1-0: 12 users. Long-term favourites: Drama (31%), Sci Fi (20%), Comedy|Romance (9%). Members "
           "explore 7 categories on average; 40% of their categories were first tried in the later half.")
CTX = PromptContext(csid=(1, 0), profile=PROFILE, short_term=("Drama", "Sci Fi", "Comedy|Romance"))


@pytest.fixture(scope="module")
def tok():
    return build_scratch_tokenizer(CATS, [PROFILE, "a Drama, b cat070x Sci Fi-ish"], csid_levels=[4, 2])


def _ws(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("with_group", [True, False])
def test_prompts_round_trip_without_unknown_tokens(tok, with_group):
    texts = [novelty_prompt(CTX, with_group=with_group),
             novelty_prompt(CTX, with_group=with_group) + novelty_completion(["Children's", "Sci", "Comedy"], "</s>"),
             relevance_prompt(CTX, "Sci Fi", with_group=with_group),
             relevance_prompt(CTX, "Comedy", with_group=with_group) + relevance_completion(True, "</s>")]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == _ws(text)


def test_every_category_is_one_distinct_id(tok):
    ids = category_token_ids(tok, CATS)
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids}) == len(CATS)
    assert tok.convert_ids_to_tokens([i[0] for i in ids]) == [category_text(c) for c in CATS]
    assert is_single_token(tok, CATS)


def test_category_words_are_whole_tokens_and_profile_words_stay_words(tok):
    """``Sci Fi`` in a prompt is one token (its word ``Sci\\_Fi``); the profile's ``Sci Fi-ish`` is two words, so a
    name never swallows a neighbour and a prefix name (``cat07``) never matches inside a longer word."""
    text = novelty_prompt(PromptContext((1, 0), "a Drama, b cat070x Sci Fi-ish", ("Comedy|Romance", "Sci Fi", "cat07",
                                                                                 "R&B / Soul (live)")))
    tokens = tok.convert_ids_to_tokens(tok(text)["input_ids"])
    assert tokens == ["group:", "<a_1>", "<b_0>", "profile:", "a", "Drama,", "b", "cat070x", "Sci", "Fi-ish",
                      "recent:", "Comedy|Romance", "Sci\\_Fi", "cat07", "R&B\\_/\\_Soul\\_(live)", ";", "novel:"]
    assert tok.unk_token_id not in tok(text)["input_ids"]
    assert tok.decode(tok(text)["input_ids"]) == text


def test_csid_tokens_and_template_words_are_in_the_vocabulary(tok):
    vocab = tok.get_vocab()
    assert csid_vocab([4, 2]) == ["<a_0>", "<a_1>", "<a_2>", "<a_3>", "<b_0>", "<b_1>"]
    assert all(t in vocab for t in csid_vocab([4, 2]) + ["group:", "novel:", "yes", "no", ";"])
    ids = tok(" ".join(csid_tokens((3, 1))))["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<a_3>", "<b_1>"]
    assert (tok.pad_token, tok.eos_token, tok.bos_token, tok.unk_token) == ("<pad>", "</s>", "<s>", "<unk>")


def test_saved_tokenizer_reloads_with_identical_ids(tmp_path):
    saved = build_scratch_tokenizer(CATS, [PROFILE], [4, 2], out_dir=tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok", local_files_only=True)
    text = novelty_prompt(CTX)
    assert loaded(text)["input_ids"] == saved(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == text
    assert not list(tmp_path.glob(".tok.*"))  # no temporary directory left behind


def test_any_names_are_accepted_and_bad_levels_rejected():
    tok = build_scratch_tokenizer(["Drama", " Comedy", ""], [], [2])
    assert is_single_token(tok, ["Drama", " Comedy", ""])
    with pytest.raises(ValueError, match=r"csid_levels must be positive.*\[2, 0\]"):
        build_scratch_tokenizer(["Drama"], [], [2, 0])


def test_unknown_category_is_not_single_token(tok):
    assert not is_single_token(tok, ["Drama", "Horror"])
    assert category_token_ids(tok, ["Horror"]) == [[tok.unk_token_id]]
