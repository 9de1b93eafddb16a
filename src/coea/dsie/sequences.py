"""History sequences for the long-term encoder: filtering rules and padded training windows.

Filtering (all configurable in :class:`~coea.dsie.encoder.EncoderConfig`):
- categories with fewer than ``min_category_support`` history events become the UNK token;
- with ``collapse_repeats`` consecutive events of the same category count once (a, a, b -> a, b);
- only the most recent ``max_len + 1`` tokens are used for a user's embedding; for training, each user's
  sequence is cut into windows of ``max_len + 1`` tokens from the end (all of them with ``all_windows``);
- users with fewer than ``min_user_events`` tokens after that are not trained on (they are still embedded
  when they have at least one event; users with none are cold-start);
- each position's target is the next token, or with ``target_gap`` the first event at least that many seconds
  later (:func:`gap_targets`; none: the position is not trained on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, TIMESTAMP, USER
from coea.dsie.vocab import PAD, CategoryVocab


@dataclass(frozen=True)
class Windows:
    """Right-padded training windows: ``inputs[i, t]`` predicts ``targets[i, t]`` (PAD = ignore)."""

    inputs: np.ndarray  # (N, L) int64
    targets: np.ndarray  # (N, L) int64


def user_sequences(history: pd.DataFrame, vocab: CategoryVocab, collapse_repeats: bool) -> dict[str, list[int]]:
    """user -> token ids in time order (``history`` must be sorted per user, as the split returns it)."""
    out: dict[str, list[int]] = {}
    for user, cats in history.groupby(USER, sort=False)[CATEGORY]:
        ids = vocab.ids(cats.tolist())
        if collapse_repeats and ids:
            ids = [t for i, t in enumerate(ids) if i == 0 or t != ids[i - 1]]
        out[str(user)] = ids
    return out


def user_times(history: pd.DataFrame) -> dict[str, np.ndarray]:
    """user -> event timestamps in the order of :func:`user_sequences` (without ``collapse_repeats``)."""
    return {str(u): t.to_numpy() for u, t in history.groupby(USER, sort=False)[TIMESTAMP]}


def gap_targets(seq: list[int], times: np.ndarray, gap: int) -> list[int]:
    """Each position's target: the token of the first event at least ``gap`` seconds after it (PAD: none). A
    position whose next event is already that late keeps the next token as its target."""
    later = np.searchsorted(times, np.asarray(times) + gap, side="left")  # first index with time >= t + gap
    later = np.maximum(later, np.arange(1, len(seq) + 1))  # never the position itself (gap 0: the next one)
    return [seq[j] if j < len(seq) else PAD for j in later.tolist()]


def training_windows(seqs: list[list[int]], max_len: int, all_windows: bool, min_events: int,
                     targets: list[list[int]] | None = None) -> Windows:
    """Cut sequences into (input, target) windows of length ``max_len``, right-padded. ``targets[i][t]`` is the
    target of ``seqs[i][t]`` (default: the next token); a window with no target left is dropped."""
    rows_in, rows_out = [], []
    for i, seq in enumerate(seqs):
        if len(seq) < max(min_events, 2):
            continue
        tgt = seq[1:] + [PAD] if targets is None else targets[i]
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            out = tgt[start:end - 1]
            if any(t != PAD for t in out):
                rows_in.append(_pad(seq[start:end - 1], max_len))
                rows_out.append(_pad(out, max_len))
            if not all_windows:
                break
            end -= max_len
    if not rows_in:
        return Windows(np.zeros((0, max_len), np.int64), np.zeros((0, max_len), np.int64))
    return Windows(np.array(rows_in, dtype=np.int64), np.array(rows_out, dtype=np.int64))


def last_windows(seqs: list[list[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent ``max_len`` tokens of each sequence, right-padded, and the index of the last one."""
    inputs = np.array([_pad(s[-max_len:], max_len) for s in seqs], dtype=np.int64).reshape(len(seqs), max_len)
    last = np.array([max(min(len(s), max_len) - 1, 0) for s in seqs], dtype=np.int64)
    return inputs, last


def _pad(ids: list[int], length: int) -> list[int]:
    return list(ids) + [PAD] * (length - len(ids))
