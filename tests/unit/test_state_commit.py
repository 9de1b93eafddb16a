"""The state commit (coea.state) between runs: a recurring run commits only onto the snapshot and models it loaded
(a coea_training run that committed meanwhile, or a KFP retry after a conflict, is refused), its export publishes
only while its models are active, a period whose update the state already holds is refused in load_models (PCO
would run twice on it), and a killed save's partial version never costs a committed one its place (audit of the
state commit, defects A, B, C)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from coea.errors import CoeaInputError
from coea.state import (
    KV_STORE,
    POINTER,
    SEEN,
    StateConflictError,
    check_models_active,
    read_pointer,
    run_load_models,
    run_save_models,
    run_save_state,
)
from tests.gcs_helpers import BUCKET
from tests.state_helpers import models_dir as _models
from tests.state_helpers import state_ids as _ids
from tests.state_helpers import write_dir as _dir


def _period(root: Path, tag: str) -> tuple[Path, Path]:
    """A period's prepared data dir (its interactions.parquet's bytes differ by ``tag``) and a DSIE dir."""
    return (_dir(root / f"data_{tag}", "interactions.parquet", "meta.json", tag=tag),
            _dir(root / f"dsie_{tag}", "groups.parquet", tag=tag))


def _loaded(state: str, client: Any = None) -> dict[str, str]:
    """What load_state and load_models return to the recurring pipeline: the ids they loaded."""
    pointer = read_pointer(state, client)
    assert pointer is not None
    return {"expected_snapshot": pointer["snapshot"], "expected_models": pointer["models"]["snapshot"]}


@pytest.fixture(params=["local", "gs"])
def where(request, tmp_path: Path) -> tuple[str, Any]:
    """(state URI, client): a local directory, or gs:// on the emulator."""
    if request.param == "local":
        return str(tmp_path / "state"), None
    client = request.getfixturevalue("gcs_client")
    return f"gs://{BUCKET}/coea/state", client


def test_a_save_onto_a_state_another_run_replaced_is_refused_and_so_is_every_retry(tmp_path: Path, where) -> None:
    """A recurring run loads snapshot A + models A; a coea_training run commits B meanwhile; the recurring run's
    save_models (models tuned on A's groups) and save_state are refused with StateConflictError naming what it loaded
    and what the pointer names now, and so is the same call again (KFP's retry); B stays active, nothing uploaded."""
    state, client = where
    data_a, dsie_a = _period(tmp_path, "A")
    run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"), client=client)
    loaded = _loaded(state, client)
    data_b, dsie_b = _period(tmp_path, "B")
    run_save_state(state, data_b, dsie_b, _models(tmp_path, "B"), _models(tmp_path, "B"), client=client)  # training
    after_b = read_pointer(state, client)
    data_c, dsie_c = _period(tmp_path, "C")
    tuned = _models(tmp_path, "C")
    for _attempt in range(2):  # the save step, then KFP's retry of it: the same inputs
        with pytest.raises(StateConflictError) as err:
            run_save_models(state, tuned, tuned, data_dir=data_c, client=client, **loaded)
        text = str(err.value)
        assert "\n" not in text and text.startswith(f"{state}: the state changed since this run loaded it")
        assert f"(snapshot {loaded['expected_snapshot']}, models {loaded['expected_models']})" in text
        assert f"now names snapshot {after_b['snapshot']}, models {after_b['models']['snapshot']}" in text
        assert "re-run the recurring pipeline" in text
        with pytest.raises(StateConflictError, match="the state changed since this run loaded it"):
            run_save_state(state, data_c, dsie_c, tuned, tuned, client=client, **loaded)  # the regroup branch
        assert read_pointer(state, client) == after_b
    if client is None:  # nothing of the refused saves was uploaded
        assert _ids(state, "models") == {after_b["models"]["snapshot"], loaded["expected_models"]}
    committed = run_save_models(state, tuned, tuned, data_dir=data_c, client=client, **_loaded(state, client))
    assert read_pointer(state, client)["models"]["snapshot"] == committed.snapshot  # onto what it loaded: commits


def test_the_training_pipeline_s_save_expects_nothing_and_re_seeds(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for tag in ("A", "B"):
        data, dsie = _period(tmp_path, tag)
        snap = run_save_state(state, data, dsie, _models(tmp_path, tag), _models(tmp_path, tag))
        assert read_pointer(state)["snapshot"] == snap.snapshot
        assert read_pointer(state)["models"]["snapshot"] == snap.models  # what the save step returns


def test_a_retried_save_whose_first_attempt_committed_does_not_commit_again(tmp_path: Path) -> None:
    """The save step's pod dies after its pointer write (before KFP records success) and KFP retries it: the pointer
    holds this data's commit, made onto the ids the run loaded; the retry returns that commit instead of refusing
    or committing a second version (so retrying the run publishes the period's lists)."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"))
    loaded = _loaded(state)
    data_b, dsie_b = _period(tmp_path, "B")
    first = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b, **loaded)
    before = read_pointer(state)
    again = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b, **loaded)
    assert again.snapshot == first.snapshot and read_pointer(state) == before and len(_ids(state, "models")) == 2
    regroup = run_save_state(state, data_b, dsie_b, _models(tmp_path, "R"), _models(tmp_path, "R"),
                             **_loaded(state))
    loaded_before_regroup = {"expected_snapshot": before["snapshot"], "expected_models": first.snapshot}
    retried = run_save_state(state, data_b, dsie_b, _models(tmp_path, "R"), _models(tmp_path, "R"),
                             **loaded_before_regroup)
    assert (retried.snapshot, retried.models) == (regroup.snapshot, regroup.models)
    with pytest.raises(StateConflictError):  # the same ids loaded, but another period: another run's commit
        run_save_state(state, data_a, dsie_a, _models(tmp_path, "R"), _models(tmp_path, "R"),
                       **loaded_before_regroup)


def test_another_run_on_the_same_period_and_loaded_ids_is_not_taken_for_this_step_s_retry(tmp_path: Path) -> None:
    """Audit, session 55: a manual run beside the scheduled one (both loaded the same state, both on one period):
    the second save took the first's commit for its own earlier attempt, returned it, and its export then published
    lists of its own, uncommitted models. The pointer records the KFP run that committed; only that run's retry is
    recognised (a pointer or a caller without a run id keeps the period-and-ids rule)."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"))
    loaded, data_b = _loaded(state), _period(tmp_path, "B")[0]
    first = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b, run_id="run-1",
                            **loaded)
    assert read_pointer(state)["committed_by"] == "run-1"
    with pytest.raises(StateConflictError):  # run 2's save, from the same loaded ids and the same data
        run_save_models(state, _models(tmp_path, "M"), _models(tmp_path, "M"), data_dir=data_b, run_id="run-2",
                        **loaded)
    retry = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b, run_id="run-1",
                            **loaded)  # run 1's retried step
    assert retry.snapshot == first.snapshot and len(_ids(state, "models")) == 2


def test_a_period_read_up_to_no_later_a_time_than_the_last_commit_is_refused(tmp_path: Path) -> None:
    """Audit, session 55: the once-per-period guard compared data hashes only, so a week read again after one late
    event (another hash), or an older week after a newer one, was accepted and the models were updated twice on
    one period, or on older data. Partitioned periods record their as-of time; a period not later is refused."""
    def period(tag: str, as_of: str | None) -> Path:
        data = _period(tmp_path, tag)[0]
        (data / "data_config.json").write_text(json.dumps({"data": {"spec": "parquet:gs://b/events/",
                                                                    "as_of": as_of}}))
        return data

    state = str(tmp_path / "state")
    run_save_state(state, period("W1", "2026-11-02T03:00:00Z"), _period(tmp_path, "W1")[1], _models(tmp_path, "A"),
                   _models(tmp_path, "A"))
    assert read_pointer(state)["as_of"] == "2026-11-02T03:00:00Z"
    week2 = period("W2", "2026-11-09T03:00:00Z")
    run_load_models(state, tmp_path / "n", tmp_path / "r", data_dir=week2)
    run_save_models(state, tmp_path / "n", tmp_path / "r", data_dir=week2, **_loaded(state))
    for tag, as_of in (("W2late", "2026-11-09T03:00:00Z"), ("W1again", "2026-11-02")):
        with pytest.raises(CoeaInputError, match=r"holds the update from the period as of 2026-11-09T03:00:00Z .* "
                                                 rf"as of {as_of}, is not later"):
            run_load_models(state, tmp_path / tag, tmp_path / f"r{tag}", data_dir=period(tag, as_of))
    run_load_models(state, tmp_path / "n3", tmp_path / "r3", data_dir=period("W3", "2026-11-16T03:00:00Z"))
    run_load_models(state, tmp_path / "n4", tmp_path / "r4", data_dir=period("plain", None))  # no as-of: not compared


def _export_step(tmp_path: Path, state: str, committed_models: str) -> Any:
    """The export_recommendations component's function, called as its KFP step would be."""
    from components.functions import export_recommendations

    recs = tmp_path / "recs.parquet"
    pd.DataFrame({"user_id": ["u1", "u2"], "rank": [1, 1], "category": ["a", "b"], "score": [0.5, 0.4]}).to_parquet(
        recs, index=False)
    seen = tmp_path / "seen.parquet"
    pd.DataFrame({"user_id": ["u1"], "category": ["a"]}).to_parquet(seen, index=False)
    return export_recommendations(
        recommendations=SimpleNamespace(path=str(recs), uri="kfp://recs"), seen=SimpleNamespace(path=str(seen)),
        state_uri=state, gcs_uri="", kv_store=SimpleNamespace(path=str(tmp_path / "kv.sqlite"), metadata={}),
        metrics=SimpleNamespace(log_metric=lambda *a: None), committed_models=committed_models)


def test_the_export_step_publishes_nothing_once_another_run_committed_after_its_save(tmp_path: Path) -> None:
    """This run's save committed models M1, then another run committed M2 (and will publish its lists): this run's
    export refuses before writing anything (no store version, no seen.parquet); the other run's export publishes."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"))
    ours = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=_period(tmp_path, "B")[0])
    theirs = run_save_models(state, _models(tmp_path, "C"), _models(tmp_path, "C"),
                             data_dir=_period(tmp_path, "C")[0])
    with pytest.raises(StateConflictError) as err:
        _export_step(tmp_path, state, ours.snapshot)
    assert str(err.value).startswith(f"{state}: {POINTER} names models {theirs.snapshot}, not models "
                                     f"{ours.snapshot} that this run committed")
    assert not (Path(state) / KV_STORE).exists() and not (Path(state) / SEEN).exists()
    assert _export_step(tmp_path, state, theirs.snapshot)  # a store version id
    assert (Path(state) / KV_STORE).is_file() and (Path(state) / SEEN).is_file()
    check_models_active(state, theirs.snapshot)


def test_load_models_refuses_a_period_whose_update_the_state_holds(tmp_path: Path) -> None:
    """The pointer records the period it was committed from (sha256 of interactions.parquet) and when; a re-run of
    a recurring run whose commit went through is refused in load_models, one line saying so and how to publish the
    period's lists; another period loads; a pointer written before the field loads too."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    seeded = run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"))
    pointer = read_pointer(state)
    assert pointer["period"] == hashlib.sha256((data_a / "interactions.parquet").read_bytes()).hexdigest()
    datetime.fromisoformat(pointer["committed_at"])
    with pytest.raises(CoeaInputError) as err:
        run_load_models(state, tmp_path / "n", tmp_path / "r", data_dir=data_a)
    assert str(err.value).startswith(
        f"the state at {state} already holds the update from this data (models {seeded.models}, committed "
        f"{pointer['committed_at']}); a run on it committed before: ")
    assert "\n" not in str(err.value) and "retry that failed run" in str(err.value)
    assert "does not commit twice" in str(err.value)
    assert not (tmp_path / "n").exists()
    data_b, _ = _period(tmp_path, "B")
    run_load_models(state, tmp_path / "n", tmp_path / "r", data_dir=data_b)  # the next period
    updated = run_save_models(state, tmp_path / "n", tmp_path / "r", data_dir=data_b, **_loaded(state))
    with pytest.raises(CoeaInputError, match=rf"already holds the update from this data \(models {updated.snapshot},"):
        run_load_models(state, tmp_path / "n2", tmp_path / "r2", data_dir=data_b)  # the same period again
    old = json.loads((Path(state) / POINTER).read_text())
    for key in ("period", "committed_at", "history"):
        del old[key]  # a pointer written before them
    (Path(state) / POINTER).write_text(json.dumps(old))
    assert run_load_models(state, tmp_path / "n3", tmp_path / "r3", data_dir=data_b).snapshot == updated.snapshot


def test_a_period_whose_commit_was_never_exported_holds_the_next_period_back(tmp_path: Path) -> None:
    """Audit, session 55: period B committed, then its recommend or export failed; period C's run was accepted and
    wrote seen.parquet as the seed's pairs plus C's, so B's categories were gone for good (+x could recommend what
    users had in B). The export records which commit its seen.parquet is of; load_models refuses the next period
    until the last commit is exported (a retry of that run), and then lets it through."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    seeded = run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"))
    (tmp_path / "xa").mkdir()
    _export_step(tmp_path / "xa", state, seeded.models)  # the training pipeline's export
    data_b, data_c = _period(tmp_path, "B")[0], _period(tmp_path, "C")[0]
    run_load_models(state, tmp_path / "n", tmp_path / "r", data_dir=data_b)  # the seed was exported: B goes on
    b = run_save_models(state, tmp_path / "n", tmp_path / "r", data_dir=data_b, **_loaded(state))
    with pytest.raises(CoeaInputError) as err:  # B committed, its export never ran
        run_load_models(state, tmp_path / "n2", tmp_path / "r2", data_dir=data_c)
    assert f"models {b.snapshot}" in str(err.value) and "was never exported" in str(err.value)
    assert "retry that run first" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "xb").mkdir()
    _export_step(tmp_path / "xb", state, b.snapshot)  # the retried run's export
    run_load_models(state, tmp_path / "n3", tmp_path / "r3", data_dir=data_c)


def test_a_pointer_with_a_damaged_period_or_history_is_one_error_naming_it(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    run_save_state(state, *_period(tmp_path, "A"))
    pointer = json.loads((Path(state) / POINTER).read_text())
    for damaged in ({"period": 5}, {"history": {"snapshots": "x"}}):
        (Path(state) / POINTER).write_text(json.dumps({**pointer, **damaged}))
        with pytest.raises(CoeaInputError, match=r"current.json is not a state pointer \(TypeError: period, "):
            read_pointer(state)


def _killed_save(state: str, root: Path, tag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save killed while it uploads: its snapshot version gets one of its files, nothing else."""
    from coea.state_backends import LocalState

    real = LocalState.upload_file
    calls = []

    def dies_on_the_second_file(self, rel, src):
        calls.append(rel)
        if len(calls) == 2:
            raise KeyboardInterrupt  # SIGTERM under coea.interrupts: the save unwinds, the pointer stays
        return real(self, rel, src)

    with monkeypatch.context() as patch:
        patch.setattr(LocalState, "upload_file", dies_on_the_second_file)
        with pytest.raises(KeyboardInterrupt):
            run_save_state(state, *_period(root, tag), _models(root, tag), _models(root, tag), keep=2)


def test_a_killed_save_s_partial_version_does_not_count_toward_keep(tmp_path: Path, monkeypatch) -> None:
    """keep=2: A committed, a save killed mid-upload leaves a partial version (newer than A), B committed. The
    pointer's history is [B, A]: A stays (complete, committed) and the partial one goes; before, the newest two
    ids stayed, the partial one among them, and A was deleted."""
    state = str(tmp_path / "state")
    a = run_save_state(state, *_period(tmp_path, "A"), _models(tmp_path, "A"), _models(tmp_path, "A"), keep=2)
    _killed_save(state, tmp_path, "K", monkeypatch)
    (partial,) = _ids(state, "snapshots") - {a.snapshot}
    assert a.snapshot < partial
    b = run_save_state(state, *_period(tmp_path, "B"), _models(tmp_path, "B"), _models(tmp_path, "B"), keep=2)
    assert read_pointer(state)["history"] == {"snapshots": [b.snapshot, a.snapshot],
                                              "models": [b.models, a.models]}
    assert _ids(state, "snapshots") == {a.snapshot, b.snapshot} and _ids(state, "models") == {a.models, b.models}
    c = run_save_state(state, *_period(tmp_path, "C"), _models(tmp_path, "C"), _models(tmp_path, "C"), keep=2)
    assert _ids(state, "snapshots") == {b.snapshot, c.snapshot}


def test_garbage_collection_never_deletes_a_newer_version_another_writer_is_uploading(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    from coea import state as state_mod
    from coea.store.records import new_version_id

    state = str(tmp_path / "state")
    run_save_state(state, *_period(tmp_path, "A"), keep=1)
    real = state_mod._upload_version
    theirs = []

    def another_writer_starts_meanwhile(store, prefix, parts):
        entry = real(store, prefix, parts)
        theirs.append(new_version_id())  # sorts after this run's id
        _dir(Path(state) / "snapshots" / theirs[0] / "data", "interactions.parquet", tag="theirs")
        return entry

    monkeypatch.setattr(state_mod, "_upload_version", another_writer_starts_meanwhile)
    ours = run_save_state(state, *_period(tmp_path, "B"), keep=1)
    assert _ids(state, "snapshots") == {ours.snapshot, theirs[0]}  # A collected, the newer upload kept


def _commits_across_a_pointer_without_history(tmp_path: Path, keep: int):
    """Periods A and B committed, the pointer's history then removed (a pointer written before it existed), C
    committed: (state, a, b, c)."""
    state = str(tmp_path / "state")
    a = run_save_state(state, *_period(tmp_path, "A"), keep=keep)
    b = run_save_state(state, *_period(tmp_path, "B"), keep=keep)
    pointer = json.loads((Path(state) / POINTER).read_text())
    del pointer["history"]
    (Path(state) / POINTER).write_text(json.dumps(pointer))
    return state, a, b, run_save_state(state, *_period(tmp_path, "C"), keep=keep)


def test_a_pointer_written_before_the_history_is_collected_as_before(tmp_path: Path) -> None:
    state, a, b, c = _commits_across_a_pointer_without_history(tmp_path, keep=2)
    assert _ids(state, "snapshots") == {b.snapshot, c.snapshot} and a.snapshot not in _ids(state, "snapshots")
    assert read_pointer(state)["history"]["snapshots"] == [c.snapshot, b.snapshot]


def test_a_pointer_without_a_history_keeps_the_newest_keep_versions(tmp_path: Path) -> None:
    """A pointer written before the history existed: the next commit keeps the newest ``keep`` versions (keep=3:
    all of A, B, C), not only the ones the new history names (C and the active B)."""
    state, a, b, c = _commits_across_a_pointer_without_history(tmp_path, keep=3)
    assert _ids(state, "snapshots") == {a.snapshot, b.snapshot, c.snapshot}
