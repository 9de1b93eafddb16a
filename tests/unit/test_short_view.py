"""The short-history view of MovieLens (benchmarks/short_view.py): one contiguous window per user, at least 5
events (or all of a shorter user's), day timestamps, seeded; it refuses to write into the project."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.short_view import DAY, main, short_view


def _log(counts: dict[str, int]) -> pd.DataFrame:
    rows = []
    for user, n in counts.items():
        for i in range(n):  # events 5 hours apart: several a day
            rows.append({"user_id": user, "item_id": f"{user}-{i}", "category": f"c{i % 7}",
                         "timestamp": 1_000_000_000 + i * 5 * 3600, "rating": 4.0})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # rows out of order on purpose


def test_each_user_keeps_one_contiguous_window_of_at_least_five_events_at_day_resolution():
    counts = {f"u{k}": n for k, n in enumerate([3, 5, 12, 40, 200, 200, 200, 200])}
    view = short_view(_log(counts), mean_events=10, seed=0)
    for user, n in counts.items():
        kept = view[view.user_id == user]
        idx = sorted(int(i.split("-")[1]) for i in kept.item_id)
        assert len(idx) == n if n <= 5 else 5 <= len(idx) <= n  # all of a short user's events, else >= 5
        assert idx == list(range(idx[0], idx[0] + len(idx)))  # contiguous in the user's time order
    assert (view.timestamp % DAY == 0).all()
    assert view.groupby("user_id").timestamp.apply(lambda t: t.is_monotonic_increasing).all()
    lengths = view[view.user_id.isin([f"u{k}" for k in range(4, 8)])].groupby("user_id").size()
    assert lengths.nunique() > 1  # lengths are drawn, not fixed


def test_the_view_is_seeded_and_its_mean_length_follows_the_option():
    log = _log({f"u{k}": 300 for k in range(400)})
    a, b = short_view(log, 10, seed=3), short_view(log, 10, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(short_view(log, 10, seed=4))
    assert np.mean(a.groupby("user_id").size()) == pytest.approx(10, rel=0.15)
    assert np.mean(short_view(log, 20, seed=3).groupby("user_id").size()) == pytest.approx(20, rel=0.15)
    with pytest.raises(ValueError, match="mean-events"):
        short_view(log, 4, seed=0)


def test_it_refuses_to_write_movielens_into_the_project(capsys):
    from benchmarks._common import REPO

    assert main(["--out", str(REPO / "ml_short.csv")]) == 2
    assert "inside the project" in capsys.readouterr().err
    assert not (REPO / "ml_short.csv").exists()


def test_short_view_runs_dry_run_writes_the_preset_with_data_split_and_seeds_and_prints_every_step(tmp_path, capsys):
    """benchmarks/short_view_runs.py --dry-run: one config per seed, each the packaged `short` preset with only the
    log, the split's validation switch and every section's seed changed (loadable by the CLI's loader); per seed
    group, train-llms and pco, then the two analysis_seeds reads over all runs; nothing is trained."""
    from benchmarks.short_view_runs import SEED_KEYS, main
    from coea.config import config_to_dict, load_run_config

    csv = tmp_path / "short.csv"
    assert main(["--csv", str(csv), "--out", str(tmp_path / "o"), "--seeds", "3,4", "--validation", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[:6]] == ["group", "train-llms", "pco"] * 2
    assert all("analysis_seeds.py" in line and "--paired-trainings" in line for line in lines[6:]) and len(lines) == 8
    assert f"served=coea_seq+x@{tmp_path / 'o' / 's3'},{tmp_path / 'o' / 's4'}" in lines[6]
    preset = config_to_dict(load_run_config(Path("short")))
    for seed in (3, 4):
        got = config_to_dict(load_run_config(tmp_path / "o" / f"s{seed}.yaml"))
        assert got["data"]["spec"] == f"csv:{csv}" and got["split"]["validation"] is True
        for path in SEED_KEYS:
            node, want = got, preset
            for key in path:
                node, want = node[key], want[key]
            assert node["seed"] == seed
            node["seed"] = want["seed"]
        got["data"]["spec"], got["split"]["validation"] = preset["data"]["spec"], preset["split"]["validation"]
        assert got == preset  # nothing else differs from the preset
    assert not (tmp_path / "o" / "s3").exists()


def test_preset_runs_dry_run_takes_any_preset_and_log_and_adds_the_evaluation_on_request(tmp_path, capsys):
    """benchmarks/preset_runs.py --dry-run with the `distil` preset on a MovieLens spec and --evaluate: the config is
    the preset with the log, the split switch and the seeds only; per seed the three training steps and `coea
    evaluate --from-run` against sasrec+x; the reads put coea+x beside sasrec+x; a name that is neither a packaged
    preset nor a file stops before anything is written."""
    from benchmarks.preset_runs import main
    from coea.config import config_to_dict, load_run_config

    spec = "movielens:/nowhere/ml-1m"
    assert main(["--data", spec, "--preset", "distil", "--out", str(tmp_path / "o"), "--seeds", "5",
                 "--evaluate", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[:4]] == ["group", "train-llms", "pco", "evaluate"]
    assert "--from-run" in lines[3] and "--reference sasrec+x" in lines[3]
    assert "--arm sasrec=sasrec+x@" in lines[4] and "--arm coea=coea+x@" in lines[4] and len(lines) == 6
    assert "--arm sasrec_ease=sasrec_ease+x@" in lines[4]  # the strongest baseline measured (session 61)
    got = config_to_dict(load_run_config(tmp_path / "o" / "s5.yaml"))
    want = config_to_dict(load_run_config(Path("distil")))
    assert got["data"]["spec"] == spec and got["split"]["validation"] is False and got["pco"]["seed"] == 5
    assert got["pco"] == {**want["pco"], "seed": 5} and got["llm"]["novelty"]["seed"] == 5
    with pytest.raises(SystemExit, match="no packaged preset or file named 'nope'"):
        main(["--data", spec, "--preset", "nope", "--out", str(tmp_path / "p"), "--dry-run"])
    assert not (tmp_path / "p").exists()
