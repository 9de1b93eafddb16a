"""Library entry point: publish a parquet file of recommendations as a new version of a KV store."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from coea.store.errors import StoreError
from coea.store.kv import KVStore

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


def run_publish(cfg: PublishConfig, recs_path: Path, store_path: Path, *,
                group_recs_path: Path | None = None) -> PublishResult:
    """Publish ``recs_path`` (columns user_id, rank, category, score) and optionally ``group_recs_path``
    (group_id, rank, category, score) to the store at ``store_path`` as its new active version.

    The config, the source paths and ``cfg.metadata`` are stored as the version's metadata, so every version
    describes where it came from.
    """
    users = read_recs_file(recs_path)
    groups = read_recs_file(group_recs_path) if group_recs_path is not None else None
    metadata = {**cfg.metadata, "config": asdict(cfg), "recs_path": str(recs_path),
                "group_recs_path": None if group_recs_path is None else str(group_recs_path)}
    with KVStore(Path(store_path), keep_versions=cfg.keep_versions, timeout_s=cfg.timeout_s) as store:
        version = store.publish(users, groups, metadata=metadata)
        kept = store.versions()
    info = next(v for v in kept if v.version == version)
    log.info("run_publish: %s -> %s version %s", recs_path, store_path, version)
    return PublishResult(version=version, store_path=Path(store_path), n_users=info.n_users,
                         n_groups=info.n_groups, n_rows=info.n_rows,
                         kept_versions=tuple(v.version for v in kept))
