"""Serving: a versioned SQLite key-value store of recommendations and a sharded GCS export."""

from coea.store.errors import ExportError, StoreError
from coea.store.gcs import (
    GcsExportConfig,
    GcsExportResult,
    GcsUri,
    export_to_gcs,
    parse_gcs_uri,
    read_export,
    read_manifest,
)
from coea.store.kv import KeyKind, KVStore, Lookup, VersionInfo
from coea.store.publish import PublishConfig, PublishResult, find_published, read_recs_file, run_publish
from coea.store.records import Recommendation, validate_recs
from coea.store.retry import RetryPolicy, call_with_retry
from coea.store.shards import MANIFEST_NAME, ExportFormat, GcsManifest, ShardInfo

__all__ = [
    "MANIFEST_NAME",
    "ExportError",
    "ExportFormat",
    "GcsExportConfig",
    "GcsExportResult",
    "GcsManifest",
    "GcsUri",
    "KVStore",
    "KeyKind",
    "Lookup",
    "PublishConfig",
    "PublishResult",
    "Recommendation",
    "RetryPolicy",
    "ShardInfo",
    "StoreError",
    "VersionInfo",
    "call_with_retry",
    "export_to_gcs",
    "find_published",
    "parse_gcs_uri",
    "read_export",
    "read_manifest",
    "read_recs_file",
    "run_publish",
    "validate_recs",
]
