"""Any category name is safe for the LLM vocabulary (issue 14): adversarial names (template words, special tokens,
CSID codes, separators, whitespace-only, unicode, very long) round-trip through prompts and decoding, and never
share a token id with a control, template or CSID token; a name a pretrained tokenizer cannot write fails before
the model loads."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coea.errors import CoeaInputError
from coea.llm.config import ModelConfig
from coea.llm.decode import CategoryIndex, parse_categories
from coea.llm.models import load_pretrained
from coea.llm.prompts import (
    OPTION_WORDS,
    TEMPLATE_WORDS,
    PromptContext,
    category_name,
    category_text,
    novelty_completion,
    novelty_prompt,
    option_words,
    relevance_prompt,
)
from coea.llm.tokenizer import SPECIAL_TOKENS, build_scratch_tokenizer, category_token_ids, check_encodable, csid_vocab
from tests.helpers import tiny_causal_lm

ADVERSARIAL = ["<unk>", "yes", "no", "</s>", "<pad>", "<s>", "<a_1>", "<b_0>", "<c_0>", "novel:", "recent:", "group:",
               "candidate:", "profile:", "relevant:", "user:", "long:", ";", "", " ", "  ", "\t\n", "\u00a0", "\u200b",
               "\ufeff", "\x00", "\ud800", "Sci Fi", "x ; novel: y", "recent: Drama", "Drama", " Drama", "Drama ",
               "日本語 カテゴリ", "Ünïcödé", "🎬 film", "\\", "\\=yes", "\\_", "\\l", "\\u{41}", "A", "%", "a" * 500,
               "<|endoftext|>", "Comedy|Romance"]
NAME = st.one_of(st.sampled_from(ADVERSARIAL), st.text(max_size=12), st.text(alphabet=" ;:<>\\_={}ulx=", max_size=8),
                 st.text(min_size=300, max_size=500))
NAMES = st.lists(NAME, min_size=1, max_size=8, unique=True)
LEVELS = [3, 2, 2]


@given(st.text())
def test_category_word_is_one_safe_word_that_decodes_to_the_name(name):
    word = category_text(name)
    assert category_name(word) == name
    assert word and not any(ch.isspace() for ch in word) and "<" not in word  # one word, never a special/CSID
    assert word not in {*TEMPLATE_WORDS, *OPTION_WORDS, *SPECIAL_TOKENS}


def _context(names: list[str]) -> PromptContext:
    """Every section a prompt can have, each holding adversarial names (the profile quotes them raw)."""
    return PromptContext(csid=(2, 1), profile="fans of " + " , ".join(names) + " </s> <a_1>",
                         short_term=tuple(names[:3]), code=(2, 1, 1), long_term=tuple(names[-2:]))


@settings(max_examples=60, deadline=None)
@given(NAMES)
def test_scratch_vocabulary_gives_every_name_its_own_token_and_round_trips(names):
    ctx = _context(names)
    tok = build_scratch_tokenizer(names, [ctx.profile, " ".join(option_words(True, 2))], LEVELS)
    reserved = {tok.convert_tokens_to_ids(t) for t in [*SPECIAL_TOKENS, *csid_vocab(LEVELS), *TEMPLATE_WORDS,
                                                       *OPTION_WORDS]}
    ids = category_token_ids(tok, names)
    assert all(len(i) == 1 for i in ids) and len({i[0] for i in ids}) == len(names)  # one distinct token each
    assert not reserved & {i[0] for i in ids}  # no id shared with a control, template or CSID token
    text = novelty_prompt(ctx) + novelty_completion(names, tok.eos_token)
    seq = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in seq and seq.count(tok.eos_token_id) == 1 and seq[-1] == tok.eos_token_id
    assert sum(t in {tok.convert_tokens_to_ids(c) for c in csid_vocab(LEVELS)} for t in seq) == 5  # group + user
    completion = seq[len(seq) - len(names) - 1:-1]
    index = CategoryIndex(tok, names)
    assert [index.categories[index.first_ids.tolist().index(t)] for t in completion] == names  # decode by id
    assert parse_categories(tok.decode(completion), index, k=len(names)) == names  # decode by text
    for name, (cid,) in zip(names, ids, strict=True):
        assert tok(relevance_prompt(ctx, name), add_special_tokens=False)["input_ids"][-1] == cid


@functools.cache
def _byte_bpe():
    """A pretrained-style byte-level BPE tokenizer (trained here on a few lines) with the CSID codes added as
    special tokens, as load_pretrained adds them: it spells any text with sub-word pieces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [" ".join([*TEMPLATE_WORDS, *OPTION_WORDS, "Drama Comedy Sci Fi fans of the group"])] * 20
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=[*SPECIAL_TOKENS, "<|endoftext|>", "[SEP]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                  eos_token="</s>", additional_special_tokens=["<|endoftext|>", "[SEP]"])
    tok.add_tokens(csid_vocab(LEVELS), special_tokens=True)
    return tok


@settings(max_examples=60, deadline=None)
@given(NAMES)
def test_pretrained_tokenizer_spells_every_name_and_the_trie_decodes_it_back(names):
    tok = _byte_bpe()
    check_encodable(tok, names, what="a byte-level BPE")  # no unknown, special or shared ids
    reserved = set(tok.all_special_ids) | set(tok.get_added_vocab().values())
    index = CategoryIndex(tok, names)
    ctx = _context(names)
    for c, name in enumerate(names):
        ids = index.token_ids[c]
        assert not reserved & set(ids)
        assert tok(relevance_prompt(ctx, name), add_special_tokens=False)["input_ids"][-len(ids):] == ids
        node = index.root
        for t in ids:  # the in-prompt ids walk the trie to this very category
            node = node.children[t]
        assert node.category == c
        assert category_name(tok.decode(ids).strip()) == name


def test_a_special_token_inside_a_name_is_refused_with_one_line():
    with pytest.raises(CoeaInputError, match=r"category 'x\[SEP\]' cannot be written for a BPE: .* special token"
                       r" \(fix: rename the category") as err:
        check_encodable(_byte_bpe(), ["Drama", "x[SEP]"], what="a BPE")
    assert "\n" not in str(err.value)


def test_unwritable_name_fails_before_the_pretrained_model_loads(tmp_path):
    """A word-level base tokenizer cannot write ``yes`` (its word is ``\\=yes``): load_pretrained refuses it
    before reading any weights (deleted here, so reaching them would be a different error)."""
    base = tiny_causal_lm(tmp_path / "base", ["Drama", "yes", *TEMPLATE_WORDS])
    for weights in base.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(CoeaInputError, match=r"category 'yes' cannot be written .* '\\\\=yes' contains the unknown"):
        load_pretrained(ModelConfig(base_model=str(base)), [2], categories=["Drama", "yes"])
