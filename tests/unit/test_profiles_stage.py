"""``run_build_profiles`` (the recurring pipeline's profile refresh) into a folder of its own or into the DSIE dir it
reads (audit, session 57: in place, shutil's copy of the dir onto itself failed with a garbled list of characters,
keeping the old profiles and lineage.json; into another folder, the source's lineage record, id included, was
copied as the refreshed dir's own)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from coea import lineage
from coea.config import RunConfig
from coea.errors import CoeaInputError
from coea.stages.profiles import run_build_profiles

CFG = RunConfig()


def _log(data: Path) -> Path:
    """6 users of 30 events: u0-u2 only ever take c0, u3-u5 c1."""
    data.mkdir()
    rows = [(f"u{u}", f"i{e}", f"c{u // 3}", 1_700_000_000 + 3600 * (30 * u + e)) for u in range(6) for e in range(30)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category", "timestamp"])
    frame.to_parquet(data / "interactions.parquet")
    return data


def _dsie(path: Path) -> tuple[Path, dict]:
    """A fitted DSIE dir as far as the refresh reads it (groups 0 = u0-u2, 1 = u3-u5; weights stood in for), with
    the lineage record of a fit on another log; returns it and that record."""
    (path / "encoder").mkdir(parents=True)
    (path / "encoder" / "encoder.pt").write_bytes(b"weights")
    pd.DataFrame({"user_id": [f"u{u}" for u in range(6)], "csid": ["0-1"] * 3 + ["1-0"] * 3,
                  "group_id": ["0"] * 3 + ["1"] * 3, "cold_start": [False] * 6}).to_parquet(path / "groups.parquet")
    (path / "profiles.json").write_text(json.dumps({g: {"csid": g, "profile": "old"} for g in "01"}))
    return path, lineage.write(path, {"data": "an earlier log", "split": {}})


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "other-folder"])
def test_the_refreshed_dir_has_new_profiles_the_same_fit_and_its_own_lineage(tmp_path, in_place):
    data, (dsie, fitted) = _log(tmp_path / "data"), _dsie(tmp_path / "dsie")
    before = _snapshot(dsie)
    out = dsie if in_place else tmp_path / "out"
    result = run_build_profiles(CFG, data, dsie, out)
    assert result.refreshed == ["0", "1"] and result.kept == [] and result.dsie_dir == out
    profiles = json.loads((out / "profiles.json").read_text())
    assert "c0 (100%)" in profiles["0"]["profile"] and "c1 (100%)" in profiles["1"]["profile"]
    after = _snapshot(out)
    for name in ("groups.parquet", "encoder/encoder.pt"):  # the fit travels as it was
        assert after[name] == before[name]
    record = lineage.read(out)
    assert record["id"] != fitted["id"] and record["made_from"] == {"dsie": fitted["id"]}
    assert record["histories"] == lineage.histories(data, CFG.split)  # the log the profiles learned from
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"data", "dsie", out.name})  # no staging left
    if not in_place:
        assert _snapshot(dsie) == before  # the source untouched


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "other-folder"])
def test_a_refused_refresh_leaves_nothing_half_written(tmp_path, in_place):
    """A refusal (here: a data folder without its log) leaves the DSIE dir as it was and makes no output folder."""
    (tmp_path / "data").mkdir()
    dsie, _ = _dsie(tmp_path / "dsie")
    before = _snapshot(dsie)
    out = dsie if in_place else tmp_path / "out"
    with pytest.raises(CoeaInputError, match="interactions.parquet not found"):
        run_build_profiles(CFG, tmp_path / "data", dsie, out)
    assert _snapshot(dsie) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data", "dsie"]


@pytest.mark.parametrize(("out", "where"), [("dsie/refreshed", "inside"), (".", "a folder above")])
def test_an_out_dir_nested_with_the_dsie_dir_is_refused_before_anything_is_written(tmp_path, out, where):
    data, (dsie, _) = _log(tmp_path / "data"), _dsie(tmp_path / "dsie")
    before = _snapshot(tmp_path)
    with pytest.raises(CoeaInputError, match=rf"is {where} the DSIE dir it refreshes \({dsie}\).*fix: pass that "
                                             "DSIE dir itself") as err:
        run_build_profiles(CFG, data, dsie, tmp_path / out)
    assert "\n" not in str(err.value) and _snapshot(tmp_path) == before


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "other-folder"])
def test_a_write_that_fails_half_way_leaves_the_dsie_dir_and_no_output(tmp_path, monkeypatch, in_place):
    """The disk fills while the new profiles are written: the copy made so far is dropped."""
    import errno

    import coea.stages.profiles as stage

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stage, "write_json_atomic", full)
    data, (dsie, _) = _log(tmp_path / "data"), _dsie(tmp_path / "dsie")
    before = _snapshot(dsie)
    with pytest.raises(OSError, match="No space left"):
        run_build_profiles(CFG, data, dsie, dsie if in_place else tmp_path / "out")
    assert _snapshot(dsie) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data", "dsie"]
