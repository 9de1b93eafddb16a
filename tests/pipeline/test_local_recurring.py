"""kfp.local end to end, the regroup branch: coea_recurring on the state of the session's ``trained`` run
(tests/pipeline/conftest.py) with a taste shift read from gs:// partitions (regroup, re-SFT, PCO update), and a
state without models failing in load-models. Each step runs as a subprocess of this Python."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from coea.config import DataConfig
from coea.errors import CoeaInputError
from coea.state import KV_STORE, read_pointer
from coea.store import KVStore
from pipelines.local import run_recurring_locally
from tests.gcs_helpers import BUCKET, upload_partitions
from tests.pipeline.pipeline_helpers import shifted_log, tiny_llm
from tests.pipeline.recurring_helpers import (
    assert_pco_update,
    recurring_config,
    state_copy,
    state_models,
    task_dirs,
)

pytestmark = pytest.mark.slow


def _period_on_gcs(gcs_client, shifted: Path) -> tuple[str, str]:
    """The period as gs:// parquet partitions, one per day, plus a partition of the scheduled day itself (still
    being written, so not part of the period) holding an extra user; returns (spec, scheduled time)."""
    days = upload_partitions(gcs_client, pd.read_parquet(shifted), "events/", fmt="parquet")
    scheduled = (pd.Timestamp(days[-1]) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    late = pd.read_parquet(shifted).head(30).assign(user_id="late-user", timestamp=int(
        pd.Timestamp(f"{scheduled}T01:00:00Z").timestamp()))
    upload_partitions(gcs_client, late, "events/", fmt="parquet")
    return f"parquet:gs://{BUCKET}/events/", f"{scheduled}T06:00:00Z"


def test_recurring_taste_shift_regroups(trained: tuple[Path, dict[str, Path]], tmp_path: Path, gcs_client) -> None:
    """The period comes from gs:// dt= partitions (the GCS emulator, reached from the kfp.local step's subprocess
    through STORAGE_EMULATOR_HOST), chosen by the run's scheduled time wired into prepare_data: every day before
    the scheduled day, not the scheduled day's own partition."""
    state = state_copy(trained, tmp_path / "state")
    before = read_pointer(state)
    assert before is not None
    models_before, _ = state_models(state)
    shifted = shifted_log(Path(state) / "snapshots" / before["snapshot"] / "data", tmp_path / "period.parquet")
    spec, scheduled = _period_on_gcs(gcs_client, shifted)
    # the regroup's SFT steps on a seeded sample of 300 examples each
    cfg = recurring_config(data=DataConfig(spec=spec), llm=tiny_llm(max_examples=300))
    kfp_root = run_recurring_locally(cfg, tmp_path / "run", state, rec_k=5, schedule_time=scheduled)
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    prepared = json.loads((run / "prepare-data" / "data" / "data_config.json").read_text())["data"]
    assert prepared["as_of"] == scheduled and prepared["spec"] == spec
    ran = task_dirs(kfp_root)
    assert {"load-state", "load-models", "monitor-drift", "dsie-group", "save-state", "pco-loop",
            "export-recommendations"} <= ran
    assert "build-profiles" not in ran and "save-models" not in ran  # groups + models in one state write
    assert_pco_update(kfp_root, state, models_before)
    after = read_pointer(state)
    assert after is not None and after["snapshot"] != before["snapshot"]  # the new window is the reference now
    reference = pd.read_parquet(Path(state) / "snapshots" / after["snapshot"] / "data" / "interactions.parquet")
    assert reference.equals(pd.read_parquet(shifted))  # every day of the period, no late-user
    with KVStore(Path(state) / KV_STORE) as store:
        assert len(store.versions()) == 2


def test_recurring_without_models_fails_in_load_models(trained: tuple[Path, dict[str, Path]],
                                                       tmp_path: Path) -> None:
    state = state_copy(trained, tmp_path / "state")
    pointer = json.loads((Path(state) / "current.json").read_text())
    del pointer["models"]  # a state written before the models were part of it
    (Path(state) / "current.json").write_text(json.dumps(pointer))
    with pytest.raises(CoeaInputError, match=r"^step load-models: .*saves the models after PCO"):
        run_recurring_locally(recurring_config(), tmp_path / "run", state, rec_k=5)
