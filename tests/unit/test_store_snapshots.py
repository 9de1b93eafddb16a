"""What a reader of the serving store sees when a publish commits meanwhile, when a killed writer left its commit in
the ``-wal`` file, and what ``run_export`` ships (audit, session 56)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from coea.store import KVStore, PublishConfig, Recommendation, StoreError
from tests.helpers import run_cli


def frame(category: str) -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u1"], "rank": [1], "category": [category], "score": [0.5]})


def test_recommend_prints_the_version_whose_list_it_prints_when_a_publish_commits_meanwhile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`coea recommend` read the active version, then the list, as separate statements: a publish committing in
    between printed v1's id with v2's list. A publish (keep_versions=1: it deletes v1) now commits right after the
    lookup's first read; the lookup is one read transaction, so it prints v1 with v1's list from its snapshot."""
    path = tmp_path / "recs.sqlite"
    with KVStore(path) as writer:
        v1 = writer.publish(frame("OLD"))
    real, published = KVStore._checked_active, []

    def racing(self: KVStore, conn: sqlite3.Connection) -> str | None:
        version = real(self, conn)
        if not published:
            with KVStore(path, keep_versions=1) as other:  # v1's rows are deleted too
                published.append(other.publish(frame("NEW")))
        return version

    monkeypatch.setattr(KVStore, "_checked_active", racing)
    code, out, err = run_cli(["recommend", "--store", str(path), "--user", "u1"], capsys)
    assert code == 0, err
    printed = json.loads(out)
    assert published and (printed["version"], printed["recommendations"][0]["category"]) == (v1, "OLD")
    monkeypatch.undo()
    with KVStore(path, create=False) as reader:
        assert reader.active_version() == published[0] and reader.get_user("u1")[0].category == "NEW"
        found = reader.lookup("user", "u1")
        assert (found.version, found.recs) == (published[0], [Recommendation("NEW", 0.5, 1)])


def on_a_read_only_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in of tests/unit/test_store_sqlite.py: the folder reads as unwritable and SQLite's read-only open
    fails there as it does on the volume (it cannot make the -shm file)."""
    import coea.store.kv as kv

    real = sqlite3.connect

    class OnTheVolume:
        def execute(self, *_args: object) -> None:
            raise sqlite3.OperationalError("unable to open database file")

        def close(self) -> None:
            pass

    monkeypatch.setattr(kv.sqlite3, "connect", lambda database, *args, **kwargs: OnTheVolume()
                        if str(database).endswith("?mode=ro") else real(database, *args, **kwargs))
    monkeypatch.setattr(kv.os, "access", lambda *_args: False)


def test_a_reader_on_a_read_only_volume_refuses_a_store_whose_wal_file_holds_a_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer stopped after its commit, before folding the WAL in: the file alone is the older version. The
    ``immutable=1`` fallback served it silently; it now refuses, naming the -wal file and the checkpoint to run.
    Once the WAL is folded in (the writer closes), the fallback reads the new version."""
    path = tmp_path / "recs.sqlite"
    with KVStore(path) as first:
        first.publish(frame("OLD"))
    writer = KVStore(path)
    try:
        writer.publish(frame("NEW"))  # the writer stays open: its commit is in recs.sqlite-wal only
        assert (tmp_path / "recs.sqlite-wal").stat().st_size > 0
        on_a_read_only_volume(monkeypatch)
        with pytest.raises(StoreError) as err:
            KVStore(path, create=False)
        assert str(err.value).startswith(f"{path}: recs.sqlite-wal beside it may hold committed versions"), err.value
        assert "PRAGMA wal_checkpoint(TRUNCATE)" in str(err.value) and "\n" not in str(err.value)
    finally:
        writer.close()  # the last connection folds the WAL in and deletes it
    with KVStore(path, create=False) as reader:
        assert reader.get_user("u1") == [Recommendation("NEW", 0.5, 1)]


def test_run_export_ships_one_file_with_the_new_version_while_a_reader_holds_the_store_open(tmp_path: Path) -> None:
    """While a serving reader holds the live store open, the publish's commit stays in its -wal file (the writer's
    close is not the last one, so it does not fold it in): a plain copy of recs.sqlite would ship the previous
    version. The copy holds the new version, in one file (journal mode delete, no -wal/-shm beside it)."""
    from coea.state import KV_STORE, run_export

    state, out = tmp_path / "state", tmp_path / "out"
    for name, category in (("a", "OLD"), ("b", "NEW")):
        frame(category).to_parquet(tmp_path / f"{name}.parquet")
    run_export(PublishConfig(), tmp_path / "a.parquet", str(state), out / "first.sqlite")
    with KVStore(state / KV_STORE, create=False) as reader:
        assert reader.get_user("u1")[0].category == "OLD"
        result = run_export(PublishConfig(), tmp_path / "b.parquet", str(state), out / "second.sqlite")
        assert (state / f"{KV_STORE}-wal").stat().st_size > 0  # the new version is in the live store's WAL
    assert sorted(p.name for p in out.iterdir()) == ["first.sqlite", "second.sqlite"]
    with closing(sqlite3.connect(f"file:{result.store_copy}?mode=ro", uri=True)) as conn:
        active = conn.execute("SELECT value FROM meta WHERE name = 'active_version'").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert active == result.publish.version and mode == "delete"
    with KVStore(result.store_copy, create=False) as shipped:
        assert shipped.get_user("u1") == [Recommendation("NEW", 0.5, 1)]
