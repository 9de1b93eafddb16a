"""An existing --out folder survives a refused command whole (the data step and DSIE write into staging folders that
replace data/ and dsie/ only once the log passed every check), a full disk is one error line naming the file with
exit 2 and no new --out left behind, and the command line's usage errors are one line in the house format."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from tests.helpers import coea, run_cli

HEADER = "user_id,item_id,category,timestamp\n"
T0 = 1_700_000_000
FAST = "dsie:\n  encoder: {{dim: 16, epochs: 2{}}}\n  rqvae: {{epochs: 5}}\n"


def log(path: Path, *, users: int = 20, events: int = 20, categories: int = 6) -> Path:
    rows = [f"u{u},i{u}_{e},c{(u + e) % categories},{T0 + 3600 * (u * events + e)}\n"
            for u in range(users) for e in range(events)]
    path.write_text(HEADER + "".join(rows))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too: a staging folder left behind shows) -> its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("bad", "expected"), [
    ({"categories": 1}, "K=3 above the 1 category of the log"),
    ({"events": 8}, "none of the 20 users has split.min_history=5 history events"),
], ids=["k-above-categories", "no-user-keeps-a-history"])
def test_a_refused_log_leaves_an_existing_evaluate_out_as_it_was(tmp_path, capsys, bad, expected) -> None:
    """Audit finding 2: before, out/data/ held the refused log while metrics.json and config.json described the
    earlier one."""
    out = tmp_path / "out"
    code, _, err = run_cli(["evaluate", "--data", f"csv:{log(tmp_path / 'good.csv')}", "--methods", "pop",
                            "--k", "3", "--out", str(out)], capsys)
    assert code == 0, err
    before = snapshot(out)
    code, _, err = run_cli(["evaluate", "--data", f"csv:{log(tmp_path / 'bad.csv', **bad)}", "--methods", "pop",
                            "--k", "3", "--out", str(out)], capsys)
    assert expected in one_error_line(code, err)
    assert snapshot(out) == before


def test_evaluating_again_into_an_out_drops_the_earlier_ks_plot(tmp_path, capsys) -> None:
    """An existing --out kept an earlier evaluation's metrics_at_3.png beside the new metrics_at_5.png, and the
    run's report.html shows every plot of the folder: the old K's bars appeared as the run's."""
    out, data = tmp_path / "out", f"csv:{log(tmp_path / 'good.csv')}"
    for k in ("3", "5"):
        code, _, err = run_cli(["evaluate", "--data", data, "--methods", "pop", "--k", k, "--out", str(out)], capsys)
        assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["metrics_at_5.png"]


def test_evaluate_from_run_with_a_refused_data_log_leaves_an_existing_out_as_it_was(tmp_path, capsys) -> None:
    run, out = tmp_path / "run", tmp_path / "out"
    for folder in (run, out):
        code, _, err = run_cli(["evaluate", "--data", f"csv:{log(tmp_path / 'good.csv')}", "--methods", "pop",
                                "--k", "3", "--out", str(folder)], capsys)
        assert code == 0, err
    before = snapshot(out)
    one = log(tmp_path / "one.csv", categories=1)
    code, _, err = run_cli(["evaluate", "--from-run", str(run), "--data", f"csv:{one}", "--methods", "pop", "--k", "3",
                            "--out", str(out)], capsys)
    assert "K=3 above the 1 category" in one_error_line(code, err)
    assert snapshot(out) == before


@pytest.mark.parametrize(("bad", "extra", "expected"), [
    ({"events": 8}, "", "none of the 20 users has split.min_history=5"),
    ({}, ", min_category_support: 100000", "min_category_support 100000 leaves 0 of 6 categories known"),
], ids=["split-refused", "dsie-fit-refused"])
def test_a_refused_group_leaves_the_earlier_run_whole(tmp_path, bad, extra, expected) -> None:
    """Audit finding 2: before, data/ was replaced and dsie/lineage.json removed, so serve and train-llms refused
    the good run. A refusal inside the DSIE fit (the encoder's) leaves it whole too."""
    run, cfg = tmp_path / "run", tmp_path / "c.yaml"
    cfg.write_text(FAST.format(""))
    res = coea("group", "--data", f"csv:{log(tmp_path / 'good.csv')}", "--config", str(cfg), "--out", str(run))
    assert res.returncode == 0, res.stderr
    before = snapshot(run)
    assert "dsie/lineage.json" in before
    cfg.write_text(FAST.format(extra))
    res = coea("group", "--data", f"csv:{log(tmp_path / 'bad.csv', **bad)}", "--config", str(cfg), "--out", str(run))
    assert expected in one_error_line(res.returncode, res.stderr)
    assert snapshot(run) == before


def _full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_naming_the_file_and_a_new_out_is_removed(tmp_path, capsys, monkeypatch) -> None:
    """Audit finding 12: before, a traceback from the PNG save (exit 1) and metrics.json, metrics.md and data/
    left behind."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", _full_disk)
    out = tmp_path / "new" / "ev"
    code, _, err = run_cli(["evaluate", "--data", f"csv:{log(tmp_path / 'good.csv')}", "--methods", "pop",
                            "--k", "3", "--out", str(out)], capsys)
    line = one_error_line(code, err)
    assert line == (f"error: option --out: no space left on device writing {out / 'metrics_at_3.png'} "
                    "(fix: free space on that disk or choose another --out)")
    assert not out.exists() and (tmp_path / "new").is_dir()


def test_a_full_disk_in_data_synth_leaves_no_empty_out(tmp_path, capsys, monkeypatch) -> None:
    import pandas as pd

    monkeypatch.setattr(pd.DataFrame, "to_parquet", _full_disk)
    out = tmp_path / "syn"
    code, _, err = run_cli(["data", "synth", "--out", str(out), "--users", "20"], capsys)
    assert f"no space left on device writing {out / 'interactions.parquet'}" in one_error_line(code, err)
    assert not out.exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["evaluate", "--n-future", "abc", "--out", "x"],
     "error: option --n-future: got 'abc': input should be a valid integer"),
    (["evaluate", "--methods", "pop"],
     "error: option --out: missing: the command needs it (fix: pass --out; see `coea evaluate --help`)"),
    (["evaluate", "--mthods", "pop", "--out", "x"],
     "error: option --mthods: no such option (fix: did you mean --methods? see `coea evaluate --help`)"),
    (["data", "synth", "--out"], "error: option --out: needs a value (fix: pass --out VALUE; see `coea data synth"),
    (["evaluate", "--category-level", "zz", "--out", "x"],
     "error: option --category-level: 'zz' is not one of 'full', 'first' (fix: pass a valid value;"),
    (["evalute"], "error: no such command 'evalute'"),
], ids=["not-an-int", "missing-option", "unknown-option", "no-value", "bad-choice", "unknown-command"])
def test_usage_errors_are_one_line_with_exit_2(tmp_path, capsys, monkeypatch, argv, expected) -> None:
    """Audit finding 21: before, Typer's usage line, a hint and a multi-line box."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(argv, capsys)
    assert one_error_line(code, err).startswith(expected)
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1 and not out, err
    assert not any(c in err for c in "╭│╰"), err
    assert not (tmp_path / "x").exists()


def test_help_and_a_bare_group_keep_their_help(capsys) -> None:
    code, out, _ = run_cli(["evaluate", "--help"], capsys)
    assert code == 0 and "Usage: coea evaluate [OPTIONS]" in out and "--n-future" in out
    code, out, _ = run_cli(["data"], capsys)
    assert code == 2 and "Usage: coea data [OPTIONS] COMMAND [ARGS]..." in out
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("coea ")


def test_a_config_path_that_is_a_folder_says_so(tmp_path, capsys) -> None:
    folder = tmp_path / "c.yaml"
    folder.mkdir()
    code, _, err = run_cli(["evaluate", "--config", str(folder), "--out", str(tmp_path / "out")], capsys)
    line = one_error_line(code, err)
    assert line.startswith(f"error: {folder}, option --config: is a folder, not a config file (fix: pass the path "
                           "of a YAML file"), line
    assert not (tmp_path / "out").exists()


def test_a_full_disk_outside_an_out_folder_is_one_line_too(tmp_path, capsys, monkeypatch) -> None:
    """A command that writes into a --run folder (train-llms, pco) has no --out to remove: the line names the file."""
    import coea.cli.data

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f.json"))

    monkeypatch.setattr(coea.cli.data, "load_config", full)
    code, _, err = run_cli(["data", "stats"], capsys)
    line = one_error_line(code, err)
    assert line == f"error: no space left on device writing {tmp_path / 'f.json'} (fix: free space on that disk)"


@pytest.mark.parametrize(("code", "problem", "fix"), [
    (errno.EACCES, "permission denied", "give this user access to it (chmod, chown), or use a path it may read"),
    (errno.EROFS, "read-only file system", "that filesystem is mounted read-only: write somewhere writable"),
], ids=["permission", "read-only"])
def test_a_path_this_user_may_not_use_is_one_line_naming_it(tmp_path, capsys, monkeypatch, code, problem, fix) -> None:
    """Audit (session 53): a log without read permission, or a run folder on a read-only mount, was a PermissionError
    traceback with exit 1 (seen as root only where the test drops its capabilities: the error is raised here)."""
    import coea.cli.data

    def denied(*_args):
        raise OSError(code, "denied", str(tmp_path / "log.csv"))

    monkeypatch.setattr(coea.cli.data, "load_config", denied)
    code_, _, err = run_cli(["data", "stats"], capsys)
    line = one_error_line(code_, err)
    assert line.startswith(f"error: {problem}: {tmp_path / 'log.csv'} (fix: {fix}"), line


def test_an_out_name_too_long_for_the_filesystem_is_one_line(tmp_path, capsys) -> None:
    """A 300-character folder name: OSError ENAMETOOLONG from the --out check, a traceback with exit 1 before."""
    out = tmp_path / ("x" * 300)
    code, _, err = run_cli(["evaluate", "--methods", "pop", "--k", "3", "--out", str(out)], capsys)
    line = one_error_line(code, err)
    assert line.startswith(f"error: file name too long: {out}") and "shorten the name" in line, line


def test_an_unreadable_input_inside_an_out_command_is_not_blamed_on_out(tmp_path) -> None:
    """Review (session 53): inside `output_folder` every EACCES was reported as `option --out`, an unreadable log
    too. The option is named only for a path under the output folder; the folder a refusal began is removed."""
    from coea.cli.outputs import output_folder
    from coea.errors import CoeaInputError

    out = tmp_path / "out"
    for denied, option in ((tmp_path / "log.csv", None), (out / "metrics.json", "--out")):
        with pytest.raises(CoeaInputError) as err, output_folder(out):
            out.mkdir()
            raise PermissionError(errno.EACCES, "Permission denied", str(denied))
        assert err.value.option == option and str(denied) in str(err.value) and not out.exists()


def test_a_simulation_refused_after_its_first_period_keeps_its_folder(tmp_path) -> None:
    """`output_folder(kept=...)`: once the state a finished period wrote exists, a later refusal keeps the folder
    (its periods and state), as `coea simulate` asks; before it, the folder is removed."""
    from coea.cli.outputs import output_folder
    from coea.errors import CoeaInputError

    out = tmp_path / "sim"
    for state_written in (False, True):
        with pytest.raises(CoeaInputError), output_folder(out, kept=out / "state"):
            (out / "periods" / "p0").mkdir(parents=True)
            if state_written:
                (out / "state").mkdir()
            raise CoeaInputError("a later period's input", option="--data")
        assert out.exists() is state_written and (out / "periods" / "p0").is_dir() is state_written
