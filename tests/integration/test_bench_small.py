"""``bench_dsie.py --small`` and ``bench_pco.py --small`` run the whole script on a small synthetic log.

Both benchmarks read MovieLens-1M and take minutes, so nothing ran them between `make bench` runs and a change
that broke one went unseen (sessions 55-59 left "no small mode" open). Their small mode is a check that the script
works end to end, not a measurement: the figures are not asserted, only that every row is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _run_small(script: str, out: Path) -> dict:
    env = {**os.environ, "COEA_TORCH_THREADS": "1"}
    res = subprocess.run([sys.executable, str(BENCH / script), "--small", "--out", str(out)], capture_output=True,
                         text=True, cwd=out, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


@pytest.mark.parametrize(("script", "name", "rows"), [
    ("bench_dsie.py", "dsie_small", {"markov fit (baseline)", "encoder, per epoch", "rqvae train (10 epochs)",
                                     "kmeans same M_N (baseline)", "encoder pair (target both), per epoch of each"}),
    ("bench_pco.py", "pco_round_small", {"round 1", "round 2", "dpo_s", "score_s",
                                         "SFT, same examples (baseline)"}),
])
def test_small_mode_runs_the_script_and_writes_its_own_json(tmp_path, script, name, rows):
    res = _run_small(script, tmp_path)
    written = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    assert rows <= set(written["rows"]), sorted(written["rows"])
    ratios = [r["ratio"] for r in written["rows"].values() if "ratio" in r]
    assert ratios and all(r > 0 for r in ratios)  # every ratio against a baseline measured in the same run
    assert f"## {name}" in res.stdout
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.json"]  # nothing else, no MovieLens JSON name
