"""A damaged pipeline state (coea.state): ``files`` entries of current.json that no writer makes, a truncated
seen.parquet, a store whose values are damaged. Before: raw ValueError/AttributeError/KeyError from the download,
ArrowInvalid with the junk file left at the output, JSONDecodeError from the served lists (audit 8, 20)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from coea.errors import CoeaInputError
from coea.state import (
    KV_STORE,
    POINTER,
    SEEN,
    run_load_models,
    run_load_seen,
    run_load_served,
    run_load_state,
    run_save_state,
)
from coea.store import KVStore
from tests.gcs_helpers import BUCKET


def _dir(path: Path, *names: str) -> Path:
    for name in names:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(name)
    return path


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A local state with a snapshot (data/, dsie/) and models (novelty/, relevance/), two files each; data/'s
    interactions.parquet is what the pointer records as the period."""
    uri = str(tmp_path / "state")
    models = _dir(tmp_path / "m", "novelty/a.json", "relevance/b.json")
    run_save_state(uri, _dir(tmp_path / "d", "interactions.parquet", "sub/y.json"),
                   _dir(tmp_path / "g", "groups.parquet"), models, models)
    return uri


BAD_ENTRIES = {"not-a-path": "garbage", "a-number": 5, "unknown-part": "snapshots/{id}/llm/a.json",
               "another-id": "snapshots/other/data/a.json", "climbs-out": "snapshots/{id}/data/../../../../escape.txt",
               "empty-step": "snapshots/{id}/data//a.json", "models-prefix": "models/{id}/data/a.json"}


@pytest.mark.parametrize("entry", BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_a_files_entry_no_writer_makes_is_one_error_naming_the_pointer_and_nothing_is_downloaded(state, tmp_path,
                                                                                                  entry):
    pointer_path = Path(state) / POINTER
    pointer = json.loads(pointer_path.read_text())
    pointer["files"].append(entry.format(id=pointer["snapshot"]) if isinstance(entry, str) else entry)
    pointer_path.write_text(json.dumps(pointer))
    out = tmp_path / "out"
    with pytest.raises(CoeaInputError) as err:
        run_load_state(state, out / "data", out / "dsie")
    text = str(err.value)
    assert text.startswith(f"{pointer_path}: {POINTER} is not a state pointer (ValueError: files entry 4 ("), text
    assert f"is not snapshots/{pointer['snapshot']}/<data|dsie>/<path>)" in text and "re-run coea_training" in text
    assert not out.exists()


def test_a_bad_files_entry_of_the_models_is_named_too(state, tmp_path):
    pointer_path = Path(state) / POINTER
    pointer = json.loads(pointer_path.read_text())
    pointer["models"]["files"][0] = pointer["files"][0]  # a snapshot file listed as a model file
    pointer_path.write_text(json.dumps(pointer))
    with pytest.raises(CoeaInputError, match=rf"files entry 1 \('snapshots/.*'\) is not models/"
                                             rf"{pointer['models']['snapshot']}/<novelty\|relevance>/<path>"):
        run_load_models(state, tmp_path / "n", tmp_path / "r")
    assert not (tmp_path / "n").exists()


def test_an_intact_state_still_loads(state, tmp_path):
    run_load_state(state, tmp_path / "data", tmp_path / "dsie")
    run_load_models(state, tmp_path / "m", tmp_path / "m")
    assert (tmp_path / "data" / "sub" / "y.json").read_text() == "sub/y.json"
    assert (tmp_path / "m" / "relevance" / "b.json").is_file()


@pytest.mark.parametrize("damaged", ["truncated", "no-category"])
def test_a_damaged_seen_parquet_is_one_error_and_leaves_nothing_at_the_output(state, tmp_path, damaged):
    seen = Path(state) / SEEN
    if damaged == "truncated":
        seen.write_bytes(b"junk")
    else:
        pd.DataFrame({"user_id": ["u1"], "item": ["i"]}).to_parquet(seen)
    out = tmp_path / "o" / "seen.parquet"
    out.parent.mkdir()
    with pytest.raises(CoeaInputError) as err:
        run_load_seen(state, out, tmp_path / "ref")
    text = str(err.value)
    assert text.startswith(f"{seen}: cannot be read ("), text
    assert ("ArrowInvalid" if damaged == "truncated" else "expected user_id, category") in text
    assert "(fix: delete it (the reference window's categories then stand in" in text
    assert list(out.parent.iterdir()) == []  # neither the junk nor a temporary file


def _damaged_store(path: Path) -> None:
    with KVStore(path) as kv:
        kv.publish(pd.DataFrame({"user_id": ["u1"], "rank": [1], "category": ["a"], "score": [1.0]}))
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE recs SET value = '{bad' WHERE key = 'u1'")
        conn.commit()


def test_served_lists_of_a_damaged_store_are_one_error_and_nothing_is_written(state, tmp_path):
    _damaged_store(Path(state) / KV_STORE)
    with pytest.raises(CoeaInputError, match=r"kv/recs.sqlite: the stored recommendations of user 'u1' are damaged"):
        run_load_served(state, tmp_path / "served.parquet")
    assert not (tmp_path / "served.parquet").exists()


def test_served_lists_of_a_damaged_gcs_store_name_the_object_not_a_scratch_copy(tmp_path, gcs_client):
    _damaged_store(tmp_path / "recs.sqlite")
    gcs_client.bucket(BUCKET).blob(f"coea/state/{KV_STORE}").upload_from_filename(str(tmp_path / "recs.sqlite"))
    with pytest.raises(CoeaInputError) as err:
        run_load_served(f"gs://{BUCKET}/coea/state", tmp_path / "served.parquet", client=gcs_client)
    assert str(err.value).startswith(f"gs://{BUCKET}/coea/state/{KV_STORE}: the stored recommendations of user 'u1'")
    assert not (tmp_path / "served.parquet").exists()
