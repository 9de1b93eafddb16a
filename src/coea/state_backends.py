"""The two places a pipeline state lives (:mod:`coea.state`): a local directory, or ``gs://bucket/prefix`` through
the google-cloud-storage client; the same small interface (read, write with a generation precondition, upload,
list, delete) on both. And the state's pointer, ``current.json``: its format (:func:`parse_pointer`), the ids it
keeps (:func:`next_history`), the check a commit makes against it (:func:`onto_loaded`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from coea.config import parse_as_of
from coea.data.gcs import WRITE_ROLE, storage_client, storage_errors
from coea.errors import CoeaInputError
from coea.store.gcs import parse_gcs_uri
from coea.store.retry import RetryPolicy, call_with_retry
from coea.utils import atomic_path

log = logging.getLogger(__name__)
T = TypeVar("T")
POINTER = "current.json"
SNAPSHOTS = "snapshots"
MODELS = "models"
PARTS = ("data", "dsie")
MODEL_PARTS = ("novelty", "relevance")  # each stored from (loaded into) ``<dir>/<part>/``, the sft_* layout


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


def _content_generation(data: bytes | None) -> int:
    """A local file's generation: 0 when absent, else a positive number from its content's SHA-256."""
    return 0 if data is None else int.from_bytes(hashlib.sha256(data).digest()[:7], "big") + 1


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

    def read_generation(self, rel: str) -> tuple[bytes | None, int]:
        """The bytes and a generation derived from them (0: no such file), as GCS gives one: a ReadWriteOnce
        volume limits writers to one node, not to one pod (session 55 audit), so two runs there can race."""
        data = self.read_bytes(rel)
        return data, _content_generation(data)

    def write_if_generation(self, rel: str, data: bytes, generation: int | None) -> None:
        """Write only while the file is still at ``generation`` (None: unchecked), under an exclusive lock on a
        sibling lock file, so the check and the rename are one step for every writer on the node."""
        import fcntl

        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if generation is not None and _content_generation(self.read_bytes(rel)) != generation:
                raise StateConflictError(
                    f"{rel} changed since this run read it: another run wrote the state meanwhile; this run's new "
                    "version is not active", source=str(self.root),
                    fix="let one run write a state at a time (coea schedule sets max_concurrency=1) and re-run")
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


def parse_pointer(data: bytes, where: str) -> dict[str, Any]:
    """``current.json``'s content (``where``: the state's URI or directory), checked: an object with a ``snapshot``
    id, its ``created_at`` and a list of ``files`` (the same keys under ``models`` when present); and, in pointers
    written since they exist, the strings ``period`` and ``committed_at`` and ``history`` (``snapshots`` and
    ``models``: lists of ids)."""
    try:
        pointer = json.loads(data)
        for entry in (pointer, *([pointer["models"]] if "models" in pointer else [])):
            if not (isinstance(entry["snapshot"], str) and isinstance(entry["created_at"], str)
                    and isinstance(entry["files"], list)):
                raise TypeError("snapshot, created_at and files have the wrong types")
            _check_files(entry, *((MODELS, MODEL_PARTS) if entry is not pointer else (SNAPSHOTS, PARTS)))
        history = pointer.get("history", {})
        if any(not isinstance(pointer.get(key, ""), str) for key in ("period", "committed_at")) or not (
                isinstance(history, dict) and all(isinstance(ids, list) and all(isinstance(i, str) for i in ids)
                                                  for ids in history.values())):
            raise TypeError("period, committed_at or history have the wrong types")
    except (ValueError, TypeError, KeyError) as err:
        raise CoeaInputError(f"{POINTER} is not a state pointer ({type(err).__name__}: {err})",
                             source=f"{where.rstrip('/')}/{POINTER}",
                             fix="it is written only by the coea pipelines: restore the previous version of "
                                 "the object, or move the state aside and re-run coea_training") from err
    return pointer


def _check_files(entry: dict[str, Any], prefix: str, parts: tuple[str, ...]) -> None:
    """Every ``files`` entry is ``<prefix>/<the entry's id>/<part>/<path>`` with a known part and no ``.``/``..``
    step (a damaged pointer must not write outside the download dirs)."""
    for index, rel in enumerate(entry["files"], start=1):
        steps = rel.split("/") if isinstance(rel, str) else []
        if not (len(steps) >= 4 and steps[:2] == [prefix, entry["snapshot"]] and steps[2] in parts
                and all(step not in ("", ".", "..") for step in steps[3:])):
            raise ValueError(f"files entry {index} ({repr(rel)[:80]}) is not {prefix}/{entry['snapshot']}/"
                             f"<{'|'.join(parts)}>/<path>")


def active_id(pointer: dict[str, Any] | None, kind: str) -> str | None:
    """The pointer's active snapshot id (``kind`` SNAPSHOTS) or models id (MODELS); None when it has none."""
    entry = (pointer or {}).get(MODELS) if kind == MODELS else pointer
    return entry["snapshot"] if entry else None


def next_history(previous: dict[str, Any] | None, kind: str, current: str, keep: int) -> list[str]:
    """The ids of ``kind`` committed last, newest first, at most ``keep``: ``current`` and those before it (of a
    pointer written before the history: its active one)."""
    before = (previous or {}).get("history", {}).get(kind, []) if "history" in (previous or {}) else [
        i for i in [active_id(previous, kind)] if i]
    return list(dict.fromkeys([current, *before]))[:keep]


def onto_loaded(state_uri: str, pointer: dict[str, Any] | None, period: str, loaded: dict[str, str],
                run_id: str = "") -> bool:
    """True when ``pointer`` still names the ids this run loaded (``loaded``, per kind; ``""`` is not checked): the
    commit goes ahead. False when it names this step's own commit (from ``period``, made onto the loaded ids, and,
    where both are known, by this KFP run ``run_id``: an attempt that died after its pointer write, retried by KFP):
    nothing to commit again. Else StateConflictError (another run committed since this run loaded, raised again on
    every retry; session 55 audit: a second run on the same period and loaded ids took the first run's commit as
    its own and published lists of its uncommitted models)."""
    now = {kind: active_id(pointer, kind) for kind in loaded}
    if all(now[kind] == want for kind, want in loaded.items() if want):
        return True
    made_onto = [(now[kind], *(pointer or {}).get("history", {}).get(kind, [])[1:2]) for kind in loaded]
    committer = (pointer or {}).get("committed_by", "")
    ours = not (run_id and committer) or committer == run_id  # a pointer or caller without a run id: not compared
    if ours and (pointer or {}).get("period") == period and all(
            want in ids for want, ids in zip(loaded.values(), made_onto, strict=True) if want):
        log.warning("state %s: models %s, committed from this data onto the loaded state, are this step's earlier "
                    "attempt's: not committed again", state_uri, now[MODELS])
        return False
    raise StateConflictError(
        f"the state changed since this run loaded it (snapshot {loaded[SNAPSHOTS] or '-'}, models "
        f"{loaded[MODELS] or '-'}): {POINTER} now names snapshot {now[SNAPSHOTS]}, models {now[MODELS]}, another "
        "run's commit; this run's update (made from what it loaded) is not committed", source=state_uri,
        fix="re-run the recurring pipeline (it loads the new state), and let one run write the state at a time "
            "(coea schedule sets max_concurrency=1; no coea_training run while a recurring one is under way)")


SEEN_PERIOD = "seen_period.json"  # {"period": sha256 of the committed period whose export wrote the seen file}


def check_exported(state: LocalState | GcsState, state_uri: str, pointer: dict[str, Any], seen: str) -> None:
    """Refuse a new period while the last committed one was never exported (its users' categories would be missing
    from the ``seen`` file for good: session 55 audit); the export writes :data:`SEEN_PERIOD` after that file. A
    state without a marker (older ones) is not checked."""
    raw = state.read_bytes(SEEN_PERIOD)
    if raw is None or not pointer.get("period"):
        return
    with contextlib.suppress(UnicodeDecodeError, ValueError, AttributeError):
        raw = json.loads(raw.decode("utf-8")).get("period")
    if raw != pointer["period"]:
        raise CoeaInputError(
            f"the state at {state_uri}: its last committed period (models {pointer['models']['snapshot']}, committed "
            f"{pointer.get('committed_at')}) was never exported, so {seen} lacks what its users had then",
            fix="retry that run first (the Kubeflow UI's Retry re-runs its failed recommend and export steps; its "
                "save step does not commit twice), then run this period")


def period_as_of(data_dir: Path) -> str | None:
    """The as-of time a prepared period was read up to (its ``data_config.json``; a partitioned log's), or None."""
    from coea.data.prepared import DATA_CONFIG  # the prepared dir's reader (pandas): only when a period is read

    try:
        return json.loads((Path(data_dir) / DATA_CONFIG).read_text(encoding="utf-8"))["data"].get("as_of")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check_later(state_uri: str, pointer: dict[str, Any], as_of: str | None) -> None:
    """Refuse a period read up to an as-of time no later than the last commit's (session 55 audit: a re-run of a
    week after one late event, or an older week after a newer one, has another data hash and was accepted, so the
    models were updated twice on one period, or on older data). Periods without an as-of time are not compared."""
    committed = pointer.get("as_of")
    if committed and as_of and parse_as_of(as_of) <= parse_as_of(committed):
        raise CoeaInputError(
            f"the state at {state_uri} holds the update from the period as of {committed} (models "
            f"{pointer['models']['snapshot']}); this run's period, as of {as_of}, is not later: a second update from "
            "it would train the models again on events they have learned from, or on older ones",
            fix="run the next period (a later scheduled time); to rebuild from an earlier period, seed the state "
                "again with the coea_training pipeline")
