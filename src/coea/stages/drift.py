"""Stage ``drift``: Evidently drift of per-user behaviour between the histories of two prepared logs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coea.config import SplitConfig
from coea.data.prepared import read_prepared
from coea.data.schema import USER
from coea.data.split import chronological_split
from coea.drift import DriftConfig, DriftResult, detect_drift
from coea.dsie.artifact import read_groups


def drift_window(interactions: pd.DataFrame, split: SplitConfig) -> pd.DataFrame:
    """The events of a prepared log that the drift check reads: its histories under ``split``, what DSIE fits the
    groups on (:func:`coea.stages.dsie.run_dsie_group`). Each user's last ``n_future`` events (the future the
    period's evaluate step scores; with ``validation``, the validation window and the test future) and a
    ``min_gap``'s dropped events are left out: the regroup decision never reads what it decides the scoring of."""
    return chronological_split(interactions, split).histories.interactions


def run_monitor_drift(cfg: DriftConfig, reference_dir: Path, current_dir: Path, dsie_dir: Path | None,
                      out_dir: Path, *, split: SplitConfig) -> DriftResult:
    """Drift between the histories (:func:`drift_window`, both under the run's ``split``) of the reference and
    the current prepared log; with ``dsie_dir`` the users' groups are a feature too."""
    user_groups = None
    if dsie_dir is not None:
        groups = read_groups(Path(dsie_dir) / "groups.parquet")
        user_groups = dict(zip(groups[USER].astype(str), groups["group_id"].astype(str), strict=True))
    reference = drift_window(read_prepared(reference_dir).interactions, split)
    current = drift_window(read_prepared(current_dir).interactions, split)
    return detect_drift(cfg, reference, current, Path(out_dir), user_groups=user_groups)
