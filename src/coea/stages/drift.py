"""Stage ``drift``: Evidently drift of per-user behaviour between two prepared logs."""

from __future__ import annotations

from pathlib import Path

from coea.data.prepared import read_prepared
from coea.data.schema import USER
from coea.drift import DriftConfig, DriftResult, detect_drift
from coea.dsie.artifact import read_groups


def run_monitor_drift(cfg: DriftConfig, reference_dir: Path, current_dir: Path, dsie_dir: Path | None,
                      out_dir: Path) -> DriftResult:
    """Drift between the reference and the current prepared log; with ``dsie_dir`` the users' groups are a
    feature too."""
    user_groups = None
    if dsie_dir is not None:
        groups = read_groups(Path(dsie_dir) / "groups.parquet")
        user_groups = dict(zip(groups[USER].astype(str), groups["group_id"].astype(str), strict=True))
    reference = read_prepared(reference_dir).interactions
    current = read_prepared(current_dir).interactions
    return detect_drift(cfg, reference, current, Path(out_dir), user_groups=user_groups)
