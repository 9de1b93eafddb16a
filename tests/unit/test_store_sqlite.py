"""Unit tests of the versioned SQLite recommendation store (coea.store.kv / publish)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from coea.store import KVStore, PublishConfig, Recommendation, StoreError, run_publish


def user_frame(n_users: int, k: int, marker: int) -> pd.DataFrame:
    """Every user gets categories ``v{marker}-c{j}`` with score ``marker + j / 100`` (j = 0..k-1)."""
    rows = [{"user_id": f"u{u:04d}", "rank": j + 1, "category": f"v{marker}-c{j}", "score": marker + j / 100}
            for u in range(n_users) for j in range(k)]
    return pd.DataFrame(rows)


def group_frame() -> pd.DataFrame:
    return pd.DataFrame({"group_id": ["3-12", "3-12", "7-1"], "rank": [2, 1, 1],
                         "category": ["Drama", "Comedy|Romance", "Horror"], "score": [0.25, 0.75, 0.5]})


@pytest.fixture
def store(tmp_path: Path):
    with KVStore(tmp_path / "serve" / "recs.sqlite", keep_versions=3) as kv:
        yield kv


def test_publish_then_get_user_returns_published_values(store: KVStore) -> None:
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "rank": [2, 1, 1],
                          "category": ["Drama", "Comedy", "Horror"], "score": [0.4, 0.9, 0.3]})
    version = store.publish(frame, group_frame(), metadata={"period": 7})
    assert store.active_version() == version
    assert store.get_user("a") == [Recommendation("Comedy", 0.9, 1), Recommendation("Drama", 0.4, 2)]
    assert store.get_user("b") == [Recommendation("Horror", 0.3, 1)]
    assert store.get_user("nobody") == []
    assert store.get_group("3-12") == [Recommendation("Comedy|Romance", 0.75, 1), Recommendation("Drama", 0.25, 2)]
    assert store.get_users(["b", "a", "zz"]) == {"a": store.get_user("a"), "b": store.get_user("b")}
    [info] = store.versions()
    assert (info.version, info.n_users, info.n_groups, info.n_rows, info.active) == (version, 2, 2, 6, True)
    assert info.metadata == {"period": 7}


def test_a_user_and_a_group_with_the_same_id_keep_their_own_lists(store: KVStore) -> None:
    """Audit, session 55: no test had a user id equal to a group id, so a lookup that ignored the key's kind passed.
    With ``group.depth: 1`` group ids are plain integers ("3"), the shape of MovieLens user ids."""
    users = pd.DataFrame({"user_id": ["3"], "rank": [1], "category": ["Drama"], "score": [0.9]})
    groups = pd.DataFrame({"group_id": ["3", "7"], "rank": [1, 1], "category": ["Comedy", "Horror"],
                           "score": [0.5, 0.4]})
    store.publish(users, groups)
    assert store.get_user("3") == [Recommendation("Drama", 0.9, 1)] and store.get_user("7") == []
    assert store.get_users(["3", "7"]) == {"3": [Recommendation("Drama", 0.9, 1)]}
    assert store.get_group("3") == [Recommendation("Comedy", 0.5, 1)] and store.get_group("7") != []


def test_store_holds_one_json_row_per_user_in_wal_mode(store: KVStore) -> None:
    version = store.publish(user_frame(4, 3, marker=1))
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = conn.execute("SELECT key, value FROM recs WHERE version = ? ORDER BY key", (version,)).fetchall()
    assert [key for key, _ in rows] == ["u0000", "u0001", "u0002", "u0003"]
    assert rows[0][1] == '[{"category":"v1-c0","score":1.0},{"category":"v1-c1","score":1.01},' \
                         '{"category":"v1-c2","score":1.02}]'


def test_int_user_ids_are_stored_and_read_as_strings(store: KVStore) -> None:
    store.publish(pd.DataFrame({"user_id": [17], "rank": [1], "category": ["Drama"], "score": [1]}))
    assert store.get_user("17") == [Recommendation("Drama", 1.0, 1)]
    assert store.get_user(17) == store.get_user("17")  # type: ignore[arg-type]


def test_float_ids_are_stored_as_the_integers_they_equal_as_the_data_loader_reads_them(store: KVStore) -> None:
    """A Parquet double id column (1.0) was stored as "1.0", so the lookup of "1" (the id the data loader and the
    pipelines use) silently returned []. A fractional id is refused, naming the column and the row."""
    store.publish(pd.DataFrame({"user_id": [1.0, 1.0, 20.0], "rank": [1, 2, 1], "category": [7.0, 3.0, 7.0],
                                "score": [0.9, 0.5, 0.4]}))
    assert store.get_user("1") == [Recommendation("7", 0.9, 1), Recommendation("3", 0.5, 2)]
    assert store.get_user("20") == [Recommendation("7", 0.4, 1)] and store.get_user("1.0") == []
    with pytest.raises(StoreError, match=r"^user_recs, column 'user_id', row 2: user_id 2.5 is not a whole number"):
        store.publish(pd.DataFrame({"user_id": [1.0, 2.5], "rank": [1, 1], "category": ["a", "b"], "score": [1, 1]}))
    assert len(store.versions()) == 1


def test_new_version_switches_reads_and_rollback_switches_back(store: KVStore) -> None:
    first = store.publish(user_frame(3, 2, marker=1))
    second = store.publish(user_frame(3, 2, marker=2))
    assert first != second
    assert store.active_version() == second
    assert [r.category for r in store.get_user("u0001")] == ["v2-c0", "v2-c1"]
    store.rollback(first)
    assert store.active_version() == first
    assert [r.score for r in store.get_user("u0001")] == [1.0, 1.01]
    assert [v.active for v in store.versions()] == [True, False]


def test_rollback_to_unknown_version_raises_and_keeps_active(store: KVStore) -> None:
    version = store.publish(user_frame(2, 1, marker=1))
    with pytest.raises(StoreError, match="unknown version 'nope'"):
        store.rollback("nope")
    assert store.active_version() == version


def test_garbage_collection_keeps_newest_n_and_the_active_version(tmp_path: Path) -> None:
    with KVStore(tmp_path / "kv.sqlite", keep_versions=2) as store:
        published = [store.publish(user_frame(2, 2, marker=m)) for m in range(5)]
        assert [v.version for v in store.versions()] == published[-2:]
        store.rollback(published[3])
        newest = store.publish(user_frame(2, 2, marker=9))
        # newest two are (published[4], newest); the active one was newest, so published[3] goes
        assert [v.version for v in store.versions()] == [published[4], newest]
        store.rollback(published[4])
        assert store.collect_garbage() == []
        with sqlite3.connect(store.path) as conn:
            stored = {row[0] for row in conn.execute("SELECT DISTINCT version FROM recs")}
        assert stored == {published[4], newest}

    # the active version outside the newest N (a rollback to the oldest kept one, then a smaller N) survives
    with KVStore(tmp_path / "kv2.sqlite", keep_versions=3) as store:
        p0, p1, p2 = (store.publish(user_frame(1, 1, marker=m)) for m in range(3))
        store.rollback(p0)
    with KVStore(tmp_path / "kv2.sqlite", keep_versions=1) as store:
        assert store.collect_garbage() == [p1]
        assert store.active_version() == p0 and [v.version for v in store.versions()] == [p0, p2]
        assert [r.category for r in store.get_user("u0000")] == ["v0-c0"]
        with sqlite3.connect(store.path) as conn:
            assert {row[0] for row in conn.execute("SELECT DISTINCT version FROM recs")} == {p0, p2}


def test_empty_store_reads_nothing(store: KVStore) -> None:
    assert store.active_version() is None
    assert store.get_user("u0000") == []
    assert store.versions() == []
    empty = store.active_user_recs()
    assert empty.empty and list(empty.columns) == ["user_id", "rank", "category", "score"]


def test_active_user_recs_is_the_active_version_in_the_publish_format(store: KVStore) -> None:
    """Every user's rows of the ACTIVE version (after a rollback, the older one), round-tripping what was
    published; group entries are not user rows."""
    first = user_frame(3, 2, marker=1)
    store.publish(first, group_frame())
    second = store.publish(user_frame(3, 2, marker=2))
    assert store.active_user_recs().sort_values(["user_id", "rank"]).reset_index(drop=True).equals(
        user_frame(3, 2, marker=2))
    store.rollback(store.versions()[0].version)
    assert store.active_version() != second
    got = store.active_user_recs().sort_values(["user_id", "rank"]).reset_index(drop=True)
    assert got.equals(first) and got.dtypes["rank"] == "int64"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"user_id": ["a"], "rank": [1], "score": [0.5]}), "column 'category': missing column"),
        (pd.DataFrame({"user_id": [], "rank": [], "category": [], "score": []}), "empty frame"),
        (pd.DataFrame({"user_id": ["a"], "rank": [1], "category": ["x"], "score": [float("nan")]}),
         "column 'score', row 1: null value"),
        (pd.DataFrame({"user_id": ["a", "a", "b"], "rank": [1, 2, 1], "category": ["x", None, "y"],
                       "score": [1.0, 2.0, 3.0]}, index=[10, 11, 12]), "column 'category', row 2: null value"),
        (pd.DataFrame({"user_id": ["a", "b"], "rank": [1, 0], "category": ["x", "y"], "score": [1.0, 2.0]}),
         r"column 'rank', row 2: rank 0 is not an integer >= 1"),
        (pd.DataFrame({"user_id": ["a", "b"], "rank": [1, 1], "category": ["x", "y"], "score": [1.0, float("inf")]}),
         r"column 'score', row 2: score inf is not a finite number"),
        (pd.DataFrame({"user_id": ["a", "a"], "rank": [1, 3], "category": ["x", "y"], "score": [1, 2]}),
         "column 'rank', row 2: ranks of user_id='a' are not 1..K without gaps or repeats \\(rank 3 where 2"),
        (pd.DataFrame({"user_id": ["b", "a", "a"], "rank": [1, 1, 3], "category": ["x", "y", "z"], "score": [1] * 3}),
         "column 'rank', row 3: ranks of user_id='a'"),  # the input's row, not the sorted frame's (2)
        (pd.DataFrame({"user_id": ["a", "a"], "rank": [1, 2.5], "category": ["x", "y"], "score": [1.0, 2.0]}),
         "column 'rank', row 2: rank 2.5 is not an integer >= 1"),  # not truncated to rank 2
        (pd.DataFrame({"user_id": ["a"], "rank": [0], "category": ["x"], "score": [1.0]}),
         "row 1: rank 0 is not an integer >= 1"),
        (pd.DataFrame({"user_id": ["a", "b", "a"], "rank": [2, 1, 1], "category": ["x", "y", "x"], "score": [1] * 3}),
         "column 'category', row 1: category 'x' repeats for user_id='a'"),  # rank 2's row (sorted frame: 2)
        (pd.DataFrame({"user_id": ["a"], "rank": [1], "category": ["x"], "score": ["high"]}),
         "row 1: score 'high' is not a finite number"),
    ],
)
def test_bad_input_raises_one_line_store_error_and_writes_nothing(store: KVStore, frame: pd.DataFrame,
                                                                  message: str) -> None:
    with pytest.raises(StoreError, match=message) as err:
        store.publish(frame)
    assert isinstance(err.value, ValueError)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)
    assert store.versions() == []


def test_bad_group_frame_and_metadata_raise(store: KVStore) -> None:
    with pytest.raises(StoreError, match="group_recs, column 'group_id': missing column"):
        store.publish(user_frame(1, 1, 1), user_frame(1, 1, 1))
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.publish(user_frame(1, 1, 1), metadata={"when": object()})
    assert store.versions() == []


def test_failed_publish_rolls_back_completely(store: KVStore, monkeypatch: pytest.MonkeyPatch) -> None:
    good = store.publish(user_frame(3, 2, marker=1))

    def boom(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error (injected)")

    monkeypatch.setattr(KVStore, "_insert_values", staticmethod(boom))
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        store.publish(user_frame(3, 2, marker=2))
    assert store.active_version() == good
    assert [v.version for v in store.versions()] == [good]
    assert store.get_user("u0002")[0].category == "v1-c0"


def test_not_a_database_file_raises_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "not.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open as a SQLite store") as writer:
        KVStore(bad)
    assert "point the store at a new file" in str(writer.value)  # a writer may start a new store elsewhere
    with pytest.raises(StoreError, match="cannot open as a SQLite store") as lookup:
        KVStore(bad, create=False)
    # a lookup in a new file finds nothing: it names the file a publish writes (session 52)
    assert "new file" not in str(lookup.value) and "pass the recs.sqlite a publish wrote" in str(lookup.value)


def test_a_foreign_sqlite_file_is_refused_by_writers_and_readers_and_left_as_it_was(tmp_path: Path) -> None:
    """Another application's SQLite file is never turned into a store: a writer (``create=True``) refuses it
    before adding a table or switching it to WAL; a reader also refuses an empty file, which a writer may adopt."""
    import sqlite3

    foreign = tmp_path / "app.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.close()
    before = foreign.read_bytes()
    for create in (True, False):
        with pytest.raises(StoreError, match=r"app.sqlite: a SQLite file of something else, not a coea store "
                                             r"\(its tables: orders\)"):
            KVStore(foreign, create=create)
        assert foreign.read_bytes() == before
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="an empty file, not a coea store"):
        KVStore(empty, create=False)
    assert empty.read_bytes() == b""
    with pytest.raises(StoreError, match="no store at this path"):
        KVStore(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()
    with KVStore(empty) as writer:  # an empty file is a new store to a writer
        writer.publish(user_frame(1, 1, 1))
        written = writer.get_user("u0000")
    with KVStore(empty, create=False) as reader:
        assert reader.get_user("u0000") == written != []


def test_keep_versions_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_versions"):
        KVStore(tmp_path / "kv.sqlite", keep_versions=0)


def _check_consistent(recs: list[Recommendation], k: int) -> int:
    """Every item of one read comes from one version: return that version's marker."""
    assert [r.rank for r in recs] == list(range(1, k + 1))
    markers = {r.category.split("-")[0] for r in recs} | {f"v{int(r.score)}" for r in recs}
    assert len(markers) == 1, markers
    return int(markers.pop()[1:])


def _reader_process(path: str, users: list[str], k: int, started, stop, results) -> None:
    """A serving process: batch and single reads until ``stop``; puts (versions seen in order, error or None).
    It opens the store as every serving reader does (``create=False``: read-only, ``mode=ro``)."""
    seen: list[int] = []
    try:
        with KVStore(Path(path), create=False) as reader:
            while not stop.is_set():
                single = _check_consistent(reader.get_user(users[len(seen) % len(users)]), k)
                batch = reader.get_users(users)
                assert sorted(batch) == users, f"{len(batch)} of {len(users)} users"  # never a partial version
                markers = {_check_consistent(recs, k) for recs in batch.values()}
                assert len(markers) == 1, f"one batch read mixes versions {sorted(markers)}"
                assert (seen[-1] if seen else 0) <= single <= min(markers)  # versions only move forward
                seen.append(markers.pop())
                started.set()
        results.put((seen, None))
    except BaseException as exc:  # reported to the test process
        results.put((seen, repr(exc)))


def test_reader_processes_always_see_one_complete_version(tmp_path: Path) -> None:
    """Two serving processes batch-read 1,200 users (3 statements of at most 500 keys) while another process
    publishes 12 versions back to back: every batch holds all users from one version, and every reader sees
    versions move forward (the read transaction of get_users is what keeps the 3 statements on one version)."""
    import multiprocessing

    path, n_users, k, n_versions, n_readers = tmp_path / "kv.sqlite", 1200, 3, 12, 2
    users = [f"u{u:04d}" for u in range(n_users)]
    frames = [user_frame(n_users, k, marker=marker) for marker in range(n_versions + 1)]
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    started = [ctx.Event() for _ in range(n_readers)]
    with KVStore(path, keep_versions=2) as writer:
        writer.publish(frames[0])
        readers = [ctx.Process(target=_reader_process, args=(str(path), users, k, event, stop, results))
                   for event in started]
        for proc in readers:
            proc.start()
        try:
            assert all(event.wait(timeout=60) for event in started), "a reader process did not start"
            for frame in frames[1:]:
                writer.publish(frame)
        finally:
            stop.set()
            outcomes = [results.get(timeout=60) for _ in readers]
            for proc in readers:
                proc.join(timeout=10)
    assert [error for _, error in outcomes] == [None] * n_readers, outcomes
    for seen, _ in outcomes:
        assert seen == sorted(seen) and len(set(seen)) >= 2, seen  # reads ran while versions changed


def test_publish_config_validates() -> None:
    assert PublishConfig().keep_versions == 3
    with pytest.raises(ValueError, match="keep_versions must be >= 1, got 0"):
        PublishConfig(keep_versions=0)
    with pytest.raises(ValueError, match="keep_versions must be an int"):
        PublishConfig(keep_versions=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s"):
        PublishConfig(timeout_s=0)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        PublishConfig(metadata={"x": {1, 2}})


def test_run_publish_reads_parquet_and_records_config(tmp_path: Path) -> None:
    recs_path, groups_path = tmp_path / "recs.parquet", tmp_path / "groups.parquet"
    user_frame(5, 3, marker=4).to_parquet(recs_path)
    group_frame().to_parquet(groups_path)
    cfg = PublishConfig(keep_versions=1, metadata={"run": "r1"})
    store_path = tmp_path / "store" / "kv.sqlite"
    first = run_publish(cfg, recs_path, store_path)
    result = run_publish(cfg, recs_path, store_path, group_recs_path=groups_path)
    assert (result.n_users, result.n_groups, result.n_rows) == (5, 2, 18)
    assert result.kept_versions == (result.version,) and first.version != result.version
    with KVStore(store_path) as store:
        assert store.get_user("u0004")[2] == Recommendation("v4-c2", 4.02, 3)
        assert store.get_group("7-1") == [Recommendation("Horror", 0.5, 1)]
        [info] = store.versions()
    assert info.metadata["run"] == "r1"
    assert info.metadata["config"] == {"keep_versions": 1, "timeout_s": 30.0, "metadata": {"run": "r1"}}
    assert info.metadata["recs_path"] == str(recs_path)


def test_run_publish_checks_the_file_before_it_opens_the_store(tmp_path: Path) -> None:
    """A bad recommendations file created an empty store (and its folder) before the check, and the error named
    ``user_recs``: now it names the file, the column and the row, and no store (nor folder) appears; an existing
    store keeps its versions."""
    recs, groups = tmp_path / "recs.parquet", tmp_path / "groups.parquet"
    pd.DataFrame({"user_id": ["a", "a"], "rank": [1, 3], "category": ["x", "y"], "score": [1.0, 0.5]}).to_parquet(recs)
    store_path = tmp_path / "serve" / "recs.sqlite"
    with pytest.raises(StoreError) as err:
        run_publish(PublishConfig(), recs, store_path)
    assert str(err.value).startswith(f"{recs}, column 'rank', row 2: ranks of user_id='a' are not 1..K"), err.value
    assert not store_path.parent.exists()
    user_frame(2, 1, 1).to_parquet(recs)
    good = run_publish(PublishConfig(), recs, store_path)
    group_frame().assign(rank=[1, 1, 1]).to_parquet(groups)
    with pytest.raises(StoreError) as err:
        run_publish(PublishConfig(), recs, store_path, group_recs_path=groups)
    assert str(err.value).startswith(f"{groups}, column 'rank', row 2: ranks of group_id='3-12'"), err.value
    with KVStore(store_path, create=False) as store:
        assert [v.version for v in store.versions()] == [good.version]


def test_run_publish_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="missing.parquet: file not found"):
        run_publish(PublishConfig(), tmp_path / "missing.parquet", tmp_path / "kv.sqlite")
    assert not (tmp_path / "kv.sqlite").exists()


def test_a_reader_on_a_read_only_volume_reads_the_store_stand_in(tmp_path: Path, monkeypatch) -> None:
    """Audit (session 53): `coea recommend` on a store in a folder it may not write (a ReadOnlyMany volume) was
    "attempt to write a readonly database": SQLite could not make the WAL store's -shm file. A stand-in for the
    volume (root may write anywhere here): the folder reads as unwritable and SQLite's read-only open fails as it
    does there; the reader then opens the file immutable and reads the active version."""
    import hashlib

    import coea.store.kv as kv

    path = tmp_path / "ro" / "recs.sqlite"
    with KVStore(path) as writer:
        writer.publish(user_frame(3, 2, marker=1))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    real, opened = sqlite3.connect, []

    class OnTheVolume:  # SQLite's read-only open there: the first statement cannot open the -shm file
        def execute(self, *_args):
            raise sqlite3.OperationalError("unable to open database file")

        def close(self) -> None:
            pass

    def connect(database, *args, **kwargs):
        opened.append(str(database))
        return OnTheVolume() if str(database).endswith("?mode=ro") else real(database, *args, **kwargs)

    monkeypatch.setattr(kv.sqlite3, "connect", connect)
    monkeypatch.setattr(kv.os, "access", lambda *_args: False)
    with KVStore(path, create=False) as reader:
        assert reader.get_user("u0001") == [Recommendation("v1-c0", 1.0, 1), Recommendation("v1-c1", 1.01, 2)]
    assert opened[-1].endswith("?mode=ro&immutable=1")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
