"""History sequences for the long-term encoder: filtering rules and padded training windows.

Filtering (all configurable in :class:`~coea.dsie.encoder.EncoderConfig`):
- categories with fewer than ``min_category_support`` history events become the UNK token;
- with ``collapse_repeats`` consecutive events of the same category count once (a, a, b -> a, b);
- only the most recent ``max_len + 1`` tokens are used for a user's embedding; for training, each user's
  sequence is cut into windows of ``max_len + 1`` tokens from the end (all of them with ``all_windows``);
- users with fewer than ``min_user_events`` tokens after that are not trained on (they are still embedded
  when they have at least one event; users with none are cold-start);
- each position's target is the next token, or with ``target_gap`` the first event at least that many seconds
  later (:func:`gap_targets`; none: the position is not trained on);
- with ``target: novel`` a position's target is instead the *set* of categories among the next ``horizon``
  events (from ``target_gap`` on) that the user has not had up to that position (:func:`novel_windows`);
- with ``item_input`` the windows read event codes (item and category, :func:`encoder_sequences`) while their
  targets stay category tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, ITEM, TIMESTAMP, USER
from coea.dsie.vocab import PAD, CategoryVocab


@dataclass(frozen=True)
class Windows:
    """Right-padded training windows: ``inputs[i, t]`` predicts ``targets[i, t]`` (PAD = ignore).

    Novel-set windows (:func:`novel_windows`) carry ``targets`` (N, L, H), the next H tokens of each position, and
    ``prior`` (N, V) bool, the tokens of the user's history before the window; a position's target set is its H
    tokens less every token seen up to and including it (``prior`` and the window's inputs so far)."""

    inputs: np.ndarray  # (N, L) int64
    targets: np.ndarray  # (N, L) int64, or (N, L, H) for novel-set windows
    prior: np.ndarray | None = None  # (N, V) bool, novel-set windows only (memory: windows x categories bytes)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.inputs, self.targets) if self.prior is None else (self.inputs, self.targets, self.prior)


def user_sequences(history: pd.DataFrame, vocab: CategoryVocab, collapse_repeats: bool) -> dict[str, list[int]]:
    """user -> token ids in time order (``history`` must be sorted per user, as the split returns it)."""
    out: dict[str, list[int]] = {}
    for user, cats in history.groupby(USER, sort=False)[CATEGORY]:
        ids = vocab.ids(cats.tolist())
        if collapse_repeats and ids:
            ids = [t for i, t in enumerate(ids) if i == 0 or t != ids[i - 1]]
        out[str(user)] = ids
    return out


def encoder_sequences(history: pd.DataFrame, vocab: CategoryVocab, collapse_repeats: bool) -> dict[str, list[int]]:
    """What the encoder reads for each user: :func:`user_sequences`, or with the vocab's items (``item_input``) one
    event code per event (:meth:`~coea.dsie.vocab.CategoryVocab.codes`; ``collapse_repeats`` is then off)."""
    if not vocab.items:
        return user_sequences(history, vocab, collapse_repeats)
    return {str(u): vocab.codes(g[CATEGORY].tolist(), g[ITEM].tolist())
            for u, g in history.groupby(USER, sort=False)[[CATEGORY, ITEM]]}


def user_times(history: pd.DataFrame) -> dict[str, np.ndarray]:
    """user -> event timestamps in the order of :func:`user_sequences` (without ``collapse_repeats``)."""
    return {str(u): t.to_numpy() for u, t in history.groupby(USER, sort=False)[TIMESTAMP]}


def gap_targets(seq: list[int], times: np.ndarray, gap: int) -> list[int]:
    """Each position's target: the token of the first event at least ``gap`` seconds after it (PAD: none). A
    position whose next event is already that late keeps the next token as its target."""
    later = future_starts(len(seq), times, gap)
    return [seq[j] if j < len(seq) else PAD for j in later.tolist()]


def training_windows(seqs: list[list[int]], max_len: int, all_windows: bool, min_events: int,
                     targets: list[list[int]] | None = None, inputs: list[list[int]] | None = None) -> Windows:
    """Cut sequences into (input, target) windows of length ``max_len``, right-padded. ``targets[i][t]`` is the
    target of ``seqs[i][t]`` (default: the next token); a window with no target left is dropped. ``inputs``: what
    the windows read instead of ``seqs`` (event codes, one per token of ``seqs``)."""
    rows_in, rows_out = [], []
    for i, seq in enumerate(seqs):
        if len(seq) < max(min_events, 2):
            continue
        tgt = seq[1:] + [PAD] if targets is None else targets[i]
        read = seq if inputs is None else inputs[i]
        for start, end in _window_bounds(len(seq), max_len, all_windows):
            out = tgt[start:end]
            if any(t != PAD for t in out):
                rows_in.append(_pad(read[start:end], max_len))
                rows_out.append(_pad(out, max_len))
    if not rows_in:
        return Windows(np.zeros((0, max_len), np.int64), np.zeros((0, max_len), np.int64))
    return Windows(np.array(rows_in, dtype=np.int64), np.array(rows_out, dtype=np.int64))


def _window_bounds(length: int, max_len: int, all_windows: bool):
    """(start, end) of each input window of a ``length``-token sequence, the most recent first: every window but
    the first-cut one overlaps the next by one token, the last input token of one being the target of the next."""
    end = length
    while end >= 2:
        yield max(0, end - max_len - 1), end - 1
        if not all_windows:
            break
        end -= max_len


def future_starts(length: int, times: np.ndarray | None, gap: int) -> np.ndarray:
    """Each position's first future index: the next one, or with ``gap`` > 0 the first event at least ``gap``
    seconds later and never the position itself (``length`` where there is none)."""
    nxt = np.arange(1, length + 1)
    if not gap:
        return nxt
    return np.maximum(np.searchsorted(times, np.asarray(times) + gap, side="left"), nxt)


def novel_windows(seqs: list[list[int]], max_len: int, all_windows: bool, min_events: int, horizon: int,
                  vocab_size: int, times: list[np.ndarray] | None = None, gap: int = 0,
                  inputs: list[list[int]] | None = None) -> Windows:
    """Novel-set training windows: position t's targets are the ``horizon`` tokens from its first future index
    (:func:`future_starts`) on, PAD-padded; the loss keeps those not seen up to t (see :class:`Windows`). A window
    none of whose positions has a future token is dropped. ``inputs`` as in :func:`training_windows`."""
    rows_in, rows_out, priors = [], [], []
    for i, seq in enumerate(seqs):
        if len(seq) < max(min_events, 2):
            continue
        starts = future_starts(len(seq), None if times is None else times[i], gap)
        fut = [_pad(seq[s:s + horizon], horizon) for s in starts.tolist()]
        read = seq if inputs is None else inputs[i]
        for start, end in _window_bounds(len(seq), max_len, all_windows):
            out = fut[start:end]
            if any(t != PAD for row in out for t in row):
                rows_in.append(_pad(read[start:end], max_len))
                rows_out.append(out + [[PAD] * horizon] * (max_len - len(out)))
                prior = np.zeros(vocab_size, dtype=bool)
                prior[seq[:start]] = True
                priors.append(prior)
    if not rows_in:
        return Windows(np.zeros((0, max_len), np.int64), np.zeros((0, max_len, horizon), np.int64),
                       np.zeros((0, vocab_size), bool))
    return Windows(np.array(rows_in, dtype=np.int64), np.array(rows_out, dtype=np.int64), np.stack(priors))


def last_windows(seqs: list[list[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent ``max_len`` tokens of each sequence, right-padded, and the index of the last one."""
    inputs = np.array([_pad(s[-max_len:], max_len) for s in seqs], dtype=np.int64).reshape(len(seqs), max_len)
    last = np.array([max(min(len(s), max_len) - 1, 0) for s in seqs], dtype=np.int64)
    return inputs, last


def _pad(ids: list[int], length: int) -> list[int]:
    return list(ids) + [PAD] * (length - len(ids))
