"""Pipeline state under ``state_uri``: a local directory (e.g. on the cache PVC) or ``gs://bucket/prefix``.

The training pipeline writes the state, the recurring pipeline reads it (drift reference, current groups,
the two LLMs), replaces the snapshot when it regroups and the models after every PCO update. Layout under
``state_uri``::

    current.json                   THE pointer: the active snapshot and models with their file lists; the period
                                   (``period``: sha256 of its interactions.parquet; ``as_of``), time and KFP run
                                   (``committed_by``) of the commit; ``history``: the ids committed last, per kind
    snapshots/<id>/data/...        the reference window: a prepared log; the groups were fitted on its split histories
    snapshots/<id>/dsie/...        the DSIE dir fitted on them (the drift check reads the same histories)
    models/<id>/novelty/...        the Novelty LLM (a ``save_bundle`` dir: weights, tokenizer, config)
    models/<id>/relevance/...      the Relevance LLM
    kv/recs.sqlite                 the served key-value store (its versions inside, see coea.store.kv)
    seen.parquet                   every user's categories over all periods so far (user_id, category): what a
                                   ``+x`` list excludes; replaced by each export (``run_export(seen=...)``)
    seen_period.json               the committed period that export was of: a next period waits for it

A version's files are written first and the pointer LAST, in one write (a rename locally, one object upload on
GCS), so a reader that follows ``current.json`` sees either the previous complete state or the new one. The pointer
is written with a generation precondition (GCS: ``if_generation_match``, the generation this run read, 0 when there
was none; locally its content's, under a lock): a second writer that committed in between is never overwritten
silently, the write fails with :class:`StateConflictError` and the other run's state stays active. A recurring
run commits only onto the ids it loaded (``expected_*``) and once per period, and publishes only while its commit
is active: see :func:`coea.state_backends.onto_loaded`, :func:`run_load_models` and :func:`check_models_active`. The
groups and the models trained on them switch TOGETHER: when drift regroups, ``save_state`` runs after the PCO
update with the new data + DSIE snapshot and the new models, and one pointer write makes both active (a run that
dies in between leaves the old groups with the old models, never new groups with models tuned on the old ones).
Without regrouping, ``save_models`` writes a pointer with the same snapshot and the new models. Afterwards the
versions neither in the pointer's history nor newer than the active one (another writer's upload) are deleted,
so a killed save's partial version never takes a committed one's place among the ``keep``. On a local state the
store is published in place (``coea.store.kv``); on ``gs://`` it is downloaded, published and uploaded again, so
one writer at a time (``max_concurrency=1``). The two backends (a local directory, GCS) are :mod:`coea.state_backends`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coea.config import SplitConfig
from coea.errors import CoeaInputError, reading
from coea.lineage import histories
from coea.state_backends import (
    MODEL_PARTS,
    MODELS,
    PARTS,
    POINTER,
    SEEN_PERIOD,
    SNAPSHOTS,
    GcsState,
    LocalState,
    StateConflictError,
    active_id,
    check_exported,
    check_later,
    next_history,
    onto_loaded,
    open_state,
    parse_pointer,
    period_as_of,
)
from coea.store.gcs import GcsExportConfig, GcsExportResult, export_to_gcs, parse_gcs_uri
from coea.store.kv import KVStore
from coea.store.publish import (
    PublishConfig,
    PublishResult,
    copy_store,
    find_published,
    read_recs_file,
    run_publish,
    single_file,
)
from coea.store.records import new_version_id, utc_now_iso
from coea.utils import atomic_path

log = logging.getLogger(__name__)
__all__ = ["KV_STORE", "POINTER", "SEEN", "GcsState", "LocalState", "StateConflictError", "StateSnapshot",
           "check_models_active", "open_state", "read_pointer", "run_export", "run_load_models", "run_load_seen",
           "run_load_served", "run_load_state", "run_save_models", "run_save_state"]

KV_STORE = "kv/recs.sqlite"
SEEN = "seen.parquet"


@dataclass(frozen=True)
class StateSnapshot:
    """One version of a state part (the data + DSIE snapshot, or the models): where, which, how many files, when."""

    state_uri: str
    snapshot: str
    n_files: int
    created_at: str
    models: str | None = None  # run_save_state: the models version that became active with the snapshot


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


def _commit(state: LocalState | GcsState, state_uri: str, previous: dict[str, Any] | None, snapshot: dict[str, Any],
            models: dict[str, Any] | None, *, period: tuple[str, str | None], keep: int, generation: int | None,
            run_id: str = "") -> None:
    """Write THE pointer (one write switches snapshot and models together; with the ``period`` it was made from,
    the time and the ids committed last) if it is still at ``generation`` (the one read before the versions were
    uploaded), then drop the versions no longer needed."""
    entries = {SNAPSHOTS: snapshot, MODELS: models}
    history = {kind: next_history(previous, kind, entry["snapshot"], keep) for kind, entry in entries.items() if entry}
    optional = {"models": models, "as_of": period[1], "committed_by": run_id}
    pointer = {**{k: snapshot[k] for k in ("snapshot", "created_at", "files")}, "period": period[0],
               "committed_at": utc_now_iso(), "history": history, **{k: v for k, v in optional.items() if v}}
    state.write_if_generation(POINTER, (json.dumps(pointer, indent=2) + "\n").encode("utf-8"), generation)
    legacy = previous is not None and "history" not in previous  # a pointer written before the history
    for kind, ids in history.items():
        _collect_garbage(state, kind, ids[0], keep, None if legacy else ids)
    log.info("state %s: snapshot %s, models %s", state_uri, snapshot["snapshot"], active_id(pointer, MODELS))


def _version(state_uri: str, entry: dict[str, Any], models: str | None = None) -> StateSnapshot:
    return StateSnapshot(state_uri, entry["snapshot"], len(entry["files"]), entry["created_at"], models)


def _collect_garbage(state: LocalState | GcsState, prefix: str, current: str, keep: int,
                     history: list[str] | None) -> None:
    """Delete the versions under ``prefix`` that are neither in ``history`` (the committed ids the pointer keeps)
    nor newer than ``current`` (ids sort by time: another writer's upload under way), so a killed save's partial
    version never costs a committed one its place; without a history (the previous pointer had none) all but the
    newest ``keep``."""
    names = state.list(f"{prefix}/")
    ids = sorted({n.split("/")[1] for n in names}, reverse=True)
    doomed = set(ids[keep:]) - {current} if history is None else {i for i in ids if i not in history and i < current}
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
                   relevance_dir: Path | None = None, *, keep: int = 3, expected_snapshot: str = "",
                   expected_models: str = "", run_id: str = "", client: Any = None) -> StateSnapshot:
    """Write ``data_dir`` + ``dsie_dir`` as a new snapshot and, when given, ``novelty_dir/novelty/`` +
    ``relevance_dir/relevance/`` (the ``sft_*`` layout; both may be one dir) as a new models version, then make
    both active with ONE pointer write (without models, the active models stay), recording ``data_dir`` as the
    period. ``expected_snapshot``/``expected_models``: the ids the run loaded (``""``: not checked, the training
    pipeline re-seeds the state; :func:`coea.state_backends.onto_loaded`); ``run_id``: the KFP run committing (its
    retried step recognises its own commit by it). Returns the snapshot (``models``: the models id)."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if (novelty_dir is None) != (relevance_dir is None):
        raise ValueError("pass both novelty_dir and relevance_dir, or neither")
    model_parts = None if novelty_dir is None else _model_parts(novelty_dir, relevance_dir)  # checked up front
    period = _period(data_dir)
    state = open_state(state_uri, client)
    previous, generation = _pointer_and_generation(state)
    if not onto_loaded(state_uri, previous, period, {SNAPSHOTS: expected_snapshot, MODELS: expected_models}, run_id):
        return _version(state_uri, previous, active_id(previous, MODELS))
    snapshot = _upload_version(state, SNAPSHOTS, dict(zip(PARTS, (Path(data_dir), Path(dsie_dir)), strict=True)))
    models = (previous or {}).get("models") if model_parts is None else _upload_version(state, MODELS, model_parts)
    _commit(state, state_uri, previous, snapshot, models, period=(period, period_as_of(data_dir)), keep=keep,
            generation=generation, run_id=run_id)
    return _version(state_uri, snapshot, active_id({"models": models}, MODELS))


def _period(data_dir: Path) -> str:
    """What a commit is made from: the SHA-256 of ``data_dir``'s interactions.parquet (the lineage records' key)."""
    return histories(Path(data_dir), SplitConfig())["data"]


def read_pointer(state_uri: str, client: Any = None) -> dict[str, Any] | None:
    """The content of ``current.json`` (the snapshot's ``snapshot``/``created_at``/``files``, and ``models`` with
    the same keys once models were saved), or None when there is no state yet."""
    return _pointer(open_state(state_uri, client))


def _pointer(state: LocalState | GcsState) -> dict[str, Any] | None:
    return _pointer_and_generation(state)[0]


def _pointer_and_generation(state: LocalState | GcsState) -> tuple[dict[str, Any] | None, int | None]:
    data, generation = state.read_generation(POINTER)
    where = state.uri if isinstance(state, GcsState) else str(state.root)
    return (None if data is None else parse_pointer(data, where)), generation


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


def run_save_models(state_uri: str, novelty_dir: Path, relevance_dir: Path, *, data_dir: Path, keep: int = 3,
                    expected_snapshot: str = "", expected_models: str = "", run_id: str = "",
                    client: Any = None) -> StateSnapshot:
    """Write ``novelty_dir/novelty/`` and ``relevance_dir/relevance/`` (the layout of the ``sft_*`` steps'
    outputs; both may be one dir) as a new models version and make it active beside the active snapshot (the
    groups are kept: the no-drift branch), recording ``data_dir`` (the period the update came from) as the period.
    ``expected_*``, ``run_id``: as in :func:`run_save_state`. Returns the models version."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    parts = _model_parts(novelty_dir, relevance_dir)
    period = _period(data_dir)
    state = open_state(state_uri, client)
    pointer, generation = _pointer_and_generation(state)
    if pointer is None:
        raise CoeaInputError(f"no pipeline state at {state_uri} ({POINTER} missing): models belong to groups",
                             option="state_uri", fix="save the snapshot with its models first (run_save_state, "
                                                     "the coea_training pipeline)")
    if not onto_loaded(state_uri, pointer, period, {SNAPSHOTS: expected_snapshot, MODELS: expected_models}, run_id):
        return _version(state_uri, pointer["models"])
    models = _upload_version(state, MODELS, parts)
    _commit(state, state_uri, pointer, pointer, models, period=(period, period_as_of(data_dir)), keep=keep,
            generation=generation, run_id=run_id)
    return _version(state_uri, models)


def run_load_models(state_uri: str, novelty_out: Path, relevance_out: Path, *, data_dir: Path | None = None,
                    client: Any = None) -> StateSnapshot:
    """Download the active models: the N-LLM to ``novelty_out/novelty/``, the R-LLM to
    ``relevance_out/relevance/`` (what :func:`coea.llm.artifact.load_llms` reads). ``data_dir``: the period the
    run will update them on; refused when the state already holds the update from it (PCO would run twice on it)."""
    state = open_state(state_uri, client)
    pointer = _pointer(state) or {}
    models = pointer.get("models")
    if models is None:
        raise CoeaInputError(f"no models in the pipeline state at {state_uri}", option="state_uri",
                             fix="run the coea_training pipeline (it saves the models after PCO) with this "
                                 "state_uri first")
    if data_dir is not None and pointer.get("period") == _period(data_dir):
        raise CoeaInputError(
            f"the state at {state_uri} already holds the update from this data (models {models['snapshot']}, "
            f"committed {pointer.get('committed_at')}); a run on it committed before: a second PCO update on the "
            "same period would apply it twice",
            fix="to publish this period's lists, retry that failed run instead (the Kubeflow UI's Retry re-runs "
                "only its failed steps, and its save step does not commit twice); otherwise the next period's run "
                "serves new lists")
    check_exported(state, state_uri, pointer, SEEN)
    check_later(state_uri, pointer, None if data_dir is None else period_as_of(data_dir))
    outs = {name: Path(d) / name for name, d in zip(MODEL_PARTS, (novelty_out, relevance_out), strict=True)}
    _download(state, state_uri, models, outs)
    log.info("state %s: models %s loaded", state_uri, models["snapshot"])
    return _version(state_uri, models)


def check_models_active(state_uri: str, models: str, *, client: Any = None) -> None:
    """Refuse (StateConflictError) when the state's pointer no longer names ``models``, the version this run's save
    step committed: another run committed after it, and this run's lists must not replace that run's (the export
    step calls it before :func:`run_export`)."""
    active = active_id(_pointer(open_state(state_uri, client)), MODELS)
    if active != models:
        raise StateConflictError(
            f"{POINTER} names models {active}, not models {models} that this run committed: another run committed "
            "after it; this run publishes nothing, the other run's lists stay served", source=state_uri,
            fix="nothing to do when the other run's period is the newer one; let one run write the state at a time "
                "(coea schedule sets max_concurrency=1)")


# -- serving -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportResult:
    """What ``run_export`` did: the published store version, its copy, and the GCS export if any."""

    publish: PublishResult
    store_copy: Path
    gcs: GcsExportResult | None = None


def run_export(cfg: PublishConfig, recs_path: Path, state_uri: str, store_out: Path, *,
               gcs_uri: str | None = None, seen: Path | None = None, client: Any = None) -> ExportResult:
    """Publish a recommendations parquet as the new version of the state's KV store; copy the store to
    ``store_out`` (one file in journal mode DELETE, ``coea.store.publish.copy_store``: no -wal/-shm beside it); with
    ``gcs_uri``, also export the recommendations there as shards (``export_to_gcs``). ``seen`` (the recommend
    step's seen pairs) becomes the state's ``seen.parquet`` first: the period's events happened whether or not the
    publish goes through. A malformed ``gcs_uri`` fails first, before anything is written (a
    retried step would otherwise publish a new version on each try).

    Idempotent under a retry: when the store's active version already came from these recommendations
    (``coea.store.publish.find_published``: the same file path and sha256, and every item of ``cfg.metadata``, e.g.
    the pipelines' ``recommendations`` URI), nothing is published; the GCS export is done for THAT version, so a
    retry after an attempt killed between the publish and the GCS manifest ends with the version id the killed
    attempt published (and its shard names, which it rewrites), not with a duplicate store version. The GCS export
    keeps ``cfg.keep_versions`` versions, as the store does (``coea.store.gcs``)."""
    if gcs_uri:
        parse_gcs_uri(gcs_uri)
    state = open_state(state_uri, client)
    if seen is not None:
        state.upload_file(SEEN, Path(seen))
        period = (_pointer(state) or {}).get("period")
        if period:
            state.write_bytes(SEEN_PERIOD, json.dumps({"period": period}).encode("utf-8"))
    store_out = Path(store_out)
    store_out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(state, LocalState):
        live = state.root / KV_STORE
        published = find_published(cfg, Path(recs_path), live) or run_publish(cfg, Path(recs_path), live)
        copy_store(live, store_out)  # one file: a reader on a read-only volume needs no -wal/-shm beside it
    else:
        if store_out.exists():
            os.remove(store_out)
        state.download_file(KV_STORE, store_out)
        published = find_published(cfg, Path(recs_path), store_out)
        fresh = published is None  # else the state's store already holds it: nothing to upload
        published = published or run_publish(cfg, Path(recs_path), store_out)
        single_file(store_out)  # the WAL folded in: the uploaded and the shipped file are complete alone
        if fresh:
            state.upload_file(KV_STORE, store_out)
    gcs = None
    if gcs_uri:
        gcs = export_to_gcs(GcsExportConfig(version=published.version, keep_versions=cfg.keep_versions),
                            read_recs_file(Path(recs_path)), gcs_uri, client)
    log.info("export: version %s (%d users) -> %s%s", published.version, published.n_users, state_uri,
             f" and {gcs.manifest_uri}" if gcs else "")
    return ExportResult(published, store_out, gcs)
