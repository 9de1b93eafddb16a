"""Data specs on ``gs://`` against the in-process GCS emulator (the real google-cloud-storage client): csv and
parquet objects, ``dt=YYYY-MM-DD/`` partitions chosen by the as-of time (local folders too), and each GCS failure
as one ``error:`` line with exit code 2 and nothing written."""

from __future__ import annotations

import json
from contextlib import nullcontext
from io import BytesIO
from pathlib import Path

import pandas as pd
import pytest

from coea.config import DataConfig, RunConfig
from coea.data.loaders import load_data
from coea.data.partitions import scheduled_as_of
from coea.stages import run_prepare_data
from tests.gcs_helpers import BUCKET, faulty_gcs, free_port, partition_days, upload_partitions
from tests.helpers import one_error, run_cli

pytestmark = pytest.mark.usefixtures("warnings_seen")  # tests/integration/conftest.py
DAYS = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """Three events a day on DAYS; the user of day i is ``d<i>``, so the users read say which days were read."""
    rows = []
    for i, day in enumerate(DAYS):
        t0 = int(pd.Timestamp(day, tz="UTC").timestamp())
        rows += [(f"d{i}", f"it{j}", f"cat{(i + j) % 3}", t0 + 3600 * (j + 1)) for j in range(3)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])


def _put(client, name: str, df: pd.DataFrame, fmt: str = "csv") -> str:
    buf = BytesIO()
    df.to_csv(buf, index=False) if fmt == "csv" else df.to_parquet(buf, index=False)
    client.bucket(BUCKET).blob(name).upload_from_string(buf.getvalue())
    return f"gs://{BUCKET}/{name}"


def _users(spec: str, **data) -> list[str]:
    return sorted(load_data(DataConfig(spec=spec, **data)).interactions["user_id"].unique())


def test_data_stats_reads_a_csv_object_exactly_like_the_local_file(gcs_client, log, tmp_path, capsys) -> None:
    """`coea data stats --data csv:gs://BUCKET/log.csv`: the statistics of the local copy, and the source is the
    URI as given (before, ``gs://b/x`` became ``gs:/b/x`` on the way through ``Path``)."""
    uri = _put(gcs_client, "log.csv", log)
    log.to_csv(tmp_path / "log.csv", index=False)
    code, out, err = run_cli(["data", "stats", "--data", f"csv:{uri}"], capsys)
    assert code == 0, err
    code_local, out_local, _ = run_cli(["data", "stats", "--data", f"csv:{tmp_path / 'log.csv'}"], capsys)
    remote, local = json.loads(out), json.loads(out_local)
    assert remote.pop("source") == f"gs://{BUCKET}/log.csv" and local.pop("source") == str(tmp_path / "log.csv")
    assert code_local == 0 and remote == local and remote["interactions"] == 12


def test_parquet_object_loads_the_same_table_as_the_local_file(gcs_client, log, tmp_path) -> None:
    uri = _put(gcs_client, "logs/log.parquet", log, fmt="parquet")
    log.to_parquet(tmp_path / "log.parquet", index=False)
    remote = load_data(DataConfig(spec=f"parquet:{uri}"))
    pd.testing.assert_frame_equal(remote.interactions, load_data(DataConfig(spec=f"parquet:{tmp_path}/log.parquet"))
                                  .interactions)
    assert remote.source == uri


@pytest.mark.parametrize(("as_of", "window", "read"), [
    (None, 0, [0, 1, 2, 3]),  # no as-of: every partition
    ("2024-03-03T00:00:00Z", 0, [0, 1]),  # days that ended by midnight of 03-03: 03-01 and 03-02
    ("2024-03-03T18:30:00+02:00", 0, [0, 1]),  # 16:30 UTC: 03-03 is still running
    ("2024-03-04", 1, [2]),  # a date is its midnight; a window of one day = yesterday
    ("2024-03-09T00:00:00Z", 7, [1, 2, 3]),  # the last 7 days before 03-09: 03-02 .. 03-08
])
@pytest.mark.parametrize("where", ["gs", "local"])
def test_partitions_are_chosen_by_the_as_of_rule(gcs_client, log, tmp_path, where, as_of, window, read) -> None:
    """dt=D is read when D < the as-of date (its day has ended), and with window_days=N only the last N such
    days; ``_SUCCESS`` markers are skipped. The same rule for gs:// and a local folder."""
    if where == "gs":
        upload_partitions(gcs_client, log, "events/")
        spec = f"csv:gs://{BUCKET}/events/"
    else:
        for day, part in log.groupby(partition_days(log)):
            (tmp_path / f"dt={day}").mkdir()
            part.to_csv(tmp_path / f"dt={day}" / "part-00000.csv", index=False)
        (tmp_path / f"dt={DAYS[0]}" / "_SUCCESS").write_text("")
        spec = f"csv:{tmp_path}"
    assert _users(spec, as_of=as_of, window_days=window) == [f"d{i}" for i in read]


def test_prepare_takes_the_scheduled_time_unless_the_config_names_an_as_of(gcs_client, log, tmp_path) -> None:
    """The prepare stage (the pipelines' prepare_data step) reads the period of the scheduled time and records
    the as-of time in the prepared dir; a ``data.as_of`` in the config wins (a backfill)."""
    upload_partitions(gcs_client, log, "events/", fmt="parquet")
    cfg = RunConfig(data=DataConfig(spec=f"parquet:gs://{BUCKET}/events/", window_days=2))
    result = run_prepare_data(cfg, tmp_path / "sched", scheduled_time="2024-03-05T00:00:00Z")
    assert result.as_of == "2024-03-05T00:00:00Z" and result.stats["users"] == 2  # 03-03, 03-04
    assert result.source == f"gs://{BUCKET}/events/ dt=2024-03-03..2024-03-04 (2 partitions)"
    saved = json.loads((tmp_path / "sched" / "data_config.json").read_text())["data"]
    assert saved["as_of"] == "2024-03-05T00:00:00Z"
    cfg.data.as_of = "2024-03-03"
    backfill = run_prepare_data(cfg, tmp_path / "backfill", scheduled_time="2024-03-05T00:00:00Z")
    assert backfill.as_of == "2024-03-03" and backfill.source.endswith("dt=2024-03-01..2024-03-02 (2 partitions)")


def test_an_unresolved_schedule_placeholder_falls_back_to_now() -> None:
    """A KFP backend that leaves ``{{$.pipeline_job_schedule_time_utc}}`` as it is (kubeflow/pipelines#12616)."""
    before = pd.Timestamp.now(tz="UTC").floor("s")  # the value has whole seconds
    got = pd.Timestamp(scheduled_as_of("{{$.pipeline_job_schedule_time_utc}}"))
    assert before <= got <= pd.Timestamp.now(tz="UTC") and scheduled_as_of("") is None  # bounds, not a duration


def test_a_bad_row_in_a_partition_names_its_object_and_line(gcs_client, log, tmp_path, capsys) -> None:
    """Rows of the concatenated partitions are traced back: the third data row of dt=2024-03-02 (line 4 of its
    file) has a negative timestamp."""
    bad = log.copy()
    bad.loc[5, "timestamp"] = -5
    upload_partitions(gcs_client, bad.drop(index=5), "events/")
    day2 = bad[partition_days(log) == DAYS[1]]
    _put(gcs_client, f"events/dt={DAYS[1]}/part-00000.csv", day2)
    line = one_error(capsys, tmp_path, f"csv:gs://{BUCKET}/events/", command="stats")
    assert line.startswith(f"error: gs://{BUCKET}/events/dt={DAYS[1]}/part-00000.csv, column 'timestamp', line 4:")


def test_an_error_while_a_gs_object_is_read_names_the_object_not_its_temporary_copy(gcs_client, log, tmp_path,
                                                                                       capsys) -> None:
    """A gs:// CSV whose header lacks user_id fails while the file itself is read (not after the partitions are
    combined): the error names gs://BUCKET/..., never the local temporary copy, which is gone when it is shown."""
    _put(gcs_client, "renamed.csv", log.rename(columns={"user_id": "uid"}))
    line = one_error(capsys, tmp_path, f"csv:gs://{BUCKET}/renamed.csv", command="stats")
    assert line.startswith(f"error: gs://{BUCKET}/renamed.csv, column 'user_id': "), line
    assert "/tmp" not in line and "coea-data" not in line


def test_a_bad_row_in_a_parquet_partition_names_its_object_and_its_own_row(gcs_client, log, tmp_path,
                                                                           capsys) -> None:
    """Parquet has no lines: the row is counted within its own partition's file (row 2 of dt=DAYS[1]'s three), not
    within the combined table (row 5)."""
    bad = log.copy()
    bad.loc[4, "timestamp"] = -5  # the second event of DAYS[1] (rows 3-5 of the log)
    upload_partitions(gcs_client, bad.drop(index=4), "pq/", fmt="parquet")
    _put(gcs_client, f"pq/dt={DAYS[1]}/part-00000.parquet", bad[partition_days(log) == DAYS[1]], fmt="parquet")
    line = one_error(capsys, tmp_path, f"parquet:gs://{BUCKET}/pq/", command="stats")
    assert line.startswith(f"error: gs://{BUCKET}/pq/dt={DAYS[1]}/part-00000.parquet, column 'timestamp', row 2:"), line


@pytest.mark.parametrize(("name", "expected"), [
    ("gs://no-such-bucket/log.csv", "gs://no-such-bucket/log.csv: bucket 'no-such-bucket' does not exist"),
    (f"gs://{BUCKET}/nope.csv", f"gs://{BUCKET}/nope.csv: object not found"),
    (f"gs://{BUCKET}/events/", f"gs://{BUCKET}/events/: no dt=YYYY-MM-DD/ partition with a .csv file"),
    (f"gs://{BUCKET}/old/", f"gs://{BUCKET}/old/, option --as-of: no partition in the period before 2024-03-01 "
                            "(as-of 2024-03-01); found dt=2024-03-01 .. dt=2024-03-04"),
])
@pytest.mark.parametrize("command", ["evaluate", "stats"])
def test_missing_bucket_object_or_partitions_is_one_line_exit_2(gcs_client, log, tmp_path, capsys, name, expected,
                                                                  command) -> None:
    upload_partitions(gcs_client, log, "old/")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {as_of: '2024-03-01'}\n")
    line = one_error(capsys, tmp_path, f"csv:{name}", "--config", str(cfg), command=command)
    assert line.startswith(f"error: {expected}")


@pytest.mark.parametrize(("mode", "expected"), [
    ("forbidden", "permission denied (403) reading it (fix: grant the pod's service account"),
    ("truncate", "reading it failed (RetryError: Timeout of 0.3s exceeded"),  # connection dropped mid-read
    ("down", "reading it failed (RetryError: Timeout of 0.3s exceeded"),  # nothing listening: an outage
])
@pytest.mark.parametrize("command", ["evaluate", "stats"])
def test_no_permission_or_a_failed_read_is_one_line_exit_2(monkeypatch, tmp_path, capsys, mode, expected,
                                                           command) -> None:
    """403 is not retried; a dropped connection and an outage are retried for data.gcs_retry_s, then stop."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {gcs_retry_s: 0.3}\n")
    down = nullcontext(f"http://127.0.0.1:{free_port()}")  # a port nothing listens on
    with down if mode == "down" else faulty_gcs(mode) as host:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        line = one_error(capsys, tmp_path, f"csv:gs://{BUCKET}/log.csv", "--config", str(cfg), command=command)
    assert line.startswith(f"error: gs://{BUCKET}/log.csv: {expected}")


def test_a_dropped_connection_leaves_no_temporary_copy(monkeypatch, tmp_path) -> None:
    """The partial download lives in a temporary folder that is gone after the error."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with faulty_gcs("truncate") as host:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        with pytest.raises(ValueError, match="reading it failed"):
            load_data(DataConfig(spec=f"csv:gs://{BUCKET}/log.csv", gcs_retry_s=0.0))
    assert list(Path(tmp_path).iterdir()) == []
