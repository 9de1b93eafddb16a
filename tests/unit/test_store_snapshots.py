"""What a reader of the serving store sees when a publish commits meanwhile, when a killed writer left its commit in
the ``-wal`` file, and what ``run_export`` ships (audit, session 56)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from coea.store import KVStore, Recommendation
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
