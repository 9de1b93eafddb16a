"""Rules of the serving store (coea.store) and the drift check (coea.drift) that a mutation audit found no test
for: each test fails on one plausible bug that passed every other test (audit, mutants of kv.py, publish.py,
records.py, shards.py and drift.py). Small hand-built data; Evidently runs only where the rule is about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import coea.drift as drift
from coea.drift import SHARE_PREFIX, TWO_SAMPLE_CHI2, DriftConfig, FeatureDrift, detect_drift
from coea.errors import CoeaInputError
from coea.store import (
    ExportFormat,
    GcsManifest,
    KeyKind,
    KVStore,
    PublishConfig,
    ShardInfo,
    StoreError,
    find_published,
    run_publish,
)
from tests.helpers import events


def recs(users: list[str], category: str = "a") -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "rank": 1, "category": category, "score": 0.5})


# ---- KV store and publish ----------------------------------------------------------------------------------------


def test_a_lookup_miss_shows_the_versions_first_user_ids_by_id(tmp_path: Path) -> None:
    """``Lookup.examples`` (what `coea recommend` prints after "ids in this store look like") are the active
    version's FIRST user ids in id order, at most ``examples`` of them, not the last ones."""
    with KVStore(tmp_path / "recs.sqlite") as kv:
        kv.publish(recs(["u5", "u2", "u9", "u1", "u7"]))
        found = kv.lookup(KeyKind.USER, "nobody", examples=3)
    assert found.recs == [] and found.examples == ["u1", "u2", "u5"]


def test_a_stored_boolean_score_is_damage_not_a_score_of_one(tmp_path: Path) -> None:
    """A stored value whose score is JSON ``true`` is a damaged store (a StoreError naming the user), not
    ``score=1.0``: a bool is no score although Python counts it as an int."""
    path = tmp_path / "recs.sqlite"
    with KVStore(path) as kv:
        kv.publish(recs(["u1", "u2"]))
        kv._conn().execute("UPDATE recs SET value = ? WHERE key = 'u1'", ('[{"category":"a","score":true}]',))
        with pytest.raises(StoreError, match="stored recommendations of user 'u1' are damaged"):
            kv.get_user("u1")


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(user recs, group recs, store) paths; both parquet files written."""
    recs(["u1", "u2"]).to_parquet(tmp_path / "recs.parquet")
    pd.DataFrame({"group_id": ["g1"], "rank": [1], "category": ["a"], "score": [0.5]}).to_parquet(
        tmp_path / "groups.parquet")
    return tmp_path / "recs.parquet", tmp_path / "groups.parquet", tmp_path / "store" / "recs.sqlite"


def test_find_published_needs_the_same_group_file_content(sources: tuple[Path, Path, Path]) -> None:
    """A retried export skips the publish only when the GROUP file too has the content the active version was
    published from: a group file rewritten at the same path is a new publish (``None``)."""
    users, groups, store = sources
    cfg = PublishConfig()
    done = run_publish(cfg, users, store, group_recs_path=groups)
    assert find_published(cfg, users, store, group_recs_path=groups) == done
    pd.DataFrame({"group_id": ["g1"], "rank": [1], "category": ["b"], "score": [0.5]}).to_parquet(groups)
    assert find_published(cfg, users, store, group_recs_path=groups) is None


def test_find_published_is_none_when_a_source_file_is_missing(sources: tuple[Path, Path, Path]) -> None:
    """A missing source file is ``None`` (the publish then names the file), not an OSError from hashing it."""
    users, groups, store = sources
    run_publish(PublishConfig(), users, store)
    assert find_published(PublishConfig(), users, store, group_recs_path=groups.with_name("gone.parquet")) is None


def test_find_published_looks_at_the_active_version_not_the_newest(sources: tuple[Path, Path, Path]) -> None:
    """After a rollback the newest kept version is not the one served: a retry of its publish must publish again
    (``None``), so that what it reports is what readers see."""
    users, groups, store = sources
    cfg = PublishConfig()
    first = run_publish(cfg, users, store)
    recs(["u1", "u2"], category="b").to_parquet(users.with_name("newer.parquet"))
    run_publish(cfg, users.with_name("newer.parquet"), store)
    with KVStore(store) as kv:
        kv.rollback(first.version)
    assert find_published(cfg, users.with_name("newer.parquet"), store) is None
    assert find_published(cfg, users, store).version == first.version


# ---- GCS manifest --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [0, -1])
def test_a_manifest_shard_of_fewer_than_one_row_is_refused(rows: int) -> None:
    """An export writes no empty shard: a manifest listing one with ``rows < 1`` (its n_rows consistent) is
    refused by ``GcsManifest.from_json``, naming the shards field."""
    data = b'{"user_id":"u1","rank":1,"category":"a","score":0.5}\n'
    good = ShardInfo.of("v1/part-00000.jsonl", 1, data)
    shards = [good, ShardInfo(name="v1/part-00001.jsonl", rows=rows, bytes=0, sha256="0", md5="0")]
    manifest = GcsManifest(version="v1", created_at="now", format=ExportFormat.JSONL, key_column="user_id",
                           columns=["user_id", "rank", "category", "score"], n_rows=1 + rows, shards=shards)
    with pytest.raises(StoreError, match=r"column 'shards': shard 'v1/part-00001.jsonl' has rows -?\d"):
        GcsManifest.from_json(manifest.to_json(), "gs://b/x/manifest.json")
    one = GcsManifest.from_json(GcsManifest(**{**manifest.__dict__, "n_rows": 1, "shards": [good]}).to_json(), "m")
    assert one.n_rows == 1


# ---- drift ---------------------------------------------------------------------------------------------------------


def _window(prefix: str, n_users: int) -> pd.DataFrame:
    """Each user: 4 events over categories A-D (rotating per user)."""
    cats = "ABCD"
    return events([(f"{prefix}{u}", f"i{j}", cats[(u + j) % 4], j) for u in range(n_users) for j in range(4)])


@pytest.fixture
def stub_evidently(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """detect_drift without Evidently: records what it would test (the windows and column lists) and reports
    every column undrifted."""
    calls: list[dict[str, Any]] = []

    def run(cfg, ref, cur, numerical, categorical):
        calls.append({"ref": ref, "cur": cur, "numerical": numerical, "categorical": categorical})
        return type("Snap", (), {"dict": lambda self: {"columns": [*numerical, *categorical]}})()

    def parse(snap):
        return 0.0, [FeatureDrift(c, "stub", 1.0, 0.05, False) for c in snap["columns"]]

    monkeypatch.setattr(drift, "_run_evidently", run)
    monkeypatch.setattr(drift, "_parse_snapshot", parse)
    return calls


def test_a_window_with_exactly_min_users_users_is_checked(stub_evidently: list[dict[str, Any]]) -> None:
    """``min_users`` is the least number of users a window may have: exactly that many are tested, one fewer is
    the CoeaInputError."""
    result = detect_drift(DriftConfig(min_users=6), _window("r", 6), _window("c", 6))
    assert (result.n_reference_users, result.n_current_users) == (6, 6) and len(stub_evidently) == 1
    with pytest.raises(CoeaInputError, match="the current window has 5 users, fewer than min_users=6"):
        detect_drift(DriftConfig(min_users=6), _window("r", 6), _window("c", 5))


@pytest.mark.parametrize("top", [0, 2])
def test_detect_drift_tests_the_configured_number_of_share_columns(stub_evidently: list[dict[str, Any]],
                                                                   top: int) -> None:
    """``DriftConfig.top_categories`` sets how many ``share_<category>`` columns are tested (plus other_share when
    there is any), not a fixed 5."""
    detect_drift(DriftConfig(top_categories=top, min_users=4), _window("r", 8), _window("c", 8))
    columns = stub_evidently[0]["numerical"]
    assert len([c for c in columns if c.startswith(SHARE_PREFIX)]) == top
    assert ("other_share" in columns) is (top > 0)


CHI2_CASES = {  # (reference rows, distinct values, column kind) -> Evidently's default is its chi-square
    "categorical-3-values-1000-rows": (1000, 3, "categorical", True),
    "categorical-3-values-1001-rows": (1001, 3, "categorical", False),
    "categorical-2-values": (100, 2, "categorical", False),
    "numerical-5-values": (100, 5, "numerical", True),
    "numerical-6-values": (100, 6, "numerical", False),
    "numerical-3-values-1001-rows": (1001, 3, "numerical", False),
}


@pytest.mark.parametrize(("n_ref", "n_values", "kind", "chi2"), CHI2_CASES.values(), ids=CHI2_CASES.keys())
def test_chi2_columns_are_exactly_where_evidently_defaults_to_its_chi_square(n_ref: int, n_values: int, kind: str,
                                                                              chi2: bool) -> None:
    """The two-sample test replaces Evidently's chi-square wherever Evidently would choose it: up to 1000
    reference rows (1000 included), categorical with > 2 values, numerical with 3 to 5 values (5 included)."""
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType

    values = np.arange(n_values)
    ref = pd.DataFrame({"x": values[np.arange(n_ref) % n_values]})
    cur = pd.DataFrame({"x": values[np.arange(50) % n_values]})
    numerical, categorical = (["x"], []) if kind == "numerical" else ([], ["x"])
    assert (drift._chi2_columns(ref, cur, numerical, categorical) == ["x"]) is chi2
    column_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    assert (_get_default_stattest(ref["x"], cur["x"], column_type).name == "chisquare") is chi2


def test_an_explicit_two_sample_chi2_stattest_works_before_any_default_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """``stattest: chi2_two_sample`` registers the test itself: it works in a process where no default-config
    drift check has registered it yet (the registry emptied of it here)."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    monkeypatch.delitem(_registered_stat_tests, TWO_SAMPLE_CHI2, raising=False)
    result = detect_drift(DriftConfig(stattest=TWO_SAMPLE_CHI2, min_users=4, top_categories=1), _window("r", 8),
                          _window("c", 8))
    assert {f.stattest for f in result.features} == {"chi-square two-sample p_value"}


def test_a_group_column_with_missing_reference_values_is_counted_as_evidently_counts_it() -> None:
    """Evidently drops a column's missing values before it picks its default test, so a reference of 1010 users of
    whom 20 lack a group is a 990-row group column, tested with its goodness-of-fit chi-square: that column gets
    the two-sample test too (it got Evidently's own, since _chi2_columns counted the 1010 users). A column of 1001
    non-missing reference values still does not."""
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType

    labels = [str(i % 4) for i in range(990)]
    ref = pd.DataFrame({drift.GROUP: labels + [None] * 20, "activity": np.arange(1010) % 7})
    cur = pd.DataFrame({drift.GROUP: labels[:300], "activity": np.arange(300) % 7})
    chosen = _get_default_stattest(ref[drift.GROUP].dropna(), cur[drift.GROUP], ColumnType.Categorical)
    assert chosen.name == "chisquare"  # what Evidently tests the group column with, without the override
    assert drift._chi2_columns(ref, cur, ["activity"], [drift.GROUP]) == [drift.GROUP]
    full = pd.DataFrame({drift.GROUP: [str(i % 4) for i in range(1001)]})
    assert drift._chi2_columns(full, cur, [], [drift.GROUP]) == []
