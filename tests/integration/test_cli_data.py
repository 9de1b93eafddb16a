"""`coea data synth` and the COEA_TORCH_THREADS switch through the command line."""

import os
import subprocess

import pandas as pd
import pytest
import torch

from coea import cli
from coea.config import SyntheticConfig
from coea.data.synthetic import generate_synthetic
from tests.helpers import coea_process


def _coea(*args: str, threads: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COEA_TORCH_THREADS"}
    if threads is not None:
        env["COEA_TORCH_THREADS"] = threads
    return coea_process(*args, env=env)


def test_data_synth_writes_the_generator_s_log_and_ground_truth(tmp_path):
    """The written log and planted groups are exactly generate_synthetic's for the options given."""
    out = tmp_path / "synth"
    res = _coea("data", "synth", "--out", str(out), "--seed", "4", "--users", "30", "--categories", "6")
    assert res.returncode == 0, res.stderr
    expected = generate_synthetic(SyntheticConfig(seed=4, n_users=30, n_categories=6))
    names = ["interactions.parquet", "truth_groups.parquet", "truth_affinity.parquet"]
    assert res.stdout.split() == [str(out / n) for n in names] and sorted(os.listdir(out)) == sorted(names)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "interactions.parquet"), expected.interactions)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "truth_groups.parquet"), expected.groups)
    assert pd.read_parquet(out / "interactions.parquet")["category"].nunique() == 6


def test_data_synth_bad_option_and_bad_thread_count_are_one_line_exit_2(tmp_path):
    """--users 0 and COEA_TORCH_THREADS=0 each end with one error line, exit code 2 and nothing written."""
    for args, threads, expected in (
        (["--users", "0"], None, "option --users: must be > 0, got 0"),  # the option, not the field n_users
        ([], "0", "option COEA_TORCH_THREADS: must be a positive integer, got '0'"),
    ):
        out = tmp_path / "out"
        res = _coea("data", "synth", "--out", str(out), *args, threads=threads)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.returncode == 2 and len(errors) == 1 and expected in errors[0], res.stderr
        assert "Traceback" not in res.stderr and not out.exists()


@pytest.mark.parametrize("value", ["3", "1"])
def test_torch_threads_pins_torch_and_the_environment_of_child_steps(monkeypatch, tmp_path, value):
    """COEA_TORCH_THREADS=N (a `coea data synth` in this process) sets torch's intra-op threads and
    OMP_NUM_THREADS, which the kfp.local pipeline steps inherit."""
    before = torch.get_num_threads()
    monkeypatch.setattr(cli, "setup_logging", lambda: None)  # leave the test session's logging alone
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("COEA_TORCH_THREADS", value)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main(["data", "synth", "--out", str(tmp_path / "s"), "--users", "20", "--categories", "8"])
        assert exited.value.code == 0 and (tmp_path / "s" / "interactions.parquet").is_file()
        assert torch.get_num_threads() == int(value) and os.environ["OMP_NUM_THREADS"] == value
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["-2", "two", "1.5"])
def test_torch_threads_rejects_what_is_not_a_positive_integer(monkeypatch, capsys, tmp_path, value):
    monkeypatch.setattr(cli, "setup_logging", lambda: None)
    monkeypatch.setenv("COEA_TORCH_THREADS", value)
    with pytest.raises(SystemExit) as exited:
        cli.main(["data", "synth", "--out", str(tmp_path / "s")])
    assert exited.value.code == 2 and not (tmp_path / "s").exists()
    assert capsys.readouterr().err.strip() == (f"error: option COEA_TORCH_THREADS: must be a positive integer, got "
                                               f"{value!r} (fix: set it to a thread count such as 2, or unset it)")
