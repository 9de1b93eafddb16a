"""Pipeline state under ``state_uri``: a local directory (e.g. on the cache PVC) or ``gs://bucket/prefix``.

The training pipeline writes the state, the recurring pipeline reads it (drift reference, current groups,
the two LLMs), replaces the snapshot when it regroups and the models after every PCO update. Layout under
``state_uri``::

    current.json                   THE pointer: the active snapshot and the active models, with their file lists
    snapshots/<id>/data/...        the reference window: the prepared log the groups were fitted on
    snapshots/<id>/dsie/...        the DSIE dir fitted on it
    models/<id>/novelty/...        the Novelty LLM (a ``save_bundle`` dir: weights, tokenizer, config)
    models/<id>/relevance/...      the Relevance LLM
    kv/recs.sqlite                 the served key-value store (its versions inside, see coea.store.kv)
    seen.parquet                   every user's categories over all periods so far (user_id, category): what a
                                   ``+x`` list excludes; replaced by each export (``run_export(seen=...)``)

A version's files are written first and the pointer LAST, in one write (a rename locally, one object upload on
GCS), so a reader that follows ``current.json`` sees either the previous complete state or the new one. On GCS the
pointer is written with a generation precondition (``if_generation_match``: the generation this run read, 0 when
there was none), so a second writer that committed in between is never overwritten silently: the write fails with
:class:`StateConflictError` and the other run's state stays active. The
groups and the models trained on them switch TOGETHER: when drift regroups, ``save_state`` runs after the PCO
update with the new data + DSIE snapshot and the new models, and one pointer write makes both active (a run that
dies in between leaves the old groups with the old models, never new groups with models tuned on the old ones).
Without regrouping, ``save_models`` writes a pointer with the same snapshot and the new models. Versions beyond
the newest ``keep`` of each kind are deleted afterwards. On a
local state the store is published in place (readers see the switch atomically, see ``coea.store.kv``); on
``gs://`` it is downloaded, published and uploaded again, so one writer at a time (the recurring run's
``max_concurrency=1``). The two backends (a local directory, GCS) are :mod:`coea.state_backends`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from contextlib import closing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coea.errors import CoeaInputError, reading
from coea.state_backends import GcsState, LocalState, StateConflictError, open_state
from coea.store.gcs import GcsExportConfig, GcsExportResult, export_to_gcs, parse_gcs_uri
from coea.store.kv import KVStore
from coea.store.publish import PublishConfig, PublishResult, read_recs_file, run_publish
from coea.store.records import new_version_id, utc_now_iso
from coea.utils import atomic_path

log = logging.getLogger(__name__)
__all__ = ["KV_STORE", "POINTER", "SEEN", "GcsState", "LocalState", "StateConflictError", "StateSnapshot",
           "open_state", "read_pointer", "run_export", "run_load_models", "run_load_seen", "run_load_served",
           "run_load_state", "run_save_models", "run_save_state"]

POINTER = "current.json"
SNAPSHOTS = "snapshots"
KV_STORE = "kv/recs.sqlite"
SEEN = "seen.parquet"
PARTS = ("data", "dsie")
MODELS = "models"
MODEL_PARTS = ("novelty", "relevance")  # each stored from (loaded into) ``<dir>/<part>/``, the sft_* layout


@dataclass(frozen=True)
class StateSnapshot:
    """One version of a state part (the data + DSIE snapshot, or the models): where, which, how many files, when."""

    state_uri: str
    snapshot: str
    n_files: int
    created_at: str


def _upload_version(state: LocalState | GcsState, prefix: str, parts: dict[str, Path]) -> dict[str, Any]:
    """Upload ``parts`` (name -> dir) as ``<prefix>/<new id>/<name>/...``; returns the version's pointer entry."""
    vid = new_version_id()
    files = []
    for part, src in parts.items():
        for path in sorted(p for p in Path(src).rglob("*") if p.is_file()):
            rel = f"{prefix}/{vid}/{part}/{path.relative_to(src).as_posix()}"
            state.upload_file(rel, path)
            files.append(rel)
    return {"snapshot": vid, "created_at": utc_now_iso(), "files": files}


def _commit(state: LocalState | GcsState, state_uri: str, snapshot: dict[str, Any], models: dict[str, Any] | None,
            keep: int, generation: int | None) -> None:
    """Write THE pointer (one write switches snapshot and models together) if it is still at ``generation`` (the
    one read before the versions were uploaded), then drop old versions."""
    pointer = {**snapshot, **({"models": models} if models is not None else {})}
    state.write_if_generation(POINTER, (json.dumps(pointer, indent=2) + "\n").encode("utf-8"), generation)
    _collect_garbage(state, SNAPSHOTS, snapshot["snapshot"], keep)
    if models is not None:
        _collect_garbage(state, MODELS, models["snapshot"], keep)
    log.info("state %s: snapshot %s, models %s", state_uri, snapshot["snapshot"],
             None if models is None else models["snapshot"])


def _version(state_uri: str, entry: dict[str, Any]) -> StateSnapshot:
    return StateSnapshot(state_uri, entry["snapshot"], len(entry["files"]), entry["created_at"])


def _collect_garbage(state: LocalState | GcsState, prefix: str, current: str, keep: int) -> None:
    names = state.list(f"{prefix}/")
    ids = sorted({n.split("/")[1] for n in names}, reverse=True)
    doomed = set(ids[keep:]) - {current}
    if doomed:
        state.delete([n for n in names if n.split("/")[1] in doomed])


def _download(state: LocalState | GcsState, state_uri: str, entry: dict[str, Any], outs: dict[str, Path]) -> None:
    """Download every file the pointer entry lists, part ``<name>`` under ``outs[name]``."""
    for rel in entry["files"]:
        _, _, part, rest = rel.split("/", 3)
        if not state.download_file(rel, outs[part] / rest):
            raise CoeaInputError(f"state file {rel} listed in {POINTER} is missing", source=state_uri,
                                 fix="re-run coea_training to write a complete state")


def _model_parts(novelty_dir: Path, relevance_dir: Path) -> dict[str, Path]:
    parts = {name: Path(d) / name for name, d in zip(MODEL_PARTS, (novelty_dir, relevance_dir), strict=True)}
    for name, src in parts.items():
        if not src.is_dir():
            raise CoeaInputError(f"no {name}/ model dir", source=src.parent,
                                 fix="pass the dir(s) written by run_sft_stage or export_round_models")
    return parts


def run_save_state(state_uri: str, data_dir: Path, dsie_dir: Path, novelty_dir: Path | None = None,
                   relevance_dir: Path | None = None, *, keep: int = 3, client: Any = None) -> StateSnapshot:
    """Write ``data_dir`` + ``dsie_dir`` as a new snapshot and, when given, ``novelty_dir/novelty/`` +
    ``relevance_dir/relevance/`` (the ``sft_*`` layout; both may be one dir) as a new models version, then make
    both active with ONE pointer write (without models, the active models stay). Returns the snapshot."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if (novelty_dir is None) != (relevance_dir is None):
        raise ValueError("pass both novelty_dir and relevance_dir, or neither")
    model_parts = None if novelty_dir is None else _model_parts(novelty_dir, relevance_dir)  # checked up front
    state = open_state(state_uri, client)
    previous, generation = _pointer_and_generation(state)
    snapshot = _upload_version(state, SNAPSHOTS, dict(zip(PARTS, (Path(data_dir), Path(dsie_dir)), strict=True)))
    models = (previous or {}).get("models") if model_parts is None else _upload_version(state, MODELS, model_parts)
    _commit(state, state_uri, snapshot, models, keep, generation)
    return _version(state_uri, snapshot)


def read_pointer(state_uri: str, client: Any = None) -> dict[str, Any] | None:
    """The content of ``current.json`` (the snapshot's ``snapshot``/``created_at``/``files``, and ``models`` with
    the same keys once models were saved), or None when there is no state yet."""
    return _pointer(open_state(state_uri, client))


def _pointer(state: LocalState | GcsState) -> dict[str, Any] | None:
    return _pointer_and_generation(state)[0]


def _pointer_and_generation(state: LocalState | GcsState) -> tuple[dict[str, Any] | None, int | None]:
    data, generation = state.read_generation(POINTER)
    return (None if data is None else _parse_pointer(data, state)), generation


def _parse_pointer(data: bytes, state: LocalState | GcsState) -> dict[str, Any]:
    """``current.json``'s content, checked: an object with a ``snapshot`` id, its ``created_at`` and a list of
    ``files`` (the same keys under ``models`` when present)."""
    try:
        pointer = json.loads(data)
        for entry in (pointer, *([pointer["models"]] if "models" in pointer else [])):
            if not (isinstance(entry["snapshot"], str) and isinstance(entry["created_at"], str)
                    and isinstance(entry["files"], list)):
                raise TypeError("snapshot, created_at and files have the wrong types")
            _check_files(entry, *((MODELS, MODEL_PARTS) if entry is not pointer else (SNAPSHOTS, PARTS)))
    except (ValueError, TypeError, KeyError) as err:
        where = state.uri if isinstance(state, GcsState) else str(state.root)
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


def run_load_state(state_uri: str, data_out: Path, dsie_out: Path, *, client: Any = None) -> StateSnapshot:
    """Download the active snapshot: the reference data dir to ``data_out``, the DSIE dir to ``dsie_out``."""
    state = open_state(state_uri, client)
    pointer = _pointer(state)
    if pointer is None:
        raise CoeaInputError(f"no pipeline state at {state_uri} ({POINTER} missing)", option="state_uri",
                             fix="run the coea_training pipeline with this state_uri first")
    _download(state, state_uri, pointer,
              dict(zip(PARTS, (Path(data_out), Path(dsie_out)), strict=True)))
    log.info("state %s: snapshot %s loaded", state_uri, pointer["snapshot"])
    return _version(state_uri, pointer)


def run_load_served(state_uri: str, out: Path, *, client: Any = None) -> int:
    """What the serving store shows now (the active version of ``kv/recs.sqlite``: every user's top-K) as a
    recommendations parquet at ``out`` (the publish format), written atomically; empty, with those columns, before
    the first publish. Returns the number of users. PCO reads it as the users' exposure (``pco.exposure_inject``)."""
    state = open_state(state_uri, client)
    with tempfile.TemporaryDirectory() as scratch:  # a GCS state's store is read from a downloaded copy
        local = state.root / KV_STORE if isinstance(state, LocalState) else Path(scratch) / "recs.sqlite"
        if isinstance(state, GcsState):
            state.download_file(KV_STORE, local)
        try:
            with KVStore(local, create=False) if local.is_file() else nullcontext() as store:
                recs = store.active_user_recs() if store is not None else KVStore.user_recs_frame()
        except CoeaInputError as err:  # a damaged store: named as the state's, not the scratch copy's
            raise err.replace(source=f"{state_uri.rstrip('/')}/{KV_STORE}") from err
    with atomic_path(Path(out)) as tmp:
        recs.to_parquet(tmp, index=False)
    log.info("served lists of %d users read from %s", recs["user_id"].nunique(), state_uri)
    return int(recs["user_id"].nunique())


def run_load_seen(state_uri: str, out: Path, reference_dir: Path, *, client: Any = None) -> int:
    """The categories each user has had in the periods so far (the state's ``seen.parquet``) at ``out``; a state
    written before the file existed gives the reference window's pairs (``reference_dir``, the loaded snapshot's
    data); a damaged one (not a parquet of user_id, category) is one error naming it. Returns the number of pairs."""
    import pandas as pd
    import pyarrow.parquet as pq

    from coea.data.prepared import INTERACTIONS
    from coea.data.schema import CATEGORY, USER
    from coea.stages.recommend import seen_pairs

    state = open_state(state_uri, client)
    with atomic_path(Path(out)) as tmp:  # a damaged seen.parquet is refused and leaves nothing at ``out``
        if state.download_file(SEEN, tmp):
            with reading(f"{state_uri.rstrip('/')}/{SEEN}", fix="delete it (the reference window's categories then "
                                                                "stand in for what users have seen; the next export "
                                                                "writes it again) or restore the previous copy"):
                names = pq.read_schema(tmp).names
                if not {USER, CATEGORY} <= set(names):
                    raise ValueError(f"columns {names}, expected {USER}, {CATEGORY}")
        else:
            log.warning("state %s has no %s yet: the reference window's categories stand for what users have seen",
                        state_uri, SEEN)
            events = pd.read_parquet(Path(reference_dir) / INTERACTIONS, columns=[USER, CATEGORY])  # two columns
            seen_pairs(events).to_parquet(tmp, index=False)
    return pq.read_metadata(out).num_rows  # a light step: the pairs are counted, not loaded


def run_save_models(state_uri: str, novelty_dir: Path, relevance_dir: Path, *, keep: int = 3,
                    client: Any = None) -> StateSnapshot:
    """Write ``novelty_dir/novelty/`` and ``relevance_dir/relevance/`` (the layout of the ``sft_*`` steps'
    outputs; both may be one dir) as a new models version and make it active beside the active snapshot (the
    groups are kept: the no-drift branch). Returns the models version."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    parts = _model_parts(novelty_dir, relevance_dir)
    state = open_state(state_uri, client)
    pointer, generation = _pointer_and_generation(state)
    if pointer is None:
        raise CoeaInputError(f"no pipeline state at {state_uri} ({POINTER} missing): models belong to groups",
                             option="state_uri", fix="save the snapshot with its models first (run_save_state, "
                                                     "the coea_training pipeline)")
    models = _upload_version(state, MODELS, parts)
    _commit(state, state_uri, {k: v for k, v in pointer.items() if k != "models"}, models, keep, generation)
    return _version(state_uri, models)


def run_load_models(state_uri: str, novelty_out: Path, relevance_out: Path, *, client: Any = None) -> StateSnapshot:
    """Download the active models: the N-LLM to ``novelty_out/novelty/``, the R-LLM to
    ``relevance_out/relevance/`` (what :func:`coea.llm.artifact.load_llms` reads)."""
    state = open_state(state_uri, client)
    models = (_pointer(state) or {}).get("models")
    if models is None:
        raise CoeaInputError(f"no models in the pipeline state at {state_uri}", option="state_uri",
                             fix="run the coea_training pipeline (it saves the models after PCO) with this "
                                 "state_uri first")
    outs = {name: Path(d) / name for name, d in zip(MODEL_PARTS, (novelty_out, relevance_out), strict=True)}
    _download(state, state_uri, models, outs)
    log.info("state %s: models %s loaded", state_uri, models["snapshot"])
    return _version(state_uri, models)


# -- serving -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportResult:
    """What ``run_export`` did: the published store version, its copy, and the GCS export if any."""

    publish: PublishResult
    store_copy: Path
    gcs: GcsExportResult | None = None


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (the backup API), written atomically."""
    with atomic_path(dst) as tmp, closing(sqlite3.connect(src)) as s, closing(sqlite3.connect(tmp)) as d:
        s.backup(d)


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the database file so the single file is complete."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def run_export(cfg: PublishConfig, recs_path: Path, state_uri: str, store_out: Path, *,
               gcs_uri: str | None = None, seen: Path | None = None, client: Any = None) -> ExportResult:
    """Publish a recommendations parquet as the new version of the state's KV store; copy the store to
    ``store_out``; with ``gcs_uri``, also export the recommendations there as shards (``export_to_gcs``). ``seen``
    (the recommend step's seen pairs) becomes the state's ``seen.parquet`` first: the period's events happened
    whether or not the publish goes through. A malformed ``gcs_uri`` fails first, before anything is written (a
    retried step would otherwise publish a new version on each try)."""
    if gcs_uri:
        parse_gcs_uri(gcs_uri)
    state = open_state(state_uri, client)
    if seen is not None:
        state.upload_file(SEEN, Path(seen))
    store_out = Path(store_out)
    store_out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(state, LocalState):
        live = state.root / KV_STORE
        published = run_publish(cfg, Path(recs_path), live)
        _sqlite_copy(live, store_out)
    else:
        if store_out.exists():
            os.remove(store_out)
        state.download_file(KV_STORE, store_out)
        published = run_publish(cfg, Path(recs_path), store_out)
        _checkpoint(store_out)
        state.upload_file(KV_STORE, store_out)
    gcs = None
    if gcs_uri:
        gcs = export_to_gcs(GcsExportConfig(version=published.version), read_recs_file(Path(recs_path)), gcs_uri,
                            client)
    log.info("export: version %s (%d users) -> %s%s", published.version, published.n_users, state_uri,
             f" and {gcs.manifest_uri}" if gcs else "")
    return ExportResult(published, store_out, gcs)
