"""A DSIE groups.parquet without one of its columns is one error naming the file and the column, for every reader
(the LLM stages and serving through read_groups_dir, the drift and profiles stages). Before: KeyError: 'group_id'
from `coea serve --method group_pop_novel` (audit 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from coea.config import RunConfig, SplitConfig
from coea.drift import DriftConfig
from coea.dsie.artifact import read_groups, read_groups_dir
from coea.errors import CoeaInputError
from coea.stages.drift import run_monitor_drift
from coea.stages.profiles import run_build_profiles

GROUPS = {"user_id": ["u1", "u2"], "csid": ["1-2-0", "0-1-1"], "group_id": ["1-2", "0-1"], "cold_start": [False, False]}


def _dsie(path: Path, drop: str | None) -> Path:
    path.mkdir()
    pd.DataFrame({k: v for k, v in GROUPS.items() if k != drop}).to_parquet(path / "groups.parquet")
    (path / "profiles.json").write_text(json.dumps({g: {"csid": g, "profile": "p"} for g in GROUPS["group_id"]}))
    (path / "dsie_config.json").write_text(json.dumps({"rqvae": {"codebook_sizes": [2, 3, 2]}, "group": {"depth": 2}}))
    return path


@pytest.mark.parametrize("column", list(GROUPS))
def test_a_groups_file_without_a_column_names_the_file_and_the_column(tmp_path, column):
    dsie = _dsie(tmp_path / "dsie", column)
    have = ", ".join(c for c in GROUPS if c != column)
    expected = (f"{dsie / 'groups.parquet'}, column '{column}': missing column (have: {have}) (fix: re-run `coea "
                "group` (or the dsie_group step) to write it again)")
    for read in (lambda: read_groups(dsie / "groups.parquet"), lambda: read_groups_dir(dsie)):
        with pytest.raises(CoeaInputError) as err:
            read()
        assert str(err.value) == expected


def test_the_drift_and_profiles_stages_read_groups_through_the_check(tmp_path):
    dsie = _dsie(tmp_path / "dsie", "group_id")
    with pytest.raises(CoeaInputError, match=r"groups.parquet, column 'group_id': missing column"):
        run_monitor_drift(DriftConfig(), tmp_path / "ref", tmp_path / "cur", dsie, tmp_path / "out",
                          split=SplitConfig())
    (tmp_path / "data").mkdir()
    pd.DataFrame({"user_id": ["u1"], "item_id": ["i"], "category": ["a"], "timestamp": [1_700_000_000]}).to_parquet(
        tmp_path / "data" / "interactions.parquet")
    with pytest.raises(CoeaInputError, match=r"groups.parquet, column 'group_id': missing column"):
        run_build_profiles(RunConfig(), tmp_path / "data", dsie, tmp_path / "out2")


def test_an_intact_groups_dir_reads(tmp_path):
    g = read_groups_dir(_dsie(tmp_path / "dsie", None))
    assert list(g.groups.columns) == list(GROUPS) and (g.csid_levels, g.code_levels) == ([2, 3], [2, 3, 2])


@pytest.mark.parametrize("profiles", [{}, {"1-2": {"csid": "1-2", "profile": "p"}}], ids=["empty", "one-missing"])
def test_a_group_without_a_profile_names_the_file_and_the_groups(tmp_path, profiles):
    """Session 52's audit: profiles.json written as {} was read, and every prompt then carried an empty profile."""
    dsie = _dsie(tmp_path / "dsie", None)
    (dsie / "profiles.json").write_text(json.dumps(profiles))
    missing = sorted(set(GROUPS["group_id"]) - set(profiles))
    with pytest.raises(CoeaInputError) as err:
        read_groups_dir(dsie)
    assert str(err.value).startswith(f"{dsie / 'profiles.json'}: has no profile for {len(missing)} of the 2 groups "
                                     f"of groups.parquet ({', '.join(missing)})")
    assert "re-run `coea group`" in str(err.value)
