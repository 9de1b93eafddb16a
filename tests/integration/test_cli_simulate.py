"""``coea simulate`` rejects what it cannot run before any step starts: one line, exit code 2, nothing written; and
its --drift-threshold reaches every recurring run."""

import json
from pathlib import Path

import pytest

from tests.helpers import coea


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--periods", "1"], "option --periods: periods must be >= 2 (period 0 seeds the state"),
        (["--periods", "0"], "periods must be >= 2"),
        (["--periods", "4", "--shift-period", "4"], "option --shift-period: must be in 1 .. 3 (--periods 4 minus 1)"),
        (["--data", "csv:log.csv", "--shift-period", "2"], "--shift-period works on synthetic data only"),
        (["--drift-threshold", "1.5"], "option --drift-threshold: threshold must be in (0, 1]"),
        (["--k", "0"], "option --k: k must be >= 1"),
        (["--methods", "nosuch"], "option --methods: unknown method 'nosuch'"),
    ],
    ids=["one-period", "zero-periods", "shift-out-of-range", "shift-on-csv", "threshold", "k", "methods"],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "sim"
    res = coea("simulate", "--out", str(out), *args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], res.stderr
    assert "Traceback" not in res.stderr and not out.exists()


def test_too_many_periods_for_the_users(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synthetic:\n  n_users: 45\n  n_categories: 12\n  n_groups: 3\n")  # < 50 in any window
    res = coea("simulate", "--config", str(cfg), "--periods", "2", "--out", str(tmp_path / "sim"))
    assert res.returncode == 2
    assert "option --periods: period 0 of 2 has" in res.stderr and "min_users=50" in res.stderr
    assert "(fix: use more data)" in res.stderr  # 2 periods is the least there is: "fewer periods" cannot help
    res = coea("simulate", "--config", str(cfg), "--periods", "3", "--out", str(tmp_path / "sim3"))
    assert res.returncode == 2 and "use fewer periods or more data" in res.stderr


def test_the_users_counted_for_the_drift_check_are_those_with_a_history() -> None:
    """The drift step reads each period's histories under the split (coea.stages.drift.drift_window), so simulate
    counts those users against min_users before period 0 trains: here 70 and 64 users, but 43 and 45 with a history
    once each user's last 20 events are held out (counting every user let period 0 train, then period 1's drift
    step failed)."""
    from coea.config import RunConfig, SplitConfig, SyntheticConfig
    from coea.errors import CoeaInputError
    from pipelines.simulate import _windows

    cfg = RunConfig(synthetic=SyntheticConfig(n_users=70), split=SplitConfig(n_future=20, min_history=2))
    with pytest.raises(CoeaInputError, match="period 0 of 2 has 43 users with a history under the split, fewer than "
                                             "the drift check's min_users=50"):
        _windows(cfg, 2, 50)
    assert len(_windows(cfg, 2, 40)) == 2


def test_existing_state_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "sim" / "state").mkdir(parents=True)
    res = coea("simulate", "--out", str(tmp_path / "sim"))
    assert res.returncode == 2 and "a pipeline state already exists there" in res.stderr


def test_a_split_that_leaves_a_period_no_history_is_refused_before_period_0_naming_the_log(tmp_path: Path) -> None:
    """Audit (session 53): an unknown --methods entry or `split: {n_future: 200}` failed inside period 0's training,
    left OUT/periods/p0/ behind, named that internal parquet file and suggested --n-future, which simulate lacks."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("split: {n_future: 200}\n")
    out = tmp_path / "sim"
    res = coea("simulate", "--config", str(cfg), "--periods", "2", "--out", str(out))
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1, res.stderr
    assert errors[0].startswith("error: synthetic (period 0 of 0..1), option split: none of the") and \
        "split: {n_future: 2, min_history: 2} in the --config file" in errors[0]
    assert "Traceback" not in res.stderr and not out.exists()


def test_a_non_default_drift_threshold_reaches_each_recurring_run(tmp_path: Path, capsys, monkeypatch) -> None:
    """`coea simulate --drift-threshold 0.3` hands 0.3, not the default 0.5, to every later period's coea_recurring
    run (whose monitor-drift step compares the share with it: tests/pipeline/test_compile.py, test_run_parameters.py).
    A stand-in: period 0's training and the kfp.local run are replaced by spies, the first recurring call stops the
    run with an input error (nothing is trained; what is checked is the value's path from the option to the run)."""
    import pipelines.local
    import pipelines.simulate as simulate
    from coea.errors import CoeaInputError
    from tests.helpers import run_cli

    calls = []

    def seeded(cfg, window, run_dir, state_uri, rec_method, rec_k):
        return simulate._row(window, run_dir, drift=None, regrouped=True, snapshot="s0", models="m0", metrics={},
                             seconds=0.0)

    def recurring(cfg, run_dir, state_uri, **options):
        calls.append(options)
        raise CoeaInputError("stopped by the test after the first recurring call")

    monkeypatch.setattr(simulate, "_seed_state", seeded)
    monkeypatch.setattr(simulate, "_report", lambda run_dir, method, k: None)
    monkeypatch.setattr(pipelines.local, "run_recurring_locally", recurring)
    code, _, err = run_cli(["simulate", "--out", str(tmp_path / "sim"), "--periods", "2", "--methods", "pop",
                            "--drift-threshold", "0.3"], capsys)
    assert code == 2 and "stopped by the test" in err
    (options,) = calls
    assert options["drift_threshold"] == 0.3
    assert "threshold" not in json.loads(options["drift_config"])  # one source of the threshold: the parameter
