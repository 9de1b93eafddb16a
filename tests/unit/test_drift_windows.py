"""What the recurring pipeline's drift step reads: the histories of both periods under the run's split (what DSIE
fits the groups on), never the future the period's evaluate step scores. Audit (session 56): monitor_drift compared
the whole prepared logs, so changing only the current period's evaluated future (each user's last n_future events)
moved the drift share from 0 to 0.67 and flipped the regroup decision that picks the models scored on it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from coea.config import SplitConfig, SyntheticConfig
from coea.data.loaders import LoadedData
from coea.data.prepared import write_prepared
from coea.data.schema import CATEGORY, USER, sort_events
from coea.data.split import split_periods
from coea.data.synthetic import generate_synthetic
from coea.drift import DriftConfig, detect_drift, popular_categories
from coea.stages.drift import drift_window
from components.functions import monitor_drift
from tests.pipeline.pipeline_helpers import artifact

SPLIT = SplitConfig(n_future=12)  # not the default 10: the step must read the run's split, not SplitConfig()


@pytest.fixture(scope="module")
def periods() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(reference, current, current with only its evaluated future changed): two periods of ~27 events per user;
    the third moves each user's last SPLIT.n_future events to the category at the other end of the popularity
    ranking, the rest of the period as it was."""
    cfg = SyntheticConfig(seed=3, n_users=250, n_categories=12, n_groups=4, items_per_category=8,
                          mean_interactions=40, min_interactions=25, explore_rate=0.05)
    first, second = split_periods(generate_synthetic(cfg).interactions, 2)
    ref, cur = first.interactions, sort_events(second.interactions).reset_index(drop=True)
    future = (cur.groupby(USER).cumcount(ascending=False) < SPLIT.n_future).to_numpy()
    ranked = popular_categories(ref[CATEGORY], ref[CATEGORY].nunique())
    reverse = dict(zip(ranked, ranked[::-1], strict=True))
    changed = cur.copy()
    changed.loc[future, CATEGORY] = changed.loc[future, CATEGORY].map(reverse)
    return ref, cur, changed


def _step(tmp: Path, ref: Path, cur: Path, dsie: Path, name: str) -> dict:
    """monitor_drift as a pod runs it (the run's split_config JSON); returns its drift.json."""
    out = tmp / name
    out.mkdir()
    monitor_drift(reference=artifact(ref), current=artifact(cur), dsie=artifact(dsie), drift_config="{}",
                  split_config=json.dumps({"split": {"n_future": SPLIT.n_future}}), threshold=0.5,
                  report=artifact(out / "report.html"), summary=artifact(out / "drift.json"),
                  metrics=SimpleNamespace(log_metric=lambda name, value: None))
    return json.loads((out / "drift.json").read_text())


def test_the_evaluated_future_never_moves_the_drift_check(tmp_path: Path, periods) -> None:
    ref, cur, changed = periods
    hist = drift_window(cur, SPLIT)
    pd.testing.assert_frame_equal(hist, drift_window(changed, SPLIT))  # the histories are the same events
    assert detect_drift(DriftConfig(), ref, changed).drift_share >= 0.5  # the whole windows are far apart
    dirs = {}
    for name, log in (("ref", ref), ("cur", cur), ("changed", changed)):
        write_prepared(LoadedData(log, "test"), tmp_path / name, {})
        dirs[name] = tmp_path / name
    users = sorted(ref[USER].unique())  # the groups of the reference's users, as DSIE writes them
    dsie = tmp_path / "dsie"
    dsie.mkdir()
    pd.DataFrame({USER: users, "csid": "0-0", "group_id": [f"g{i % 3}" for i in range(len(users))],
                  "cold_start": False}).to_parquet(dsie / "groups.parquet", index=False)
    same = _step(tmp_path, dirs["ref"], dirs["cur"], dsie, "same")
    moved = _step(tmp_path, dirs["ref"], dirs["changed"], dsie, "moved")
    assert moved["features"] == same["features"] and moved["drift_share"] == same["drift_share"]
    # both windows are the histories under the run's split: fewer users than the periods hold
    assert same["n_current_users"] == hist[USER].nunique() < cur[USER].nunique()
    assert same["n_reference_users"] == drift_window(ref, SPLIT)[USER].nunique() < ref[USER].nunique()
    assert "group" in [f["column"] for f in same["features"]]


def test_drift_window_is_the_split_histories() -> None:
    """Each user's last n_future events go; with validation the test future as well."""
    rows = [(u, f"i{j}", "ABC"[j % 3], 1_700_000_000 + j) for u in ("a", "b") for j in range(8)]
    log = pd.DataFrame(rows, columns=[USER, "item_id", CATEGORY, "timestamp"])
    kept = drift_window(log, SplitConfig(n_future=3))
    assert kept.groupby(USER).size().to_dict() == {"a": 5, "b": 5}
    assert np.array_equal(kept.groupby(USER)["timestamp"].max().to_numpy(), [1_700_000_004] * 2)
    assert len(drift_window(log, SplitConfig(n_future=3, validation=True))) == 4
