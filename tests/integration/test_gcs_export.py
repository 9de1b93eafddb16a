"""GCS export against an in-process gcp-storage-emulator (no network, no credentials)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from coea.store import (
    MANIFEST_NAME,
    ExportError,
    ExportFormat,
    GcsExportConfig,
    RetryPolicy,
    StoreError,
    call_with_retry,
    export_to_gcs,
    parse_gcs_uri,
    read_export,
    read_manifest,
    validate_recs,
)
from tests.gcs_helpers import BUCKET

FAST = {"initial_backoff_s": 0.001, "max_backoff_s": 0.002}


@pytest.fixture
def client(gcs_client: storage.Client) -> storage.Client:
    """The shared emulator client (``tests/conftest.py``), wiped, with the bucket ``BUCKET``."""
    return gcs_client


def recs_frame(n_users: int = 7, k: int = 3) -> pd.DataFrame:
    rows = [{"user_id": f"u{u}", "rank": r, "category": f"Cat|{(u * k + r) % 11}", "score": 1 / (u + r + 0.3)}
            for u in range(n_users) for r in range(k, 0, -1)]  # ranks unsorted on purpose
    return pd.DataFrame(rows)


def blob_names(client: storage.Client, prefix: str) -> list[str]:
    return sorted(blob.name for blob in client.list_blobs(BUCKET, prefix=prefix))


class FlakyClient:
    """Wraps a real client: uploads of objects whose name contains ``target`` fail ``failures`` times.

    Records every successful upload in order, so tests can check the manifest is written last.
    """

    def __init__(self, client: storage.Client, target: str = "", failures: int = 0) -> None:
        self.client, self.target, self.failures = client, target, failures
        self.attempts: dict[str, int] = {}
        self.uploaded: list[str] = []

    def bucket(self, name: str) -> Any:
        return _FlakyBucket(self, self.client.bucket(name))


class _FlakyBucket:
    def __init__(self, owner: FlakyClient, bucket: storage.Bucket) -> None:
        self.owner, self.bucket, self.name = owner, bucket, bucket.name

    def blob(self, name: str) -> Any:
        return _FlakyBlob(self.owner, self.bucket.blob(name))

    def __getattr__(self, attr: str) -> Any:  # list_blobs (old versions are collected after an export)
        return getattr(self.bucket, attr)


class _FlakyBlob:
    def __init__(self, owner: FlakyClient, blob: storage.Blob) -> None:
        self.owner, self.blob = owner, blob

    def upload_from_string(self, data: bytes, **kwargs: Any) -> None:
        name = self.blob.name
        self.owner.attempts[name] = self.owner.attempts.get(name, 0) + 1
        if self.owner.target and self.owner.target in name and self.owner.attempts[name] <= self.owner.failures:
            raise gexc.ServiceUnavailable(f"injected 503 for {name}")
        self.blob.upload_from_string(data, **kwargs)
        self.owner.uploaded.append(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.blob, attr)


@pytest.mark.parametrize("fmt", [ExportFormat.JSONL, ExportFormat.PARQUET])
def test_export_round_trips_through_manifest_and_shards(client: storage.Client, fmt: ExportFormat) -> None:
    frame = recs_frame()
    cfg = GcsExportConfig(format=fmt, rows_per_shard=8, version="v1")
    flaky = FlakyClient(client)
    result = export_to_gcs(cfg, frame, f"gs://{BUCKET}/serve/recs/", client=flaky)

    ext = fmt.value
    shard_names = [f"v1/part-0000{i}.{ext}" for i in range(3)]
    assert [s.name for s in result.shards] == shard_names and [s.rows for s in result.shards] == [8, 8, 5]
    assert blob_names(client, "serve/recs/") == sorted([f"serve/recs/{n}" for n in shard_names]
                                                       + [f"serve/recs/{MANIFEST_NAME}"])
    assert flaky.uploaded[-1] == f"serve/recs/{MANIFEST_NAME}"  # manifest written last

    manifest = read_manifest(f"gs://{BUCKET}/serve/recs", client=client)
    assert manifest == read_manifest(result.manifest_uri, client=client)
    assert (manifest.version, manifest.format, manifest.n_rows) == ("v1", fmt, 21)
    assert manifest.columns == ["user_id", "rank", "category", "score"]
    assert manifest.shards == list(result.shards)
    for shard in manifest.shards:  # the md5 we recorded is what GCS computed for the stored object
        assert client.bucket(BUCKET).get_blob(f"serve/recs/{shard.name}").md5_hash == shard.md5

    expected = validate_recs(frame, "user_id", name="expected")
    pd.testing.assert_frame_equal(read_export(result.uri, client=client), expected)
    assert read_export(result.uri, client=client)["score"].tolist() == expected["score"].tolist()  # exact


def test_default_client_uses_emulator_host_and_group_key(client: storage.Client) -> None:
    groups = recs_frame(3, 2).rename(columns={"user_id": "group_id"})
    cfg = GcsExportConfig(key_column="group_id")
    result = export_to_gcs(cfg, groups, f"gs://{BUCKET}/groups")  # client=None -> storage.Client()
    assert len(result.shards) == 1 and result.version == read_manifest(f"gs://{BUCKET}/groups/").version
    back = read_export(f"gs://{BUCKET}/groups/")
    assert back.groupby("group_id")["rank"].apply(list).to_dict() == {f"u{i}": [1, 2] for i in range(3)}


def test_transient_failure_is_retried_and_export_succeeds(client: storage.Client) -> None:
    flaky = FlakyClient(client, target="part-00001", failures=2)
    cfg = GcsExportConfig(rows_per_shard=8, max_attempts=3, **FAST)
    result = export_to_gcs(cfg, recs_frame(), f"gs://{BUCKET}/retry/", client=flaky)
    assert flaky.attempts[f"retry/{result.version}/part-00001.jsonl"] == 3
    assert flaky.attempts[f"retry/{result.version}/part-00000.jsonl"] == 1
    assert read_manifest(f"gs://{BUCKET}/retry/", client=client).n_rows == 21


def test_persistent_failure_writes_no_manifest_and_cleans_up(client: storage.Client) -> None:
    flaky = FlakyClient(client, target="part-00001", failures=10)
    cfg = GcsExportConfig(rows_per_shard=8, max_attempts=3, version="bad", **FAST)
    with pytest.raises(ExportError, match="ServiceUnavailable.*no manifest was written"):
        export_to_gcs(cfg, recs_frame(), f"gs://{BUCKET}/fail/", client=flaky)
    assert flaky.attempts["fail/bad/part-00001.jsonl"] == 3
    assert "fail/bad/part-00002.jsonl" not in flaky.attempts  # stopped at the failing shard
    assert not client.bucket(BUCKET).blob(f"fail/{MANIFEST_NAME}").exists()
    assert blob_names(client, "fail/") == []  # the uploaded first shard was deleted again
    with pytest.raises(StoreError, match="object not found"):
        read_manifest(f"gs://{BUCKET}/fail/", client=client)


def test_a_failing_manifest_upload_is_an_export_error_and_leaves_the_previous_export_whole(
        client: storage.Client) -> None:
    """The manifest is the last upload: when it fails for good every shard of the new version is deleted again,
    the error is the one-line ``ExportError``, and the export that was there before still reads back."""
    uri = f"gs://{BUCKET}/m/"
    export_to_gcs(GcsExportConfig(version="good"), recs_frame(2, 2), uri, client=client)
    before = blob_names(client, "m/")
    flaky = FlakyClient(client, target=MANIFEST_NAME, failures=10)
    cfg = GcsExportConfig(rows_per_shard=8, max_attempts=2, version="next", **FAST)
    with pytest.raises(ExportError, match="ServiceUnavailable.*no manifest was written"):
        export_to_gcs(cfg, recs_frame(), uri, client=flaky)
    assert flaky.attempts[f"m/{MANIFEST_NAME}"] == 2
    assert flaky.uploaded == [f"m/next/part-0000{i}.jsonl" for i in range(3)]  # all shards went up first
    assert blob_names(client, "m/") == before  # ... and were deleted again
    assert read_manifest(uri, client=client).version == "good" and len(read_export(uri, client=client)) == 4


def test_failed_re_export_keeps_previous_complete_export_readable(client: storage.Client) -> None:
    uri = f"gs://{BUCKET}/live/"
    export_to_gcs(GcsExportConfig(version="good"), recs_frame(2, 2), uri, client=client)
    flaky = FlakyClient(client, target="part-00000", failures=10)
    with pytest.raises(ExportError):
        export_to_gcs(GcsExportConfig(version="next", max_attempts=2, **FAST), recs_frame(), uri, client=flaky)
    assert read_manifest(uri, client=client).version == "good"
    assert len(read_export(uri, client=client)) == 4


def test_a_failed_retry_of_the_live_version_keeps_its_shards(client: storage.Client) -> None:
    """Audit, session 55: a retried step exports the version its killed attempt published; when that attempt had
    already written the manifest and the retry then failed on a shard, the clean-up deleted the shards the live
    manifest names, and the export read back as "object not found". The live version's shards now stay."""
    uri = f"gs://{BUCKET}/again/"
    export_to_gcs(GcsExportConfig(rows_per_shard=8, version="v1"), recs_frame(), uri, client=client)
    flaky = FlakyClient(client, target="part-00001", failures=10)
    with pytest.raises(ExportError, match="no manifest was written"):
        export_to_gcs(GcsExportConfig(rows_per_shard=8, version="v1", max_attempts=2, **FAST), recs_frame(), uri,
                      client=flaky)
    assert read_manifest(uri, client=client).version == "v1" and len(read_export(uri, client=client)) == 21


def test_missing_bucket_fails_without_retrying(client: storage.Client) -> None:
    flaky = FlakyClient(client)
    with pytest.raises(ExportError, match="NotFound"):
        export_to_gcs(GcsExportConfig(version="x", **FAST), recs_frame(), "gs://no-such-bucket/p/", client=flaky)
    assert flaky.attempts == {"p/x/part-00000.jsonl": 1}


def test_corrupted_shard_is_detected_on_read(client: storage.Client) -> None:
    result = export_to_gcs(GcsExportConfig(version="v"), recs_frame(), f"gs://{BUCKET}/c/", client=client)
    client.bucket(BUCKET).blob(f"c/{result.shards[0].name}").upload_from_string(b'{"user_id":"evil"}\n')
    with pytest.raises(StoreError, match="does not match the manifest"):
        read_export(result.uri, client=client)


def test_a_same_length_edit_of_a_shard_is_detected_on_read(client: storage.Client) -> None:
    """Not only a shorter or longer shard: one changed character (an edited user id, the size unchanged) fails
    the sha256 check."""
    result = export_to_gcs(GcsExportConfig(version="v"), recs_frame(), f"gs://{BUCKET}/e/", client=client)
    blob = client.bucket(BUCKET).blob(f"e/{result.shards[0].name}")
    data = blob.download_as_bytes()
    edited = data.replace(b'"u0"', b'"u9"', 1)
    assert edited != data and len(edited) == len(data) == result.shards[0].bytes
    result.shards[0].check(data)  # the original passes
    with pytest.raises(StoreError, match="does not match the manifest"):
        result.shards[0].check(edited)
    blob.upload_from_string(edited)
    with pytest.raises(StoreError, match="does not match the manifest"):
        read_export(result.uri, client=client)


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [("gs://b-1/a/b/", "b-1", "a/b/"), ("gs://b-1/a/b", "b-1", "a/b/"), ("gs://b.x_y", "b.x_y", ""),
     ("gs://bkt/", "bkt", "")],
)
def test_parse_gcs_uri(uri: str, bucket: str, prefix: str) -> None:
    parsed = parse_gcs_uri(uri)
    assert (parsed.bucket, parsed.prefix) == (bucket, prefix)


@pytest.mark.parametrize("uri", ["s3://b/p", "gs://", "gs://B/p", "gs://b", "gs://bkt//p", "gs://bkt/a/../p",
                                 "/local/path", "gs://-bkt/p"])
def test_malformed_uri_raises_one_line_store_error(uri: str) -> None:
    with pytest.raises(StoreError, match="fix: use gs://<bucket>/<prefix>/"):
        parse_gcs_uri(uri)


def test_export_config_validates() -> None:
    assert GcsExportConfig(format="parquet").format is ExportFormat.PARQUET
    for kwargs, message in [({"format": "csv"}, "format must be one of"), ({"rows_per_shard": 0}, ">= 1"),
                            ({"max_attempts": 0}, "max_attempts"), ({"key_column": "item"}, "key_column"),
                            ({"backoff_multiplier": 0.5}, "multiplier"), ({"version": "a/b"}, "version")]:
        with pytest.raises(ValueError, match=message):
            GcsExportConfig(**kwargs)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=0.5, max_backoff_s=3.0, multiplier=2.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise gexc.TooManyRequests("429")
        return "ok"

    assert call_with_retry(flaky, policy, "test", sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0, 2.0]
    def forbidden() -> str:
        calls.append(1)
        raise gexc.Forbidden("403")

    with pytest.raises(gexc.Forbidden):  # not transient: no retry, no sleep
        call_with_retry(forbidden, policy, "test", sleep=sleeps.append)
    assert len(calls) == 5
    assert sleeps == [0.5, 1.0, 2.0]
