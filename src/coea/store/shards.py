"""Shard encoding (JSONL / Parquet), checksums and the export manifest."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from enum import StrEnum

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from coea.store.errors import StoreError
from coea.store.records import KEY_COLUMNS, REC_COLUMNS

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1


class ExportFormat(StrEnum):
    """File format of the exported shards."""

    JSONL = "jsonl"
    PARQUET = "parquet"

    @property
    def content_type(self) -> str:
        return "application/x-ndjson" if self is ExportFormat.JSONL else "application/vnd.apache.parquet"


def iter_chunks(frame: pd.DataFrame, rows_per_shard: int) -> Iterator[pd.DataFrame]:
    """Consecutive row chunks of at most ``rows_per_shard`` rows."""
    for start in range(0, len(frame), rows_per_shard):
        yield frame.iloc[start: start + rows_per_shard]


def encode_shard(chunk: pd.DataFrame, fmt: ExportFormat) -> bytes:
    """Serialise a chunk: JSONL is one JSON object per row (floats round-trip exactly)."""
    if fmt is ExportFormat.JSONL:
        lines = (json.dumps(row, separators=(",", ":")) for row in chunk.to_dict(orient="records"))
        return ("\n".join(lines) + "\n").encode("utf-8")
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), buffer)
    return buffer.getvalue()


def decode_shard(data: bytes, fmt: ExportFormat, columns: list[str]) -> pd.DataFrame:
    """Inverse of ``encode_shard``."""
    if fmt is ExportFormat.JSONL:
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
        return pd.DataFrame.from_records(rows, columns=columns)
    return pq.read_table(io.BytesIO(data)).to_pandas()[columns]


@dataclass(frozen=True)
class ShardInfo:
    """One shard as listed in the manifest; ``name`` is relative to the export prefix.

    ``md5`` is base64 like GCS's ``md5Hash``, so it can be compared with the blob's metadata.
    """

    name: str
    rows: int
    bytes: int
    sha256: str
    md5: str

    @classmethod
    def of(cls, name: str, rows: int, data: bytes) -> ShardInfo:
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        return cls(name=name, rows=rows, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), md5=md5)

    def check(self, data: bytes) -> None:
        """Raise ``StoreError`` unless ``data`` is this shard's content."""
        if len(data) != self.bytes or hashlib.sha256(data).hexdigest() != self.sha256:
            raise StoreError("content does not match the manifest's size/sha256", source=self.name,
                             fix="re-run the export; the shard was changed after it was written")


@dataclass(frozen=True)
class GcsManifest:
    """What a complete export holds. Written after every shard, so its presence means 'complete'."""

    version: str
    created_at: str
    format: ExportFormat
    key_column: str
    columns: list[str]
    n_rows: int
    shards: list[ShardInfo]
    schema: int = MANIFEST_SCHEMA

    def to_json(self) -> bytes:
        body = asdict(self)
        body["format"] = self.format.value
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, source: str) -> GcsManifest:
        """Parse a manifest; anything malformed raises ``StoreError`` naming ``source``."""
        fix = "read a manifest written by coea.store.export_to_gcs"
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise StoreError(f"not JSON: {exc}", source=source, fix=fix) from exc
        if not isinstance(body, dict):
            raise StoreError("not a JSON object", source=source, fix=fix)
        missing = [f.name for f in fields(cls) if f.name not in body and f.name != "schema"]
        if missing:
            raise StoreError("missing field", source=source, column=missing[0], fix=fix)
        try:
            shards = [ShardInfo(**{f.name: s[f.name] for f in fields(ShardInfo)}) for s in body["shards"]]
            manifest = cls(**{**body, "format": ExportFormat(body["format"]), "shards": shards})
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"malformed manifest: {exc!r}", source=source, fix=fix) from exc
        manifest.check(source)
        return manifest

    def check(self, source: str) -> None:
        """Refuse (``StoreError`` naming ``source`` and the field) a manifest that does not describe what reading
        it returns: another schema, columns other than the key column then rank, category, score, no shards, or
        an ``n_rows`` that is not the sum of the shards' rows."""
        fix = "re-run the export: export_to_gcs writes a manifest that matches its shards"
        if self.schema != MANIFEST_SCHEMA:
            raise StoreError(f"manifest schema {self.schema!r}, this coea reads schema {MANIFEST_SCHEMA}",
                             source=source, column="schema",
                             fix="read it with the coea version that wrote it, or re-run the export")
        if self.key_column not in KEY_COLUMNS or list(self.columns) != [self.key_column, *REC_COLUMNS]:
            raise StoreError(f"columns {self.columns!r} are not key_column {self.key_column!r} (one of "
                             f"{', '.join(KEY_COLUMNS)}) then {', '.join(REC_COLUMNS)}", source=source,
                             column="columns", fix=fix)
        if not self.shards:
            raise StoreError("lists no shards (an export writes at least one)", source=source, column="shards", fix=fix)
        for shard in self.shards:
            if type(shard.rows) is not int or shard.rows < 1:
                raise StoreError(f"shard {shard.name!r} has rows {shard.rows!r}, not an integer >= 1", source=source,
                                 column="shards", fix=fix)
        held = sum(shard.rows for shard in self.shards)
        if type(self.n_rows) is not int or self.n_rows != held:
            raise StoreError(f"n_rows {self.n_rows!r}, but its {len(self.shards)} shard(s) hold {held} rows",
                             source=source, column="n_rows", fix=fix)
