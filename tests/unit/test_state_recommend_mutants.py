"""Rules of the recurring pipeline's state (coea.state, coea.state_backends) and of the served lists
(coea.stages.recommend) that a mutation audit found unguarded: the seen marker is written after the seen pairs,
the pointer is written before any version is collected, the pointer's history holds each id once, a pointer
without a history keeps the newest ``keep`` versions, a retry's run id is compared only when both sides know one,
local writes are atomic, a listed file that is missing is an error, and run_recommend refuses ``k < 1`` and ranks
from 1."""

from __future__ import annotations

import errno
import json
import pathlib
from pathlib import Path

import pandas as pd
import pytest

from coea.errors import CoeaInputError
from coea.state import (
    POINTER,
    SEEN,
    StateConflictError,
    read_pointer,
    run_export,
    run_load_models,
    run_load_state,
    run_save_models,
    run_save_state,
)
from coea.state_backends import SEEN_PERIOD, LocalState
from coea.store import PublishConfig
from tests.state_helpers import models_dir as _models
from tests.state_helpers import state_ids as _ids
from tests.state_helpers import write_dir as _dir


def _period(root: Path, tag: str) -> tuple[Path, Path]:
    """A period's data dir (its interactions.parquet's bytes, the period's hash, differ by ``tag``) and a DSIE dir."""
    return (_dir(root / f"data_{tag}", "interactions.parquet", tag=tag),
            _dir(root / f"dsie_{tag}", "groups.parquet", tag=tag))


def _loaded(state: str) -> dict[str, str]:
    pointer = read_pointer(state)
    assert pointer is not None
    return {"expected_snapshot": pointer["snapshot"], "expected_models": pointer["models"]["snapshot"]}


def _recs_and_seen(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id": ["u1", "u2"], "rank": [1, 1], "category": ["a", "b"], "score": [0.5, 0.4]}).to_parquet(
        root / "recs.parquet", index=False)
    pd.DataFrame({"user_id": ["u1"], "category": ["a"]}).to_parquet(root / "seen.parquet", index=False)
    return root / "recs.parquet", root / "seen.parquet"


def _full_disk_after_half(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Path.write_bytes writes half its data, then the disk is full."""
    def half_then_full(self: Path, data: bytes) -> int:
        with open(self, "wb") as out:
            out.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_full)


# -- state.py / state_backends.py -----------------------------------------------------------------------------------
def test_an_export_that_dies_uploading_the_seen_pairs_leaves_its_period_unexported(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """seen_period.json (the period the seen pairs are of) is written AFTER seen.parquet: an export killed while
    uploading the seen pairs leaves the marker at the previous period, so the next period stays held back (before
    the marker went first, the next period ran on a seen.parquet lacking the committed period's categories)."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"))
    recs, seen = _recs_and_seen(tmp_path / "xa")
    run_export(PublishConfig(), recs, state, tmp_path / "xa" / "kv.sqlite", seen=seen)
    data_b = _period(tmp_path, "B")[0]
    run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b, **_loaded(state))
    real = LocalState.upload_file

    def seen_upload_dies(self, rel, src):
        if rel == SEEN:
            raise OSError(errno.ENOSPC, "No space left on device", rel)
        return real(self, rel, src)

    recs, seen = _recs_and_seen(tmp_path / "xb")
    with monkeypatch.context() as patch:
        patch.setattr(LocalState, "upload_file", seen_upload_dies)
        with pytest.raises(OSError):
            run_export(PublishConfig(), recs, state, tmp_path / "xb" / "kv.sqlite", seen=seen)
    assert json.loads((Path(state) / SEEN_PERIOD).read_text())["period"] != read_pointer(state)["period"]
    with pytest.raises(CoeaInputError, match="was never exported"):
        run_load_models(state, tmp_path / "n", tmp_path / "r", data_dir=_period(tmp_path, "C")[0])


def test_a_commit_refused_by_a_concurrent_pointer_write_deletes_no_version(tmp_path: Path, monkeypatch) -> None:
    """The pointer is written BEFORE the versions it no longer keeps are collected: a save whose pointer write
    fails (another run committed models onto snapshot A meanwhile; keep=1) deletes nothing, so the state the other
    run committed still loads (collecting first deleted A, which the winning pointer names)."""
    state = str(tmp_path / "state")
    data_a, dsie_a = _period(tmp_path, "A")
    run_save_state(state, data_a, dsie_a, _models(tmp_path, "A"), _models(tmp_path, "A"), keep=1)
    real = LocalState.write_if_generation
    others: list[object] = []

    def another_run_commits_first(self, rel, data, generation):
        if not others:
            others.append(None)
            run_save_models(state, _models(tmp_path, "O"), _models(tmp_path, "O"),
                            data_dir=_period(tmp_path, "O")[0], keep=1)
        return real(self, rel, data, generation)

    monkeypatch.setattr(LocalState, "write_if_generation", another_run_commits_first)
    data_b, dsie_b = _period(tmp_path, "B")
    with pytest.raises(StateConflictError):
        run_save_state(state, data_b, dsie_b, keep=1)
    pointer = read_pointer(state)
    assert pointer["snapshot"] in _ids(state, "snapshots")
    assert run_load_state(state, tmp_path / "d", tmp_path / "g").snapshot == pointer["snapshot"]


def test_a_models_only_save_keeps_each_id_once_in_the_history_and_the_previous_snapshot(tmp_path: Path) -> None:
    """The pointer's history lists each id once: a models-only save (the snapshot unchanged) does not push the
    active snapshot id in again, so with keep=2 the snapshot before a regroup stays (a duplicated id took its
    place in the history and the snapshot was collected)."""
    state = str(tmp_path / "state")
    a = run_save_state(state, *_period(tmp_path, "A"), _models(tmp_path, "A"), _models(tmp_path, "A"), keep=2)
    z = run_save_state(state, *_period(tmp_path, "Z"), _models(tmp_path, "Z"), _models(tmp_path, "Z"), keep=2,
                       **_loaded(state))
    for tag in ("M1", "M2"):
        run_save_models(state, _models(tmp_path, tag), _models(tmp_path, tag), data_dir=_period(tmp_path, tag)[0],
                        keep=2, **_loaded(state))
    assert read_pointer(state)["history"]["snapshots"] == [z.snapshot, a.snapshot]
    assert _ids(state, "snapshots") == {a.snapshot, z.snapshot}


def test_a_retry_is_recognised_when_only_one_side_knows_a_run_id(tmp_path: Path) -> None:
    """The committing run's id is compared only when the pointer AND the caller have one: a commit made without a
    run id, retried with one (and the reverse), is this step's own commit, returned, not a conflict."""
    state = str(tmp_path / "state")
    run_save_state(state, *_period(tmp_path, "A"), _models(tmp_path, "A"), _models(tmp_path, "A"))
    loaded, data_b = _loaded(state), _period(tmp_path, "B")[0]
    first = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b, **loaded)
    assert "committed_by" not in read_pointer(state)
    retry = run_save_models(state, _models(tmp_path, "B"), _models(tmp_path, "B"), data_dir=data_b,
                            run_id="run-1", **loaded)
    assert retry.snapshot == first.snapshot
    loaded, data_c = _loaded(state), _period(tmp_path, "C")[0]
    second = run_save_models(state, _models(tmp_path, "C"), _models(tmp_path, "C"), data_dir=data_c,
                             run_id="run-2", **loaded)
    retry = run_save_models(state, _models(tmp_path, "C"), _models(tmp_path, "C"), data_dir=data_c, **loaded)
    assert retry.snapshot == second.snapshot and len(_ids(state, "models")) == 3


@pytest.mark.parametrize("how", ["pointer", "upload"])
def test_a_local_write_that_fails_midway_leaves_the_previous_file(tmp_path: Path, monkeypatch, how: str) -> None:
    """LocalState writes through a temporary file and a rename: a full disk mid-write leaves the previous
    current.json (or seen.parquet) whole, never a truncated one that a reader (or the next period) would read."""
    state = str(tmp_path / "state")
    run_save_state(state, *_period(tmp_path, "A"))
    local = LocalState(Path(state))
    (tmp_path / "seen.parquet").write_bytes(b"new seen pairs")
    local.upload_file(SEEN, tmp_path / "seen.parquet")
    before = {name: (Path(state) / name).read_bytes() for name in (POINTER, SEEN)}
    _full_disk_after_half(monkeypatch)
    with pytest.raises(OSError):
        if how == "pointer":
            local.write_bytes(POINTER, before[POINTER] + b" " * 64)
        else:
            local.upload_file(SEEN, tmp_path / "seen.parquet")
    monkeypatch.undo()
    assert {name: (Path(state) / name).read_bytes() for name in (POINTER, SEEN)} == before


@pytest.mark.parametrize("kind", ["snapshots", "models"])
def test_a_file_the_pointer_lists_that_is_missing_is_one_error_naming_it(tmp_path: Path, kind: str) -> None:
    """A download of the active snapshot (or models) whose listed file is gone fails naming it, instead of
    handing the next step an incomplete dir."""
    state = str(tmp_path / "state")
    run_save_state(state, *_period(tmp_path, "A"), _models(tmp_path, "A"), _models(tmp_path, "A"))
    pointer = read_pointer(state)
    rel = (pointer if kind == "snapshots" else pointer["models"])["files"][0]
    (Path(state) / rel).unlink()
    with pytest.raises(CoeaInputError, match=rf"state file {rel} listed in current.json is missing"):
        if kind == "snapshots":
            run_load_state(state, tmp_path / "d", tmp_path / "g")
        else:
            run_load_models(state, tmp_path / "n", tmp_path / "r")


# -- stages/recommend.py --------------------------------------------------------------------------------------------
@pytest.fixture
def period(tmp_path: Path) -> Path:
    """A tiny prepared period: 3 users, 4 categories."""
    from coea.data.loaders import LoadedData
    from coea.data.prepared import write_prepared

    events = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["i1", "i2", "i3", "i4", "i5"],
                           "category": ["a", "b", "a", "c", "d"],
                           "timestamp": [1_700_000_000 + 86_400 * i for i in range(5)]})
    write_prepared(LoadedData(events, "a tiny period"), tmp_path / "period", {})
    return tmp_path / "period"


def test_recommend_ranks_each_list_from_1_best_first(tmp_path: Path, period: Path) -> None:
    """Each user's rows are ranks 1..k (the store refuses anything else), scores non-increasing with the rank."""
    from coea.config import RunConfig
    from coea.layout import ArtifactDirs
    from coea.stages.recommend import run_recommend

    result = run_recommend(RunConfig(), period, ArtifactDirs(), "pop", 3, tmp_path / "recs.parquet")
    recs = pd.read_parquet(result.path)
    assert result.n_users == 3 and result.short_users == 0
    for user, rows in recs.groupby("user_id"):
        assert rows["rank"].tolist() == [1, 2, 3], user
        assert rows.sort_values("rank")["score"].is_monotonic_decreasing, user


@pytest.mark.parametrize("k", [0, -1])
def test_recommend_refuses_k_below_1(tmp_path: Path, period: Path, k: int) -> None:
    """k < 1 is one error naming the option, and nothing is written (k=0 would publish empty lists)."""
    from coea.config import RunConfig
    from coea.layout import ArtifactDirs
    from coea.stages.recommend import run_recommend

    with pytest.raises(CoeaInputError, match=rf"k must be >= 1, got {k}"):
        run_recommend(RunConfig(), period, ArtifactDirs(), "pop", k, tmp_path / "recs.parquet")
    assert not (tmp_path / "recs.parquet").exists()
