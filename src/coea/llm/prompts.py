r"""Prompt templates of the Novelty LLM (N-LLM) and the Relevance LLM (R-LLM), written down in one place.

Both share one *context*: the user's group CSID tokens, the group's text profile and the user's short-term
categories (most recent last). Category names are written as one whitespace-free *category word*
(:func:`category_text`): verbatim for ordinary names (``Drama``, ``Comedy|Romance``), escaped otherwise, so that
whatever a category is called it never reads as a template word, a special token or a CSID code, and never splits
into two prompt words. With the scratch tokenizer each category word is one token, with a pretrained tokenizer
it is several.

Escapes (a backslash and one character; :func:`category_name` is the exact inverse): ``\\`` a backslash, ``\_`` a
space, ``\l`` a ``<`` (special tokens and CSID codes all start with ``<``), ``\u{HEX}`` any other whitespace,
control, format, private-use or unassigned character, and a leading ``\=`` marks a name that would otherwise be a
template word (``yes``, ``novel:``, ``;`` ...) or empty: ``Sci Fi`` -> ``Sci\_Fi``, ``</s>`` -> ``\l/s>``, ``yes``
-> ``\=yes``, ``""`` -> ``\=``.

N-LLM prompt and completion (the completion is what SFT trains on; decoding fills it)::

    group: <a_2> <b_0> profile: Group 2-0: 105 users. ... recent: Drama Comedy|Romance ; novel:
     Thriller Horror </s>

R-LLM prompt and completion (P(yes) at the answer position is the relevance score)::

    group: <a_2> <b_0> profile: ... recent: Drama Comedy|Romance ; candidate: Thriller
     yes </s>

The candidate is the R-LLM prompt's LAST word on purpose: the answer is read at the candidate's own position,
whose hidden state starts from the candidate's embedding. With a trailing ``; relevant:`` the answer position
had to learn to attend two tokens back first, and a small model sat at the label prior (P(yes) the same for
every candidate) for hundreds of steps before it did (measured: ~350 vs ~50 steps on a candidate-only rule).

``with_group=False`` drops the group tokens and the profile (the ``w/o CSID`` ablation), and the user's code.

Optional sections (``user:``, ``seq:`` and ``items:`` on by default: ``llm.data.full_csid``, ``sequence`` 50 and
``items`` 50; ``long:`` off, ``llm.data.long_term`` 0), shown above without them: ``user: <a_2> <b_0> <c_3>`` after the
profile, the user's own full CSID code (every level, not only the group prefix; only with the group), and
``long: Drama Comedy`` before ``recent:``, the user's most frequent categories before the cut (a long-term
summary), and ``seq: Drama Drama Comedy ...`` after it, the categories of the user's last events before the cut in
order, repeats included (what the DSIE encoder and ``sasrec`` read), and ``items: \i1193 \i661 ...`` after that,
the items (movies) of the user's last events before the cut in order (what the encoder reads with
``dsie.encoder.item_input``). All are history, not group information, so ``w/o CSID`` prompts keep them. Their
marker words are :data:`OPTION_WORDS`; a scratch tokenizer gets them only when a model uses them
(:func:`option_words`). An *item word* (:func:`item_text`) is ``\i`` and the item id escaped as a category name
is: no category word starts with ``\i`` (it is no escape), so an item never reads as a category, template word,
special token or CSID code. The scratch tokenizer holds the items of the histories it was built from as one
token each; an item it never saw is its unknown token.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL_LETTERS = "abcdefgh"
YES, NO = "yes", "no"
NOVEL_MARK, CANDIDATE_MARK, RELEVANT_MARK = "novel:", "candidate:", "relevant:"
TEMPLATE_WORDS = ("group:", "profile:", "recent:", ";", NOVEL_MARK, CANDIDATE_MARK, RELEVANT_MARK, YES, NO)
USER_MARK, LONG_MARK, SEQ_MARK, ITEMS_MARK = "user:", "long:", "seq:", "items:"
OPTION_WORDS = (USER_MARK, LONG_MARK, SEQ_MARK, ITEMS_MARK)  # the optional sections' markers (see the module doc)
ESCAPE = "\\"
ITEM_MARK = ESCAPE + "i"  # leads an item word (never a category word's start: ``\i`` is no escape)
RESERVED_MARK = ESCAPE + "="  # leads a category word whose name is a template word or empty
_RESERVED = frozenset({*TEMPLATE_WORDS, *OPTION_WORDS, ""})
_ESCAPED = {ESCAPE: ESCAPE + ESCAPE, " ": ESCAPE + "_", "<": ESCAPE + "l"}
_UNESCAPED = {ESCAPE: ESCAPE, "_": " ", "l": "<"}
_HIDDEN = ("Z", "C")  # unicode categories escaped as \u{HEX}: separators, controls, format, surrogates, unassigned
_CODE = re.compile(r"u\{([0-9A-F]{1,6})\}")


@dataclass(frozen=True)
class PromptContext:
    """What a prompt says about one user (users sharing it share the prompt)."""

    csid: tuple[int, ...]  # the group's CSID prefix, e.g. (2, 0)
    profile: str  # the group's text profile
    short_term: tuple[str, ...]  # distinct recent categories, most recent last
    code: tuple[int, ...] = ()  # the user's own full CSID code (``user:`` section); () = no section
    long_term: tuple[str, ...] = ()  # the user's most frequent categories before the cut (``long:``); () = none
    sequence: tuple[str, ...] = ()  # the categories of the user's last events before the cut, in order (``seq:``)
    items: tuple[str, ...] = ()  # the items of the user's last events before the cut, in order (``items:``)


def _escape_char(ch: str) -> str:
    if ch in _ESCAPED:
        return _ESCAPED[ch]
    return _escape_hidden(ch)


def _escape_hidden(ch: str) -> str:
    """``ch`` itself, or ``\\u{HEX}`` for whitespace and invisible characters (tokenizers split or drop them)."""
    if ch.isspace() or unicodedata.category(ch)[0] in _HIDDEN:
        return f"{ESCAPE}u{{{ord(ch):X}}}"
    return ch


@functools.lru_cache(maxsize=1 << 16, typed=True)  # a pure function of a few category names, called for every prompt
def category_text(name: str) -> str:
    """The one whitespace-free word that writes category ``name`` in prompts and completions (module doc)."""
    word = "".join(_escape_char(ch) for ch in str(name))
    return RESERVED_MARK + word if word in _RESERVED else word


@functools.lru_cache(maxsize=1 << 16)  # a pure function of an item id, called for every event of every prompt
def item_text(item: str) -> str:
    """The one whitespace-free word that writes item ``item`` in prompts: :data:`ITEM_MARK` and the id with the
    escapes of a category word (module doc)."""
    return ITEM_MARK + "".join(_escape_char(ch) for ch in str(item))


def category_name(word: str) -> str:
    """The category name a category word writes: the inverse of :func:`category_text`; ValueError if malformed."""
    body = word[len(RESERVED_MARK):] if word.startswith(RESERVED_MARK) else word
    out, i = [], 0
    while i < len(body):
        if body[i] != ESCAPE:
            out.append(body[i])
            i += 1
            continue
        code = _CODE.match(body, i + 1)
        if code is not None:
            out.append(chr(int(code.group(1), 16)))
            i = code.end()
        elif body[i + 1:i + 2] in _UNESCAPED:
            out.append(_UNESCAPED[body[i + 1]])
            i += 2
        else:
            raise ValueError(f"{word!r} is not a category word (a bad escape at character {i})")
    return "".join(out)


@functools.lru_cache(maxsize=1 << 12)  # a pure function of the few group profiles, called for every prompt
def profile_text(profile: str) -> str:
    """A group profile as prompt text: whitespace normalised; ``<`` and invisible characters escaped as in category
    words, so that no special token or CSID code appears inside it (profiles quote category names)."""
    words = profile.replace("<", _ESCAPED["<"]).split()
    return " ".join("".join(map(_escape_hidden, w)) for w in words)


def csid_token(level: int, code: int) -> str:
    """The token of one CSID level code, e.g. level 1 code 12 -> ``<b_12>``."""
    return f"<{LEVEL_LETTERS[level]}_{int(code)}>"


def csid_tokens(csid: Sequence[int]) -> list[str]:
    return [csid_token(level, code) for level, code in enumerate(csid)]


def parse_csid(text: str) -> tuple[int, ...]:
    """``"2-0"`` (as stored in groups.parquet) -> ``(2, 0)``."""
    return tuple(int(c) for c in text.split("-")) if text else ()


def option_words(full_csid: bool, long_term: int, sequence: int = 0, items: int = 0) -> tuple[str, ...]:
    """The marker words the optional sections of these prompt options add (for a scratch tokenizer)."""
    return ((USER_MARK,) * bool(full_csid) + (LONG_MARK,) * (long_term > 0) + (SEQ_MARK,) * (sequence > 0)
            + (ITEMS_MARK,) * (items > 0))


@functools.lru_cache(maxsize=1 << 12)  # the R-LLM prompts of one cut share their context
def context_text(ctx: PromptContext, *, with_group: bool = True) -> str:
    parts = []
    if with_group:
        parts += ["group:", *csid_tokens(ctx.csid), "profile:", profile_text(ctx.profile)]
        if ctx.code:
            parts += [USER_MARK, *csid_tokens(ctx.code)]
    if ctx.long_term:
        parts += [LONG_MARK, *map(category_text, ctx.long_term)]
    if ctx.sequence:
        parts += [SEQ_MARK, *map(category_text, ctx.sequence)]
    if ctx.items:
        parts += [ITEMS_MARK, *map(item_text, ctx.items)]
    parts += ["recent:", *map(category_text, ctx.short_term), ";"]
    return " ".join(parts)


def sequence_tail_span(prompt: str, last: int) -> tuple[int, int] | None:
    """Character span ``(start, end)`` of the last ``last`` category words of ``prompt``'s ``seq:`` section (the
    history's categories in order; ``end`` is where the section's last word ends), or None when the prompt has no
    such section. Markers are found from the prompt's end: ``recent:`` always follows the section (after an
    ``items:`` section, if any), and no category, item or profile word written after ``seq:`` can read as a
    marker (category and item words are escaped, :func:`category_text`, :func:`item_text`)."""
    recent = prompt.rfind(" recent: ")
    if recent < 0 or last <= 0:
        return None
    items = prompt.rfind(f" {ITEMS_MARK} ", 0, recent)
    end = items if items >= 0 else recent
    seq = prompt.rfind(f" {SEQ_MARK} ", 0, end) + 1  # an escaped name (``\=seq:``) has no space before it
    if seq == 0 and not prompt.startswith(f"{SEQ_MARK} "):
        return None
    body = seq + len(SEQ_MARK) + 1
    starts = [body + m.start() for m in re.finditer(r"\S+", prompt[body:end])]
    if not starts:
        return None
    return starts[-min(last, len(starts))], end


def novelty_prompt(ctx: PromptContext, *, with_group: bool = True) -> str:
    """The N-LLM prompt; the model continues with novel category names."""
    return f"{context_text(ctx, with_group=with_group)} {NOVEL_MARK}"


def novelty_completion(categories: Sequence[str], eos: str) -> str:
    """The N-LLM target: the category words, space-separated, then the end-of-sequence token."""
    return " " + " ".join([*map(category_text, categories), eos])


def relevance_prompt(ctx: PromptContext, candidate: str, *, with_group: bool = True) -> str:
    """The R-LLM prompt; the next token is ``yes`` or ``no``."""
    return f"{context_text(ctx, with_group=with_group)} {CANDIDATE_MARK} {category_text(candidate)}"


def relevance_completion(relevant: bool, eos: str) -> str:
    return f" {YES if relevant else NO} {eos}"
