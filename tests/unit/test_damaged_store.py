"""Damaged serving stores (coea.store.kv): a stored value that is not the publish format, an active version the
store does not hold, a version's metadata that is not a JSON object. Before: JSONDecodeError, TypeError or KeyError
tracebacks from every read, and for a missing active version "user ... has no recommendations ... check the id"
(audit 8, 18, session 56)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from coea.store import KVStore, PublishConfig, Recommendation, StoreError
from tests.helpers import run_cli


def published(tmp_path: Path) -> Path:
    path = tmp_path / "recs.sqlite"
    with KVStore(path) as kv:
        kv.publish(pd.DataFrame({"user_id": ["u1", "u1", "u2"], "rank": [1, 2, 1], "category": ["a", "b", "c"],
                                 "score": [0.9, 0.5, 0.4]}))
    return path


def damage(path: Path, sql: str, *args: object) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(sql, args)
        conn.commit()


BAD_VALUES = {"not-json": "{bad", "object": '{"a":1}', "empty-list": "[]", "number-item": "[1]",
              "no-score": '[{"category":"a"}]', "text-score": '[{"category":"a","score":"x"}]',
              "nan-score": '[{"category":"a","score":NaN}]', "number-category": '[{"category":1,"score":1}]'}


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_damaged_stored_value_is_one_store_error_naming_the_store_and_the_user(tmp_path, value):
    path = published(tmp_path)
    damage(path, "UPDATE recs SET value = ? WHERE key = 'u1'", value)
    with KVStore(path, create=False) as kv:
        for read in (lambda: kv.get_user("u1"), lambda: kv.get_users(["u2", "u1"]), kv.active_user_recs):
            with pytest.raises(StoreError) as err:
                read()
            text = str(err.value)
            assert text.startswith(f"{path}: the stored recommendations of user 'u1' are damaged ("), text
            assert "expected a JSON list of {category, score} (fix: re-publish" in text and "\n" not in text
        assert kv.get_user("u2") == [Recommendation("c", 0.4, 1)]  # the undamaged values still read


def test_an_active_version_the_store_does_not_hold_is_named_not_taken_for_an_unknown_user(tmp_path):
    path = published(tmp_path)
    damage(path, "UPDATE meta SET value = 'nope' WHERE name = 'active_version'")
    with KVStore(path, create=False) as kv:
        kept = kv.versions()[0].version
        reads = (kv.active_version, lambda: kv.get_user("u1"), lambda: kv.get_users(["u1"]), kv.active_user_recs)
        for read in reads:
            with pytest.raises(StoreError) as err:
                read()
            assert str(err.value) == (f"{path}: the store's active version 'nope' is missing (kept versions: {kept}): "
                                      "a damaged store (fix: re-publish: re-run `coea run` or the pipelines' publish "
                                      "step)")
    with KVStore(path) as kv:  # the fix works: a publish makes a held version active again
        version = kv.publish(pd.DataFrame({"user_id": ["u1"], "rank": [1], "category": ["z"], "score": [1.0]}))
        assert kv.active_version() == version and kv.get_user("u1") == [Recommendation("z", 1.0, 1)]


def test_an_unknown_user_of_an_intact_store_is_still_an_empty_list(tmp_path):
    with KVStore(published(tmp_path), create=False) as kv:
        assert kv.get_user("nobody") == [] and kv.get_users(["nobody"]) == {}


@pytest.mark.parametrize("metadata", ["{bad", "[1]"], ids=["not-json", "a-list"])
def test_damaged_version_metadata_is_one_store_error_and_the_export_repairs_it(tmp_path, capsys, metadata):
    """Damaged ``versions.metadata`` raised a raw JSONDecodeError (`coea recommend --group`: a traceback, exit 1),
    and run_export, which read every version's metadata after its publish, could never publish the repair."""
    from coea.state import KV_STORE, run_export

    path = published(tmp_path)
    damage(path, "UPDATE versions SET metadata = ?", metadata)
    with KVStore(path, create=False) as kv:
        (damaged,) = kv.version_ids()
        with pytest.raises(StoreError) as err:
            kv.versions()
    text = str(err.value)
    assert text.startswith(f"{path}: the metadata of version '{damaged}' is damaged ("), text
    assert "expected a JSON object (fix: re-publish" in text and "\n" not in text
    code, out, errors = run_cli(["recommend", "--store", str(path), "--group", "g"], capsys)
    assert code == 2 and out == "" and "Traceback" not in errors and "holds no group entries" in errors, errors
    state, recs = tmp_path / "state", tmp_path / "recs.parquet"
    (state / "kv").mkdir(parents=True)
    shutil.copy(path, state / KV_STORE)
    pd.DataFrame({"user_id": ["u1"], "rank": [1], "category": ["z"], "score": [1.0]}).to_parquet(recs)
    first = run_export(PublishConfig(), recs, str(state), tmp_path / "s1.sqlite")
    assert first.publish.kept_versions == (damaged, first.publish.version)
    again = run_export(PublishConfig(), recs, str(state), tmp_path / "s2.sqlite")  # a retry finds it published
    assert again.publish == first.publish
    with KVStore(again.store_copy, create=False) as kv:
        assert kv.active_version() == first.publish.version and kv.get_user("u1") == [Recommendation("z", 1.0, 1)]
