"""Library entry point: publish a parquet file of recommendations as a new version of a KV store."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from coea.store.errors import StoreError
from coea.store.kv import KVStore, VersionInfo
from coea.store.records import validate_recs
from coea.utils import atomic_path, file_sha256

log = logging.getLogger(__name__)


@dataclass
class PublishConfig:
    """How ``run_publish`` writes to the store.

    Attributes:
        keep_versions: versions kept after the publish (newest first; the active one always survives).
        timeout_s: seconds a writer waits for another writer's lock before failing.
        metadata: extra JSON-serialisable facts stored with the version (run id, model, period ...).
    """

    keep_versions: int = 3
    timeout_s: float = 30.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.keep_versions, bool) or not isinstance(self.keep_versions, int):
            raise ValueError(f"keep_versions must be an int, got {self.keep_versions!r}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {self.keep_versions}")
        if not isinstance(self.timeout_s, int | float) or not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be a number > 0, got {self.timeout_s!r}")
        if not isinstance(self.metadata, dict):
            raise ValueError(f"metadata must be a dict, got {type(self.metadata).__name__}")
        try:
            json.dumps(self.metadata)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON-serialisable: {exc}") from exc


@dataclass(frozen=True)
class PublishResult:
    """What ``run_publish`` did: the new active version and the versions kept after garbage collection."""

    version: str
    store_path: Path
    n_users: int
    n_groups: int
    n_rows: int
    kept_versions: tuple[str, ...]


def read_recs_file(path: Path) -> pd.DataFrame:
    """Read a parquet file of recommendations; a missing or unreadable file raises ``StoreError``."""
    path = Path(path)
    if not path.is_file():
        raise StoreError("file not found", source=path, fix="pass an existing parquet file")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read as parquet: {exc}", source=path,
                         fix="write recommendations with DataFrame.to_parquet") from exc


def _source_metadata(cfg: PublishConfig, recs_path: Path, group_recs_path: Path | None) -> dict[str, Any]:
    """What a version records about where it came from: ``cfg.metadata`` (e.g. the pipeline's
    ``recommendations`` URI), the source paths and the sha256 of each source file."""
    return {**cfg.metadata, "recs_path": str(recs_path), "recs_sha256": file_sha256(recs_path),
            "group_recs_path": None if group_recs_path is None else str(group_recs_path),
            "group_recs_sha256": None if group_recs_path is None else file_sha256(group_recs_path)}


def run_publish(cfg: PublishConfig, recs_path: Path, store_path: Path, *,
                group_recs_path: Path | None = None) -> PublishResult:
    """Publish ``recs_path`` (columns user_id, rank, category, score) and optionally ``group_recs_path``
    (group_id, rank, category, score) to the store at ``store_path`` as its new active version.

    The config, ``cfg.metadata``, the source paths and the sha256 of each source file are stored as the version's
    metadata, so every version describes where it came from (and ``find_published`` can tell a repeated publish).
    The files are checked first: a bad one raises ``StoreError`` naming it, the column and the row, and the store is
    neither created nor changed.
    """
    # checked before the store is opened (a bad file creates or changes nothing), errors naming the file
    users = validate_recs(read_recs_file(recs_path), "user_id", name=str(recs_path))
    groups = None if group_recs_path is None else validate_recs(read_recs_file(group_recs_path), "group_id",
                                                                name=str(group_recs_path))
    metadata = {**_source_metadata(cfg, recs_path, group_recs_path), "config": asdict(cfg)}
    with KVStore(Path(store_path), keep_versions=cfg.keep_versions, timeout_s=cfg.timeout_s) as store:
        version = store.publish(users, groups, metadata=metadata)
        # the new version's metadata only: an older version's damaged metadata must not undo this repair
        info, kept = store.version_info(version), store.version_ids()
    log.info("run_publish: %s -> %s version %s", recs_path, store_path, version)
    return _result(store_path, info, kept)


def _result(store_path: Path, info: VersionInfo, kept: list[str]) -> PublishResult:
    return PublishResult(version=info.version, store_path=Path(store_path), n_users=info.n_users,
                         n_groups=info.n_groups, n_rows=info.n_rows, kept_versions=tuple(kept))


def find_published(cfg: PublishConfig, recs_path: Path, store_path: Path, *,
                   group_recs_path: Path | None = None) -> PublishResult | None:
    """The store's ACTIVE version if ``run_publish(cfg, recs_path, store_path, group_recs_path=...)`` already
    published it, else ``None``: its metadata names the same source paths with the same sha256 digests and holds
    every item of ``cfg.metadata`` (the pipelines put the recommendations artifact's URI there). A retried export
    step uses it to finish with the version an earlier, killed attempt published, instead of publishing the same
    recommendations again as a new version (``keep_versions`` would then hold fewer distinct periods).

    Changes nothing. ``None`` too when there is no store yet, when the file is no readable store, when its active
    version is missing (a damaged store: the publish repairs it), or when a source file is missing (the publish
    then says so), and when its active version's metadata is damaged (the publish repairs it too)."""
    sources = [p for p in (recs_path, group_recs_path) if p is not None]
    if not Path(store_path).is_file() or not all(Path(p).is_file() for p in sources):
        return None
    try:
        with KVStore(Path(store_path), timeout_s=cfg.timeout_s, create=False) as store:
            active, kept = store.version_info(), store.version_ids()
    except StoreError:
        return None
    if active is None:
        return None
    expected = json.loads(json.dumps(_source_metadata(cfg, Path(recs_path), group_recs_path)))
    if any(active.metadata.get(key, _MISSING) != value for key, value in expected.items()):
        return None
    log.info("find_published: %s already holds %s as its active version %s", store_path, recs_path, active.version)
    return _result(store_path, active, kept)


_MISSING = object()


def copy_store(src: Path, dst: Path) -> None:
    """A consistent copy of the live store ``src`` (SQLite's backup API: it holds every committed version, those
    still in ``src``'s ``-wal`` file too), written atomically to ``dst`` as one file (see ``single_file``)."""
    with atomic_path(Path(dst)) as tmp, closing(sqlite3.connect(src)) as s, closing(sqlite3.connect(tmp)) as d:
        s.backup(d)
        _journal_delete(d, Path(dst))


def single_file(path: Path) -> None:
    """Make the store at ``path`` one self-contained file: its WAL folded in and its journal mode DELETE, so no
    ``-wal``/``-shm`` file belongs beside it and a reader on a read-only volume opens it as it is (a writer, e.g.
    the next publish, switches it back to WAL)."""
    with closing(sqlite3.connect(path)) as conn:
        _journal_delete(conn, Path(path))


def _journal_delete(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    if mode != "delete":  # SQLite keeps WAL while another connection has the file open
        raise StoreError(f"could not make a single-file copy (journal mode stays {mode})", source=path,
                         fix="close the programs that have this file open, then re-run the export")
