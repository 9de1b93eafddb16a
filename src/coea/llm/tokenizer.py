"""The scratch word-level tokenizer, and how category names map to token ids under any tokenizer.

Scratch tokenizer: a ``tokenizers`` WordLevel model whose vocabulary is the special tokens, every CSID level
code token, the prompt template words, every word of the extra texts (group profiles) and every category name.
Each category name is exactly ONE token wherever it stands as a whitespace-delimited unit of a prompt, even when
it contains spaces (``Sci Fi``) or is a prefix of another name (``Comedy`` / ``Comedy|Romance``).

How: the pre-tokenizer is a ``Split`` regex (kept with ``invert=True``, i.e. its matches are the pieces)::

    (?<!\\S)(?:<names with whitespace, longest first>)(?!\\S)  |  \\S+

so a piece is either a whole whitespace-bounded multi-word category name or one whitespace-delimited word (which
covers every name without whitespace). We do not use ``tokenizers`` added tokens for category names: added tokens
are found by a leftmost-longest Aho-Corasick scan *before* pre-tokenisation, and ``single_word=True`` only checks
alphanumeric boundaries, so ``Drama,`` in a profile would become ``Drama`` + ``,`` (breaking the round trip) and
``cat07`` would match inside ``cat07x`` without ``single_word``. The regex matches whole whitespace-bounded units.

Decoding: no decoder is set, so ``decode`` joins tokens with one space, the exact inverse of the split for
whitespace-normalised text; ``clean_up_tokenization_spaces=False`` keeps names such as ``Children's`` intact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coea.errors import CoeaInputError
from coea.llm.prompts import NOVEL_MARK, TEMPLATE_WORDS, csid_token

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``target``; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "dir")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def csid_vocab(csid_levels: Sequence[int]) -> list[str]:
    """Every CSID code token, level by level: ``[4, 2]`` -> ``<a_0> .. <a_3> <b_0> <b_1>``."""
    if any(int(n) <= 0 for n in csid_levels):
        raise ValueError(f"csid_levels must be positive code counts, got {list(csid_levels)!r}")
    return [csid_token(level, code) for level, n in enumerate(csid_levels) for code in range(int(n))]


def check_category_names(categories: Iterable[str]) -> list[str]:
    """Distinct names in first-seen order; a name must be non-empty and not start or end with whitespace."""
    names = [str(c) for c in categories]
    for row, name in enumerate(names):
        if not name.strip() or name != name.strip():
            raise CoeaInputError(f"category name {name!r} is empty or has leading/trailing whitespace", row=row,
                                 fix="strip whitespace from category names in the data")
    return list(dict.fromkeys(names))


def _literal(text: str) -> str:
    """``text`` as an Oniguruma literal: every non-alphanumeric character as ``\\x{HEX}``."""
    return "".join(ch if ch.isalnum() else f"\\x{{{ord(ch):X}}}" for ch in text)


def name_split_pattern(categories: Sequence[str]) -> str | None:
    """The pre-tokenizer regex (see the module doc), or None when no name contains whitespace."""
    spaced = sorted({c for c in categories if any(ch.isspace() for ch in c)}, key=lambda c: (-len(c), c))
    if not spaced:
        return None
    alternatives = "|".join(_literal(c) for c in spaced)  # leftmost-first: longest names are tried first
    return rf"(?<!\S)(?:{alternatives})(?!\S)|\S+"


def _wordlevel(vocab: dict[str, int], names: Sequence[str]) -> PreTrainedTokenizerFast:
    """The scratch tokenizer over ``vocab`` (token -> id), pre-tokenised so that each of ``names`` is one piece."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    pattern = name_split_pattern(names)
    backend.pre_tokenizer = (pre_tokenizers.WhitespaceSplit() if pattern is None
                             else pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, unk_token=UNK, bos_token=BOS,
                                   eos_token=EOS, clean_up_tokenization_spaces=False)


def build_scratch_tokenizer(categories: Sequence[str], extra_texts: Iterable[str], csid_levels: Sequence[int],
                            out_dir: Path | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over specials, CSID tokens, template words, words of ``extra_texts``, categories.

    ``csid_levels`` is the number of codes per CSID level (e.g. ``[4, 4]``). When ``out_dir`` is given the
    tokenizer is also saved there (atomically).
    """
    names = check_category_names(categories)
    words = [w for text in extra_texts for w in str(text).split()]
    tokens = dict.fromkeys([*SPECIAL_TOKENS, *csid_vocab(csid_levels), *TEMPLATE_WORDS, *words, *names])
    tokenizer = _wordlevel({t: i for i, t in enumerate(tokens)}, names)
    if out_dir is not None:
        with atomic_dir(Path(out_dir)) as tmp:
            tokenizer.save_pretrained(tmp)
    return tokenizer


def category_token_ids(tokenizer: PreTrainedTokenizerBase, categories: Sequence[str], *,
                       context: str = NOVEL_MARK) -> list[list[int]]:
    """Token ids of each name as it appears after a space in a prompt (several ids for a BPE tokenizer).

    Computed as ``ids(context + " " + name)`` minus the longest common prefix with ``ids(context)``, so that
    tokenizers which merge a leading space into the word (``Ġname``, ``▁name``) give the in-prompt ids.
    """
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    full = tokenizer([f"{context} {name}" for name in categories], add_special_tokens=False)["input_ids"]
    out = []
    for ids in full:
        common = 0
        while common < min(len(ctx), len(ids)) and ids[common] == ctx[common]:
            common += 1
        out.append(list(ids[common:]))
    return out


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
    """A copy of a scratch (WordLevel) tokenizer with ``names`` appended as new single tokens.

    Every existing token keeps its id, so a model over the old vocabulary only needs its embedding matrix
    enlarged. The pre-tokenizer regex is rebuilt over every multi-word name (the vocabulary's tokens that contain
    whitespace are exactly those: words of texts never do).
    """
    vocab = dict(tokenizer.get_vocab())
    if type(tokenizer.backend_tokenizer.model).__name__ != "WordLevel":
        raise ValueError("extend_scratch_tokenizer needs the scratch WordLevel tokenizer; a pretrained "
                         "tokenizer spells new names with its existing sub-word pieces")
    for name in check_category_names(names):
        vocab.setdefault(name, len(vocab))
    return _wordlevel(vocab, [t for t in vocab if any(ch.isspace() for ch in t)])
