"""Stage ``profiles``: keep a DSIE dir's groups, rebuild their text profiles from a (newer) prepared log.

This is what the recurring pipeline does when drift stays below the threshold: no retraining.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from coea import lineage
from coea.config import RunConfig
from coea.data.prepared import read_prepared
from coea.data.schema import USER
from coea.data.split import chronological_split
from coea.dsie.artifact import REGROUP_FIX, read_groups
from coea.dsie.profiles import build_profiles
from coea.errors import CoeaInputError, reading
from coea.utils import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class ProfilesResult:
    """A DSIE dir whose profiles were rewritten from a (newer) log."""

    dsie_dir: Path
    refreshed: list[str]  # groups whose profile was rebuilt (members active in the log)
    kept: list[str]  # groups without active members: previous profile kept


def run_build_profiles(cfg: RunConfig, data_dir: Path, dsie_dir: Path, out_dir: Path) -> ProfilesResult:
    """Copy ``dsie_dir`` to ``out_dir`` and rebuild its ``profiles.json`` from the histories of the prepared
    log; groups without members in the new log keep their previous profile.

    ``out_dir`` is written in a staging folder beside it that replaces it whole once complete, so it may be
    ``dsie_dir`` itself (a refresh in place) and a refused input leaves nothing behind. Its lineage record is new:
    the log the profiles learned from, made from ``dsie_dir``'s fit (its groups and models)."""
    dsie_dir, out_dir = Path(dsie_dir), Path(out_dir)
    _check_apart(dsie_dir, out_dir)
    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    groups = read_groups(dsie_dir / "groups.parquet")
    warm = groups[~groups["cold_start"].astype(bool)]
    user_group = dict(zip(warm[USER], warm["group_id"], strict=True))
    with reading(dsie_dir / "profiles.json", REGROUP_FIX):
        old = json.loads((dsie_dir / "profiles.json").read_text())
    csid = {g: old.get(g, {}).get("csid", g) for g in set(user_group.values())}
    fresh = build_profiles(split.histories.interactions, user_group, csid, cfg.dsie.profile)
    with atomic_dir(out_dir) as staging:
        shutil.copytree(dsie_dir, staging, dirs_exist_ok=True)
        write_json_atomic(staging / "profiles.json", {**old, **fresh})
        lineage.write(staging, lineage.histories(data_dir, cfg.split), {"dsie": dsie_dir})
    kept = sorted(set(old) - set(fresh))
    log.info("profiles rebuilt for %d groups, %d kept from before", len(fresh), len(kept))
    return ProfilesResult(out_dir, sorted(fresh), kept)


def _check_apart(dsie_dir: Path, out_dir: Path) -> None:
    """``out_dir`` is ``dsie_dir`` or apart from it: inside it, the copy would take in its own staging folder; above
    it, replacing ``out_dir`` would delete the DSIE dir being read."""
    src, dst = dsie_dir.resolve(), out_dir.resolve()
    if src != dst and (dst.is_relative_to(src) or src.is_relative_to(dst)):
        where = "inside" if dst.is_relative_to(src) else "a folder above"
        raise CoeaInputError(f"is {where} the DSIE dir it refreshes ({dsie_dir})", source=out_dir,
                             fix="pass that DSIE dir itself (a refresh in place) or a folder beside it")
