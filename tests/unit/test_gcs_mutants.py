"""read_export's row-count check, against the in-process GCS emulator (``gcs_client`` in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import pytest

from coea.store import MANIFEST_NAME, GcsExportConfig, StoreError, export_to_gcs, read_export, read_manifest
from tests.gcs_helpers import BUCKET


def test_a_manifest_with_the_right_sha_but_wrong_row_count_is_refused_on_read(gcs_client: Any) -> None:
    """The shard bytes match the manifest's size and sha256, but the manifest says 3 rows for a 2-row shard:
    read_export refuses it naming the shard instead of returning a frame the manifest does not describe."""
    recs = pd.DataFrame({"user_id": ["u1", "u1"], "rank": [1, 2], "category": ["a", "b"], "score": [0.9, 0.5]})
    uri = f"gs://{BUCKET}/rows/"
    export_to_gcs(GcsExportConfig(version="v1"), recs, uri, client=gcs_client)
    assert len(read_export(uri, client=gcs_client)) == 2  # untouched: reads back
    manifest = read_manifest(uri, client=gcs_client)
    (shard,) = manifest.shards
    wrong = dataclasses.replace(manifest, shards=[dataclasses.replace(shard, rows=3)])
    gcs_client.bucket(BUCKET).blob(f"rows/{MANIFEST_NAME}").upload_from_string(wrong.to_json())
    with pytest.raises(StoreError, match="has 2 rows, manifest says 3") as err:
        read_export(uri, client=gcs_client)
    assert shard.name in str(err.value)
