"""Versioned embedded key-value store of recommendations on SQLite (WAL mode).

Layout: ``recs(version, kind, key) -> value`` (a JSON list of ``{category, score}`` in rank order, one row per
user or group), ``versions`` (one row per published version) and ``meta.active_version`` (the pointer readers
follow). ``publish`` writes the new version's rows, its ``versions`` row and the pointer switch in ONE write
transaction, so a concurrent reader sees either the old version or the complete new one, never a mix. A
read is one statement (or one read transaction for a batch) and so sees one consistent snapshot.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from coea.store.errors import StoreError
from coea.store.records import (
    Recommendation,
    decode_metadata,
    decode_value,
    encode_metadata,
    encode_values,
    new_version_id,
    utc_now_iso,
)
from coea.store.records import validate_recs as _validate

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    n_users INTEGER NOT NULL, n_groups INTEGER NOT NULL, n_rows INTEGER NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recs (
    version TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (version, kind, key)) WITHOUT ROWID;
"""
_TABLES = {"meta", "versions", "recs"}  # what makes a SQLite file a coea store
_ACTIVE = "(SELECT value FROM meta WHERE name = 'active_version')"
_SELECT_ACTIVE = f"SELECT key, value FROM recs WHERE version = {_ACTIVE} AND kind = ?"
_GET = f"{_SELECT_ACTIVE} AND key = ?"
_VERSIONS = "SELECT version, created_at, n_users, n_groups, n_rows, metadata FROM versions"
_BATCH_LIMIT = 500  # keys per IN (...) statement, well under SQLite's variable limit


class KeyKind(StrEnum):
    """What a key names: a user or a group of users (CSID prefix)."""

    USER = "user"
    GROUP = "group"


@dataclass(frozen=True)
class VersionInfo:
    """One stored version, as listed by ``KVStore.versions()`` (oldest first)."""

    version: str
    created_at: str
    n_users: int
    n_groups: int
    n_rows: int
    metadata: dict[str, Any]
    active: bool


@dataclass(frozen=True)
class Lookup:
    """One key's recommendations and the version they come from, read from one snapshot (``KVStore.lookup``)."""

    version: str | None  # the active version; None before the first publish (then the rest is empty)
    n_groups: int  # how many group entries that version holds
    recs: list[Recommendation]  # the key's list in rank order, [] if the version does not hold the key
    examples: list[str]  # when ``recs`` is empty: the version's first user ids (what an id looks like)


class KVStore:
    """Versioned recommendation store in one SQLite file.

    Args:
        path: the database file (created with its parent directory when missing).
        keep_versions: how many newest versions survive garbage collection after a publish (the active
            version is always kept as well, e.g. after a rollback).
        timeout_s: how long a connection waits for a lock held by another writer.
        create: True (a writer) makes a new store when the file is missing or empty; False (a reader, e.g. `coea
            recommend`) opens an existing store only and changes nothing on disk. Either way a SQLite file of
            another application (tables, but not the store's) is refused, untouched.

    Connections are per thread, so one ``KVStore`` may be shared by threads; ``close()`` closes them all.
    """

    def __init__(self, path: Path, *, keep_versions: int = 3, timeout_s: float = 30.0, create: bool = True) -> None:
        if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1:
            raise ValueError(f"keep_versions must be an int >= 1, got {keep_versions!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.path = Path(path)
        self.create = create
        self.keep_versions = keep_versions
        self.timeout_s = float(timeout_s)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        # a writer may start a new store there; a lookup needs one a publish wrote
        other = "point the store at a new file or an existing coea store" if create else \
            "pass the recs.sqlite a publish wrote (e.g. runs/<ts>/recs.sqlite)"
        if not create and not self.path.is_file():
            raise StoreError("no store at this path", source=self.path, fix=other)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._conn()
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not tables >= _TABLES:
                raise StoreError(f"a SQLite file of something else, not a coea store (its tables: "
                                 f"{', '.join(sorted(tables))})", source=self.path, fix=other)
            if not tables and not create:
                raise StoreError("an empty file, not a coea store (nothing was ever published to it)",
                                 source=self.path, fix="publish first (`coea run` writes recs.sqlite), or pass "
                                                       "the store a publish wrote")
            if create:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"cannot open as a SQLite store: {exc}", source=self.path, fix=other) from exc
        except StoreError:
            self.close()
            raise

    # -- connections -------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        """A writer's connection; a reader's (``create=False``) read-only: ``mode=ro``, or, where the folder cannot
        be written (a read-only volume, where SQLite cannot make the WAL store's ``-shm`` file beside it),
        ``immutable=1``, which reads the file as it is, without locks. That fallback refuses a store with a
        non-empty ``-wal`` file beside it (a writer stopped before folding its commits in): the file alone may be an
        older version. The copy ``run_export`` ships is one file (no WAL) and needs no fallback."""
        options = {"timeout": self.timeout_s, "isolation_level": None, "check_same_thread": False}
        if self.create:
            return sqlite3.connect(self.path, **options)
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, **options)
        try:
            conn.execute("SELECT name FROM sqlite_master LIMIT 1")
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if os.access(self.path.parent, os.W_OK):
                raise
            self._refuse_unfolded_wal()
            return sqlite3.connect(uri + "&immutable=1", uri=True, **options)

    def _refuse_unfolded_wal(self) -> None:
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreError(f"{wal.name} beside it may hold committed versions that a read-only folder cannot fold "
                             "in (the file alone may be an older version)", source=self.path,
                             fix=f"on a writable mount run sqlite3 {self.path.name} 'PRAGMA wal_checkpoint(TRUNCATE)'"
                                 ", or ship the single-file copy run_export writes (the run's recs.sqlite)")

    @contextmanager
    def _transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        """``BEGIN <mode>`` ... ``COMMIT``; ``ROLLBACK`` on any error so nothing half-written remains."""
        conn = self._conn()
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> KVStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------------
    def publish(self, user_recs: pd.DataFrame, group_recs: pd.DataFrame | None = None, *,
                metadata: dict[str, Any] | None = None) -> str:
        """Write a new version, make it active atomically, then drop versions beyond ``keep_versions``.

        Returns the new version id. Raises ``StoreError`` for a bad frame or metadata (nothing is written).
        """
        users = encode_values(_validate(user_recs, "user_id", name="user_recs"), "user_id")
        groups: list[tuple[str, str]] = []
        if group_recs is not None:
            groups = encode_values(_validate(group_recs, "group_id", name="group_recs"), "group_id")
        meta_json = encode_metadata(metadata)
        n_rows = len(user_recs) + (0 if group_recs is None else len(group_recs))
        version = new_version_id()
        with self._transaction("IMMEDIATE") as conn:
            conn.execute("INSERT INTO versions (version, created_at, n_users, n_groups, n_rows, metadata) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (version, utc_now_iso(), len(users), len(groups), n_rows, meta_json))
            self._insert_values(conn, version, KeyKind.USER, users)
            self._insert_values(conn, version, KeyKind.GROUP, groups)
            _set_active(conn, version)
        removed = self.collect_garbage()
        log.info("published version %s (%d users, %d groups); removed %d old version(s)",
                 version, len(users), len(groups), len(removed))
        return version

    @staticmethod
    def _insert_values(conn: sqlite3.Connection, version: str, kind: KeyKind,
                       pairs: Iterable[tuple[str, str]]) -> None:
        conn.executemany("INSERT INTO recs (version, kind, key, value) VALUES (?, ?, ?, ?)",
                         ((version, kind.value, key, value) for key, value in pairs))

    def rollback(self, version: str) -> None:
        """Make an older (still kept) ``version`` active again. Raises ``StoreError`` if it is unknown."""
        with self._transaction("IMMEDIATE") as conn:
            if conn.execute("SELECT 1 FROM versions WHERE version = ?", (version,)).fetchone() is None:
                known = [row[0] for row in conn.execute("SELECT version FROM versions ORDER BY seq")]
                raise StoreError(f"unknown version {version!r} (kept: {', '.join(known) or 'none'})",
                                 source=self.path, fix="roll back to one of the kept versions")
            _set_active(conn, version)
        log.info("rolled back %s to version %s", self.path, version)

    def collect_garbage(self) -> list[str]:
        """Delete all but the newest ``keep_versions`` versions (never the active one); return the deleted."""
        with self._transaction("IMMEDIATE") as conn:
            active = _active(conn)
            newest_first = [row[0] for row in conn.execute("SELECT version FROM versions ORDER BY seq DESC")]
            keep = set(newest_first[: self.keep_versions]) | {active}
            drop = [version for version in newest_first if version not in keep]
            for version in drop:
                conn.execute("DELETE FROM recs WHERE version = ?", (version,))
                conn.execute("DELETE FROM versions WHERE version = ?", (version,))
        return drop

    # -- reads -------------------------------------------------------------------------------------------
    def active_version(self) -> str | None:
        """The version readers see, or ``None`` before the first publish. Raises ``StoreError`` when the pointer
        names a version the store does not hold (a damaged store)."""
        return self._checked_active(self._conn())

    def _checked_active(self, conn: sqlite3.Connection) -> str | None:
        version = _active(conn)
        if version is not None and conn.execute("SELECT 1 FROM versions WHERE version = ?",
                                                (version,)).fetchone() is None:
            kept = [row[0] for row in conn.execute("SELECT version FROM versions ORDER BY seq")]
            raise StoreError(f"the store's active version {version!r} is missing (kept versions: "
                             f"{', '.join(kept) or 'none'}): a damaged store", source=self.path,
                             fix="re-publish: re-run `coea run` or the pipelines' publish step")
        return version

    def _decode(self, kind: KeyKind, key: str, value: str) -> list[Recommendation]:
        return decode_value(value, what=f"{kind.value} {key!r}", source=self.path)

    def get_user(self, user_id: str) -> list[Recommendation]:
        """The active version's recommendations for ``user_id`` in rank order (``[]`` if unknown)."""
        return self._get(KeyKind.USER, user_id)

    def get_group(self, group_id: str) -> list[Recommendation]:
        """The active version's recommendations for ``group_id`` in rank order (``[]`` if unknown)."""
        return self._get(KeyKind.GROUP, group_id)

    def _get(self, kind: KeyKind, key: str) -> list[Recommendation]:
        conn = self._conn()
        row = conn.execute(_GET, (kind.value, str(key))).fetchone()
        if row is None:
            self._checked_active(conn)  # nothing found: say so if the active version itself is missing
            return []
        return self._decode(kind, str(key), row[1])

    def lookup(self, kind: KeyKind, key: str, *, examples: int = 3) -> Lookup:
        """The active version, its group count and ``key``'s list, all from ONE read transaction: a publish that
        commits meanwhile cannot pair one version's id with another version's list (what ``coea recommend``
        prints). Raises ``StoreError`` for a damaged store, as the other reads do."""
        kind = KeyKind(kind)
        with self._transaction("DEFERRED") as conn:
            version = self._checked_active(conn)
            if version is None:
                return Lookup(None, 0, [], [])
            n_groups = conn.execute("SELECT n_groups FROM versions WHERE version = ?", (version,)).fetchone()[0]
            row = conn.execute("SELECT value FROM recs WHERE version = ? AND kind = ? AND key = ?",
                               (version, kind.value, str(key))).fetchone()
            recs = [] if row is None else self._decode(kind, str(key), row[0])
            sample = [] if recs else [r[0] for r in conn.execute(
                "SELECT key FROM recs WHERE version = ? AND kind = ? ORDER BY key LIMIT ?",
                (version, KeyKind.USER.value, int(examples)))]
        return Lookup(version, int(n_groups), recs, sample)

    def get_users(self, user_ids: Iterable[str]) -> dict[str, list[Recommendation]]:
        """Batch lookup from one snapshot (one read transaction): every value comes from the same version.

        Unknown users are left out of the result.
        """
        keys = list(dict.fromkeys(str(key) for key in user_ids))
        found: dict[str, list[Recommendation]] = {}
        with self._transaction("DEFERRED") as conn:
            for start in range(0, len(keys), _BATCH_LIMIT):
                chunk = keys[start: start + _BATCH_LIMIT]
                marks = ",".join("?" * len(chunk))
                sql = f"{_SELECT_ACTIVE} AND key IN ({marks})"
                for key, value in conn.execute(sql, (KeyKind.USER.value, *chunk)):
                    found[key] = self._decode(KeyKind.USER, key, value)
            if not found:
                self._checked_active(conn)
        return found

    def user_ids(self, limit: int = 3) -> list[str]:
        """The first ``limit`` user ids of the active version (by id): what an id of this store looks like."""
        sql = f"SELECT key FROM recs WHERE version = {_ACTIVE} AND kind = ? ORDER BY key LIMIT ?"
        return [row[0] for row in self._conn().execute(sql, (KeyKind.USER.value, int(limit)))]

    def active_user_recs(self) -> pd.DataFrame:
        """Every user's recommendations of the active version, one row per (user_id, rank) with columns user_id,
        rank, category, score (the publish format); empty, with those columns, before the first publish."""
        with self._transaction("DEFERRED") as conn:
            self._checked_active(conn)
            rows = conn.execute(_SELECT_ACTIVE, (KeyKind.USER.value,)).fetchall()
        return self.user_recs_frame([(key, rec.rank, rec.category, rec.score)
                                     for key, value in rows for rec in self._decode(KeyKind.USER, key, value)])

    @staticmethod
    def user_recs_frame(records: list[tuple[str, int, str, float]] | None = None) -> pd.DataFrame:
        """A user recommendations frame (user_id, rank, category, score) of ``records``; empty without."""
        return pd.DataFrame(records or [], columns=["user_id", "rank", "category", "score"]).astype(
            {"user_id": str, "rank": "int64", "category": str, "score": "float64"})

    def versions(self) -> list[VersionInfo]:
        """All kept versions, oldest first, with created time, counts, metadata and which is active. Raises
        ``StoreError`` naming a version whose stored metadata is damaged."""
        with self._transaction("DEFERRED") as conn:
            active = _active(conn)
            rows = conn.execute(f"{_VERSIONS} ORDER BY seq").fetchall()
        return [self._info(row, active) for row in rows]

    def version_info(self, version: str | None = None) -> VersionInfo | None:
        """One kept version (by default the active one; ``None`` if not kept or nothing published): only its
        metadata is decoded, so another version's damaged metadata does not stop a publish."""
        with self._transaction("DEFERRED") as conn:
            active = self._checked_active(conn)
            row = conn.execute(f"{_VERSIONS} WHERE version = ?", (version or active,)).fetchone()
        return None if row is None else self._info(row, active)

    def version_ids(self) -> list[str]:
        """The kept versions' ids, oldest first (no metadata decoded)."""
        return [row[0] for row in self._conn().execute("SELECT version FROM versions ORDER BY seq")]

    def _info(self, row: tuple[Any, ...], active: str | None) -> VersionInfo:
        version, created_at, n_users, n_groups, n_rows, metadata = row
        return VersionInfo(version=version, created_at=created_at, n_users=n_users, n_groups=n_groups, n_rows=n_rows,
                           metadata=decode_metadata(metadata, version, source=self.path), active=version == active)


def _active(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name = 'active_version'").fetchone()
    return None if row is None else row[0]


def _set_active(conn: sqlite3.Connection, version: str) -> None:
    conn.execute("INSERT INTO meta (name, value) VALUES ('active_version', ?) "
                 "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (version,))
