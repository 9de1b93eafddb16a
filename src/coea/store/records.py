"""The recommendation frame contract shared by the KV store and the GCS export.

A recommendation frame has one row per (key, rank): ``<key_column>`` (str; ``user_id`` or ``group_id``),
``rank`` (int, 1-based and contiguous per key), ``category`` (str) and ``score`` (finite float).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coea.data.schema import as_id_strings
from coea.errors import CoeaInputError
from coea.store.errors import StoreError

REC_COLUMNS: tuple[str, ...] = ("rank", "category", "score")
KEY_COLUMNS: tuple[str, ...] = ("user_id", "group_id")


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended category for a user or group; ``rank`` is 1-based (1 = best)."""

    category: str
    score: float
    rank: int


VERSION_ID_RE = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{8}")  # what new_version_id makes (fullmatch)


def new_version_id() -> str:
    """A sortable, unique version id: UTC timestamp (microseconds) + 8 hex chars of a uuid4. Ids made later sort
    after earlier ones as strings (``VERSION_ID_RE`` matches exactly these ids)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def validate_recs(frame: pd.DataFrame | None, key_column: str, *, name: str) -> pd.DataFrame:
    """Check a recommendation frame and return a clean copy sorted by (key, rank).

    Keys and categories become ``str`` (whole floats as the integers they equal, ``1.0`` -> ``"1"``, as the data
    loader reads ids), ranks ``int64``, scores ``float64``. Raises ``StoreError`` naming the frame's 1-based row
    (its position, whatever its index).
    """
    if not isinstance(frame, pd.DataFrame):
        raise StoreError(f"expected a pandas DataFrame, got {type(frame).__name__}", source=name,
                         fix=f"pass a DataFrame with columns {key_column}, rank, category, score")
    for column in (key_column, *REC_COLUMNS):
        if column not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise StoreError(f"missing column (have: {have})", source=name, column=column,
                             fix=f"add '{column}': expected {key_column}, rank, category, score")
    if frame.empty:
        raise StoreError("empty frame (0 rows)", source=name, fix=f"pass at least one row per {key_column}")
    out = frame[[key_column, *REC_COLUMNS]].reset_index(drop=True)
    for column in out.columns:
        nulls = np.flatnonzero(out[column].isna().to_numpy())
        if nulls.size:
            raise StoreError("null value", source=name, column=column, row=int(nulls[0]) + 1,
                             fix="drop or fill rows with missing values")
    out = out.assign(**{key_column: _as_ids(out[key_column], name, key_column),
                        "category": _as_ids(out["category"], name, "category"),
                        "rank": _as_int(out["rank"], name), "score": _as_float(out["score"], name)})
    out = out.sort_values([key_column, "rank"], kind="stable")
    rows = out.index.to_numpy() + 1  # each sorted row's 1-based row in the frame, for the errors
    out = out.reset_index(drop=True)
    _check_ranks(out, key_column, name, rows)
    return out


def _shown(value: object) -> str:
    """A cell as the user wrote it: a numpy scalar as its Python value (``0``, not ``np.int64(0)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _as_ids(values: pd.Series, name: str, column: str) -> pd.Series:
    """Keys and categories as strings. Floats (a Parquet double column) become the integers they equal, as the data
    loader reads ids (``1.0`` -> ``"1"``, so a lookup of ``"1"`` finds it); a fraction is refused."""
    if not pd.api.types.is_float_dtype(values):
        return values.astype(str)
    try:
        return as_id_strings(values, name, column)
    except CoeaInputError as err:
        raise StoreError(err.problem, source=name, column=column, row=err.row, fix=err.fix) from err


def _as_int(ranks: pd.Series, name: str) -> pd.Series:
    values = pd.to_numeric(ranks, errors="coerce")
    bad = np.flatnonzero((values.isna() | (values != np.round(values)) | (values < 1)).to_numpy())
    if bad.size:
        raise StoreError(f"rank {_shown(ranks.iloc[bad[0]])} is not an integer >= 1", source=name, column="rank",
                         row=int(bad[0]) + 1, fix="use 1-based integer ranks")
    return values.astype("int64")


def _as_float(scores: pd.Series, name: str) -> pd.Series:
    values = pd.to_numeric(scores, errors="coerce").astype("float64")
    bad = np.flatnonzero(~np.isfinite(values.to_numpy()))
    if bad.size:
        raise StoreError(f"score {_shown(scores.iloc[bad[0]])} is not a finite number", source=name,
                         column="score", row=int(bad[0]) + 1, fix="use finite float scores")
    return values


def _check_ranks(out: pd.DataFrame, key_column: str, name: str, rows: np.ndarray) -> None:
    """Ranks 1..K per key and no category twice per key; ``rows``: each row of ``out``'s row in the input. The error
    names the input row of the first offending row (in key, rank order): the gap's or repeat's, the repeated
    category's second row."""
    expected = out.groupby(key_column, sort=False).cumcount().to_numpy() + 1
    bad = np.flatnonzero(out["rank"].to_numpy() != expected)
    if bad.size:
        key = out[key_column].iloc[bad[0]]
        raise StoreError(f"ranks of {key_column}={key!r} are not 1..K without gaps or repeats (rank "
                         f"{int(out['rank'].iloc[bad[0]])} where {int(expected[bad[0]])} belongs)", source=name,
                         column="rank", row=int(rows[bad[0]]), fix="re-rank with groupby(key).cumcount() + 1")
    dup = np.flatnonzero(out.duplicated([key_column, "category"]).to_numpy())
    if dup.size:
        key = out[key_column].iloc[dup[0]]
        raise StoreError(f"category {out['category'].iloc[dup[0]]!r} repeats for {key_column}={key!r}",
                         source=name, column="category", row=int(rows[dup[0]]),
                         fix="keep one row per (key, category)")


def iter_key_blocks(out: pd.DataFrame, key_column: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(key, start, stop)`` row ranges of a frame sorted by key (from ``validate_recs``)."""
    keys = out[key_column].to_numpy()
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = [0, *cuts.tolist()]
    stops = [*cuts.tolist(), len(keys)]
    for start, stop in zip(starts, stops, strict=True):
        yield str(keys[start]), start, stop


def encode_values(out: pd.DataFrame, key_column: str) -> list[tuple[str, str]]:
    """One ``(key, JSON)`` pair per key; the JSON is the list of ``{category, score}`` in rank order."""
    categories = out["category"].tolist()
    scores = out["score"].tolist()
    pairs = []
    for key, start, stop in iter_key_blocks(out, key_column):
        items = [{"category": categories[i], "score": scores[i]} for i in range(start, stop)]
        pairs.append((key, json.dumps(items, separators=(",", ":"))))
    return pairs


def decode_value(text: str, *, what: str = "a key", source: str | Path | None = None) -> list[Recommendation]:
    """Inverse of ``encode_values`` for one key: ranks come from list positions (1-based). A value that is not a
    JSON list of ``{category, score}`` (a damaged store) raises ``StoreError`` naming ``what`` (e.g. ``user 'u1'``)
    and the store (``source``)."""
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise TypeError(f"a JSON {type(items).__name__}, not a list")
        if not items:  # a publish writes one item per rank, never an empty list
            raise ValueError("an empty list")
        return [_recommendation(item, index) for index, item in enumerate(items, start=1)]
    except (ValueError, TypeError) as err:
        first = (str(err).splitlines() or [""])[0][:120]
        raise StoreError(f"the stored recommendations of {what} are damaged ({type(err).__name__}: {first}); "
                         "expected a JSON list of {category, score}", source=source,
                         fix="re-publish: re-run `coea run` or the pipelines' publish step") from err


def _recommendation(item: object, rank: int) -> Recommendation:
    score = item.get("score") if isinstance(item, dict) else None
    if not (isinstance(item, dict) and isinstance(item.get("category"), str) and isinstance(score, int | float)
            and not isinstance(score, bool) and np.isfinite(score)):
        raise ValueError(f"item {rank} is {str(item)[:60]!r}")
    return Recommendation(category=item["category"], score=float(score), rank=rank)


def encode_metadata(metadata: dict[str, Any] | None) -> str:
    """A version's metadata as stored: a JSON object (``{}`` for ``None``); else ``StoreError``."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        raise StoreError(f"metadata must be a dict, got {type(metadata).__name__}", source="metadata",
                         fix="pass a JSON-serialisable dict")
    try:
        return json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"metadata is not JSON-serialisable: {exc}", source="metadata",
                         fix="use str/int/float/bool/list/dict values") from exc


def decode_metadata(text: str, version: str, *, source: str | Path | None = None) -> dict[str, Any]:
    """Inverse of ``encode_metadata``; damaged metadata (not a JSON object) raises ``StoreError`` naming the version
    and the store (``source``)."""
    try:
        metadata = json.loads(text)
        if not isinstance(metadata, dict):
            raise TypeError(f"a JSON {type(metadata).__name__}, not an object")
        return metadata
    except (ValueError, TypeError) as err:
        first = (str(err).splitlines() or [""])[0][:120]
        raise StoreError(f"the metadata of version {version!r} is damaged ({type(err).__name__}: {first}); expected "
                         "a JSON object", source=source,
                         fix="re-publish: re-run `coea run` or the pipelines' publish step (the new version is active; "
                             "the damaged one goes once keep_versions newer ones are kept)") from err
