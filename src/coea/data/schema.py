"""The canonical interaction table and its validation.

Canonical columns: ``user_id`` (str), ``item_id`` (str), ``category`` (str), ``timestamp`` (int64 seconds),
optional ``rating`` (float). Ids are strings everywhere so that CSV, Parquet and MovieLens agree.

Validation rules (each failure raises :class:`~coea.errors.CoeaInputError` naming file, column, row, fix):
- the table is not empty and has every required column;
- ids and categories are not null or blank; float ids and categories (a Parquet double column) must be whole
  numbers and are read as integers (``1.0`` -> ``"1"``) with a warning;
- timestamps are present and become integer Unix seconds by :func:`coea.data.timestamps.to_epoch_seconds`
  (datetime64 and whole-column milliseconds are converted with a warning; mixed units, and values before
  1990-01-01 or in the future, are errors unless ``allow_any_timestamp``);
- duplicate events (same user, item, timestamp) are dropped, with the count logged; rows of one event that differ
  in the category are resolved as a category conflict first (below), never dropped as duplicates unseen;
- an item mapped to several categories is resolved by majority vote (ties: the lexicographically smallest
  category), with a warning naming how many items were affected, or rejected when ``on_category_conflict``
  is ``"fail"``.
Rows are reported 1-based in the input's order (row 1 = the first data row; dropped duplicates keep their
rows); the loaders turn them into the line of the file (:mod:`coea.data.lines`). Columns are reported by the
file's own names (``names``: canonical -> the file's column, from ``--user-col`` ... / ``data.*_col``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from coea.data.timestamps import to_epoch_seconds
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)

USER, ITEM, CATEGORY, TIMESTAMP, RATING = "user_id", "item_id", "category", "timestamp", "rating"
REQUIRED = (USER, ITEM, CATEGORY, TIMESTAMP)


def _first_bad_row(mask: pd.Series) -> int:
    """1-based data row of the first True in ``mask`` (positional)."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 1


def _check_ids(df: pd.DataFrame, source: str, names: Mapping[str, str]) -> None:
    for col in (USER, ITEM, CATEGORY):
        values = df[col]
        bad = values.isna() | (values.astype(str).str.strip() == "")
        if bad.any():
            raise CoeaInputError(
                f"{int(bad.sum())} null or blank value(s)",
                source=source, column=names[col], row=_first_bad_row(bad),
                fix=f"fill or drop the rows without a {names[col]}",
            )


def as_id_strings(values: pd.Series, source: str, col: str) -> pd.Series:
    """``values`` as stripped strings. Floats (a Parquet id column written as double) must be whole numbers and
    become integer strings (``1.0`` -> ``"1"``, as a CSV or an integer column gives it), with one warning; a float
    with a fraction is an error. Floats among other values (a partitioned log whose parts store the column as
    strings and as doubles, concatenated into one object column) are read the same way: ``1.0`` is user ``"1"``,
    never ``"1.0"``."""
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype="float64")
        return pd.Series(_whole_float_ids(numbers, np.arange(len(numbers)), source, col), index=values.index)
    text = values.astype(str).str.strip()
    # the per-value scan only where floats may hide (pandas' own scan is ~30x faster: an all-string id column of
    # 1M rows took 0.27 s a column to check value by value, more than its conversion)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) not in ("string", "integer"):
        floats = np.fromiter((isinstance(v, (float, np.floating)) for v in values), dtype=bool, count=len(values))
        if floats.any():
            numbers = values[floats].to_numpy(dtype="float64")
            text[floats] = _whole_float_ids(numbers, np.flatnonzero(floats), source, col)
    return text


def _whole_float_ids(numbers: np.ndarray, positions: np.ndarray, source: str, col: str) -> np.ndarray:
    """Float ids (at 0-based ``positions`` of their column) as the integer strings they equal, with one warning."""
    whole = np.isfinite(numbers) & (np.floor(numbers) == numbers) & (np.abs(numbers) < 2.0**63)
    if not whole.all():
        at = int(np.flatnonzero(~whole)[0])
        raise CoeaInputError(f"{col} {float(numbers[at])} is not a whole number (float ids are read as the "
                             "integers they equal)", source=source, column=col, row=int(positions[at]) + 1,
                             fix=f"store {col} as strings or integers")
    log.warning("%s: column '%s' holds floats; read as the integers they equal (1.0 -> '1')", source, col)
    return numbers.astype("int64").astype(str)


def _resolve_category_conflicts(df: pd.DataFrame, source: str, policy: str, category: str) -> pd.DataFrame:
    """One category per item (``category``: the file's name of the category column, for the error)."""
    per_item = df.groupby(ITEM, sort=False)[CATEGORY].nunique()
    conflicted = per_item[per_item > 1]
    if conflicted.empty:
        return df
    if policy == "fail":
        item = conflicted.index[0]
        row = int(df.index[(df[ITEM] == item).to_numpy()][0]) + 1  # the input's row: labels survive dropped dups
        cats = sorted(df.loc[df[ITEM] == item, CATEGORY].unique())[:3]
        raise CoeaInputError(
            f"item {item!r} has {len(cats)}+ categories {cats}", source=source, column=category, row=row,
            fix="give each item one category, or use on_category_conflict=majority",
        )
    counts = df[df[ITEM].isin(conflicted.index)].groupby([ITEM, CATEGORY]).size().reset_index(name="n")
    counts = counts.sort_values([ITEM, "n", CATEGORY], ascending=[True, False, True])
    winner = counts.drop_duplicates(ITEM).set_index(ITEM)[CATEGORY]
    log.warning(
        "%s: %d item(s) had several categories; kept each item's most frequent one (ties: alphabetical)",
        source, len(conflicted),
    )
    df = df.copy()
    mask = df[ITEM].isin(winner.index)
    df.loc[mask, CATEGORY] = df.loc[mask, ITEM].map(winner)
    return df


def validate_interactions(df: pd.DataFrame, source: str, *, on_category_conflict: str = "majority",
                          allow_any_timestamp: bool = False, names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Check ``df`` against the canonical schema and return a clean, chronologically sorted copy. ``names`` maps
    a canonical column to the file's name for it (a mapped column): errors name the column as the file does."""
    names = {col: (names or {}).get(col, col) for col in (*REQUIRED, RATING)}
    if df is None or len(df) == 0:
        raise CoeaInputError("the table is empty", source=source, fix="provide at least one interaction")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise CoeaInputError(
            f"missing required column(s) {missing}; found {list(df.columns)}", source=source, column=missing[0],
            fix="rename the columns or map them with --user-col/--item-col/--category-col/--timestamp-col",
        )
    df = df.reset_index(drop=True)
    _check_ids(df, source, names)
    out = pd.DataFrame({
        USER: as_id_strings(df[USER], source, names[USER]),
        ITEM: as_id_strings(df[ITEM], source, names[ITEM]),
        CATEGORY: as_id_strings(df[CATEGORY], source, names[CATEGORY]),
        TIMESTAMP: to_epoch_seconds(df[TIMESTAMP], source, column=names[TIMESTAMP], allow_any=allow_any_timestamp),
    })
    if RATING in df.columns:
        rating = pd.to_numeric(df[RATING], errors="coerce")
        if rating.isna().any() and not df[RATING].isna().all():
            bad = rating.isna() & df[RATING].notna()
            if bad.any():
                raise CoeaInputError(
                    f"non-numeric rating {str(df[RATING].iloc[_first_bad_row(bad) - 1])!r}", source=source,
                    column=names[RATING], row=_first_bad_row(bad), fix="ratings must be numbers or left empty",
                )
        out[RATING] = rating.astype("float64")
    n_before = len(out)
    # exact duplicates first, the category included: a row that differs only in its category is a conflict for
    # on_category_conflict to resolve (or, under fail, refuse), not a duplicate dropped without a word
    out = out.drop_duplicates(subset=[USER, ITEM, CATEGORY, TIMESTAMP], keep="first")
    out = _resolve_category_conflicts(out, source, on_category_conflict, names[CATEGORY])
    out = out.drop_duplicates(subset=[USER, ITEM, TIMESTAMP], keep="first")  # the same event, its category resolved
    if len(out) < n_before:
        log.info("%s: dropped %d duplicate event(s)", source, n_before - len(out))
    return sort_events(out)


def sort_events(df: pd.DataFrame) -> pd.DataFrame:
    """Chronological order per user; ties broken by item id so the order is deterministic."""
    return df.sort_values([USER, TIMESTAMP, ITEM], kind="mergesort").reset_index(drop=True)
