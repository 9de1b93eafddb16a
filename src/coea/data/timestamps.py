"""A timestamp column -> integer Unix seconds, by the rules of the README's 'Data' section.

- ``datetime64`` columns (any unit; tz-aware, or naive = UTC) are converted to seconds with one warning;
- numbers are Unix seconds; a column whose values are all milliseconds (>= 1e11), all microseconds (>= 1e14)
  or all nanoseconds (>= 1e17) is converted to seconds with one warning. The magnitudes cannot be confused for
  any date between 1973 and 5138 (1e11 seconds is the year 5138, 1e11 milliseconds is 1973). A column mixing
  units is an error at the first value whose unit differs from the column's most common one;
- the seconds must lie between 1990-01-01 and one day after now. ``allow_any=True`` (the data config's
  ``allow_any_timestamp``) takes numbers as they are instead: any integer order key, no unit conversion and no
  range check.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from coea.errors import CoeaInputError

log = logging.getLogger(__name__)

MIN_SECONDS = 631_152_000  # 1990-01-01T00:00:00Z
FUTURE_SLACK = 86_400  # seconds after now still accepted (clock skew)
UNITS = ("seconds", "milliseconds", "microseconds", "nanoseconds")
UNIT_STARTS = (1e11, 1e14, 1e17)  # |value| >= UNIT_STARTS[k - 1] -> UNITS[k]
SECONDS_FIX = "use integer Unix seconds (pandas: ts.astype('int64') // 10**9 for datetimes)"


def iso_utc(seconds: float) -> str:
    """``2024-01-01T00:00:00Z``, or the bare number when it is outside the calendar (``inf s`` for infinity)."""
    try:
        return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        finite = not isinstance(seconds, float) or np.isfinite(seconds)
        return f"{int(seconds) if finite else seconds} s"


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _numeric(raw: pd.Series, source: str, column: str) -> pd.Series:
    missing = raw.isna() | (raw.astype(str).str.strip() == "")
    if missing.any():
        raise CoeaInputError(f"{int(missing.sum())} missing timestamp(s)", source=source, column=column,
                             row=_first_row(missing.to_numpy()), fix="every event needs a timestamp")
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = numeric.isna().to_numpy()
    if pd.api.types.is_float_dtype(numeric):
        bad |= np.isinf(numeric.to_numpy())
    if bad.any():
        row = _first_row(bad)
        value = str(raw.iloc[row - 1])
        if _infinite(value):
            raise CoeaInputError(f"timestamp {value!r} is not a finite number", source=source, column=column,
                                 row=row, fix=f"repair the value; timestamps are {SECONDS_FIX.removeprefix('use ')}")
        raise CoeaInputError(f"non-numeric timestamp {value!r}", source=source, column=column, row=row,
                             fix=f"convert timestamps to {SECONDS_FIX.removeprefix('use ')}")
    return numeric  # int64 when every value is an integer (nanoseconds stay exact), else float64 or uint64


def _infinite(text: str) -> bool:
    try:
        return bool(np.isinf(float(text)))
    except (TypeError, ValueError):
        return False


def _check_int64(seconds: pd.Series, raw: pd.Series, source: str, column: str) -> None:
    """Values that int64 cannot hold (with ``allow_any``: 1e30, 2**63) are an error, not a wrapped-around number."""
    if pd.api.types.is_signed_integer_dtype(seconds):
        return
    limit = np.iinfo(np.int64)
    values = seconds.to_numpy()
    outside = values > limit.max if pd.api.types.is_unsigned_integer_dtype(seconds) else \
        ~((values >= float(limit.min)) & (values < 2.0**63))
    if outside.any():
        row = _first_row(outside)
        raise CoeaInputError(f"timestamp {raw.iloc[row - 1]} does not fit a 64-bit integer ({limit.min} .. "
                             f"{limit.max})", source=source, column=column, row=row,
                             fix=f"repair the value; timestamps are {SECONDS_FIX.removeprefix('use ')}")


def _check_whole(numeric: pd.Series, raw: pd.Series, source: str, column: str) -> None:
    """With ``allow_any`` the values are the order key itself: a fraction (0.1, 0.2, ...) would be rounded into
    ties, and events of one user at 0.1 and 0.3 of the same item would become one duplicate and be dropped."""
    if pd.api.types.is_integer_dtype(numeric):
        return
    values = numeric.to_numpy(dtype="float64")
    fractional = values != np.round(values)
    if fractional.any():
        row = _first_row(fractional)
        raise CoeaInputError(
            f"timestamp {raw.iloc[row - 1]} is not a whole number; allow_any_timestamp takes integer order keys "
            f"({int(fractional.sum())} value(s) have a fraction, rounding would tie and merge events)",
            source=source, column=column, row=row,
            fix="scale the column to whole numbers (e.g. multiply by 1000) or replace it by its rank: "
                "df[col] = df[col].rank(method='dense').astype('int64')",
        )


def _from_datetime(raw: pd.Series, source: str, column: str, warn: bool) -> pd.Series:
    if raw.isna().any():
        raise CoeaInputError(f"{int(raw.isna().sum())} missing timestamp(s) (NaT)", source=source, column=column,
                             row=_first_row(raw.isna().to_numpy()), fix="every event needs a timestamp")
    utc = raw.dt.tz_convert("UTC") if raw.dt.tz is not None else raw.dt.tz_localize("UTC")
    seconds = (utc - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    if warn:
        log.warning("%s: column '%s' is %s; converted to Unix seconds%s", source, column, raw.dtype,
                    "" if raw.dt.tz is not None else " (read as UTC)")
    return seconds.astype("float64")


def _from_unit(numeric: pd.Series, source: str, column: str, warn: bool) -> pd.Series:
    units = np.searchsorted(UNIT_STARTS, np.abs(numeric.to_numpy()), side="right")
    common = int(np.bincount(units).argmax())
    odd = units != common
    if odd.any():
        row = _first_row(odd)
        value = numeric.iloc[row - 1]
        raise CoeaInputError(
            f"mixed units: {value:.0f} looks like {UNITS[units[row - 1]]} but most values are {UNITS[common]}",
            source=source, column=column, row=row,
            fix="use one unit for the whole column: Unix seconds; divide milliseconds by 1000",
        )
    if common == 0:
        return numeric.round()
    if warn:
        log.warning("%s: column '%s' holds %s (every value >= %.0e); converted to Unix seconds", source, column,
                    UNITS[common], UNIT_STARTS[common - 1])
    factor = 1000**common
    return numeric // factor if pd.api.types.is_integer_dtype(numeric) else np.floor(numeric / factor)


def _check_range(seconds: pd.Series, raw: pd.Series, source: str, column: str, now: float) -> None:
    early, late = seconds < MIN_SECONDS, seconds > now + FUTURE_SLACK
    bad = (early | late).to_numpy()
    if not bad.any():
        return
    row = _first_row(bad)
    when = "before 1990-01-01" if early.iloc[row - 1] else "in the future"
    raise CoeaInputError(
        f"timestamp {raw.iloc[row - 1]} ({iso_utc(seconds.iloc[row - 1])}) is {when}; "
        f"{int(bad.sum())} value(s) lie outside 1990-01-01 .. now",
        source=source, column=column, row=row,
        fix="repair the value (Unix seconds), or set allow_any_timestamp: true in the data: config section "
            "to take any integer order key",
    )


def to_epoch_seconds(raw: pd.Series, source: str, *, column: str = "timestamp", allow_any: bool = False,
                     now: float | None = None, warn: bool = True) -> pd.Series:
    """``raw`` (numbers, numeric strings or datetime64; 0..n-1 positional index) as int64 Unix seconds; a
    converted unit is one warning (``warn`` False: none, for a check whose conversion the validation repeats).

    Raises :class:`CoeaInputError` naming the first bad row for missing or non-numeric values, mixed units and
    (unless ``allow_any``) values before 1990-01-01 or more than a day after ``now`` (default: the clock).
    """
    if pd.api.types.is_datetime64_any_dtype(raw):
        seconds = _from_datetime(raw, source, column, warn)
    else:
        numeric = _numeric(raw, source, column)
        _check_int64(numeric, raw, source, column)  # first: 1e26 is no unit's value (was read as "nanoseconds")
        if allow_any:
            _check_whole(numeric, raw, source, column)
        seconds = numeric.round() if allow_any else _from_unit(numeric, source, column, warn)
    if not allow_any:
        _check_range(seconds, raw, source, column, time.time() if now is None else now)
    _check_int64(seconds, raw, source, column)
    return seconds.astype("int64")
