"""The export step (``coea.state.run_export``: store publish, then GCS shards, then the manifest) under a KFP retry
after its pod was killed, and the collection of old export versions, against the in-process GCS emulator.

A kill is simulated by raising :class:`Killed` (a ``BaseException``, so no ``except Exception`` and not the export's
own cleanup runs, as in a killed process) from the manifest upload: the store publish and every shard are done,
the manifest is not. The retry is a second ``run_export`` call with the same arguments, as KFP makes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

import coea.store.gcs as gcs_module
from coea.state import KV_STORE, run_export
from coea.store import (
    MANIFEST_NAME,
    GcsExportConfig,
    KVStore,
    PublishConfig,
    VersionInfo,
    export_to_gcs,
    read_export,
    read_manifest,
    validate_recs,
)
from tests.gcs_helpers import BUCKET

EXPORT = f"gs://{BUCKET}/serve/recs/"
OLD_ID = "20000101T000000000000Z-00000000"  # a version id older than any made now
FUTURE_ID = "99991231T235959999999Z-ffffffff"  # ... and one newer than any made now


class Killed(BaseException):
    """The pod is killed here."""


def _kill_at_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shard uploads; the manifest upload kills the process."""
    real = gcs_module._upload

    def upload(bucket: Any, name: str, data: bytes, content_type: str, cfg: GcsExportConfig) -> None:
        if name.endswith(MANIFEST_NAME):
            raise Killed(f"killed before {name}")
        real(bucket, name, data, content_type, cfg)

    monkeypatch.setattr(gcs_module, "_upload", upload)


def _uri(period: int) -> str:
    return f"gs://{BUCKET}/kfp-root/run-{period}/recommend/recommendations"


def _recs(tmp_path: Path, period: int) -> Path:
    """Period ``period``'s recommendations (the recommend step's artifact), written once."""
    path = tmp_path / f"recs-{period}.parquet"
    if not path.exists():
        rows = [(f"u{u}", r, f"cat{(u + r + period) % 9}", 1.0 / r) for u in range(5) for r in (1, 2, 3)]
        pd.DataFrame(rows, columns=["user_id", "rank", "category", "score"]).to_parquet(path, index=False)
    return path


def _export(tmp_path: Path, state: str, client: storage.Client, period: int) -> Any:
    """The export step of period ``period``, as the pipelines call it (``export_recommendations``)."""
    return run_export(PublishConfig(metadata={"recommendations": _uri(period)}), _recs(tmp_path, period), state,
                      tmp_path / f"kv-{period}.sqlite", gcs_uri=EXPORT, client=client)


def _store_versions(state: str, client: storage.Client, tmp_path: Path) -> list[VersionInfo]:
    """The versions the state's store holds (oldest first)."""
    if state.startswith("gs://"):
        path = tmp_path / "remote.sqlite"
        client.bucket(BUCKET).blob(f"state/{KV_STORE}").download_to_filename(path)
    else:
        path = Path(state) / KV_STORE
    with KVStore(path, create=False) as kv:
        return kv.versions()


def _export_folders(client: storage.Client, prefix: str = "serve/recs/") -> list[str]:
    names = {blob.name[len(prefix):] for blob in client.list_blobs(BUCKET, prefix=prefix)}
    return sorted({name.split("/")[0] for name in names} - {MANIFEST_NAME})


@pytest.mark.parametrize("where", ["local", "gs"])
def test_a_retry_after_a_kill_between_publish_and_manifest_finishes_the_killed_attempts_version(
        where: str, tmp_path: Path, gcs_client: storage.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the store publish and the shards, before the manifest: the store's active version is the new
    one, the manifest still names the previous one. The retry publishes NO second version of the same
    recommendations: it finishes the GCS export of the version the killed attempt published (same id, same shard
    names, so no orphan shards), and ``keep_versions`` (3) then holds three distinct periods, not two."""
    state = str(tmp_path / "state") if where == "local" else f"gs://{BUCKET}/state"
    first = _export(tmp_path, state, gcs_client, 1)
    with monkeypatch.context() as m:
        _kill_at_the_manifest(m)
        with pytest.raises(Killed):
            _export(tmp_path, state, gcs_client, 2)
    killed = _store_versions(state, gcs_client, tmp_path)
    assert len(killed) == 2 and killed[-1].active  # the publish went through ...
    assert read_manifest(EXPORT, gcs_client).version == first.publish.version  # ... the manifest did not
    assert _export_folders(gcs_client) == [first.publish.version, killed[-1].version]  # the killed shards

    retry = _export(tmp_path, state, gcs_client, 2)
    assert retry.publish.version == killed[-1].version
    assert [v.version for v in _store_versions(state, gcs_client, tmp_path)] == [first.publish.version,
                                                                                 killed[-1].version]
    assert retry.gcs is not None and retry.gcs.version == read_manifest(EXPORT, gcs_client).version == \
        killed[-1].version
    assert _export_folders(gcs_client) == [first.publish.version, killed[-1].version]
    expected = validate_recs(pd.read_parquet(_recs(tmp_path, 2)), "user_id", name="expected")
    pd.testing.assert_frame_equal(read_export(EXPORT, gcs_client), expected)
    with KVStore(retry.store_copy, create=False) as copy:  # the step's output artifact is the finished store
        assert copy.active_version() == killed[-1].version
    assert (retry.publish.n_users, retry.publish.n_rows) == (5, 15)

    _export(tmp_path, state, gcs_client, 3)
    periods = [v.metadata["recommendations"] for v in _store_versions(state, gcs_client, tmp_path)]
    assert periods == [_uri(1), _uri(2), _uri(3)]


def test_the_export_keeps_the_versions_the_store_keeps_and_collects_the_orphans_of_a_killed_export(
        tmp_path: Path, gcs_client: storage.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Period 2's export is killed before its manifest and never retried (a pod deleted with its node is not
    retried: docs/kubeflow.md): its shards are orphans. After each later export the prefix holds exactly the
    versions the store keeps (the newest 3): older exports and the orphans are deleted once the manifest moved
    past them, never before (a reader that read an older manifest a moment ago still finds its shards)."""
    state = str(tmp_path / "state")
    _export(tmp_path, state, gcs_client, 1)
    with monkeypatch.context() as m:
        _kill_at_the_manifest(m)
        with pytest.raises(Killed):
            _export(tmp_path, state, gcs_client, 2)
    orphan = _store_versions(state, gcs_client, tmp_path)[-1].version
    assert orphan in _export_folders(gcs_client)
    for period in (3, 4, 5):
        result = _export(tmp_path, state, gcs_client, period)
        kept = [v.version for v in _store_versions(state, gcs_client, tmp_path)]
        assert _export_folders(gcs_client) == kept, period
        assert read_manifest(EXPORT, gcs_client).version == result.publish.version == kept[-1]
    assert orphan not in _export_folders(gcs_client) and result.gcs is not None
    assert result.gcs.removed_versions == (orphan,)
    assert len(read_export(EXPORT, gcs_client)) == 15


def test_a_retry_skips_the_publish_only_for_the_same_file_content_path_and_metadata(
        tmp_path: Path, gcs_client: storage.Client) -> None:
    """The same recommendations again (a retry) are not published twice; a changed file at the same path and URI
    (its sha256 differs), the same file under another recommendations URI, or another path are new versions."""
    state = str(tmp_path / "state")

    def export(recs: Path, uri: str, out: str) -> str:
        return run_export(PublishConfig(metadata={"recommendations": uri}), recs, state,
                          tmp_path / f"{out}.sqlite").publish.version

    recs = _recs(tmp_path, 1)
    first = export(recs, _uri(1), "a")
    assert export(recs, _uri(1), "b") == first  # the retry: nothing new
    recs.write_bytes(_recs(tmp_path, 2).read_bytes())  # new content at the same path
    changed = export(recs, _uri(1), "c")
    other_uri = export(recs, _uri(2), "d")
    other_path = export(_recs(tmp_path, 2), _uri(2), "e")  # the same content as recs now, another path
    assert len({first, changed, other_uri, other_path}) == 4
    with KVStore(Path(state) / KV_STORE, create=False) as kv:
        assert [v.version for v in kv.versions()] == [changed, other_uri, other_path]  # keep_versions=3
        assert kv.versions()[-1].metadata["recs_sha256"] == kv.versions()[-2].metadata["recs_sha256"]


def _frame(n_users: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{"user_id": f"u{u}", "rank": r, "category": f"c{u + r}", "score": 1.0 / r}
                         for u in range(n_users) for r in (1, 2)])


def test_collection_deletes_only_older_version_shards_beyond_keep_versions(gcs_client: storage.Client) -> None:
    """What the collection after a manifest write may delete: the part-NNNNN shards of version-id folders older
    than the manifest's version, beyond the newest ``keep_versions``. Other names, folders that are no version id,
    a folder newer than the manifest (an export still running) and an export with a custom version id stay."""
    bucket = gcs_client.bucket(BUCKET)
    others = ["gc/notes.txt", "gc/custom/part-00000.jsonl", f"gc/{OLD_ID}/README", f"gc/{FUTURE_ID}/part-00000.jsonl"]
    for name in [*others, f"gc/{OLD_ID}/part-00000.jsonl", f"gc/{OLD_ID}/part-00001.parquet"]:
        bucket.blob(name).upload_from_string(b"x")
    uri = f"gs://{BUCKET}/gc/"
    custom = export_to_gcs(GcsExportConfig(version="v1", keep_versions=1), _frame(), uri, client=gcs_client)
    assert custom.removed_versions == ()  # a version that is no id: no collection
    names = {blob.name for blob in gcs_client.list_blobs(BUCKET, prefix="gc/")}
    assert names >= {*others, f"gc/{OLD_ID}/part-00000.jsonl"}
    first = export_to_gcs(GcsExportConfig(keep_versions=2), _frame(), uri, client=gcs_client)
    assert first.removed_versions == ()  # OLD_ID is the one older version keep_versions=2 keeps
    second = export_to_gcs(GcsExportConfig(keep_versions=2), _frame(4), uri, client=gcs_client)
    assert second.removed_versions == (OLD_ID,)
    names = {blob.name for blob in gcs_client.list_blobs(BUCKET, prefix="gc/")}
    shards = [f"gc/{v}/part-00000.jsonl" for v in (first.version, second.version)] + ["gc/v1/part-00000.jsonl"]
    assert names == {*others, *shards, f"gc/{MANIFEST_NAME}"}
    third = export_to_gcs(GcsExportConfig(keep_versions=1), _frame(2), uri, client=gcs_client)
    assert third.removed_versions == (first.version, second.version)
    assert len(read_export(uri, client=gcs_client)) == 4
    with pytest.raises(ValueError, match="keep_versions must be an int >= 1"):
        GcsExportConfig(keep_versions=0)


class _ListFails:
    """A client whose buckets' listing fails for good (uploads and deletes work)."""

    def __init__(self, client: storage.Client) -> None:
        self.client = client

    def bucket(self, name: str) -> Any:
        bucket = self.client.bucket(name)

        def list_blobs(**kwargs: Any) -> Any:
            raise gexc.ServiceUnavailable("injected 503 on list")

        bucket.list_blobs = list_blobs
        return bucket


def test_a_failed_collection_does_not_fail_the_export(gcs_client: storage.Client,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The manifest is written when the collection starts: a listing that fails for good is a warning, the export
    is complete, and the next export collects what was left."""
    uri = f"gs://{BUCKET}/lf/"
    fast = {"max_attempts": 2, "initial_backoff_s": 0.001, "max_backoff_s": 0.002, "keep_versions": 1}
    old = export_to_gcs(GcsExportConfig(**fast), _frame(), uri, client=gcs_client)
    new = export_to_gcs(GcsExportConfig(**fast), _frame(2), uri, client=_ListFails(gcs_client))
    assert new.removed_versions == () and "could not list" in caplog.text
    assert read_manifest(uri, gcs_client).version == new.version and len(read_export(uri, gcs_client)) == 4
    assert _export_folders(gcs_client, "lf/") == [old.version, new.version]
    last = export_to_gcs(GcsExportConfig(**fast), _frame(1), uri, client=gcs_client)
    assert last.removed_versions == (old.version, new.version)
