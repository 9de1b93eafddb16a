"""read_export's checks of the manifest and the shards, and the clean-up of a failed retry, against the in-process
GCS emulator (``gcs_client`` in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pandas as pd
import pytest
from google.api_core import exceptions as gexc

from coea.store import (
    MANIFEST_NAME,
    ExportError,
    GcsExportConfig,
    GcsManifest,
    StoreError,
    export_to_gcs,
    read_export,
    read_manifest,
)
from tests.gcs_helpers import BUCKET

RECS = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "rank": [1, 2, 1], "category": ["a", "b", "c"],
                     "score": [0.9, 0.5, 0.4]})


def test_a_manifest_with_the_right_sha_but_wrong_row_count_is_refused_on_read(gcs_client: Any) -> None:
    """The shard bytes match the manifest's size and sha256, but the manifest says 3 rows (its n_rows too) for a
    2-row shard: read_export refuses it naming the shard instead of returning a frame the manifest does not
    describe."""
    recs = pd.DataFrame({"user_id": ["u1", "u1"], "rank": [1, 2], "category": ["a", "b"], "score": [0.9, 0.5]})
    uri = f"gs://{BUCKET}/rows/"
    export_to_gcs(GcsExportConfig(version="v1"), recs, uri, client=gcs_client)
    assert len(read_export(uri, client=gcs_client)) == 2  # untouched: reads back
    manifest = read_manifest(uri, client=gcs_client)
    (shard,) = manifest.shards
    wrong = dataclasses.replace(manifest, n_rows=3, shards=[dataclasses.replace(shard, rows=3)])
    gcs_client.bucket(BUCKET).blob(f"rows/{MANIFEST_NAME}").upload_from_string(wrong.to_json())
    with pytest.raises(StoreError, match="has 2 rows, manifest says 3") as err:
        read_export(uri, client=gcs_client)
    assert shard.name in str(err.value)


EDITS: dict[str, tuple[Any, str]] = {  # an edit of the manifest's JSON body -> the field the error names
    "schema-99": (lambda body: {"schema": 99}, "schema"),
    "n_rows-1000": (lambda body: {"n_rows": 1000}, "n_rows"),
    "a-shard-dropped": (lambda body: {"shards": body["shards"][:1]}, "n_rows"),
    "no-shards": (lambda body: {"shards": [], "n_rows": 0}, "shards"),
    "shard-rows-text": (lambda body: {"shards": [{**body["shards"][0], "rows": "2"}, *body["shards"][1:]]}, "shards"),
    "key_column-group_id": (lambda body: {"key_column": "group_id"}, "columns"),
    "score-column-dropped": (lambda body: {"columns": body["columns"][:3]}, "columns"),
}


@pytest.mark.parametrize(("edit", "field"), EDITS.values(), ids=EDITS.keys())
def test_a_manifest_that_does_not_describe_its_export_is_refused(gcs_client: Any, edit: Any, field: str) -> None:
    """read_export returned frames its manifest did not describe (another schema, fewer rows than n_rows, a shard
    dropped, rows under another key column) or a raw ValueError (no shards): each is one StoreError naming the
    manifest and the field, from read_manifest and read_export alike."""
    uri = f"gs://{BUCKET}/edits/"
    export_to_gcs(GcsExportConfig(version="v1", rows_per_shard=2), RECS, uri, client=gcs_client)
    blob = gcs_client.bucket(BUCKET).blob(f"edits/{MANIFEST_NAME}")
    body = json.loads(blob.download_as_bytes())
    assert len(body["shards"]) == 2 and len(read_export(uri, client=gcs_client)) == 3  # untouched: reads back
    blob.upload_from_string(json.dumps({**body, **edit(body)}))
    for read in (read_manifest, read_export):
        with pytest.raises(StoreError) as err:
            read(uri, client=gcs_client)
        assert str(err.value).startswith(f"gs://{BUCKET}/edits/{MANIFEST_NAME}, column '{field}': "), err.value
        assert "re-run the export" in str(err.value) and "\n" not in str(err.value)


def test_read_export_counts_the_rows_it_returns_against_n_rows(gcs_client: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind the manifest's own check (turned off here): the frame read back must have n_rows rows."""
    uri = f"gs://{BUCKET}/count/"
    export_to_gcs(GcsExportConfig(version="v1", rows_per_shard=2), RECS, uri, client=gcs_client)
    blob = gcs_client.bucket(BUCKET).blob(f"count/{MANIFEST_NAME}")
    body = json.loads(blob.download_as_bytes())
    blob.upload_from_string(json.dumps({**body, "shards": body["shards"][:1]}))
    monkeypatch.setattr(GcsManifest, "check", lambda self, source: None)
    with pytest.raises(StoreError, match="read 2 rows, manifest says n_rows 3"):
        read_export(uri, client=gcs_client)


class ManifestUnreadable:
    """Wraps a real client: uploads of ``part-00001`` fail (503) and so does every download of the manifest."""

    def __init__(self, client: Any) -> None:
        self.client, self.manifest_reads = client, 0

    def bucket(self, name: str) -> Any:
        owner, bucket = self, self.client.bucket(name)

        class Bucket:
            def __getattr__(self, attr: str) -> Any:
                return getattr(bucket, attr)

            def blob(self, blob_name: str) -> Any:
                real = bucket.blob(blob_name)

                class Blob:
                    def __getattr__(self, attr: str) -> Any:
                        return getattr(real, attr)

                    def upload_from_string(self, data: bytes, **kwargs: Any) -> None:
                        if "part-00001" in blob_name:
                            raise gexc.ServiceUnavailable(f"injected 503 for {blob_name}")
                        real.upload_from_string(data, **kwargs)

                    def download_as_bytes(self, **kwargs: Any) -> bytes:
                        if blob_name.endswith(MANIFEST_NAME):
                            owner.manifest_reads += 1
                            raise gexc.ServiceUnavailable(f"injected 503 for {blob_name}")
                        return real.download_as_bytes(**kwargs)

                return Blob()

        return Bucket()


def test_a_failed_retry_keeps_the_shards_when_the_live_manifest_cannot_be_read(gcs_client: Any) -> None:
    """The live manifest names v1; a retry of v1 fails on a shard, and reading the manifest to learn whether v1 is
    live fails too (503): unknown, so v1's shards (the live export's) stay and the export still reads back."""
    uri = f"gs://{BUCKET}/live/"
    export_to_gcs(GcsExportConfig(version="v1", rows_per_shard=1), RECS, uri, client=gcs_client)
    before = sorted(blob.name for blob in gcs_client.list_blobs(BUCKET, prefix="live/"))
    flaky = ManifestUnreadable(gcs_client)
    cfg = GcsExportConfig(version="v1", rows_per_shard=1, max_attempts=1)
    with pytest.raises(ExportError, match="injected 503"):
        export_to_gcs(cfg, RECS, uri, client=flaky)
    assert flaky.manifest_reads == 1
    assert sorted(blob.name for blob in gcs_client.list_blobs(BUCKET, prefix="live/")) == before
    assert len(read_export(uri, client=gcs_client)) == 3
