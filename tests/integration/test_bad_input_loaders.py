"""Bad logs through the CLI's data loaders (audit of session 42, findings 3-19): each is one ``error:`` line naming
the file, the column, the line and the fix, exit 2; or, where the input is usable (a byte-order mark, ``NA`` as an
id, whole-number float ids), it loads as a person would read it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import one_error, run_cli

HEADER = "user_id,item_id,category,timestamp\n"
T0 = 1_700_000_000
MOVIES = "1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Action|Crime\n"
RATINGS = f"1::1::5::{T0}\n1::2::3::{T0 + 1}\n2::1::4::{T0 + 2}\n"
pytestmark = pytest.mark.usefixtures("warnings_seen")  # tests/integration/conftest.py


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("latin-1" if path.suffix == ".dat" else "utf-8"))
    return path


def movielens(root: Path, ratings: str = RATINGS, movies: str = MOVIES) -> Path:
    root.mkdir()
    write(root / "ratings.dat", ratings)
    write(root / "movies.dat", movies)
    return root


def stats(capsys, spec: str, *extra: str) -> dict:
    """``coea data stats``, without the source."""
    code, out, err = run_cli(["data", "stats", "--data", spec, *extra], capsys)
    assert code == 0, err
    return {key: value for key, value in json.loads(out).items() if key != "source"}


def any_timestamp(tmp_path: Path) -> str:
    return str(write(tmp_path / "any.yaml", "data: {allow_any_timestamp: true}\n"))


def test_a_movie_id_listed_twice_names_movies_dat_and_the_second_line(tmp_path, capsys):
    """Finding 3: before, a pandas InvalidIndexError traceback (exit 1)."""
    ml = movielens(tmp_path / "ml", movies=f"{MOVIES}\n1::Dup (1995)::Drama\n")
    line = one_error(capsys, tmp_path, f"movielens:{ml}", command="stats")
    assert f"{ml / 'movies.dat'}, column 'MovieID', line 4: MovieID '1' is listed twice (lines 1 and 4)" in line


@pytest.mark.parametrize("value", ["1e30", str(2**63), str(-(10**19))])
def test_a_timestamp_outside_int64_is_refused_even_with_allow_any_timestamp(tmp_path, capsys, value):
    """Finding 4: before, 1e30 and 2**63 wrapped round to -9223372036854775808 with exit 0."""
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,5\n\n1,b,y,{value}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--config", any_timestamp(tmp_path), command="stats")
    assert f"{path}, column 'timestamp', line 4: timestamp {value} does not fit a 64-bit integer" in line


@pytest.mark.parametrize("name", ["ratings.dat", "movies.dat"])
def test_a_utf8_byte_order_mark_at_the_start_of_a_movielens_file_is_skipped(tmp_path, capsys, name):
    """Finding 5: in ratings.dat it made a phantom user 'ï»¿1'; in movies.dat the error blamed ratings.dat."""
    plain = stats(capsys, f"movielens:{movielens(tmp_path / 'plain')}")
    marked = movielens(tmp_path / "bom")
    write(marked / name, b"\xef\xbb\xbf" + (marked / name).read_bytes())
    assert stats(capsys, f"movielens:{marked}") == plain
    assert plain["users"] == 2 and plain["items"] == 2


@pytest.mark.parametrize(("rows", "config", "bad"), [
    ("1,a,x,inf\n1,b,y,inf\n", False, "line 2: timestamp 'inf'"),
    (f"1,a,x,{T0}\n1,b,y,inf\n", False, "line 3: timestamp 'inf'"),
    (f"1,a,x,{T0}\n1,b,y,-inf\n", False, "line 3: timestamp '-inf'"),
    (f"1,a,x,{T0}\n1,b,y,1e400\n", False, "line 3: timestamp '1e400'"),
    ("1,a,x,5\n1,b,y,inf\n", True, "line 3: timestamp 'inf'"),
], ids=["all-inf", "inf", "minus-inf", "1e400", "inf-allow-any"])
def test_an_infinite_timestamp_is_not_a_finite_number(tmp_path, capsys, rows, config, bad):
    """Findings 6 and 7: an all-inf column was an OverflowError traceback, inf with allow_any_timestamp an
    IntCastingNaNError; in a column of seconds inf 'looked like nanoseconds'."""
    path = write(tmp_path / "log.csv", HEADER + rows)
    extra = ("--config", any_timestamp(tmp_path)) if config else ()
    line = one_error(capsys, tmp_path, f"csv:{path}", *extra, command="stats")
    assert f"column 'timestamp', {bad} is not a finite number" in line and "nanoseconds" not in line, line


def test_na_words_are_ids_and_categories_and_only_an_empty_field_is_missing(tmp_path, capsys):
    """Finding 13: NA, None, null, nan and N/A were read as missing, so such logs could not be loaded at all. The
    numeric columns keep pandas' missing words: an NA rating is no rating, an NA timestamp a missing one."""
    words = ["NA", "None", "null", "nan", "N/A"]
    rows = "".join(f"{w},{w},{w},{T0 + i},NA\n" for i, w in enumerate(words))
    path = write(tmp_path / "log.csv", "user_id,item_id,category,timestamp,rating\n" + rows)
    out = stats(capsys, f"csv:{path}")
    assert (out["users"], out["items"], out["categories"]) == (5, 5, 5)
    path = write(tmp_path / "blank.csv", f"{HEADER}1,a,x,{T0}\n1,b,,{T0 + 1}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert "column 'category', line 3: 1 null or blank value(s)" in line
    path = write(tmp_path / "nats.csv", f"{HEADER}1,a,x,{T0}\n1,b,y,NA\n")
    assert "column 'timestamp', line 3: 1 missing timestamp(s)" in one_error(capsys, tmp_path, f"csv:{path}",
                                                                              command="stats")


def test_a_partition_whose_header_lacks_a_column_is_named(tmp_path, capsys):
    """Finding 14: before, 'null or blank user_id, line 2' of the file whose header says uid."""
    for day, header in (("2023-11-14", HEADER), ("2023-11-15", "uid,item_id,category,timestamp\n")):
        (tmp_path / "log" / f"dt={day}").mkdir(parents=True)
        write(tmp_path / "log" / f"dt={day}" / "p0.csv", f"{header}u1,a,x,{T0}\n")
    line = one_error(capsys, tmp_path, f"csv:{tmp_path / 'log'}", command="stats")
    bad = tmp_path / "log" / "dt=2023-11-15" / "p0.csv"
    assert f"{bad}, column 'user_id': missing required column(s) ['user_id']; found ['uid'," in line


def test_a_trailing_comma_on_every_row_says_the_rows_are_wider_than_the_header(tmp_path, capsys):
    """Finding 14: pandas took the first field as the row index and said '3 missing timestamp(s)'."""
    path = write(tmp_path / "log.csv", f"{HEADER}u1,a,x,{T0},\nu1,b,y,{T0 + 1},\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, line 2: 5 fields but the header names 4 (fix: remove the trailing comma" in line


def test_parquet_or_json_lines_given_as_csv_name_their_format(tmp_path, capsys):
    """Finding 14: a Parquet file gave its binary header as a column name and an iconv hint; JSON lines gave 'the
    table is empty'."""
    pq = tmp_path / "log.parquet"
    pd.DataFrame({"user_id": [1], "item_id": ["a"], "category": ["x"], "timestamp": [T0]}).to_parquet(pq)
    line = one_error(capsys, tmp_path, f"csv:{pq}", command="stats")
    assert f"{pq}: looks like a Parquet file" in line and f"pass it as parquet:{pq}" in line
    path = write(tmp_path / "log.jsonl", f'{{"user_id": "u1", "item_id": "a", "category": "x", "timestamp": {T0}}}\n')
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, line 1: looks like JSON (it starts with '{{'), not CSV" in line
    assert "csv:PATH" in line and "parquet:PATH" in line


@pytest.mark.parametrize(("rows", "expected"), [
    (f'1,a,"multi\nline",{T0}\n\n1,b,y,z,{T0 + 1}\n', 'line 5: 5 fields but the header names 4 (fix: quote a field'),
    (f'1,a,x,{T0}\n\n"u1,b,y,{T0 + 1}\nu2,c,z,{T0 + 2}\n', "column 'user_id', line 4: a quoted field starts here"),
    (f'1,a,x,{T0}\n1,"b,y,{T0 + 1}\n' + f"2,c,z,{T0}\n" * 30_000, "line 3: a quoted field starts here"),
], ids=["unquoted-comma", "open-quote", "open-quote-past-csv-field-limit"])
def test_a_ragged_row_or_an_open_quote_names_its_line_and_the_fix(tmp_path, capsys, rows, expected):
    """Finding 15: pandas' own text ('Expected 4 fields in line 3', 'EOF inside string starting at row 1') with
    'check the file is valid csv'. Blank lines and a quoted line break before the bad row count as lines."""
    path = write(tmp_path / "log.csv", HEADER + rows)
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, {expected}" in line, line
    assert "remove the extra field" in line or "close the quote" in line


@pytest.mark.parametrize("level", ["full", "first"])
def test_a_movielens_genre_field_of_bars_only_is_refused_at_its_movies_line(tmp_path, capsys, level):
    """Finding 16: '|' was a category of its own; with --category-level first a blank one blamed ratings.dat."""
    ml = movielens(tmp_path / "ml", movies="1::Toy Story (1995)::Animation\n2::Heat (1995)::|\n")
    line = one_error(capsys, tmp_path, f"movielens:{ml}", "--category-level", level, command="stats")
    assert f"{ml / 'movies.dat'}, column 'Genres', line 2: empty genre in '|'" in line


def test_a_stray_quote_in_ratings_dat_is_an_ordinary_character(tmp_path, capsys):
    """Finding 17: 'EOF inside string starting at row 1' without a line; MovieLens files have no quoting."""
    ml = movielens(tmp_path / "ml", ratings=f'1::1::5::{T0}\n1::"2::3::{T0 + 1}\n2::1::4::{T0 + 2}\n')
    line = one_error(capsys, tmp_path, f"movielens:{ml}", command="stats")
    assert f"{ml / 'ratings.dat'}, column 'MovieID', line 2: movie '\"2' is not in movies.dat" in line


def parquet(path: Path, **columns) -> Path:
    data = {"user_id": ["1", "1", "2"], "item_id": ["a", "b", "a"], "category": ["x", "y", "x"],
            "timestamp": [T0, T0 + 1, T0 + 2], **columns}
    pd.DataFrame(data).to_parquet(path)
    return path


def test_parquet_float_ids_are_read_as_integers_with_one_warning(tmp_path, capsys, warnings_seen):
    """Finding 19: float ids became '1.0' without a word (and so differed from the same ids in a CSV)."""
    as_int = stats(capsys, f"parquet:{parquet(tmp_path / 'int.parquet', user_id=[1, 1, 2])}")
    assert warnings_seen == []
    path = parquet(tmp_path / "float.parquet", user_id=[1.0, 1.0, 2.0])
    assert stats(capsys, f"parquet:{path}") == as_int
    assert warnings_seen == [f"{path}: column 'user_id' holds floats; read as the integers they equal (1.0 -> '1')"]
    path = parquet(tmp_path / "half.parquet", item_id=[1.0, 2.5, 1.0])
    line = one_error(capsys, tmp_path, f"parquet:{path}", command="stats")
    assert f"{path}, column 'item_id', row 2: item_id 2.5 is not a whole number" in line


def test_a_parquet_list_column_is_refused(tmp_path, capsys):
    """Finding 19: a list category became the text "['x']" without a word."""
    path = parquet(tmp_path / "list.parquet", category=[["x"], ["y"], ["x"]])
    line = one_error(capsys, tmp_path, f"parquet:{path}", command="stats")
    assert f"{path}, column 'category': holds list<element: string> values" in line and "explode" in line


def test_parquet_binary_ids_and_categories_are_read_as_text(tmp_path, capsys):
    """A Parquet writer that stores strings as raw bytes (binary, no UTF-8 annotation): the ids and categories
    became the text "b'x'"; decoded now, and bytes that are not UTF-8 are an error at their row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from coea.config import DataConfig
    from coea.data.tabular import read_table

    table = pa.table({"user_id": pa.array([b"u1", b"u2"], pa.binary()), "item_id": ["i1", "i2"],
                      "category": pa.array([b"Drama", b"Com\xc3\xa9die"], pa.binary()), "timestamp": [T0, T0 + 1]})
    pq.write_table(table, tmp_path / "b.parquet")
    df = read_table(tmp_path / "b.parquet", "parquet", DataConfig())
    assert df["user_id"].tolist() == ["u1", "u2"] and df["category"].tolist() == ["Drama", "Com\u00e9die"]
    bad = table.set_column(2, "category", pa.array([b"Drama", b"\xff\xfe"], pa.binary()))
    pq.write_table(bad, tmp_path / "bad.parquet")
    line = one_error(capsys, tmp_path, f"parquet:{tmp_path / 'bad.parquet'}", command="stats")
    assert "column 'category', row 2: bytes" in line and "not UTF-8" in line


@pytest.mark.parametrize("other", ["part-1.csv.gz", "part-1.parquet"], ids=["gzip", "parquet"])
def test_a_partition_file_of_another_kind_is_an_error_not_a_day_left_out(tmp_path, capsys, other):
    """Session 52: a `csv:` folder whose dt=2023-11-15/ held only part-1.csv.gz (or a .parquet) was read without
    that day and without a word (`interactions` counted the other days only). Markers such as _SUCCESS stay
    ignored."""
    for day, name in (("2023-11-14", "part-0.csv"), ("2023-11-15", other)):
        (tmp_path / "log" / f"dt={day}").mkdir(parents=True)
        write(tmp_path / "log" / f"dt={day}" / name, f"{HEADER}u1,a,x,{T0}\n")
    write(tmp_path / "log" / "dt=2023-11-14" / "_SUCCESS", "")
    line = one_error(capsys, tmp_path, f"csv:{tmp_path / 'log'}", command="stats")
    assert f"partition folder dt=2023-11-15 holds file(s) that are not .csv: {other}" in line
    assert "write every partition as .csv" in line


@pytest.mark.parametrize("stray", ["dt=2023-11-15/hour=05/part-0.csv", "other/part-0.csv", "all.csv"],
                         ids=["nested", "other-folder", "root"])
def test_a_data_file_outside_the_dt_folders_is_an_error_not_events_left_out(tmp_path, capsys, stray):
    """Audit, session 55: a file in a folder nested in dt= (hive-style hour=05/), in a folder that is not dt=, or in
    the log's root was skipped without a word. Markers (_SUCCESS) and other kinds elsewhere stay ignored."""
    (tmp_path / "log" / "dt=2023-11-14").mkdir(parents=True)
    write(tmp_path / "log" / "dt=2023-11-14" / "part-0.csv", f"{HEADER}u1,a,x,{T0}\n")
    write(tmp_path / "log" / "_SUCCESS", "")
    write(tmp_path / "log" / "README.txt", "notes")
    assert stats(capsys, f"csv:{tmp_path / 'log'}")["interactions"] == 1
    (tmp_path / "log" / stray).parent.mkdir(parents=True, exist_ok=True)
    write(tmp_path / "log" / stray, f"{HEADER}u2,b,y,{T0 + 86_400}\n")
    line = one_error(capsys, tmp_path, f"csv:{tmp_path / 'log'}", command="stats")
    assert f"{stray} is not directly inside a dt=YYYY-MM-DD/ folder, so its events would be left out" in line
    assert "move each .csv file into the dt=YYYY-MM-DD/ folder of its day" in line


def test_an_event_after_its_partition_s_day_is_named_with_its_file_and_line(tmp_path, capsys):
    """Audit (session 53): dt=2023-11-15/ holding an event of 2024-08-12 was read without a word, so a run as of
    2023-11-16 read seven months of its future. An earlier event (a late arrival) is read."""
    late, kept = f"u2,c,z,{T0 + 270 * 86_400}\n", f"u1,b,y,{T0 + 100}\n\n"
    for day, rows in (("2023-11-14", f"u1,a,x,{T0 - 86_400}\n"), ("2023-11-15", kept + late)):
        (tmp_path / "log" / f"dt={day}").mkdir(parents=True)
        write(tmp_path / "log" / f"dt={day}" / "p0.csv", HEADER + rows)
    line = one_error(capsys, tmp_path, f"csv:{tmp_path / 'log'}", "--as-of", "2023-11-16", command="stats")
    bad = tmp_path / "log" / "dt=2023-11-15" / "p0.csv"
    assert f"{bad}, column 'timestamp', line 4: event at 2024-08-10T22:13:20Z lies after its partition's day " \
           "dt=2023-11-15" in line and "dt= folder of its own UTC day" in line
    write(bad, HEADER + kept)  # the late event moved out: dt=2023-11-14's event of the 13th (a late arrival) is read
    assert stats(capsys, f"csv:{tmp_path / 'log'}", "--as-of", "2023-11-16")["interactions"] == 2


def test_a_partition_s_day_ends_at_the_next_midnight_utc(tmp_path, capsys):
    """The edge of the check above: dt=2023-11-15 holds 2023-11-15T00:00:00Z up to 23:59:59Z; an event at exactly
    the next midnight belongs to dt=2023-11-16 (a run dated the 16th must not read it)."""
    midnight = 1_700_092_800  # 2023-11-16T00:00:00Z
    folder = tmp_path / "log" / "dt=2023-11-15"
    folder.mkdir(parents=True)
    write(folder / "p0.csv", f"{HEADER}u1,a,x,{midnight - 86_400}\nu1,b,y,{midnight - 1}\n")
    assert stats(capsys, f"csv:{tmp_path / 'log'}", "--as-of", "2023-11-16")["interactions"] == 2
    write(folder / "p0.csv", f"{HEADER}u1,a,x,{midnight - 86_400}\nu1,b,y,{midnight}\n")
    line = one_error(capsys, tmp_path, f"csv:{tmp_path / 'log'}", "--as-of", "2023-11-16", command="stats")
    assert f"{folder / 'p0.csv'}, column 'timestamp', line 3: event at 2023-11-16T00:00:00Z lies after" in line


@pytest.mark.parametrize("name", ["dt=20231114", "dt=2023-W46-2"])
def test_a_partition_folder_not_spelled_yyyy_mm_dd_is_refused(tmp_path, capsys, name):
    """Python 3.11's date.fromisoformat also reads 20231114 and ISO week dates: such a folder was taken as a day."""
    (tmp_path / "log" / name).mkdir(parents=True)
    write(tmp_path / "log" / name / "p0.csv", f"{HEADER}u1,a,x,{T0}\n")
    line = one_error(capsys, tmp_path, f"csv:{tmp_path / 'log'}", command="stats")
    assert f"partition folder {name!r} is not dt=YYYY-MM-DD" in line


def test_a_parquet_column_stored_as_the_pandas_index_is_read_as_a_column(tmp_path, capsys):
    """Audit (session 53): df.set_index('user_id').to_parquet(...) holds user_id in its schema, but pandas reads it
    back as the index: 'missing required column user_id', with a --user-col fix that could not help."""
    df = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"], "category": ["x", "y", "x"],
                       "timestamp": [T0, T0 + 1, T0 + 2]})
    df.set_index("user_id").to_parquet(tmp_path / "log.parquet")
    assert stats(capsys, f"parquet:{tmp_path / 'log.parquet'}")["users"] == 2
    df.set_index("user_id", drop=False).to_parquet(tmp_path / "both.parquet")  # index and column: read once
    assert stats(capsys, f"parquet:{tmp_path / 'both.parquet'}")["users"] == 2


def test_a_csv_given_as_parquet_says_to_read_it_as_csv(tmp_path, capsys):
    """Audit (session 53): `parquet:log.csv` said only "check the file is valid parquet"."""
    path = write(tmp_path / "log.csv", f"{HEADER}u1,a,x,{T0}\n")
    line = one_error(capsys, tmp_path, f"parquet:{path}", command="stats")
    assert f"it is no Parquet file (it does not start with 'PAR1'); a CSV file is read as csv:{path}" in line
    assert stats(capsys, f"csv:{path}")["interactions"] == 1


def test_a_partitioned_millisecond_log_warns_once_naming_the_mapped_column(tmp_path, capsys, warnings_seen):
    """The partition-day check converts each part's timestamps before the validation does: its unit warning came
    once a partition (and named 'timestamp' for a log whose column is ts), then once more."""
    for day in range(3):
        (tmp_path / "log" / f"dt=2023-11-{14 + day:02d}").mkdir(parents=True)
        write(tmp_path / "log" / f"dt=2023-11-{14 + day:02d}" / "p0.csv",
              f"user_id,item_id,category,ts\nu1,i{day},x,{(T0 + 86_400 * day) * 1000}\n")
    assert stats(capsys, f"csv:{tmp_path / 'log'}", "--timestamp-col", "ts")["interactions"] == 3
    units = [message for message in warnings_seen if "holds milliseconds" in message]
    assert len(units) == 1 and "column 'ts' holds milliseconds" in units[0], warnings_seen
