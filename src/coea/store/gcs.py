"""Export recommendations to ``gs://bucket/prefix/`` as JSONL or Parquet shards plus a manifest.

Layout of one export::

    gs://bucket/prefix/<version>/part-00000.jsonl   (or .parquet)  shards, written first
    gs://bucket/prefix/manifest.json                                written LAST

A GCS object write is atomic, and the manifest is written only after every shard succeeded, so a reader that
starts from the manifest sees either the previous complete export or the new complete one, never a partial
export. Each shard's size, sha256 and md5 are in the manifest so readers can verify what they download;
``read_export`` also refuses a manifest of another schema, without shards, with other columns, or whose ``n_rows``
is not its shards' rows summed. A failed export writes no manifest and (by default) deletes the shards it had
uploaded.

Old versions are collected after each successful manifest write: of the version folders under the prefix whose
name is a sortable version id (``coea.store.records.new_version_id``, what ``run_export`` uses: the store's
version) and that sort at or before the manifest's version, the newest ``keep_versions`` survive (the manifest's
own and the ``keep_versions - 1`` before it, the store's rule, so a reader that read the previous manifest a moment
ago still finds its shards); the older ones' shards (``part-NNNNN.jsonl`` / ``.parquet``) are deleted. That
includes the orphan shards of an export that was killed before its manifest (no ``except`` runs in a killed
process): they count as one of the kept versions until enough newer exports pass them. Folders newer than the
manifest (an export still running), other names, and exports whose version is no such id are left alone. A
failed listing or delete is logged and never fails the export, whose manifest is already written; the next
export collects what was left.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from google.api_core import exceptions as gexc

from coea.data.gcs import BUCKET_NAME_RE, storage_client
from coea.store.errors import ExportError, StoreError
from coea.store.records import (
    KEY_COLUMNS,
    REC_COLUMNS,
    VERSION_ID_RE,
    new_version_id,
    utc_now_iso,
    validate_recs,
)
from coea.store.retry import RetryPolicy, call_with_retry
from coea.store.shards import (
    MANIFEST_NAME,
    ExportFormat,
    GcsManifest,
    ShardInfo,
    decode_shard,
    encode_shard,
    iter_chunks,
)

log = logging.getLogger(__name__)

_URI_FIX = "use gs://<bucket>/<prefix>/ with a lowercase bucket name, e.g. gs://my-bucket/recs/"


@dataclass(frozen=True)
class GcsUri:
    """A parsed ``gs://`` location: ``prefix`` is ``''`` or ends with ``/``."""

    bucket: str
    prefix: str

    def object_name(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


def parse_gcs_uri(uri: str) -> GcsUri:
    """Parse ``gs://bucket[/prefix[/]]``; a malformed URI raises ``StoreError`` with the fix."""
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        raise StoreError(f"not a gs:// URI: {uri!r}", source="uri", fix=_URI_FIX)
    bucket, _, path = uri[len("gs://"):].partition("/")
    if not BUCKET_NAME_RE.match(bucket) or ".." in bucket:
        raise StoreError(f"bad bucket name {bucket!r} in {uri!r}", source="uri", fix=_URI_FIX)
    parts = path.rstrip("/").split("/") if path.strip("/") else []
    if any(part in ("", ".", "..") for part in parts):
        raise StoreError(f"empty, '.' or '..' path segment in {uri!r}", source="uri", fix=_URI_FIX)
    return GcsUri(bucket=bucket, prefix="".join(f"{part}/" for part in parts))


@dataclass
class GcsExportConfig:
    """How ``export_to_gcs`` writes.

    Attributes:
        format: shard format, ``jsonl`` (one JSON object per row) or ``parquet``.
        rows_per_shard: rows per shard file (the last shard may be smaller).
        key_column: ``user_id`` for user recommendations, ``group_id`` for group ones.
        max_attempts: upload attempts per object (1 = no retry) on transient errors (429, 5xx, network).
        initial_backoff_s / max_backoff_s / backoff_multiplier: exponential backoff between attempts.
        cleanup_on_failure: delete the shards already uploaded when the export fails.
        version: the export's version id; ``None`` makes a new timestamp+uuid id.
        keep_versions: export versions kept after a successful export, its own included (the module docstring
            says which are collected); the default is the store's (``PublishConfig.keep_versions``).
    """

    format: ExportFormat = ExportFormat.JSONL
    rows_per_shard: int = 100_000
    key_column: str = "user_id"
    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 16.0
    backoff_multiplier: float = 2.0
    cleanup_on_failure: bool = True
    version: str | None = None
    keep_versions: int = 3

    def __post_init__(self) -> None:
        try:
            self.format = ExportFormat(self.format)
        except ValueError as exc:
            choices = [f.value for f in ExportFormat]
            raise ValueError(f"format must be one of {choices}, got {self.format!r}") from exc
        if isinstance(self.rows_per_shard, bool) or not isinstance(self.rows_per_shard, int):
            raise ValueError(f"rows_per_shard must be an int, got {self.rows_per_shard!r}")
        if self.rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be >= 1, got {self.rows_per_shard}")
        if self.key_column not in KEY_COLUMNS:
            raise ValueError(f"key_column must be one of {list(KEY_COLUMNS)}, got {self.key_column!r}")
        if self.version is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", self.version):
            raise ValueError(f"version must match [A-Za-z0-9._-]+, got {self.version!r}")
        if isinstance(self.keep_versions, bool) or not isinstance(self.keep_versions, int) or self.keep_versions < 1:
            raise ValueError(f"keep_versions must be an int >= 1, got {self.keep_versions!r}")
        self.retry_policy()  # validates attempts and backoff

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, initial_backoff_s=self.initial_backoff_s,
                           max_backoff_s=self.max_backoff_s, multiplier=self.backoff_multiplier)


@dataclass(frozen=True)
class GcsExportResult:
    """A finished export: where its manifest is, what it lists, and the old versions it deleted."""

    uri: str
    manifest_uri: str
    version: str
    format: ExportFormat
    n_rows: int
    shards: tuple[ShardInfo, ...]
    removed_versions: tuple[str, ...] = ()


def export_to_gcs(cfg: GcsExportConfig, recs: pd.DataFrame, uri: str, client: Any = None) -> GcsExportResult:
    """Write ``recs`` under ``uri`` as shards, then ``manifest.json`` last, then delete old versions' shards
    (``cfg.keep_versions``, see the module docstring).

    ``client`` is a ``google.cloud.storage.Client`` (or anything with ``.bucket(name)`` whose buckets have
    ``blob(name)`` and ``list_blobs(prefix=...)``); ``None`` makes a default one (honours
    ``STORAGE_EMULATOR_HOST``). Raises ``StoreError`` for a bad URI or frame and ``ExportError`` when an upload
    fails for good (then no manifest is written). Re-running it with the same ``cfg.version`` (a retried step)
    writes the same shard names again, so it finishes a killed export of that version.
    """
    target = parse_gcs_uri(uri)
    frame = validate_recs(recs, cfg.key_column, name="recs")
    bucket = (client if client is not None else storage_client(uri)).bucket(target.bucket)
    version = cfg.version or new_version_id()
    uploaded: list[str] = []
    try:
        shards = _upload_shards(cfg, frame, bucket, target, version, uploaded)
        manifest = GcsManifest(version=version, created_at=utc_now_iso(), format=cfg.format,
                               key_column=cfg.key_column, columns=[cfg.key_column, *REC_COLUMNS],
                               n_rows=len(frame), shards=shards)
        _upload(bucket, target.object_name(MANIFEST_NAME), manifest.to_json(), "application/json", cfg)
    except (gexc.GoogleAPIError, OSError) as exc:  # requests' errors are OSErrors
        if cfg.cleanup_on_failure and not _live_version(bucket, target, version):
            _delete_quietly(bucket, [target.object_name(name) for name in uploaded])
        raise ExportError(f"export to {target} failed: {exc.__class__.__name__}: {exc}; no manifest was "
                          f"written (fix: check the bucket and credentials, then re-run the export)") from exc
    log.info("exported %d rows in %d %s shard(s) to %s (version %s)",
             len(frame), len(shards), cfg.format.value, target, version)
    removed = _collect_old_versions(bucket, target, version, cfg)
    return GcsExportResult(uri=str(target), manifest_uri=f"{target}{MANIFEST_NAME}", version=version,
                           format=cfg.format, n_rows=len(frame), shards=tuple(shards), removed_versions=removed)


def _collect_old_versions(bucket: Any, target: GcsUri, version: str, cfg: GcsExportConfig) -> tuple[str, ...]:
    """After the manifest named ``version``: delete the shards of the version folders the module docstring's rule
    drops; returns those versions (oldest first). Never raises for a storage error: the export is done."""
    if not VERSION_ID_RE.fullmatch(version):
        return ()

    def attempt() -> list[str]:
        return [blob.name for blob in bucket.list_blobs(prefix=target.prefix, retry=None)]

    try:
        names = call_with_retry(attempt, cfg.retry_policy(), f"list gs://{bucket.name}/{target.prefix}")
    except (gexc.GoogleAPIError, OSError) as exc:
        log.warning("could not list %s to delete old export versions (the next export will): %s", target, exc)
        return ()
    by_version: dict[str, list[str]] = {}
    for name in names:
        match = _SHARD_NAME_RE.fullmatch(name[len(target.prefix):])
        if match:
            by_version.setdefault(match.group(1), []).append(name)
    older = sorted((v for v in by_version if v < version), reverse=True)
    doomed = sorted(older[cfg.keep_versions - 1:])
    if doomed:
        _delete_quietly(bucket, [name for v in doomed for name in by_version[v]])
        log.info("deleted %d old export version(s) under %s: %s", len(doomed), target, ", ".join(doomed))
    return tuple(doomed)


_SHARD_NAME_RE = re.compile(rf"({VERSION_ID_RE.pattern})/part-\d{{5}}\.(?:{'|'.join(f.value for f in ExportFormat)})")


def _upload_shards(cfg: GcsExportConfig, frame: pd.DataFrame, bucket: Any, target: GcsUri, version: str,
                   uploaded: list[str]) -> list[ShardInfo]:
    shards = []
    for index, chunk in enumerate(iter_chunks(frame, cfg.rows_per_shard)):
        name = f"{version}/part-{index:05d}.{cfg.format.value}"
        data = encode_shard(chunk, cfg.format)
        _upload(bucket, target.object_name(name), data, cfg.format.content_type, cfg)
        uploaded.append(name)
        shards.append(ShardInfo.of(name, len(chunk), data))
    return shards


def _upload(bucket: Any, object_name: str, data: bytes, content_type: str, cfg: GcsExportConfig) -> None:
    def attempt() -> None:
        # retry=None: this module's loop is the only retry layer, so attempts are exactly cfg.max_attempts
        bucket.blob(object_name).upload_from_string(data, content_type=content_type, retry=None)

    call_with_retry(attempt, cfg.retry_policy(), f"upload gs://{bucket.name}/{object_name}")


def _live_version(bucket: Any, target: GcsUri, version: str) -> bool:
    """Whether the export's manifest already names ``version`` (a retried step whose killed attempt had written it),
    or cannot be read: then the shards just re-uploaded are the live export's and a failed retry keeps them."""
    try:
        raw = bucket.blob(target.object_name(MANIFEST_NAME)).download_as_bytes(retry=None)
    except gexc.NotFound:
        return False
    except (gexc.GoogleAPIError, OSError):
        return True  # unknown: keeping orphans is harmless (the next export collects them), deleting live ones is not
    try:
        return GcsManifest.from_json(raw, source=str(target)).version == version
    except StoreError:
        return False


def _delete_quietly(bucket: Any, object_names: list[str]) -> None:
    for name in object_names:
        try:
            bucket.blob(name).delete()
        except (gexc.GoogleAPIError, OSError) as exc:
            log.warning("could not delete shard gs://%s/%s: %s", bucket.name, name, exc)


def _download(bucket: Any, object_name: str, policy: RetryPolicy) -> bytes:
    def attempt() -> bytes:
        return bucket.blob(object_name).download_as_bytes(retry=None)  # this module's loop is the only retry

    try:
        return call_with_retry(attempt, policy, f"download gs://{bucket.name}/{object_name}")
    except gexc.NotFound as exc:
        raise StoreError("object not found", source=f"gs://{bucket.name}/{object_name}",
                         fix="check the URI; an export without manifest.json is incomplete") from exc


def _manifest_location(uri: str) -> tuple[GcsUri, str]:
    """Accept the export prefix or the manifest's own URI; return (export prefix, manifest object name)."""
    if uri.rstrip("/").endswith(f"/{MANIFEST_NAME}"):
        uri = uri.rstrip("/")[: -len(MANIFEST_NAME)]
    target = parse_gcs_uri(uri)
    return target, target.object_name(MANIFEST_NAME)


def read_manifest(uri: str, client: Any = None, *, retry: RetryPolicy | None = None) -> GcsManifest:
    """Read the manifest of the export at ``uri`` (the prefix, or the ``.../manifest.json`` URI itself)."""
    target, name = _manifest_location(uri)
    bucket = (client if client is not None else storage_client(uri)).bucket(target.bucket)
    data = _download(bucket, name, retry or RetryPolicy())
    return GcsManifest.from_json(data, source=f"gs://{target.bucket}/{name}")


def read_export(uri: str, client: Any = None, *, retry: RetryPolicy | None = None) -> pd.DataFrame:
    """Read a complete export back as one frame, checking the manifest (``GcsManifest.check``) and each shard's
    size, sha256 and row count."""
    target, _ = _manifest_location(uri)
    client = client if client is not None else storage_client(uri)
    manifest = read_manifest(uri, client, retry=retry)
    bucket = client.bucket(target.bucket)
    frames = []
    for shard in manifest.shards:
        data = _download(bucket, target.object_name(shard.name), retry or RetryPolicy())
        shard.check(data)
        frame = decode_shard(data, manifest.format, manifest.columns)
        if len(frame) != shard.rows:
            raise StoreError(f"has {len(frame)} rows, manifest says {shard.rows}", source=shard.name,
                             fix="re-run the export")
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    if len(out) != manifest.n_rows:  # the manifest's own check makes it so; this says so should one ever change
        raise StoreError(f"read {len(out)} rows, manifest says n_rows {manifest.n_rows}", source=str(target),
                         fix="re-run the export")
    return out
