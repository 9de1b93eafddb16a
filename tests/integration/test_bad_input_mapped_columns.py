"""A log whose columns are mapped (``--user-col uid`` ..., ``data.*_col``): every error about a value names the
column as the file has it, with its line (session 43 walkthrough: ``--timestamp-col ts`` said "column
'timestamp'", a column the file does not have)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import one_error

T0 = 1_700_000_000
HEADER = "uid,iid,cat,ts,score\n"
GOOD = f"u1,i1,c1,{T0},4\nu1,i2,c2,{T0 + 1},3\n"
MAPPING = "data: {user_col: uid, item_col: iid, category_col: cat, timestamp_col: ts, rating_col: score%s}\n"
pytestmark = pytest.mark.usefixtures("warnings_seen")  # tests/integration/conftest.py


def mapped(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "map.yaml"
    path.write_text(MAPPING % extra)
    return str(path)


@pytest.mark.parametrize(("bad_row", "column", "problem"), [
    (f",i3,c1,{T0 + 2},4", "uid", "1 null or blank value(s) (fix: fill or drop the rows without a uid)"),
    (f"u2,,c1,{T0 + 2},4", "iid", "1 null or blank value(s) (fix: fill or drop the rows without a iid)"),
    (f"u2,i3,,{T0 + 2},4", "cat", "1 null or blank value(s) (fix: fill or drop the rows without a cat)"),
    ("u2,i3,c1,2024-01-01,4", "ts", "non-numeric timestamp '2024-01-01'"),
    (f"u2,i3,c1,{T0 * 1000},4", "ts", "mixed units"),
    ("u2,i3,c1,1,4", "ts", "timestamp 1 (1970-01-01T00:00:01Z) is before 1990-01-01"),
    (f"u2,i3,c1,{T0 + 2},high", "score", "non-numeric rating 'high'"),
])
def test_a_bad_value_in_a_mapped_csv_column_names_the_files_column_and_line(tmp_path, capsys, bad_row, column,
                                                                              problem):
    path = tmp_path / "log.csv"
    path.write_text(f"{HEADER}{GOOD}{bad_row}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--config", mapped(tmp_path), command="stats")
    assert f"{path}, column '{column}', line 4: {problem}" in line
    for canonical in ("user_id", "item_id", "category", "timestamp", "rating"):  # as column names
        assert f"'{canonical}'" not in line and f"a {canonical})" not in line, line


def test_the_walkthrough_command_line_options_name_ts_not_timestamp(tmp_path, capsys):
    """``--user-col uid --timestamp-col ts`` and a date in the ts column (the walkthrough's bad_ts.csv)."""
    path = tmp_path / "bad_ts.csv"
    path.write_text(f"uid,item_id,category,ts\nu1,i1,c1,{T0}\nu1,i2,c1,2024-01-01\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--user-col", "uid", "--timestamp-col", "ts")
    assert line.startswith(f"error: {path}, column 'ts', line 3: non-numeric timestamp '2024-01-01' (fix: convert "
                           "timestamps to integer Unix seconds"), line


def test_an_item_with_two_categories_names_the_mapped_category_column(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text(f"{HEADER}{GOOD}u2,i1,c9,{T0 + 5},4\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--config", mapped(tmp_path, ", on_category_conflict: fail"),
                     command="stats")
    assert f"{path}, column 'cat', line 2: item 'i1' has 2+ categories" in line


def test_a_fractional_float_id_in_a_mapped_parquet_column_names_the_files_column_and_row(tmp_path, capsys):
    path = tmp_path / "log.parquet"
    pd.DataFrame({"uid": [1.0, 2.5], "iid": ["i1", "i2"], "cat": ["c1", "c1"], "ts": [T0, T0 + 1],
                  "score": [4.0, 3.0]}).to_parquet(path)
    line = one_error(capsys, tmp_path, f"parquet:{path}", "--config", mapped(tmp_path), command="stats")
    assert f"{path}, column 'uid', row 2: uid 2.5 is not a whole number" in line


def test_a_converted_millisecond_column_is_named_as_in_the_file(tmp_path, capsys, warnings_seen):
    from tests.helpers import run_cli

    path = tmp_path / "log.csv"
    path.write_text(f"{HEADER}u1,i1,c1,{T0 * 1000},4\nu1,i2,c2,{(T0 + 1) * 1000},3\n")
    code, _, err = run_cli(["data", "stats", "--data", f"csv:{path}", "--config", mapped(tmp_path)], capsys)
    assert code == 0, err
    assert any("column 'ts' holds milliseconds" in message for message in warnings_seen), warnings_seen


def test_a_missing_column_lists_the_columns_the_file_has_not_their_mapped_names(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text(f"uid,item_id,ts\nu1,i1,{T0}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--user-col", "uid", "--timestamp-col", "ts", command="stats")
    assert f"{path}, column 'category': missing required column(s) ['category']; found ['uid', 'item_id', 'ts']" \
        in line, line
