"""Stage ``profiles``: keep a DSIE dir's groups, rebuild their text profiles from a (newer) prepared log.

This is what the recurring pipeline does when drift stays below the threshold: no retraining.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from coea.config import RunConfig
from coea.data.prepared import read_prepared
from coea.data.schema import USER
from coea.data.split import chronological_split
from coea.dsie.artifact import read_groups
from coea.dsie.profiles import build_profiles
from coea.utils import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class ProfilesResult:
    """A DSIE dir whose profiles were rewritten from a (newer) log."""

    dsie_dir: Path
    refreshed: list[str]  # groups whose profile was rebuilt (members active in the log)
    kept: list[str]  # groups without active members: previous profile kept


def run_build_profiles(cfg: RunConfig, data_dir: Path, dsie_dir: Path, out_dir: Path) -> ProfilesResult:
    """Copy ``dsie_dir`` to ``out_dir`` and rebuild its ``profiles.json`` from the histories of the prepared
    log; groups without members in the new log keep their previous profile."""
    out_dir = Path(out_dir)
    shutil.copytree(dsie_dir, out_dir, dirs_exist_ok=True)
    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    groups = read_groups(out_dir / "groups.parquet")
    warm = groups[~groups["cold_start"].astype(bool)]
    user_group = dict(zip(warm[USER], warm["group_id"], strict=True))
    old = json.loads((out_dir / "profiles.json").read_text())
    csid = {g: old.get(g, {}).get("csid", g) for g in set(user_group.values())}
    fresh = build_profiles(split.histories.interactions, user_group, csid, cfg.dsie.profile)
    write_json_atomic(out_dir / "profiles.json", {**old, **fresh})
    kept = sorted(set(old) - set(fresh))
    log.info("profiles rebuilt for %d groups, %d kept from before", len(fresh), len(kept))
    return ProfilesResult(out_dir, sorted(fresh), kept)
