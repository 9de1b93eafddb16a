"""Bad logs through the CLI (in process): one ``error:`` line naming the file, the column, the line a person
sees in an editor and the fix; exit code 2; no output directory. Usable logs (datetime64 parquet, an
all-millisecond column) load with one warning saying what was converted."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import one_error, run_cli

HEADER = "user_id,item_id,category,timestamp\n"
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
pytestmark = pytest.mark.usefixtures("warnings_seen")  # tests/integration/conftest.py


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("command", ["evaluate", "stats"])
def test_mixed_seconds_and_milliseconds_name_the_first_odd_line(tmp_path, capsys, command):
    """Issue 14 case 1: before, `year 52723 is out of range` and a traceback; the blank line 3 counts."""
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,{T0}\n\n1,b,y,{T0 * 1000 + 5}\n2,a,x,{T0 + 9}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", command=command)
    assert f"{path}, column 'timestamp', line 4: mixed units: {T0 * 1000 + 5} looks like milliseconds" in line
    assert "divide milliseconds by 1000" in line


@pytest.mark.parametrize(("value", "when"), [(-5, "before 1990-01-01"), (978, "before 1990-01-01"),
                                             (4_102_444_800, "in the future")], ids=["negative", "1970", "2100"])
def test_out_of_range_timestamp_is_an_error_naming_its_line(tmp_path, capsys, value, when):
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,{T0}\n1,b,y,{value}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}")
    assert f"column 'timestamp', line 3: timestamp {value} (" in line and when in line
    assert "allow_any_timestamp: true" in line


def test_allow_any_timestamp_takes_numbers_as_they_are(tmp_path, capsys):
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,-5\n1,b,y,20\n")
    cfg = write(tmp_path / "c.yaml", "data: {allow_any_timestamp: true}\n")
    code, out, err = run_cli(["data", "stats", "--data", f"csv:{path}", "--config", str(cfg)], capsys)
    assert code == 0, err
    assert json.loads(out)["time_span"]["days"] == round(25 / 86400, 1)


def movielens_dir(root: Path, ratings: str) -> Path:
    root.mkdir()
    write(root / "ratings.dat", ratings)
    write(root / "movies.dat", "1::Toy Story (1995)::Animation\n2::Heat (1995)::Action|Crime\n")
    return root


@pytest.mark.parametrize(("ratings", "expected"), [
    ("1::1::5::978300760\n\n1::2::3::978\n", "line 3: timestamp 978 (1970-01-01T00:16:18Z) is before 1990"),
    ("1::1::5::978300760\n1::2::3\n", "line 2: malformed line '1::2::3', expected UserID::MovieID::Rating::Timestamp"),
    ("1::1::5::978300760\n1:2:3:978300761\n", "line 2: malformed line '1:2:3:978300761'"),
    ("1::1::5::978300760\n1::2::3::978300761::9\n", "line 2: cannot parse as UserID::MovieID::Rating::Timestamp"),
], ids=["cut-timestamp", "missing-field", "single-colons", "extra-field"])
def test_malformed_movielens_line_is_named(tmp_path, capsys, ratings, expected):
    """Issue 14 case 4: before, `1::2::3::978` loaded silently as a 1970 event."""
    ml = movielens_dir(tmp_path / "ml", ratings)
    line = one_error(capsys, tmp_path, f"movielens:{ml}")
    assert f"{ml / 'ratings.dat'}, " in line and expected in line


def test_latin1_byte_names_line_column_and_iconv(tmp_path, capsys):
    """Issue 14 case 5: before, a byte offset and no hint."""
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,{T0}\n\n1,b,".encode() + b"caf\xe9," + f"{T0 + 1}\n".encode())
    line = one_error(capsys, tmp_path, f"csv:{path}")
    assert f"{path}, column 'category', line 4: byte 0xe9 is not valid UTF-8" in line
    assert "iconv -f latin1 -t utf-8 log.csv > log.utf8.csv" in line


def test_directory_as_csv_says_directory(tmp_path, capsys):
    """Issue 14 case 6: before, `file not found`."""
    folder = tmp_path / "logs"
    folder.mkdir()
    write(folder / "may.csv", f"{HEADER}1,a,x,{T0}\n")
    line = one_error(capsys, tmp_path, f"csv:{folder}")
    assert f"{folder}: is a directory; csv: expects one .csv file" in line and f"csv:{folder / 'may.csv'}" in line


def test_category_conflict_names_the_real_line_after_dropped_duplicates(tmp_path, capsys):
    """Issue 14 case 7: three duplicates of line 2 are dropped before item b; b first appears on line 6."""
    dup = f"1,a,x,{T0}\n"
    path = write(tmp_path / "log.csv", f"{HEADER}{dup * 4}2,b,y,{T0 + 1}\n3,b,z,{T0 + 2}\n")
    cfg = write(tmp_path / "c.yaml", "data: {on_category_conflict: fail}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--config", str(cfg))
    assert f"{path}, column 'category', line 6: item 'b' has 2+ categories ['y', 'z']" in line


def time_span(capsys, spec: str) -> dict:
    """``coea data stats``: the time span."""
    code, out, err = run_cli(["data", "stats", "--data", spec], capsys)
    assert code == 0, err
    return json.loads(out)["time_span"]


def test_all_millisecond_column_is_converted_with_one_warning(tmp_path, capsys, warnings_seen):
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,{T0 * 1000 + 999}\n1,b,y,{(T0 + 86400) * 1000}\n")
    span = time_span(capsys, f"csv:{path}")
    assert span == {"start": "2023-11-14T22:13:20Z", "end": "2023-11-15T22:13:20Z", "days": 1.0}
    assert warnings_seen == [f"{path}: column 'timestamp' holds milliseconds (every value >= 1e+11); converted to "
                        "Unix seconds"]


@pytest.mark.parametrize("dtype", ["datetime64[ns]", "datetime64[us, UTC]", "datetime64[ms, America/New_York]"])
def test_datetime64_parquet_is_converted_with_one_warning(tmp_path, capsys, warnings_seen, dtype):
    """Issue 14 case 2: before, nanoseconds were read as seconds, then an OSError traceback."""
    stamps = pd.to_datetime([T0, T0 + 86400], unit="s", utc=True)
    stamps = stamps.tz_convert(None) if "," not in dtype else stamps.tz_convert(dtype.split(", ")[1][:-1])
    df = pd.DataFrame({"user_id": ["1", "1"], "item_id": ["a", "b"], "category": ["x", "y"],
                       "timestamp": pd.Series(stamps).astype(dtype)})
    df.to_parquet(tmp_path / "log.parquet")
    span = time_span(capsys, f"parquet:{tmp_path / 'log.parquet'}")
    assert span == {"start": "2023-11-14T22:13:20Z", "end": "2023-11-15T22:13:20Z", "days": 1.0}
    assert len(warnings_seen) == 1 and f"is {dtype}; converted to Unix seconds" in warnings_seen[0]


@pytest.mark.parametrize(("header", "extra", "expected"), [
    ("user_id,item_id,category,timestamp,user_id", (),
     "column 'user_id', line 1: the header names column 'user_id' twice (columns 1 and 5)"),
    ("user_id,item_id,category,timestamp", ("--user-col", "uid"),
     "column 'uid': no column 'uid' (--user-col); the columns are user_id, item_id, category, timestamp"),
    ("user_id,uid,item_id,category,timestamp", ("--user-col", "uid"),
     "column 'user_id': --user-col 'uid' would become 'user_id', which the file already has"),
    ("u,i,c,t", ("--user-col", "u", "--item-col", "u", "--category-col", "c", "--timestamp-col", "t"),
     "--item-col and --user-col both name column 'u'"),
], ids=["duplicate-header", "missing-mapped", "mapped-onto-existing", "one-column-two-roles"])
def test_column_options_and_headers_that_cannot_be_read_one_way_are_refused(tmp_path, capsys, header, extra,
                                                                            expected):
    """Before: a duplicate header used its first column silently, a --user-col the file lacks was ignored, one
    renamed onto an existing column crashed with an AttributeError; now each is one line naming the column."""
    width = header.count(",") + 1
    row = ",".join(["1", "a", "x", str(T0), "2"][:width])
    path = write(tmp_path / "log.csv", f"{header}\n{row}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", *extra)
    assert expected in line, line


def test_a_renamed_column_is_read_when_the_file_lacks_the_canonical_name(tmp_path, capsys):
    """The control: --user-col names a column the file has, and no user_id column is there."""
    path = write(tmp_path / "log.csv", f"uid,item_id,category,timestamp\n1,a,x,{T0}\n2,b,y,{T0 + 5}\n")
    code, out, err = run_cli(["data", "stats", "--data", f"csv:{path}", "--user-col", "uid"], capsys)
    assert code == 0, err
    assert json.loads(out)["users"] == 2


def test_a_log_whose_histories_are_all_shorter_than_the_future_is_exit_2_with_the_split_fix(tmp_path, capsys):
    """Eight events a user and the default 10-event future: nobody keeps a history. `evaluate` wrote an empty
    table with exit 0 and `group` crashed in the encoder; both now stop with one line naming the split settings
    and the fix, and leave no output folder; with the fix's settings the same log evaluates."""
    rows = [f"u{u},i{j % 5},c{(u + j) % 4},{T0 + 86400 * j}" for u in range(20) for j in range(8)]
    path = write(tmp_path / "log.csv", HEADER + "\n".join(rows) + "\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--methods", "pop,markov", "--k", "1")  # items: 1 category
    assert "none of the 20 users has split.min_history=5 history events once their last split.n_future=10" in line
    assert "split: {n_future: 2, min_history: 2} in the --config file (coea evaluate: --n-future 2 --min-history 2)" \
        ", or --config short" in line
    code, _, err = run_cli(["group", "--data", f"csv:{path}", "--out", str(tmp_path / "g")], capsys)
    assert code == 2 and "none of the 20 users" in err and "Traceback" not in err, err
    # with the validation split the message says what is held out: both windows (audit, session 55: it named
    # n_future alone, which left half the events unexplained, and never named validation)
    (tmp_path / "v.yaml").write_text("split: {validation: true, n_future: 3}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--config", str(tmp_path / "v.yaml"), "--methods", "pop",
                     "--k", "1")
    assert "once their last 2 x split.n_future=6 (split.validation: the test and the validation windows) are held" \
        " out" in line and "(or drop split.validation)" in line
    assert not (tmp_path / "g").exists()
    code, out, err = run_cli(["evaluate", "--data", f"csv:{path}", "--methods", "pop,markov", "--n-future", "2",
                              "--min-history", "2", "--k", "1", "--out", str(tmp_path / "ok")], capsys)
    assert code == 0 and "markov" in out, err


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_from_run_that_is_no_run_folder_is_refused_not_read_as_a_fresh_run(tmp_path, capsys, case):
    """`evaluate --from-run` on a path that does not exist, a file or an empty folder used to evaluate freshly
    generated synthetic data with exit 0."""
    run = tmp_path / "run"
    if case == "file":
        write(run, "x")
    elif case == "empty":
        run.mkdir()
    code, out, err = run_cli(["evaluate", "--methods", "pop", "--from-run", str(run), "--out",
                              str(tmp_path / "out")], capsys)
    assert code == 2 and out == "" and "option --from-run: not a run folder" in err, err
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_under_one_is_refused_before_anything_runs(tmp_path, capsys):
    afile = write(tmp_path / "afile", "x")
    for argv in (["evaluate", "--data", "synthetic", "--methods", "pop", "--out", str(afile)],
                 ["data", "synth", "--out", str(afile)],
                 ["compile", "--out", str(afile / "sub")]):
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and "option --out:" in err and "Traceback" not in err, (argv, err)
        assert afile.read_text() == "x"


def test_cuda_on_a_machine_without_one_is_refused_before_the_data_step(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_cli(["evaluate", "--data", "synthetic", "--methods", "pop", "--device", "cuda",
                              "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "option --device: device 'cuda' requested but CUDA is not available" in err, err
    assert not (tmp_path / "out").exists()


def test_an_empty_methods_list_or_a_bad_k_is_an_error_naming_the_option(tmp_path, capsys):
    code, out, err = run_cli(["evaluate", "--data", "synthetic", "--methods", " , ", "--out",
                              str(tmp_path / "out")], capsys)
    assert code == 2 and "option --methods: empty list" in err, err
    assert not (tmp_path / "out").exists()
    for typo in ("pop,,markov", "pop,"):  # a name lost between commas (audit, session 55: read as another list)
        code, out, err = run_cli(["evaluate", "--data", "synthetic", "--methods", typo, "--out",
                                  str(tmp_path / "out")], capsys)
        assert code == 2 and f"option --methods: empty entry in '{typo}'" in err, err
    code, out, err = run_cli(["ablate", "--data", "synthetic", "--variants", "coea w/o KL,,coea w/o CSID", "--out",
                              str(tmp_path / "out")], capsys)
    assert code == 2 and "option --variants: empty entry" in err, err
    code, out, err = run_cli(["evaluate", "--data", "synthetic", "--k", "5,x", "--out", str(tmp_path / "out")],
                             capsys)
    assert code == 2 and "option --k: expected comma-separated integers, got '5,x'" in err, err


def test_report_on_a_folder_that_is_no_run_is_refused_and_writes_no_page(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    write(tmp_path / "notes" / "readme.txt", "hello")
    code, out, err = run_cli(["report", "--run-dir", str(tmp_path / "notes")], capsys)
    assert code == 2 and "nothing to report" in err, err
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["readme.txt"]


def test_serve_names_its_own_options_and_run_names_a_file_as_no_run(tmp_path, capsys):
    """`coea serve --k 0` said "option k" and a bad --method "option --methods" (the library's names); `--run` on a
    file or a missing path said "no data/ directory"."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    code, _, err = run_cli(["serve", "--run", str(run), "--k", "0", "--out", str(tmp_path / "o.parquet")], capsys)
    assert code == 2 and "option --k: k must be >= 1" in err, err
    code, _, err = run_cli(["serve", "--run", str(run), "--method", "nope", "--out", str(tmp_path / "o.parquet")],
                           capsys)
    assert code == 2 and "option --method: unknown method 'nope'" in err, err
    afile = write(tmp_path / "small.yaml", "x: 1\n")
    for path, what in ((afile, "is a file"), (tmp_path / "nope", "does not exist")):
        code, _, err = run_cli(["serve", "--run", str(path), "--out", str(tmp_path / "o.parquet")], capsys)
        assert code == 2 and f"option --run: not a run folder: it {what}" in err, err
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(("sep", "shown"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")],
                         ids=["semicolon", "tab", "pipe"])
def test_a_file_separated_by_another_character_says_so_and_its_fix_converts_it(tmp_path, capsys, sep, shown):
    """Session 52: a semicolon- or tab-separated log read as one column was 'missing required column(s)' with the
    fix to rename or map columns, which cannot help. The error names the separator, and the command in its fix
    writes a comma-separated copy that loads."""
    import shlex
    import subprocess
    import sys

    rows = [HEADER.strip(), f"1,a,x,{T0}", f"1,b,y,{T0 + 5}", f"2,a,x,{T0 + 9}"]
    path = write(tmp_path / "log.csv", "\n".join(r.replace(",", sep) for r in rows) + "\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, column 'user_id': the header is one column" in line and f"separated by {shown}, not ','" in line
    command = shlex.split(line.split("e.g. ", 1)[1].rstrip(")"))
    subprocess.run([sys.executable, *command[1:]], check=True)
    code, out, _ = run_cli(["data", "stats", "--data", f"csv:{tmp_path / 'log_comma.csv'}"], capsys)
    assert code == 0 and json.loads(out)["interactions"] == 3, out


def test_a_timestamp_beyond_int64_is_named_as_such_with_its_text(tmp_path, capsys):
    """Session 52: 99999999999999999999999999 was diagnosed as 'mixed units: 100000000000000021944598528 looks like
    nanoseconds' (a float's rendering, another number than the file's)."""
    big = "99999999999999999999999999"
    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,{T0}\n1,b,y,{big}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"column 'timestamp', line 3: timestamp {big} does not fit a 64-bit integer" in line
    assert "mixed units" not in line


def test_a_gzip_file_named_csv_says_so_and_named_csv_gz_it_loads(tmp_path, capsys):
    """Session 52: a gzip file named log.csv was 'line 1: byte 0x8b is not valid UTF-8 ... iconv -f latin1', a fix
    that corrupts it. pandas decompresses by the name only: the error says to name it .csv.gz, which then loads."""
    import gzip

    body = gzip.compress(f"{HEADER}1,a,x,{T0}\n2,b,y,{T0 + 5}\n".encode())
    path = write(tmp_path / "log.csv", body)
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}: is gzip-compressed but not named so" in line and "name it log.csv.gz" in line
    assert "iconv" not in line
    renamed = write(tmp_path / "log.csv.gz", body)
    code, out, _ = run_cli(["data", "stats", "--data", f"csv:{renamed}"], capsys)
    assert code == 0 and json.loads(out)["interactions"] == 2, out
    # .gzip is no name pandas decompresses (review, session 53: it passed this check, then failed as 'not UTF-8')
    gzip_named = write(tmp_path / "log.csv.gzip", body)
    line = one_error(capsys, tmp_path, f"csv:{gzip_named}", command="stats")
    assert f"{gzip_named}: is gzip-compressed but not named so" in line and "name it log.csv.gz" in line


def _compress(kind: str, path: Path, text: bytes) -> Path:
    import bz2
    import gzip
    import lzma
    import zipfile

    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(path.stem, text)
        return path
    if kind == "tar.gz":
        import io
        import tarfile

        with tarfile.open(path, "w:gz") as archive:
            info = tarfile.TarInfo("log.csv")
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text))
        return path
    return write(path, {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text))


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip", "tar.gz"])
def test_a_bad_row_inside_a_compressed_csv_is_named_at_its_line_in_the_text(tmp_path, capsys, kind):
    """Session 52's audit: pandas reads log.csv.gz decompressed, but the scanners that place an error read the raw
    bytes: a mixed-unit timestamp on line 4 of the text was placed by the compressed bytes' newlines."""
    text = f"{HEADER}1,a,x,{T0}\n\n1,b,y,{T0 * 1000 + 5}\n2,a,x,{T0 + 9}\n".encode()
    path = _compress(kind, tmp_path / f"log.csv.{kind}", text)
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, column 'timestamp', line 4: mixed units: {T0 * 1000 + 5} looks like milliseconds" in line


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_a_latin1_byte_inside_a_compressed_csv_gets_a_fix_that_keeps_it_readable(tmp_path, capsys, kind):
    """The plain file's fix (iconv on the file) would re-encode the compressed bytes: the fix decompresses first, and
    the command it names (run here) writes a file that loads."""
    import shutil
    import subprocess

    text = f"{HEADER}1,a,x,{T0}\n\n1,b,".encode() + b"caf\xe9," + f"{T0 + 1}\n".encode()
    path = _compress(kind, tmp_path / f"log.csv.{kind}", text)
    line = one_error(capsys, tmp_path, f"csv:{path}")
    assert f"{path}, column 'category', line 4: byte 0xe9 is not valid UTF-8" in line
    fix = line.split(", e.g. ", 1)[1].strip().removesuffix(")")
    tools = [word for word in fix.split() if word in ("gzip", "unzip", "iconv")]
    if any(shutil.which(tool) is None for tool in tools):
        pytest.skip(f"the fix's tools {tools} are not all on PATH here")
    subprocess.run(fix, shell=True, cwd=tmp_path, check=True)
    fixed = tmp_path / fix.rsplit("> ", 1)[1]
    code, out, err = run_cli(["data", "stats", "--data", f"csv:{fixed}"], capsys)
    assert code == 0 and json.loads(out)["interactions"] == 2, err


def test_a_duplicate_column_in_a_compressed_header_is_named(tmp_path, capsys):
    """The header check read the raw bytes of log.csv.gz: binary noise, no duplicate found, pandas' 'user_id.1'
    then went unnoticed."""
    text = f"user_id,item_id,category,timestamp,user_id\n1,a,x,{T0},2\n".encode()
    path = _compress("gz", tmp_path / "log.csv.gz", text)
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, column 'user_id', line 1: the header names column 'user_id' twice" in line


def test_fractional_order_keys_under_allow_any_timestamp_are_refused_not_rounded_into_duplicates(tmp_path, capsys):
    """Audit (session 53): keys 0.1 .. 0.7 were rounded to 0 and 1, so u1's two events of item a became one
    "exact duplicate" and were dropped (5 of 6 events left, with an INFO line). Now an error names the first
    fractional key; its rank fix keeps all six events in their order."""
    rows = [("a", 0.1), ("b", 0.2), ("a", 0.3), ("c", 0.4), ("b", 0.6), ("d", 0.7)]
    path = write(tmp_path / "frac.csv", HEADER + "".join(f"u1,{i},{i.upper()},{t}\n" for i, t in rows))
    cfg = write(tmp_path / "c.yaml", "data: {allow_any_timestamp: true}\n")
    line = one_error(capsys, tmp_path, f"csv:{path}", "--config", str(cfg), command="stats")
    assert f"{path}, column 'timestamp', line 2: timestamp 0.1 is not a whole number" in line and "rank" in line
    df = pd.read_csv(path)
    df["timestamp"] = df["timestamp"].rank(method="dense").astype("int64")
    df.to_csv(path, index=False)
    code, out, err = run_cli(["data", "stats", "--data", f"csv:{path}", "--config", str(cfg)], capsys)
    assert code == 0 and json.loads(out)["interactions"] == 6, err


def test_a_utf16_csv_is_named_as_such_and_its_fix_converts_it(tmp_path, capsys):
    """Audit (session 53): Excel's "Unicode Text" (UTF-16 with a byte-order mark) got "byte 0xff is not valid
    UTF-8 ... iconv -f latin1", which wrote a file of NUL bytes. The fix it gives now (run here) gives a log that
    loads."""
    import shutil
    import subprocess

    path = write(tmp_path / "log.csv", f"{HEADER}1,a,x,{T0}\n2,b,y,{T0 + 5}\n".encode("utf-16"))
    line = one_error(capsys, tmp_path, f"csv:{path}", command="stats")
    assert f"{path}, line 1: is UTF-16 text" in line and "iconv -f utf-16 -t utf-8 log.csv > log.utf8.csv" in line
    if shutil.which("iconv") is None:
        pytest.skip("iconv is not on PATH here")
    subprocess.run("iconv -f utf-16 -t utf-8 log.csv > log.utf8.csv", shell=True, cwd=tmp_path, check=True)
    code, out, err = run_cli(["data", "stats", "--data", f"csv:{tmp_path / 'log.utf8.csv'}"], capsys)
    assert code == 0 and json.loads(out)["interactions"] == 2, err
