"""The two places a pipeline state lives (:mod:`coea.state`): a local directory, or ``gs://bucket/prefix`` through
the google-cloud-storage client; the same small interface (read, write with a generation precondition, upload,
list, delete) on both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from coea.data.gcs import WRITE_ROLE, storage_client, storage_errors
from coea.errors import CoeaInputError
from coea.store.gcs import parse_gcs_uri
from coea.store.retry import RetryPolicy, call_with_retry
from coea.utils import atomic_path

T = TypeVar("T")


class StateConflictError(CoeaInputError):
    """``current.json`` changed between this run's read and its write: another run committed a state meanwhile."""


class _StateStore:
    """What both state backends share; subclasses provide ``read_bytes``."""

    def read_bytes(self, rel: str) -> bytes | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def download_file(self, rel: str, dst: Path) -> bool:
        data = self.read_bytes(rel)
        if data is None:
            return False
        with atomic_path(dst) as tmp:
            tmp.write_bytes(data)
        return True


class LocalState(_StateStore):
    """State in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def read_bytes(self, rel: str) -> bytes | None:
        path = self.root / rel
        return path.read_bytes() if path.is_file() else None

    def write_bytes(self, rel: str, data: bytes) -> None:
        with atomic_path(self.root / rel) as tmp:
            tmp.write_bytes(data)

    def read_generation(self, rel: str) -> tuple[bytes | None, int | None]:
        """The bytes and no generation: a local state has one writer (its ReadWriteOnce volume)."""
        return self.read_bytes(rel), None

    def write_if_generation(self, rel: str, data: bytes, generation: int | None) -> None:
        self.write_bytes(rel, data)

    def upload_file(self, rel: str, src: Path) -> None:
        with atomic_path(self.root / rel) as tmp:
            tmp.write_bytes(Path(src).read_bytes())

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete(self, names: list[str]) -> None:
        for rel in names:
            path = self.root / rel
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()  # drop directories the deletion left empty
                parent = parent.parent


class GcsState(_StateStore):
    """State under ``gs://bucket/prefix``. Every call is retried on transient errors by ``retry`` alone (the
    client's own retry is off, so an outage fails after ``retry.max_attempts`` tries, not minutes of them), and
    what still fails is one CoeaInputError naming the object: no credentials, no permission, no bucket, no network.
    """

    def __init__(self, uri: str, client: Any = None, retry: RetryPolicy | None = None) -> None:
        self.target = parse_gcs_uri(uri)
        self.uri = str(self.target)
        self.bucket = (client if client is not None else storage_client(self.uri)).bucket(self.target.bucket)
        self.retry = retry or RetryPolicy()

    def _blob(self, rel: str) -> Any:
        return self.bucket.blob(self.target.object_name(rel))

    def _call(self, fn: Callable[[], T], doing: str, rel: str, *, absent_ok: bool = False) -> T | None:
        """``fn()`` with retries; errors named after ``rel``. NotFound is None with ``absent_ok``, else says the
        bucket does not exist (objects a writer names are never absent)."""
        from google.api_core import exceptions as gexc

        source = self.uri + rel
        try:
            with storage_errors(source, doing, WRITE_ROLE):
                return call_with_retry(fn, self.retry, f"{doing} {source}")
        except gexc.NotFound as err:
            if absent_ok:
                return None
            raise CoeaInputError(f"bucket {self.target.bucket!r} does not exist (or {rel} vanished)",
                                 source=source, fix="check the bucket in state_uri (gcloud storage ls)") from err

    def read_bytes(self, rel: str) -> bytes | None:
        return self._call(lambda: self._blob(rel).download_as_bytes(retry=None), "reading", rel, absent_ok=True)

    def write_bytes(self, rel: str, data: bytes) -> None:
        self._call(lambda: self._blob(rel).upload_from_string(data, retry=None), "writing", rel)

    def read_generation(self, rel: str) -> tuple[bytes | None, int]:
        """The object's bytes and generation read together (the download names the generation); ``(None, 0)``
        when there is no such object."""
        name = self.target.object_name(rel)
        blob = self._call(lambda: self.bucket.get_blob(name, retry=None), "reading", rel, absent_ok=True)
        if blob is None:
            return None, 0
        generation = int(blob.generation)  # before the download, which resets it from the response's headers
        return self._call(lambda: blob.download_as_bytes(retry=None), "reading", rel), generation

    def write_if_generation(self, rel: str, data: bytes, generation: int | None) -> None:
        """Write only while the object is still at ``generation`` (0: only if it does not exist); a changed
        object raises :class:`StateConflictError` (never retried: the other writer's state stays)."""
        from google.api_core import exceptions as gexc

        try:
            self._call(lambda: self._blob(rel).upload_from_string(data, if_generation_match=generation, retry=None),
                       "writing", rel)
        except gexc.PreconditionFailed as err:
            raise StateConflictError(
                f"{rel} changed since this run read it (generation {generation}): another run wrote the state "
                "meanwhile; this run's new version is not active", source=str(self.target),
                fix="let one run write a state at a time (coea schedule sets max_concurrency=1) and re-run") from err

    def upload_file(self, rel: str, src: Path) -> None:
        self._call(lambda: self._blob(rel).upload_from_filename(str(src), retry=None), "writing", rel)

    def list(self, prefix: str) -> list[str]:
        full = self.target.object_name(prefix)
        blobs = self._call(lambda: list(self.bucket.list_blobs(prefix=full, retry=None)), "listing", prefix)
        return sorted(b.name[len(self.target.prefix):] for b in blobs)

    def delete(self, names: list[str]) -> None:
        for rel in names:
            self._call(lambda rel=rel: self._blob(rel).delete(retry=None), "deleting", rel, absent_ok=True)


def open_state(state_uri: str, client: Any = None) -> LocalState | GcsState:
    """The state at ``state_uri``: ``gs://...`` or a local directory path."""
    if not state_uri or not state_uri.strip():
        raise CoeaInputError("state_uri is empty", option="state_uri", fix="use a directory or gs://bucket/prefix")
    if state_uri.startswith("gs://"):
        return GcsState(state_uri, client)
    if "://" in state_uri:
        raise CoeaInputError(f"unsupported state_uri scheme: {state_uri!r}", option="state_uri",
                             fix="use a local directory (e.g. on the cache PVC) or gs://bucket/prefix")
    return LocalState(Path(state_uri).expanduser())
