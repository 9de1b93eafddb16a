"""Pipeline state under state_uri (coea.state): snapshots, models, pointers, garbage collection, the served store;
local directories and gs:// (an in-process GCS emulator)."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from coea.errors import CoeaInputError
from coea.state import (
    KV_STORE,
    POINTER,
    SEEN,
    StateConflictError,
    open_state,
    read_pointer,
    run_export,
    run_load_models,
    run_load_seen,
    run_load_served,
    run_load_state,
    run_save_models,
    run_save_state,
)
from coea.store import KVStore, PublishConfig, StoreError, read_export
from tests.gcs_helpers import faulty_gcs


def _recs(path: Path, shift: int = 0) -> Path:
    rows = [(f"u{u}", r, f"cat{(u + r + shift) % 9}", 1.0 / r) for u in range(4) for r in (1, 2, 3)]
    pd.DataFrame(rows, columns=["user_id", "rank", "category", "score"]).to_parquet(path, index=False)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_save_load_round_trip_and_garbage_collection(tmp_path: Path, fitted) -> None:
    state = str(tmp_path / "state")
    snaps = [run_save_state(state, fitted.data, fitted.dsie, keep=2) for _ in range(3)]
    pointer = read_pointer(state)
    assert pointer is not None and pointer["snapshot"] == snaps[-1].snapshot
    assert sorted(p.name for p in (tmp_path / "state" / "snapshots").iterdir()) == [s.snapshot for s in snaps[1:]]
    loaded = run_load_state(state, tmp_path / "ref", tmp_path / "dsie")
    assert loaded.snapshot == snaps[-1].snapshot and loaded.n_files == snaps[-1].n_files
    assert _tree(tmp_path / "ref") == _tree(fitted.data)
    assert _tree(tmp_path / "dsie") == _tree(fitted.dsie)


def test_load_state_reads_the_snapshot_the_pointer_names(tmp_path: Path, fitted) -> None:
    """A regroup commits a new period onto the loaded snapshot; the next load_state hands the drift step that
    period as its reference (and its groups), not an older snapshot the state still keeps. Audit (session 56): every
    state test saved the same data each time, so a load_state that read the oldest snapshot passed them all."""
    from coea.data.loaders import LoadedData
    from coea.data.prepared import read_prepared, write_prepared

    later = read_prepared(fitted.data).interactions
    write_prepared(LoadedData(later.assign(timestamp=later["timestamp"] + 7 * 86_400), "test"), tmp_path / "b", {})
    state = str(tmp_path / "state")
    first = run_save_state(state, fitted.data, fitted.dsie)
    second = run_save_state(state, tmp_path / "b", fitted.dsie, expected_snapshot=first.snapshot)
    assert second.snapshot != first.snapshot and len(list((tmp_path / "state" / "snapshots").iterdir())) == 2
    loaded = run_load_state(state, tmp_path / "ref", tmp_path / "dsie")
    assert loaded.snapshot == second.snapshot
    assert _tree(tmp_path / "ref") == _tree(tmp_path / "b") != _tree(fitted.data)


def _fake_models(root: Path, tag: str) -> Path:
    """A dir in the sft_* layout holding both models (a few small files each)."""
    for name in ("novelty", "relevance"):
        (root / name / "sub").mkdir(parents=True, exist_ok=True)
        (root / name / "config.json").write_text(json.dumps({"model": name, "tag": tag}))
        (root / name / "sub" / "weights.bin").write_bytes(f"{name}-{tag}".encode() * 10)
    (root / "sft_metrics.json").write_text("{}")  # beside the models: not part of them
    return root


def test_models_round_trip_and_garbage_collection(tmp_path: Path, fitted) -> None:
    state = str(tmp_path / "state")
    snap = run_save_state(state, fitted.data, fitted.dsie)
    versions = [run_save_models(state, _fake_models(tmp_path / f"m{i}", str(i)),
                                _fake_models(tmp_path / f"m{i}", str(i)), data_dir=fitted.data, keep=2)
                for i in range(3)]
    pointer = read_pointer(state)
    assert pointer is not None and pointer["snapshot"] == snap.snapshot  # the groups stay (no-drift branch)
    assert pointer["models"]["snapshot"] == versions[-1].snapshot and versions[-1].n_files == 4
    assert sorted(p.name for p in (tmp_path / "state" / "models").iterdir()) == [v.snapshot for v in versions[1:]]
    loaded = run_load_models(state, tmp_path / "n", tmp_path / "r")
    assert loaded.snapshot == versions[-1].snapshot
    assert set(_tree(tmp_path / "n")) == {"novelty/config.json", "novelty/sub/weights.bin"}  # the model only
    assert _tree(tmp_path / "n" / "novelty") == _tree(tmp_path / "m2" / "novelty")
    assert _tree(tmp_path / "r" / "relevance") == _tree(tmp_path / "m2" / "relevance")


def test_groups_and_their_models_switch_together(tmp_path: Path, fitted, monkeypatch) -> None:
    """Regrouping saves the new snapshot WITH the models tuned on it in one pointer write: a save that dies
    before the pointer leaves the old groups with the old models, a snapshot-only save keeps the models."""
    from coea import state as state_mod

    state = str(tmp_path / "state")
    first = run_save_state(state, fitted.data, fitted.dsie, *(2 * [_fake_models(tmp_path / "m0", "0")]))
    before = read_pointer(state)
    assert before is not None and before["snapshot"] == first.snapshot
    real = state_mod._upload_version
    calls = []

    def dies_on_models(store, prefix, parts):
        calls.append(prefix)
        if prefix == state_mod.MODELS:
            raise OSError("node preempted")
        return real(store, prefix, parts)

    monkeypatch.setattr(state_mod, "_upload_version", dies_on_models)
    with pytest.raises(OSError, match="preempted"):
        run_save_state(state, fitted.data, fitted.dsie, *(2 * [_fake_models(tmp_path / "m1", "1")]))
    assert calls == [state_mod.SNAPSHOTS, state_mod.MODELS] and read_pointer(state) == before
    monkeypatch.setattr(state_mod, "_upload_version", real)
    second = run_save_state(state, fitted.data, fitted.dsie, *(2 * [_fake_models(tmp_path / "m1", "1")]))
    after = read_pointer(state)
    assert after is not None and after["snapshot"] == second.snapshot != first.snapshot
    assert after["models"]["snapshot"] != before["models"]["snapshot"]
    run_load_models(state, tmp_path / "n", tmp_path / "r")
    assert _tree(tmp_path / "n" / "novelty") == _tree(tmp_path / "m1" / "novelty")
    third = run_save_state(state, fitted.data, fitted.dsie)  # no models given: the active ones stay
    assert read_pointer(state)["models"] == after["models"] and third.snapshot != second.snapshot
    with pytest.raises(ValueError, match="both novelty_dir and relevance_dir"):
        run_save_state(state, fitted.data, fitted.dsie, tmp_path / "m1")


def test_saved_models_load_as_llms(tmp_path: Path, fitted, llm_dirs: dict[str, Path]) -> None:
    from coea.stages import load_llms

    state = str(tmp_path / "state")
    run_save_state(state, fitted.data, fitted.dsie, llm_dirs["novelty"], llm_dirs["relevance"])
    run_load_models(state, tmp_path / "n", tmp_path / "r")
    llms = load_llms([tmp_path / "n", tmp_path / "r"], fitted.dsie)  # what pco_loop and evaluate read
    original = load_llms([llm_dirs["novelty"], llm_dirs["relevance"]], fitted.dsie)
    for mine, theirs in ((llms.novelty, original.novelty), (llms.relevance, original.relevance)):
        a, b = mine.model.state_dict(), theirs.model.state_dict()
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_models_errors_name_the_fix(tmp_path: Path, fitted) -> None:
    with pytest.raises(CoeaInputError, match="saves the models after PCO"):
        run_load_models(str(tmp_path / "none"), tmp_path / "a", tmp_path / "b")
    with pytest.raises(CoeaInputError, match="models belong to groups"):
        run_save_models(str(tmp_path / "none"), _fake_models(tmp_path / "m", "0"), tmp_path / "m",
                        data_dir=fitted.data)
    (tmp_path / "only" / "novelty").mkdir(parents=True)
    with pytest.raises(CoeaInputError, match="no relevance/ model dir"):
        run_save_state(str(tmp_path / "state"), fitted.data, fitted.dsie, tmp_path / "only", tmp_path / "only")
    assert not (tmp_path / "state").exists()  # checked before anything is written


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'"x"', b'{"snapshot": "s1", "created_at": "t"}',
                                     b'{"snapshot": "s1", "created_at": "t", "files": [], "models": {}}'])
def test_a_corrupt_pointer_is_one_error_naming_it(tmp_path: Path, content: bytes) -> None:
    """current.json that is no JSON, or JSON without the keys a pointer has: one line naming the file, for the
    readers and for a writer (which must not commit over it)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / POINTER).write_bytes(content)
    expected = f"{state / POINTER}: {POINTER} is not a state pointer"
    with pytest.raises(CoeaInputError, match="restore the previous version") as err:
        run_load_state(str(state), tmp_path / "a", tmp_path / "b")
    assert str(err.value).startswith(expected)
    with pytest.raises(CoeaInputError, match="is not a state pointer"):
        read_pointer(str(state))
    assert (state / POINTER).read_bytes() == content


def test_load_without_state_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(CoeaInputError, match="run the coea_training pipeline"):
        run_load_state(str(tmp_path / "none"), tmp_path / "a", tmp_path / "b")
    with pytest.raises(CoeaInputError, match="unsupported state_uri scheme"):
        open_state("s3://bucket/x")


def test_export_publishes_new_versions_in_the_state_store(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    first = run_export(PublishConfig(), _recs(tmp_path / "a.parquet"), state, tmp_path / "out1.sqlite")
    second = run_export(PublishConfig(keep_versions=5), _recs(tmp_path / "b.parquet", shift=1), state,
                        tmp_path / "out2.sqlite")
    assert second.publish.kept_versions == (first.publish.version, second.publish.version)
    with KVStore(tmp_path / "state" / KV_STORE) as live, KVStore(second.store_copy) as copy:
        assert live.active_version() == copy.active_version() == second.publish.version
        assert [r.category for r in copy.get_user("u1")] == ["cat3", "cat4", "cat5"]
    with KVStore(first.store_copy) as old:  # the first copy is a snapshot of its own time
        assert [r.category for r in old.get_user("u1")] == ["cat2", "cat3", "cat4"]


def test_served_lists_are_the_active_version_and_empty_before_any_publish(tmp_path: Path, monkeypatch) -> None:
    """What the recurring PCO step reads as exposure: the store's ACTIVE version, user by user in rank order (the
    publish format); before the first publish an empty frame with those columns, never an error. Written
    atomically: a write that dies midway leaves the previous file whole and no temp file."""
    state = str(tmp_path / "state")
    assert run_load_served(state, tmp_path / "none.parquet") == 0
    empty = pd.read_parquet(tmp_path / "none.parquet")
    assert empty.empty and list(empty.columns) == ["user_id", "rank", "category", "score"]
    run_export(PublishConfig(), _recs(tmp_path / "a.parquet"), state, tmp_path / "s1.sqlite")
    run_export(PublishConfig(), _recs(tmp_path / "b.parquet", shift=1), state, tmp_path / "s2.sqlite")
    assert run_load_served(state, tmp_path / "served.parquet") == 4
    served = pd.read_parquet(tmp_path / "served.parquet")
    expected = pd.read_parquet(tmp_path / "b.parquet")  # the second publish is the active version
    key = ["user_id", "rank"]
    pd.testing.assert_frame_equal(served.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True), check_dtype=False)
    before = (tmp_path / "served.parquet").read_bytes()

    def dies_mid_write(frame: pd.DataFrame, path: Path, **kwargs: Any) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        run_load_served(state, tmp_path / "served.parquet")
    assert (tmp_path / "served.parquet").read_bytes() == before
    assert not list(tmp_path.glob(".served.parquet.*"))  # no temp file left


# -- gs:// ------------------------------------------------------------------------------------------------------
BUCKET = "coea-state-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs(emulator: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    client.create_bucket(BUCKET)
    yield client
    bucket = client.bucket(BUCKET)
    for blob in client.list_blobs(BUCKET):
        blob.delete()
    bucket.delete()


def test_gcs_state_round_trip_store_and_export(tmp_path: Path, fitted, gcs: Any) -> None:
    state = f"gs://{BUCKET}/coea/state"
    snap = run_save_state(state, fitted.data, fitted.dsie, client=gcs)
    names = {b.name for b in gcs.list_blobs(BUCKET)}
    assert f"coea/state/{POINTER}" in names and len(names) == snap.n_files + 1
    run_load_state(state, tmp_path / "ref", tmp_path / "dsie", client=gcs)
    assert _tree(tmp_path / "ref") == _tree(fitted.data) and _tree(tmp_path / "dsie") == _tree(fitted.dsie)

    first = run_export(PublishConfig(), _recs(tmp_path / "a.parquet"), state, tmp_path / "s1.sqlite", client=gcs)
    second = run_export(PublishConfig(), _recs(tmp_path / "b.parquet", 1), state, tmp_path / "s2.sqlite",
                        gcs_uri=f"gs://{BUCKET}/coea/recs/", client=gcs)
    with closing(sqlite3.connect(f"file:{second.store_copy}?mode=ro", uri=True)) as conn:  # shipped as one file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sorted(p.name for p in tmp_path.glob("s2.sqlite*")) == ["s2.sqlite"]
    gcs.bucket(BUCKET).blob(f"coea/state/{KV_STORE}").download_to_filename(tmp_path / "remote.sqlite")
    with KVStore(tmp_path / "remote.sqlite") as remote:  # the store in the bucket holds both versions
        assert [v.version for v in remote.versions()] == [first.publish.version, second.publish.version]
        assert [r.category for r in remote.get_user("u1")] == ["cat3", "cat4", "cat5"]
    assert second.gcs is not None and second.gcs.version == second.publish.version
    exported = read_export(f"gs://{BUCKET}/coea/recs/", gcs)
    assert len(exported) == 12 and json.loads(gcs.bucket(BUCKET).blob("coea/recs/manifest.json")
                                              .download_as_bytes())["n_rows"] == 12
    assert run_load_served(state, tmp_path / "served.parquet", client=gcs) == 4  # read from the bucket's store
    served = pd.read_parquet(tmp_path / "served.parquet").sort_values(["user_id", "rank"])
    assert served[served.user_id == "u1"].category.tolist() == ["cat3", "cat4", "cat5"]
    assert run_load_served(f"gs://{BUCKET}/coea/other", tmp_path / "none.parquet", client=gcs) == 0
    run_export(PublishConfig(), _recs(tmp_path / "c.parquet"), state, tmp_path / "s3.sqlite", client=gcs,
               seen=_seen(tmp_path / "seen.parquet", [("u1", "cat1"), ("u9", "cat0")]))
    assert f"coea/state/{SEEN}" in {b.name for b in gcs.list_blobs(BUCKET)}
    assert run_load_seen(state, tmp_path / "back.parquet", tmp_path / "ref", client=gcs) == 2
    assert _pairs(tmp_path / "back.parquet") == {("u1", "cat1"), ("u9", "cat0")}


def test_gcs_models_round_trip(tmp_path: Path, fitted, gcs: Any) -> None:
    state = f"gs://{BUCKET}/coea/state"
    snap = run_save_state(state, fitted.data, fitted.dsie, *(2 * [_fake_models(tmp_path / "m0", "0")]), keep=1,
                          client=gcs)
    first = read_pointer(state, gcs)["models"]
    second = run_save_models(state, _fake_models(tmp_path / "m1", "1"), _fake_models(tmp_path / "m1", "1"),
                             data_dir=fitted.data,
                             keep=1, client=gcs)
    names = {b.name for b in gcs.list_blobs(BUCKET)}
    assert f"coea/state/{POINTER}" in names
    assert len(names) == snap.n_files + second.n_files + 1  # the first models version was collected
    assert not any(first["snapshot"] in n for n in names)
    run_load_models(state, tmp_path / "n", tmp_path / "r", client=gcs)
    assert _tree(tmp_path / "n" / "novelty") == _tree(tmp_path / "m1" / "novelty")
    assert _tree(tmp_path / "r" / "relevance") == _tree(tmp_path / "m1" / "relevance")


@pytest.fixture
def enforced_preconditions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """gcp-storage-emulator accepts ``ifGenerationMatch`` but does not check it; this wraps its object-insert
    handler with the check real GCS makes (412 when the object's generation differs; 0 = must not exist) and
    records every (object, ifGenerationMatch) it saw."""
    from http import HTTPStatus

    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects

    seen: list[tuple[str, str]] = []
    insert = objects.insert

    def checked_insert(request, response, storage, *args, **kwargs):
        want = (request.query.get("ifGenerationMatch") or [None])[0]
        name = request.query["name"][0] if "name" in request.query else request.data["meta"].get("name")
        if want is not None:
            seen.append((name, want))
            try:
                have = str(storage.get_file_obj(request.params["bucket_name"], name)["generation"])
            except Exception:  # noqa: BLE001 - the emulator raises its own NotFound
                have = "0"
            if have != want:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet"}})
                return None
        return insert(request, response, storage, *args, **kwargs)

    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is insert:
                monkeypatch.setitem(handlers, method, checked_insert)
    monkeypatch.setattr(objects, "insert", checked_insert)
    return seen


def test_gcs_pointer_is_written_with_the_generation_it_read(tmp_path: Path, fitted, gcs: Any,
                                                            enforced_preconditions) -> None:
    """current.json is written with if_generation_match: 0 (must not exist) for the first state, then the
    generation read at the start of the save; a pointer another run wrote in between makes the save fail with
    StateConflictError (one line, naming the fix) and leaves that other run's pointer active."""
    state = f"gs://{BUCKET}/coea/state"
    pointer_name = f"coea/state/{POINTER}"
    run_save_state(state, fitted.data, fitted.dsie, client=gcs)
    first_generation = gcs.bucket(BUCKET).get_blob(pointer_name).generation
    models = _fake_models(tmp_path / "m1", "1")
    run_save_models(state, models, models, data_dir=fitted.data, client=gcs)
    assert [w for n, w in enforced_preconditions if n == pointer_name] == ["0", str(first_generation)]

    from coea import state as state_module

    upload = state_module._upload_version  # a concurrent writer commits while this run uploads

    def upload_then_other_writer(store, prefix, parts):
        entry = upload(store, prefix, parts)
        gcs.bucket(BUCKET).blob(pointer_name).upload_from_string(b'{"snapshot": "theirs"}')
        return entry

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_module, "_upload_version", upload_then_other_writer)
        with pytest.raises(StateConflictError, match=r"current.json changed since this run read it") as err:
            run_save_models(state, models, models, data_dir=fitted.data, client=gcs)
    assert "\n" not in str(err.value) and "max_concurrency=1" in str(err.value)
    assert json.loads(gcs.bucket(BUCKET).blob(pointer_name).download_as_bytes()) == {"snapshot": "theirs"}


def test_a_local_pointer_another_run_wrote_meanwhile_is_not_overwritten(tmp_path: Path, fitted) -> None:
    """Audit, session 55: a local state (the cache volume) wrote its pointer without any check, on the premise that
    a ReadWriteOnce volume has one writer; it has one node, and two runs on it both committed, the last one
    winning. Now the pointer's content is its generation, checked under a lock: the other run's pointer stays."""
    state = tmp_path / "state"
    run_save_state(str(state), fitted.data, fitted.dsie)
    models = _fake_models(tmp_path / "m1", "1")

    from coea import state as state_module

    upload = state_module._upload_version

    def upload_then_other_writer(store, prefix, parts):
        entry = upload(store, prefix, parts)
        (state / POINTER).write_text('{"snapshot": "theirs"}')
        return entry

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_module, "_upload_version", upload_then_other_writer)
        with pytest.raises(StateConflictError, match=r"current.json changed since this run read it") as err:
            run_save_models(str(state), models, models, data_dir=fitted.data)
    assert "\n" not in str(err.value) and json.loads((state / POINTER).read_text()) == {"snapshot": "theirs"}


def test_gcs_state_without_credentials_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No emulator and no credentials (a key file that does not exist): one CoeaInputError naming the state, not
    google.auth's DefaultCredentialsError."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(CoeaInputError, match="no Google Cloud credentials") as err:
        read_pointer(f"gs://{BUCKET}/state")
    assert str(err.value).startswith(f"gs://{BUCKET}/state/: ")


@pytest.mark.parametrize(("mode", "expected", "tries"), [
    ("forbidden", "permission denied (403) reading it (fix: grant the pod's service account "
                  "roles/storage.objectAdmin", 1),
    ("unavailable", "reading it failed (ServiceUnavailable: 503", 3),
])
def test_gcs_state_errors_name_the_pointer_and_only_the_policy_retries(monkeypatch: pytest.MonkeyPatch, mode: str,
                                                                        expected: str, tries: int) -> None:
    """A 403 is not retried; a 503 is tried exactly ``max_attempts`` times (the client's own retry, which would
    add minutes of tries per attempt, is off), then one line naming the object."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from coea.state import GcsState
    from coea.store.retry import RetryPolicy

    hits: list[str] = []
    with faulty_gcs(mode, hits) as host:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        client = storage.Client(project="test", credentials=AnonymousCredentials())
        state = GcsState(f"gs://{BUCKET}/state", client, retry=RetryPolicy(max_attempts=3, initial_backoff_s=0))
        with pytest.raises(CoeaInputError) as err:
            state.read_generation(POINTER)
    assert str(err.value).startswith(f"gs://{BUCKET}/state/{POINTER}: {expected}")
    assert len([h for h in hits if f"/o/state%2F{POINTER}" in h]) == tries  # (a 403 also looks up the bucket)


def test_gcs_state_in_a_missing_bucket_says_so(tmp_path: Path, fitted, gcs: Any) -> None:
    with pytest.raises(CoeaInputError, match="bucket 'no-such-bucket' does not exist") as err:
        run_save_state("gs://no-such-bucket/state", fitted.data, fitted.dsie, client=gcs)
    assert str(err.value).startswith("gs://no-such-bucket/state/snapshots/")


def _seen(path: Path, pairs: list[tuple[str, str]]) -> Path:
    pd.DataFrame(pairs, columns=["user_id", "category"]).to_parquet(path, index=False)
    return path


def _pairs(path: Path) -> set[tuple[str, str]]:
    frame = pd.read_parquet(path)
    return set(zip(frame["user_id"], frame["category"], strict=True))


def test_the_seen_categories_go_to_the_state_with_the_export_and_come_back_with_the_state(
        tmp_path: Path, fitted) -> None:
    """run_export(seen=...) makes the recommend step's pairs the state's seen.parquet (replacing the last one);
    run_load_seen reads them back. A state written before the file existed gives the reference window's pairs
    (the loaded snapshot's data), not nothing."""
    state = str(tmp_path / "state")
    run_save_state(state, fitted.data, fitted.dsie)
    run_load_state(state, tmp_path / "ref", tmp_path / "dsie")
    log = pd.read_parquet(fitted.data / "interactions.parquet")
    assert run_load_seen(state, tmp_path / "old.parquet", tmp_path / "ref") == len(
        _pairs_of(log)) and _pairs(tmp_path / "old.parquet") == _pairs_of(log)
    run_export(PublishConfig(), _recs(tmp_path / "a.parquet"), state, tmp_path / "s1.sqlite",
               seen=_seen(tmp_path / "s1.parquet", [("u1", "cat1"), ("u2", "cat2")]))
    run_export(PublishConfig(), _recs(tmp_path / "b.parquet"), state, tmp_path / "s2.sqlite",
               seen=_seen(tmp_path / "s2.parquet", [("u1", "cat1"), ("u2", "cat2"), ("u3", "cat3")]))
    assert (Path(state) / SEEN).is_file()
    assert run_load_seen(state, tmp_path / "now.parquet", tmp_path / "ref") == 3
    assert _pairs(tmp_path / "now.parquet") == {("u1", "cat1"), ("u2", "cat2"), ("u3", "cat3")}


def _pairs_of(log: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(log["user_id"].astype(str), log["category"].astype(str), strict=True))


def test_seen_goes_to_the_state_even_when_the_publish_refuses_the_recommendations(tmp_path: Path) -> None:
    """The period's events happened whether or not its lists are served: run_export writes seen.parquet before it
    publishes, so recommendations the store refuses (a rank gap) still leave the new seen pairs in the state, and
    the served version stays the last good one (closes the gap where uploading seen after the publish passed)."""
    state = str(tmp_path / "state")
    good = run_export(PublishConfig(), _recs(tmp_path / "a.parquet"), state, tmp_path / "s1.sqlite",
                      seen=_seen(tmp_path / "s1.parquet", [("u1", "cat1")]))
    bad = pd.read_parquet(_recs(tmp_path / "b.parquet"))
    bad.loc[bad["rank"] == 3, "rank"] = 4  # ranks 1, 2, 4: not 1..K
    bad.to_parquet(tmp_path / "b.parquet", index=False)
    with pytest.raises(StoreError, match="ranks of user_id="):
        run_export(PublishConfig(), tmp_path / "b.parquet", state, tmp_path / "s2.sqlite",
                   seen=_seen(tmp_path / "s2.parquet", [("u1", "cat1"), ("u2", "cat5")]))
    assert _pairs(Path(state) / SEEN) == {("u1", "cat1"), ("u2", "cat5")}
    with KVStore(tmp_path / "state" / KV_STORE) as live:
        assert live.active_version() == good.publish.version
