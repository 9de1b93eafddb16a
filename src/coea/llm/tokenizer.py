"""The scratch word-level tokenizer, and how category names map to token ids under any tokenizer.

Scratch tokenizer: a ``tokenizers`` WordLevel model whose vocabulary is the special tokens, every CSID level
code token, the prompt template words, every word of the extra texts (group profiles, as :func:`profile_text`
writes them) and every category word (:func:`coea.llm.prompts.category_text`). The pre-tokenizer splits at
whitespace. A category word never contains whitespace and is never a special token, a CSID code or a template
word, so each category is exactly ONE token of its own, whatever it is called (``Sci Fi``, ``yes``, ``</s>``,
``<a_1>``, ``;``, `` ``), and a profile never produces a special token or a CSID code (``<`` is escaped there).

Decoding: no decoder is set, so ``decode`` joins tokens with one space, the exact inverse of the split for
whitespace-normalised text; ``clean_up_tokenization_spaces=False`` keeps names such as ``Children's`` intact.

A pretrained tokenizer spells category words with its sub-word pieces; :func:`check_encodable` says, before any
training, when it cannot (an unknown or special token inside a name, or two names with the same ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coea.errors import CoeaInputError
from coea.llm.prompts import NOVEL_MARK, TEMPLATE_WORDS, category_text, csid_token, profile_text
from coea.utils import atomic_dir

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def csid_vocab(csid_levels: Sequence[int]) -> list[str]:
    """Every CSID code token, level by level: ``[4, 2]`` -> ``<a_0> .. <a_3> <b_0> <b_1>``."""
    if any(int(n) <= 0 for n in csid_levels):
        raise ValueError(f"csid_levels must be positive code counts, got {list(csid_levels)!r}")
    return [csid_token(level, code) for level, n in enumerate(csid_levels) for code in range(int(n))]


def check_category_names(categories: Iterable[str]) -> list[str]:
    """Distinct names in first-seen order (any string is a valid name: see :func:`category_text`)."""
    return list(dict.fromkeys(str(c) for c in categories))


def _wordlevel(vocab: dict[str, int]) -> PreTrainedTokenizerFast:
    """The scratch tokenizer over ``vocab`` (token -> id), split at whitespace."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, clean_up_tokenization_spaces=False)


def build_scratch_tokenizer(categories: Sequence[str], extra_texts: Iterable[str], csid_levels: Sequence[int],
                            out_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over specials, CSID tokens, template words, words of ``extra_texts``, categories.

    ``csid_levels`` is the number of codes per CSID level (e.g. ``[4, 4]``). When ``out_dir`` is given the
    tokenizer is also saved there (atomically).
    """
    names = check_category_names(categories)
    words = [w for text in extra_texts for w in profile_text(str(text)).split()]
    tokens = dict.fromkeys([*SPECIAL_TOKENS, *csid_vocab(csid_levels), *TEMPLATE_WORDS, *words,
                            *map(category_text, names)])
    tokenizer = _wordlevel({t: i for i, t in enumerate(tokens)})
    if out_dir is not None:
        with atomic_dir(Path(out_dir)) as tmp:
            tokenizer.save_pretrained(tmp)
    return tokenizer


def word_token_ids(tokenizer: PreTrainedTokenizerBase, words: Sequence[str], *,
                   context: str = NOVEL_MARK) -> list[list[int]]:
    """Token ids of each text as it appears after ``context`` and a space in a prompt (several for a BPE tokenizer).

    Computed as ``ids(context + " " + word)`` minus the longest common prefix with ``ids(context)``, so that
    tokenizers which merge a leading space into the word (``Ġname``, ``▁name``) give the in-prompt ids.
    """
    if not words:
        return []
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    full = tokenizer([f"{context} {word}" for word in words], add_special_tokens=False)["input_ids"]
    out = []
    for ids in full:
        common = 0
        while common < min(len(ctx), len(ids)) and ids[common] == ctx[common]:
            common += 1
        out.append(list(ids[common:]))
    return out


def category_token_ids(tokenizer: PreTrainedTokenizerBase, categories: Sequence[str], *,
                       context: str = NOVEL_MARK) -> list[list[int]]:
    """In-prompt token ids of each category's word (:func:`word_token_ids` of :func:`category_text`)."""
    return word_token_ids(tokenizer, [category_text(c) for c in categories], context=context)


def is_single_token(tokenizer: PreTrainedTokenizerBase, categories: Sequence[str]) -> bool:
    """True when every name is one known (non-unk) token and no two names share it."""
    ids = category_token_ids(tokenizer, categories)
    if any(len(t) != 1 or t[0] == tokenizer.unk_token_id for t in ids):
        return False
    return len({t[0] for t in ids}) == len(ids)


def unknown_names(tokenizer: PreTrainedTokenizerBase, categories: Sequence[str]) -> list[str]:
    """The names that map to no token or to the unknown token (a scratch tokenizer built before they existed)."""
    names = check_category_names(categories)
    unk = tokenizer.unk_token_id
    return [n for n, ids in zip(names, category_token_ids(tokenizer, names), strict=True)
            if not ids or (unk is not None and unk in ids)]


def extend_scratch_tokenizer(tokenizer: PreTrainedTokenizerFast, names: Sequence[str]) -> PreTrainedTokenizerFast:
    """A copy of a scratch (WordLevel) tokenizer with the words of ``names`` appended as new single tokens.

    Every existing token keeps its id, so a model over the old vocabulary only needs its embedding matrix
    enlarged. The pre-tokenizer regex is rebuilt over every multi-word name (the vocabulary's tokens that contain
    whitespace are exactly those: words of texts never do).
    """
    vocab = dict(tokenizer.get_vocab())
    if type(tokenizer.backend_tokenizer.model).__name__ != "WordLevel":
        raise ValueError("extend_scratch_tokenizer needs the scratch WordLevel tokenizer; a pretrained "
                         "tokenizer spells new names with its existing sub-word pieces")
    for name in check_category_names(names):
        vocab.setdefault(category_text(name), len(vocab))
    return _wordlevel(vocab)


def check_encodable(tokenizer: PreTrainedTokenizerBase, categories: Sequence[str], *, what: str) -> None:
    """CoeaInputError unless every category's in-prompt ids are known, hold no special or added token (an end
    token, a CSID code) and differ from every other category's; ``what`` names the tokenizer for the message."""
    reserved = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    unk, seen = tokenizer.unk_token_id, {}
    names = check_category_names(categories)
    for name, ids in zip(names, category_token_ids(tokenizer, names), strict=True):
        problem = ("maps to no token" if not ids else "contains the unknown token" if unk in ids
                   else "contains a special token" if reserved & set(ids)
                   else f"has the same token ids as category {seen[tuple(ids)]!r}" if tuple(ids) in seen else None)
        if problem:
            raise CoeaInputError(f"category {name!r} cannot be written for {what}: its prompt word "
                                 f"{category_text(name)!r} {problem}",
                                 fix="rename the category in the data, or use base_model: scratch (whose "
                                     "vocabulary is built from the data and holds every name)")
        seen[tuple(ids)] = name
