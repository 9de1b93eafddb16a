"""Timestamp rules (units, range, datetime64) and the editor-line mapping of errors in text files."""

import pandas as pd
import pytest

from coea.data.lines import MOVIELENS, line_of_row, undecodable
from coea.data.timestamps import iso_utc, to_epoch_seconds
from coea.errors import CoeaInputError

T0 = 1_700_000_000


@pytest.mark.parametrize(("scale", "unit"), [(10**3, "ms"), (10**6, "us"), (10**9, "ns")])
def test_whole_column_in_a_finer_unit_becomes_floor_seconds(scale, unit):
    raw = pd.Series([str(T0 * scale + scale - 1), str((T0 + 5) * scale)])
    assert to_epoch_seconds(raw, "t.csv", now=T0 + 10).tolist() == [T0, T0 + 5], unit


def test_mixed_units_name_the_first_value_outside_the_common_unit():
    raw = pd.Series([T0 * 1000, T0 * 1000 + 1, T0 + 2, T0 * 1000 + 3])
    with pytest.raises(CoeaInputError) as err:
        to_epoch_seconds(raw, "t.csv", now=T0 + 10)
    assert err.value.row == 3 and f"{T0 + 2} looks like seconds but most values are milliseconds" in str(err.value)


def test_range_is_1990_to_a_day_after_now():
    assert to_epoch_seconds(pd.Series([631_152_000, T0 + 86_400]), "t", now=T0).tolist() == [631_152_000, T0 + 86_400]
    with pytest.raises(CoeaInputError, match="row 2: timestamp 1700086401 .* is in the future"):
        to_epoch_seconds(pd.Series([T0, T0 + 86_401]), "t", now=T0)
    with pytest.raises(CoeaInputError, match=r"row 1: timestamp 631151999 \(1989-12-31T23:59:59Z\) is before 1990"):
        to_epoch_seconds(pd.Series([631_151_999]), "t", now=T0)


def test_a_value_of_exactly_1e11_is_read_as_milliseconds():
    """The unit boundaries are inclusive (|value| >= 1e11 -> ms); audit, session 55: an exclusive one passed. 1e11 ms
    is 1973-03-03, before 1990; as seconds it would be a date in the far future."""
    with pytest.raises(CoeaInputError, match=r"timestamp 100000000000 \(1973-03-03T09:46:40Z\) is before 1990"):
        to_epoch_seconds(pd.Series([10**11]), "t", now=T0, warn=False)


def test_allow_any_takes_numbers_as_they_are():
    raw = pd.Series(["-5", "3", str(T0 * 1000)])
    assert to_epoch_seconds(raw, "t", allow_any=True).tolist() == [-5, 3, T0 * 1000]


def test_missing_datetime_is_named():
    raw = pd.Series(pd.to_datetime([T0, None], unit="s"))
    with pytest.raises(CoeaInputError, match=r"row 2: 1 missing timestamp\(s\) \(NaT\)"):
        to_epoch_seconds(raw, "t.parquet")


def test_iso_outside_the_calendar_is_the_bare_number():
    assert iso_utc(T0) == "2023-11-14T22:13:20Z"
    assert iso_utc(10**15) == "1000000000000000 s"


def test_line_of_row_skips_blank_lines_and_spans_quoted_newlines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"two\nlines"\n\n   \n3,4\n')
    assert pd.read_csv(path, skipinitialspace=True)["a"].tolist() == [1, 3]  # pandas agrees: 2 data rows
    assert [line_of_row(path, row) for row in (1, 2, 3)] == [2, 6, None]
    ml = tmp_path / "ratings.dat"
    ml.write_text("1::1::5::1\n\n1::2::5::2\n")
    assert line_of_row(ml, 2, MOVIELENS) == 3


def test_undecodable_is_none_for_utf8_and_names_the_header_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("user,café\n1,x\n".encode())
    assert undecodable(path) is None
    path.write_bytes(b"user,cat\n1,x\n2,\xff\n")
    err = undecodable(path)
    assert err is not None and (err.line, err.column) == (3, "cat") and "byte 0xff is not valid UTF-8" in str(err)
