"""Data-layer mutants (audit): rules of the loaders and the validation that a plausible one-line change broke
while every other test passed. Each test names its rule; the files are small and written to ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coea.config import CategoryLevel, DataConfig
from coea.data.lines import undecodable
from coea.data.loaders import LoadedData, load_data, parse_spec
from coea.data.movielens import load_movielens, read_movies
from coea.data.partitions import Partition, select_partitions
from coea.data.prepared import GROUND_TRUTH, INTERACTIONS, read_prepared, write_prepared
from coea.data.schema import validate_interactions
from coea.data.tabular import read_table
from coea.data.timestamps import to_epoch_seconds
from coea.errors import CoeaInputError
from tests.helpers import events

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
HEADER = "user_id,item_id,category,timestamp\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# --- schema.py ---------------------------------------------------------------------------------------------------


def test_category_conflict_under_fail_names_the_first_conflicting_item_in_the_input():
    """Under on_category_conflict: fail the error is about the item whose conflict comes first in the file (b, row
    1), not the alphabetically first or the last conflicting item (a, row 3)."""
    df = events([("1", "b", "x", T0), ("2", "b", "y", T0 + 1), ("3", "a", "x", T0 + 2), ("4", "a", "z", T0 + 3)])
    with pytest.raises(CoeaInputError, match=r"column 'category', row 1: item 'b' has 2\+ categories \['x', 'y'\]"):
        validate_interactions(df, "t.csv", on_category_conflict="fail")


def test_an_empty_rating_beside_numeric_ones_is_no_rating_not_a_non_numeric_one():
    """The rating is optional per row: a missing one is NaN; only a value that is not a number is an error."""
    df = events([("1", "a", "x", T0), ("1", "b", "x", T0 + 1), ("1", "c", "x", T0 + 2)])
    out = validate_interactions(df.assign(rating=["5", None, "3"]), "t.csv")
    assert out["rating"].isna().tolist() == [False, True, False]
    with pytest.raises(CoeaInputError, match=r"column 'rating', row 3: non-numeric rating 'high'"):
        validate_interactions(df.assign(rating=["5", None, "high"]), "t.csv")


def test_a_float_id_too_large_for_int64_is_refused_not_wrapped():
    """A float id is read as the integer it equals only when int64 holds it: 1e19 would wrap round to a negative
    id (another user) without a word."""
    df = pd.DataFrame({"user_id": [1.0, 1e19], "item_id": ["a", "b"], "category": ["x", "x"],
                       "timestamp": [T0, T0 + 1]})
    with pytest.raises(CoeaInputError, match=r"column 'user_id', row 2: user_id 1e\+19 is not a whole number"):
        validate_interactions(df, "t.parquet")


def test_ids_are_stripped_so_a_trailing_space_is_the_same_id():
    """Ids and categories are stripped strings: 'u1 ' and 'u1' are one user, 'x ' and 'x' one category."""
    df = events([("u1 ", "a", "x ", T0), ("u1", "b", "x", T0 + 1)])
    out = validate_interactions(df, "t.csv")
    assert out["user_id"].tolist() == ["u1", "u1"] and out["category"].tolist() == ["x", "x"]


def test_a_blank_id_of_spaces_is_a_blank_id():
    """An id of spaces is blank (stripped it would be the empty id): refused at its row."""
    df = events([("u1", "a", "x", T0), ("   ", "b", "x", T0 + 1)])
    with pytest.raises(CoeaInputError, match=r"column 'user_id', row 2: 1 null or blank value"):
        validate_interactions(df, "t.parquet")


def test_duplicate_events_keep_the_first_row():
    """Of rows of one event (same user, item, timestamp) the first is kept, its rating too: for exact duplicates
    and for rows whose categories were a conflict resolved first."""
    exact = events([("1", "i", "a", T0), ("1", "i", "a", T0)]).assign(rating=[5.0, 1.0])
    assert validate_interactions(exact, "t")["rating"].tolist() == [5.0]
    conflict = events([("1", "i", "a", T0), ("1", "i", "c", T0)]).assign(rating=[5.0, 1.0])
    out = validate_interactions(conflict, "t")
    assert out["rating"].tolist() == [5.0] and out["category"].tolist() == ["a"]


def test_ids_of_partitions_stored_as_strings_and_as_doubles_are_one_id(tmp_path):
    """A partitioned Parquet log whose days store user_id as strings ('1') and as doubles (1.0): the float ids are
    read as the integers they equal, as in a log of doubles only, so user 1 is one user, not '1' and '1.0'."""
    for day, uids, t in (("2023-11-13", ["1", "2"], T0 - 2 * 86_400), ("2023-11-14", [1.0, 2.0], T0 - 3600)):
        folder = tmp_path / "log" / f"dt={day}"
        folder.mkdir(parents=True)
        pd.DataFrame({"user_id": uids, "item_id": ["a", "b"], "category": ["x", "y"],
                      "timestamp": [t, t + 1]}).to_parquet(folder / "p.parquet")
    out = load_data(DataConfig(spec=f"parquet:{tmp_path / 'log'}")).interactions
    assert sorted(out["user_id"].unique()) == ["1", "2"]
    mixed = pd.DataFrame({"user_id": pd.Series(["1", 2.5], dtype=object), "item_id": ["a", "b"],
                          "category": ["x", "y"], "timestamp": [T0, T0 + 1]})
    with pytest.raises(CoeaInputError, match=r"column 'user_id', row 2: user_id 2.5 is not a whole number"):
        validate_interactions(mixed, "t.parquet")


# --- timestamps.py -----------------------------------------------------------------------------------------------


def test_mixed_units_name_the_value_outside_the_most_common_unit_even_in_row_1():
    """The column's unit is its most common one, not its first value's: a seconds value in row 1 of a millisecond
    column is the odd one."""
    raw = pd.Series([T0, T0 * 1000 + 1, T0 * 1000 + 2, T0 * 1000 + 3])
    with pytest.raises(CoeaInputError) as err:
        to_epoch_seconds(raw, "t.csv", now=T0 + 10)
    assert err.value.row == 1 and f"{T0} looks like seconds but most values are milliseconds" in str(err.value)


def test_fractional_milliseconds_floor_and_fractional_seconds_round():
    """A finer unit becomes floor seconds also for float values (999.5 ms past T0 is still T0); a fraction of a
    second in a seconds column rounds to the nearest second."""
    ms = pd.Series([f"{T0 * 1000 + 999}.5", f"{(T0 + 5) * 1000}.0"])
    assert to_epoch_seconds(ms, "t", now=T0 + 10, warn=False).tolist() == [T0, T0 + 5]
    assert to_epoch_seconds(pd.Series([f"{T0}.7", f"{T0}.2"]), "t", now=T0 + 10).tolist() == [T0 + 1, T0]


def test_a_timestamp_of_spaces_is_a_missing_one():
    """A blank (spaces only) timestamp is reported as missing, not as a non-numeric value."""
    with pytest.raises(CoeaInputError, match=r"row 2: 1 missing timestamp\(s\)"):
        to_epoch_seconds(pd.Series([str(T0), "   "]), "t.parquet", now=T0 + 10)


# --- lines.py, formats.py, tabular.py ----------------------------------------------------------------------------


def test_a_byte_that_is_not_utf8_in_the_header_names_its_line_but_no_column(tmp_path):
    """The header line is not a data row: a bad byte there has no column to name (its field is the header)."""
    err = undecodable(write(tmp_path / "t.csv", b"user_id,caf\xe9\n1,x\n"))
    assert err is not None and (err.line, err.column) == (1, None)


def test_a_json_array_given_as_csv_names_its_format_and_line(tmp_path):
    """A JSON array file (``[{...}]``) is refused as JSON, like JSON lines, at the line where it starts."""
    path = write(tmp_path / "log.csv", f'\n\n[{{"user_id": "u1", "timestamp": {T0}}}]\n')
    with pytest.raises(CoeaInputError, match=r"line 3: looks like JSON \(it starts with '\['\), not CSV"):
        read_table(path, "csv", DataConfig())


def test_column_options_may_swap_two_canonical_columns(tmp_path):
    """--user-col item_id --item-col user_id reads a file whose two columns are named the wrong way round: a
    column renamed onto a name that another option renames away is no clash."""
    path = write(tmp_path / "log.csv", f"{HEADER}i1,u1,x,{T0}\n")
    df = read_table(path, "csv", DataConfig(user_col="item_id", item_col="user_id"))
    assert df[["user_id", "item_id"]].iloc[0].tolist() == ["u1", "i1"]


def test_na_in_a_mapped_timestamp_column_is_a_missing_timestamp(tmp_path):
    """The missing-value words (NA, null, ...) apply to the timestamp column by its file name (--timestamp-col ts)."""
    path = write(tmp_path / "log.csv", f"user_id,item_id,category,ts\nu1,a,x,{T0}\nu1,b,x,NA\n")
    with pytest.raises(CoeaInputError, match=r"column 'ts', line 3: 1 missing timestamp\(s\)"):
        load_data(DataConfig(spec=f"csv:{path}", timestamp_col="ts"))


def test_a_duplicate_column_after_a_byte_order_mark_is_still_a_duplicate(tmp_path):
    """A UTF-8 byte-order mark before the first name does not hide that name's repeat (pandas drops the mark and
    would read the second as user_id.1, using the first without a word)."""
    path = write(tmp_path / "log.csv", f"\ufeffuser_id,item_id,category,timestamp,user_id\n1,a,x,{T0},2\n")
    with pytest.raises(CoeaInputError, match=r"column 'user_id', line 1: the header names column 'user_id' twice"):
        read_table(path, "csv", DataConfig())


def test_only_a_one_column_header_is_diagnosed_as_another_separator(tmp_path):
    """A header of several comma-separated columns, one holding a ';', is missing columns, not 'one column'."""
    path = write(tmp_path / "log.csv", f"user_id;item_id,category,timestamp\n1;a,x,{T0}\n")
    with pytest.raises(CoeaInputError) as err:
        read_table(path, "csv", DataConfig())
    assert "missing required column(s) ['user_id', 'item_id']" in str(err.value)
    assert "the header is one column" not in str(err.value)


# --- movielens.py ------------------------------------------------------------------------------------------------


def test_category_level_first_keeps_the_first_genre(tmp_path):
    """--category-level first: Animation of Animation|Comedy (the last genre would pass a count-only check)."""
    movies = write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Action\n")
    assert read_movies(movies, CategoryLevel.FIRST).to_dict() == {"1": "Animation", "2": "Action"}


def test_a_movies_line_with_more_than_three_fields_is_refused_at_its_line(tmp_path):
    """MovieID::Title::Genres is exactly three '::' fields: a fourth would make a title part the genre."""
    movies = write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation\n2::Heat::(1995)::Action\n")
    with pytest.raises(CoeaInputError, match=r"column 'Genres', line 2: expected MovieID::Title::Genres"):
        read_movies(movies, CategoryLevel.FULL)


def test_a_movie_id_in_ratings_is_matched_stripped(tmp_path):
    """A MovieID with spaces around it in ratings.dat is the movie of movies.dat (ids are stripped everywhere)."""
    write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation\n")
    write(tmp_path / "ratings.dat", f"1:: 1 ::5::{T0}\n")
    df, _ = load_movielens(tmp_path)
    assert df["category"].tolist() == ["Animation"]


# --- partitions.py, sources.py, loaders.py -----------------------------------------------------------------------


def test_window_days_without_an_as_of_time_is_refused():
    """window_days counts back from the as-of time: without one it is an error, not every partition read."""
    parts = [Partition(pd.Timestamp("2023-11-14").date(), ("dt=2023-11-14/p.csv",))]
    with pytest.raises(CoeaInputError, match="window_days=3 needs an as-of time"):
        select_partitions(parts, None, 3, "log", "csv")
    assert select_partitions(parts, None, 0, "log", "csv") == parts


def test_allow_any_timestamp_keys_are_not_checked_against_the_partition_day(tmp_path):
    """With allow_any_timestamp the keys are no time: a key that would be a date after its dt= day is read."""
    later = T0 + 300 * 86_400
    write(tmp_path / "log" / "dt=2023-11-14" / "p.csv", f"{HEADER}u1,a,x,{later}\nu1,b,y,{later + 1}\n")
    cfg = DataConfig(spec=f"csv:{tmp_path / 'log'}", allow_any_timestamp=True, as_of="2023-11-15")
    assert len(load_data(cfg).interactions) == 2


def test_a_data_spec_kind_is_case_insensitive():
    """CSV:PATH is csv:PATH."""
    assert parse_spec("CSV:log.csv") == ("csv", Path("log.csv"))


# --- prepared.py -------------------------------------------------------------------------------------------------


def _loaded(n: int) -> LoadedData:
    return LoadedData(events([(f"u{i}", f"i{i}", "x", T0 + i) for i in range(n)]), "test")


def test_a_failed_rewrite_of_the_prepared_log_leaves_the_old_one_whole(tmp_path, monkeypatch):
    """interactions.parquet is written atomically: a write that fails half-way leaves the previous file as it was."""
    write_prepared(_loaded(3), tmp_path, {})

    def half_written(self, path, **kwargs):
        Path(path).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_prepared(_loaded(5), tmp_path, {})
    monkeypatch.undo()
    assert len(pd.read_parquet(tmp_path / INTERACTIONS)) == 3


def test_a_log_without_truth_removes_an_earlier_synthetic_ground_truth(tmp_path):
    """Writing a csv/parquet log over a prepared synthetic one removes the old ground_truth/: its planted groups
    would be scored against the new log."""
    write(tmp_path / GROUND_TRUTH / "truth_groups.parquet", b"stale")
    write_prepared(_loaded(2), tmp_path, {})
    assert not (tmp_path / GROUND_TRUTH).exists() and read_prepared(tmp_path).truth is None
