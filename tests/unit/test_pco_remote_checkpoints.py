"""PCO round checkpoints mirrored to the state store (coea.stages.pco_remote), on a local state dir and on GCS (the
in-process emulator): each round saved is copied, the state file last; a new attempt downloads the complete rounds
(not a later round's cut-short upload) and resumes; success deletes the prefix; a failure keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import coea.pco.checkpoint as checkpoint
from coea.errors import CoeaInputError
from coea.pco.checkpoint import STATE_FILE, round_dir, save_round
from coea.pco.config import PcoConfig
from coea.stages.pco_remote import mirrored_rounds
from coea.state_backends import open_state
from tests.gcs_helpers import BUCKET

KEY = "run-1-pco-loop"
PREFIX = f"checkpoints/{KEY}/"


class Preempted(Exception):
    pass


@pytest.fixture
def fake_bundles(monkeypatch: pytest.MonkeyPatch) -> None:
    """save_round without models: each "bundle" is one file naming it."""

    def save_bundle(bundle, path: Path, announce: bool = True) -> None:
        path.mkdir(parents=True)
        (path / "model.safetensors").write_text(f"{bundle} {path.parent.name}")

    monkeypatch.setattr(checkpoint, "save_bundle", save_bundle)


@pytest.fixture(params=["local", "gcs"])
def state_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "gcs":
        request.getfixturevalue("gcs_client")
        return f"gs://{BUCKET}/state"
    return str(tmp_path / "state")


def _rows(n: int) -> list[dict]:
    return [{"round": r, "acceptance_after": 0.1 * r} for r in range(n + 1)]


def _save(out: Path, r: int, cfg: PcoConfig) -> None:
    save_round(out, r, "novelty", "relevance", _rows(r), cfg)


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_rounds_are_mirrored_resumed_and_deleted_on_success(state_uri: str, tmp_path: Path, fake_bundles,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    cfg, store = PcoConfig(rounds=3), open_state(state_uri)
    first = tmp_path / "attempt1"
    with pytest.raises(Preempted), mirrored_rounds(state_uri, KEY, first) as resume:
        assert resume is False  # nothing mirrored yet: a fresh run
        (first / "lineage.json").parent.mkdir(parents=True)
        (first / "lineage.json").write_text('{"id": "x"}')
        _save(first, 1, cfg)
        # round 2 is under way: its files, not yet its state, reach the store when the pod dies
        store.upload_file(f"{PREFIX}rounds/round_002/novelty/model.safetensors", first / "lineage.json")
        raise Preempted
    names = store.list(PREFIX)
    assert f"{PREFIX}{STATE_FILE}" in names and f"{PREFIX}rounds/round_001/rng.pt" in names  # kept on failure
    assert json.loads(store.read_bytes(PREFIX + STATE_FILE))["completed_rounds"] == 1

    second = tmp_path / "attempt2"  # a retried pod: an empty output dir
    caplog.set_level("INFO", logger="coea")
    with mirrored_rounds(state_uri, KEY, second) as resume:
        assert resume is True
        assert _files(second) == _files(first)  # round 1, lineage, state; no round 2
        assert not round_dir(second, 2).exists()
        _save(second, 2, cfg)
        assert json.loads(store.read_bytes(PREFIX + STATE_FILE))["completed_rounds"] == 2
        assert f"{PREFIX}rounds/round_002/relevance/model.safetensors" in store.list(PREFIX)
    assert [m for m in caplog.messages if m.startswith("resuming PCO")] == [
        f"resuming PCO from round 1 of 3 (checkpoints at {state_uri}/{PREFIX})"]
    assert store.list(PREFIX) == [] and store.list("checkpoints/") == []  # success: the prefix is gone
    if not state_uri.startswith("gs://"):
        assert not (Path(state_uri) / "checkpoints").exists()


def test_the_state_file_is_mirrored_last(tmp_path: Path, fake_bundles, monkeypatch: pytest.MonkeyPatch) -> None:
    uploads: list[str] = []
    store_cls = type(open_state(str(tmp_path / "state")))
    real = store_cls.upload_file
    monkeypatch.setattr(store_cls, "upload_file", lambda self, rel, src: (uploads.append(rel), real(self, rel, src)))
    with mirrored_rounds(str(tmp_path / "state"), KEY, tmp_path / "out"):
        _save(tmp_path / "out", 1, PcoConfig())
    assert uploads[-1] == PREFIX + STATE_FILE and len(uploads) > 3
    assert all(name.startswith(PREFIX + "rounds/round_001/") for name in uploads[:-1])


def test_no_state_uri_or_key_mirrors_nothing(tmp_path: Path, fake_bundles) -> None:
    for uri, key in (("", KEY), (str(tmp_path / "state"), "")):
        with mirrored_rounds(uri, key, tmp_path / "out") as resume:
            _save(tmp_path / "out", 1, PcoConfig())
        assert resume is False
    assert not (tmp_path / "state").exists()


def test_a_damaged_remote_state_is_one_error_naming_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / PREFIX).mkdir(parents=True)
    (state / PREFIX / STATE_FILE).write_text('{"completed_rounds": 1')
    with pytest.raises(CoeaInputError, match=r"not a PCO state") as err, \
            mirrored_rounds(str(state), KEY, tmp_path / "out"):
        pass
    assert f"{state}/{PREFIX}{STATE_FILE}" in str(err.value) and "delete that checkpoint prefix" in str(err.value)
    assert not (tmp_path / "out" / STATE_FILE).exists()


def test_the_task_checkpoint_key_is_run_and_task_and_off_when_a_placeholder_is_left(caplog) -> None:
    """Session 55: the pipelines passed one string holding two KFP placeholders, which a backend leaves as it is
    (it resolves only an input that is one placeholder): every run and task shared that literal prefix, so a run
    could resume another run's rounds. The key is now joined in the step, and a placeholder left unresolved
    switches the mirror off instead of sharing it."""
    from coea.stages.pco_remote import task_checkpoint_key

    assert task_checkpoint_key("8f2c-41", "pco-loop") == "8f2c-41-pco-loop"
    assert task_checkpoint_key("", "pco-loop") == "" and task_checkpoint_key("8f2c-41", "") == ""
    with caplog.at_level("WARNING", logger="coea"):
        assert task_checkpoint_key("{{$.pipeline_job_uuid}}", "pco-loop") == ""
        assert task_checkpoint_key("8f2c-41", "{{$.pipeline_task_name}}") == ""
    assert len(caplog.messages) == 2 and "not mirrored" in caplog.messages[0]
