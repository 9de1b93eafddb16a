"""History sequences for the long-term encoder: filtering rules and padded training windows.

Filtering (all configurable in :class:`~coea.dsie.encoder.EncoderConfig`):
- categories with fewer than ``min_category_support`` history events become the UNK token;
- with ``collapse_repeats`` consecutive events of the same category count once (a, a, b -> a, b);
- only the most recent ``max_len + 1`` tokens are used for a user's embedding; for training, each user's
  sequence is cut into windows of ``max_len + 1`` tokens from the end (all of them with ``all_windows``);
- users with fewer than ``min_user_events`` tokens after that are not trained on (they are still embedded
  when they have at least one event; users with none are cold-start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coea.data.schema import CATEGORY, USER
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


def training_windows(seqs: list[list[int]], max_len: int, all_windows: bool, min_events: int) -> Windows:
    """Cut sequences into (input, next-token target) windows of length ``max_len``, right-padded."""
    rows_in, rows_out = [], []
    for seq in seqs:
        if len(seq) < max(min_events, 2):
            continue
        end = len(seq)
        while end >= 2:
            chunk = seq[max(0, end - max_len - 1):end]
            rows_in.append(_pad(chunk[:-1], max_len))
            rows_out.append(_pad(chunk[1:], max_len))
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
